#include "http/path.h"

namespace ganglion::http {

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool isUnreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

}  // namespace

bool hasDotSegment(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  size_t i = 0;
  while (i < path.size()) {
    size_t end = path.find('/', i);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(i, end - i);
    if (seg == "." || seg == "..") return true;
    i = end + 1;
  }
  return false;
}

bool normalisePath(std::string& target) {
  const size_t query = target.find('?');
  const std::string_view path = std::string_view(target).substr(0, query);
  if (path.empty() || path[0] != '/') return false;
  // Most paths are normal already: three scans, no allocation.
  if (path.find('%') == std::string_view::npos && path.find("//") == std::string_view::npos &&
      !hasDotSegment(path))
    return false;

  // 1. Percent-encodings: unreserved characters decoded, the rest with upper-case hex.
  std::string decoded;
  decoded.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '%') {
      const int hi = i + 2 < path.size() ? hexValue(path[i + 1]) : -1;
      const int lo = i + 2 < path.size() ? hexValue(path[i + 2]) : -1;
      if (hi >= 0 && lo >= 0) {
        const auto byte = static_cast<unsigned char>(hi * 16 + lo);
        if (isUnreserved(byte)) {
          decoded += static_cast<char>(byte);
        } else {
          static constexpr char kHex[] = "0123456789ABCDEF";
          decoded += '%';
          decoded += kHex[hi];
          decoded += kHex[lo];
        }
        i += 2;
        continue;
      }
      // A '%' that starts no encoding is itself encoded, so that decoding after it cannot
      // make a new one ("%%33" would read as "%3" and then as "3" the next time).
      decoded += "%25";
      continue;
    }
    decoded += c;
  }

  // 2. Segments: empty ones (runs of '/') and "." dropped, ".." removes the one before.
  // A trailing "/", "/." or "/.." leaves the path ending in '/' (RFC 3986 5.2.4).
  std::string out;
  out.reserve(decoded.size());
  size_t i = 1;  // past the leading '/'
  bool ends_with_slash = true;
  while (i <= decoded.size()) {
    size_t end = decoded.find('/', i);
    if (end == std::string::npos) end = decoded.size();
    std::string_view seg(decoded.data() + i, end - i);
    const bool last = end == decoded.size();
    if (seg.empty() || seg == ".") {
      ends_with_slash = true;
    } else if (seg == "..") {
      size_t cut = out.rfind('/');
      out.resize(cut == std::string::npos ? 0 : cut);
      ends_with_slash = true;
    } else {
      out += '/';
      out += seg;
      ends_with_slash = false;
    }
    if (last) break;
    i = end + 1;
  }
  if (out.empty() || ends_with_slash) out += '/';
  if (query != std::string::npos) out.append(target, query, std::string::npos);
  if (out == target) return false;
  target = std::move(out);
  return true;
}

}  // namespace ganglion::http
