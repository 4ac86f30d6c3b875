// The byte encoding of the state the edge keeps across restarts (detector histories, rule
// hold-offs): little-endian integers and doubles, length-prefixed strings. The reader never
// reads past its input: a short or damaged input makes it fail (ok() false), and every value
// read after that is zero or empty.
//
// Threads: any; an encoder or decoder belongs to one thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace ganglion::edge {

class StateEncoder {
 public:
  explicit StateEncoder(std::string& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) {
    char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
    out_.append(b, 4);
  }
  void u64(uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
    out_.append(b, 8);
  }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void f64(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    u64(bits);
  }
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string& out() { return out_; }

 private:
  std::string& out_;
};

class StateDecoder {
 public:
  explicit StateDecoder(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return at_ == in_.size(); }
  size_t left() const { return in_.size() - at_; }
  uint8_t u8() { return need(1) ? static_cast<uint8_t>(in_[at_++]) : 0; }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  int64_t i64() { return static_cast<int64_t>(le(8)); }
  double f64() {
    const uint64_t bits = le(8);
    double v;
    std::memcpy(&v, &bits, 8);
    return v;
  }
  std::string_view str() {
    const uint32_t n = u32();
    if (!need(n)) return {};
    std::string_view s = in_.substr(at_, n);
    at_ += n;
    return s;
  }
  /// Marks the input bad (a value out of range).
  void fail() { ok_ = false; }

 private:
  bool need(size_t n) {
    if (!ok_ || in_.size() - at_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  uint64_t le(int bytes) {
    if (!need(static_cast<size_t>(bytes))) return 0;
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= uint64_t{static_cast<uint8_t>(in_[at_ + static_cast<size_t>(i)])} << (8 * i);
    at_ += static_cast<size_t>(bytes);
    return v;
  }

  std::string_view in_;
  size_t at_ = 0;
  bool ok_ = true;
};

}  // namespace ganglion::edge
