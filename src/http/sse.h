// Server-sent events (text/event-stream, WHATWG HTML §9.2): an incremental parser that takes
// bytes as they arrive, split anywhere, and hands back whole events. Used by the provider
// decoders (OpenAI, Anthropic, Gemini streams) on worker threads; one parser per stream.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ganglion::http {

/// Appends one event to `out`: "event: <type>\n" (left out when `type` is empty, a plain
/// message), "data: <data>\n\n". `data` must hold no line break (JSON does not). The one SSE
/// writer of the gateway's relays and encoders.
inline void appendSseEvent(std::string& out, std::string_view type, std::string_view data) {
  if (!type.empty()) {
    out += "event: ";
    out += type;
    out += '\n';
  }
  out += "data: ";
  out += data;
  out += "\n\n";
}

struct SseEvent {
  std::string_view type;  ///< the `event:` field; empty means "message"
  std::string_view data;  ///< `data:` lines joined with '\n'
  std::string_view id;
};

class SseParser {
 public:
  /// Events larger than this are an error (a hostile or broken peer cannot grow memory).
  explicit SseParser(size_t max_event_bytes = 4 << 20) : max_event_bytes_(max_event_bytes) {}

  /// Parses `bytes`, calling `on_event(const SseEvent&)` for every complete event; the views
  /// are valid during the call only. Returns false (and stays failed) when an event grew past
  /// the limit.
  template <typename OnEvent>
  bool feed(std::string_view bytes, OnEvent&& on_event) {
    if (failed_) return false;
    while (!bytes.empty()) {
      if (skip_lf_) {
        skip_lf_ = false;
        if (bytes.front() == '\n') {
          bytes.remove_prefix(1);
          continue;
        }
      }
      size_t end = bytes.find_first_of("\r\n");
      if (end == std::string_view::npos) {
        line_.append(bytes);
        if (line_.size() + data_.size() > max_event_bytes_) return fail();
        break;
      }
      std::string_view line = bytes.substr(0, end);
      if (!line_.empty()) {
        line_.append(line);
        line = line_;
      }
      skip_lf_ = bytes[end] == '\r';
      bytes.remove_prefix(end + 1);
      if (line.empty()) {
        if (has_data_ || !type_.empty()) {
          on_event(SseEvent{type_, data_, id_});
        }
        data_.clear();
        type_.clear();
        has_data_ = false;
      } else if (!takeLine(line)) {
        return fail();
      }
      line_.clear();
    }
    return true;
  }

  /// True when bytes of an unfinished event are held (a stream that ends here was cut).
  bool midEvent() const { return !line_.empty() || has_data_ || !type_.empty(); }
  bool failed() const { return failed_; }

 private:
  bool takeLine(std::string_view line);
  bool fail() {
    failed_ = true;
    return false;
  }

  size_t max_event_bytes_;
  std::string line_;  ///< a line split across feeds
  std::string data_;
  std::string type_;
  std::string id_;
  bool has_data_ = false;
  bool skip_lf_ = false;  ///< the last feed ended on '\r': a leading '\n' belongs to it
  bool failed_ = false;
};

}  // namespace ganglion::http
