// The one internal representation of an HTTP message head, whatever the wire format
// (HTTP/1.1 today; HTTP/2 later decodes into the same structs).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/strings.h"

namespace ganglion::http {

struct Header {
  std::string name;
  std::string value;
};

/// An ordered list of header fields. Names keep their case on the wire; lookups ignore it.
/// Owned by one stream on one worker thread.
///
/// The backing vector keeps the strings of earlier messages for their capacity, so the
/// fields at [size_, fields_.size()) are spare storage, never fields: every read goes through
/// begin()/end() (the live range) and clear()/remove() blank what they retire, so a request
/// can never see a field of the request before it on the same connection.
class HeaderList {
 public:
  const Header* find(std::string_view name) const {
    for (const Header& h : *this)
      if (iequals(h.name, name)) return &h;
    return nullptr;
  }
  std::string_view get(std::string_view name) const {
    const Header* h = find(name);
    return h ? std::string_view(h->value) : std::string_view();
  }
  bool has(std::string_view name) const { return find(name) != nullptr; }
  void add(std::string_view name, std::string_view value) {
    if (size_ == fields_.size()) fields_.emplace_back();
    auto& f = fields_[size_++];
    f.name.assign(name);
    f.value.assign(value);
  }
  /// A route's or a filter's header operations (config::HeaderOps): removes every field named
  /// in `remove`, then sets each of `set` (replacing what the list had of that name).
  void applyOps(std::span<const std::string> remove,
                std::span<const std::pair<std::string, std::string>> set) {
    for (const auto& name : remove) this->remove(name);
    for (const auto& [name, value] : set) this->set(name, value);
  }
  /// Replaces every field called `name` with one field, or adds it.
  void set(std::string_view name, std::string_view value) {
    remove(name);
    add(name, value);
  }
  void remove(std::string_view name) {
    size_t out = 0;
    for (size_t i = 0; i < size_; ++i) {
      if (iequals(fields_[i].name, name)) continue;
      if (out != i) std::swap(fields_[out], fields_[i]);
      ++out;
    }
    retire(out);
  }
  /// The last field (a field split across parser callbacks appends to it). Not empty().
  Header& back() { return fields_[size_ - 1]; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  /// Empties the list but keeps each field's string capacity for the next message.
  void clear() { retire(0); }
  const Header* begin() const { return fields_.data(); }
  const Header* end() const { return fields_.data() + size_; }

 private:
  /// Shrinks the live range to `n` fields and blanks the retired ones (capacity kept).
  void retire(size_t n) {
    for (size_t i = n; i < size_; ++i) {
      fields_[i].name.clear();
      fields_[i].value.clear();
    }
    size_ = n;
  }

  std::vector<Header> fields_;
  size_t size_ = 0;
};

struct RequestHead {
  std::string method;
  std::string target;  ///< origin-form path and query as sent
  uint8_t version_major = 1;
  uint8_t version_minor = 1;
  HeaderList headers;
  bool keep_alive = true;
  bool chunked = false;  ///< body is chunked on the wire
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool upgrade = false;  ///< Connection: upgrade with an Upgrade header

  bool hasBody() const { return chunked || (has_content_length && content_length > 0); }
  std::string_view path() const {
    std::string_view t = target;
    return t.substr(0, t.find('?'));
  }
  std::string_view host() const { return headers.get("host"); }
  void clear() {
    method.clear();
    target.clear();
    headers.clear();
    keep_alive = true;
    chunked = has_content_length = upgrade = false;
    content_length = 0;
  }
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  uint8_t version_major = 1;
  uint8_t version_minor = 1;
  HeaderList headers;
  bool keep_alive = true;
  bool chunked = false;
  bool has_content_length = false;
  uint64_t content_length = 0;
  void clear() {
    status = 0;
    reason.clear();
    headers.clear();
    keep_alive = true;
    chunked = has_content_length = false;
    content_length = 0;
  }
};

/// True for headers that describe one connection and must not be forwarded (RFC 9110 7.6.1).
bool isHopByHop(std::string_view name);

/// The standard reason phrase for a status code ("Not Found"), or "Unknown".
std::string_view reasonPhrase(int status);

/// The gateway's error body: {"error":{"code":502,"type":"...","message":"..."}} and a newline.
std::string jsonErrorBody(int code, std::string_view type, std::string_view message);

/// Whether a Content-Encoding field names a coding other than `identity`, reading every field
/// and every comma-separated coding in it: a body that is not readable as it is.
bool hasContentCoding(const HeaderList& headers);

}  // namespace ganglion::http
