#include "base/strings.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace ganglion {

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = asciiLower(c);
  return out;
}

std::string toUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool headerListContains(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::optional<uint64_t> parseUint(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> parseDouble(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text) {
  text = trim(text);
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  auto number = parseUint(text.substr(0, digits));
  if (!number) return std::nullopt;
  std::string_view unit = text.substr(digits);
  uint64_t factor = 0;
  if (unit == "ms")
    factor = 1;
  else if (unit == "s" || unit.empty())
    factor = 1000;
  else if (unit == "m")
    factor = 60'000;
  else if (unit == "h")
    factor = 3'600'000;
  else
    return std::nullopt;
  if (*number > std::numeric_limits<int64_t>::max() / factor / 2) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(*number * factor));
}

std::optional<uint64_t> parseByteSize(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  // "64k", "64K", "64KB", "64KiB" are all 65536 (sizes here are binary, as nginx's are).
  if (text.size() > 3 && (text.ends_with("iB") || text.ends_with("ib")))
    text.remove_suffix(2);
  else if (text.size() > 2 && (text.back() == 'B' || text.back() == 'b') &&
           std::string_view("kKmMgGtT").find(text[text.size() - 2]) != std::string_view::npos)
    text.remove_suffix(1);
  uint64_t factor = 1;
  switch (asciiLower(text.back())) {
    case 'k':
      factor = 1ull << 10;
      break;
    case 'm':
      factor = 1ull << 20;
      break;
    case 'g':
      factor = 1ull << 30;
      break;
    case 't':
      factor = 1ull << 40;
      break;
    default:
      break;
  }
  if (factor != 1) text.remove_suffix(1);
  auto number = parseUint(text);
  if (!number || *number > std::numeric_limits<uint64_t>::max() / factor) return std::nullopt;
  return *number * factor;
}

namespace {

/// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong
/// forms, no surrogates, nothing above U+10FFFF), or 0 when its first byte starts none.
size_t utf8SequenceLength(std::string_view s) {
  auto at = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = at(0);
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (s.size() < n || at(1) < lo || at(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i)
    if (at(i) < 0x80 || at(i) > 0xbf) return 0;
  return n;
}

}  // namespace

void appendJsonNumber(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  fmt::format_to(std::back_inserter(out), "{}", d);
}

void appendJsonEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else if (c < 0x80) {
          out += ch;
        } else if (size_t n = utf8SequenceLength(s.substr(i)); n > 0) {
          out.append(s.data() + i, n);
          i += n - 1;
        } else {
          // Not UTF-8 (a raw byte in a request path, a Latin-1 header): JSON text must be
          // UTF-8, so the byte becomes U+FFFD and the document stays parseable.
          out += "\\ufffd";
        }
    }
  }
}

std::string decodePercent(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string formatMillionths(uint64_t millionths) {
  std::string out = fmt::format("{}.{:06}", millionths / 1'000'000, millionths % 1'000'000);
  while (out.back() == '0') out.pop_back();
  if (out.back() == '.') out.pop_back();
  return out;
}

std::optional<uint64_t> parseMillionths(std::string_view text) {
  size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot),
                   frac = dot == std::string_view::npos ? "" : text.substr(dot + 1);
  if (whole.empty() || frac.size() > 6 || (dot != std::string_view::npos && frac.empty()))
    return std::nullopt;
  auto w = parseUint(whole);
  if (!w || *w > 18'000'000'000'000ull) return std::nullopt;
  uint64_t f = 0;
  for (size_t i = 0; i < 6; ++i) {
    char c = i < frac.size() ? frac[i] : '0';
    if (c < '0' || c > '9') return std::nullopt;
    f = f * 10 + static_cast<uint64_t>(c - '0');
  }
  return *w * 1'000'000 + f;
}

std::string redactUrl(std::string_view url) {
  std::string out;
  size_t authority = url.find("://");
  authority = authority == std::string_view::npos ? 0 : authority + 3;
  size_t path = url.find_first_of("/?#", authority);
  if (path == std::string_view::npos) path = url.size();
  size_t at = url.substr(0, path).rfind('@');
  if (at != std::string_view::npos && at >= authority) {
    out.append(url.substr(0, authority));
    out += "<redacted>@";
    out.append(url.substr(at + 1, path - at - 1));
  } else {
    out.append(url.substr(0, path));
  }
  const size_t fragment = url.find('#', path);  // a fragment may hold a token too
  size_t query = url.find('?', path);
  if (query > fragment) query = std::string_view::npos;
  const size_t path_end = query != std::string_view::npos ? query : fragment;
  out.append(url.substr(path, (path_end == std::string_view::npos ? url.size() : path_end) - path));
  if (query == std::string_view::npos) {
    if (fragment != std::string_view::npos) out += "#<redacted>";
    return out;
  }
  std::string_view params =
      url.substr(query + 1, (fragment == std::string_view::npos ? url.size() : fragment) - query - 1);
  out += '?';
  for (size_t start = 0; start <= params.size();) {
    size_t amp = params.find('&', start);
    if (amp == std::string_view::npos) amp = params.size();
    std::string_view param = params.substr(start, amp - start);
    size_t eq = param.find('=');
    if (start > 0) out += '&';
    out.append(param.substr(0, eq));
    // InfluxDB's settings name no secret (its credentials are u= and p=): shown, so that an
    // operator can check the database and precision a sink writes with.
    static constexpr std::string_view kHarmless[] = {"db", "rp", "precision", "consistency", "org", "bucket"};
    const std::string_view name = param.substr(0, eq);
    const bool harmless = std::find(std::begin(kHarmless), std::end(kHarmless), name) != std::end(kHarmless);
    if (eq != std::string_view::npos) out += harmless ? param.substr(eq) : std::string_view("=<redacted>");
    start = amp + 1;
  }
  if (fragment != std::string_view::npos) out += "#<redacted>";
  return out;
}

bool isValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {  // ASCII, the common case: byte by byte
      ++i;
      continue;
    }
    const size_t n = utf8SequenceLength(s.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string_view utf8Prefix(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  // Cut before the character the limit splits: back over its continuation bytes to its lead.
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

std::string printableText(std::string_view s, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(s.size(), max_bytes) + 3);
  for (size_t i = 0; i < s.size();) {
    const size_t n = static_cast<unsigned char>(s[i]) < 0x80 ? 1 : utf8SequenceLength(s.substr(i));
    if (out.size() + std::max<size_t>(n, 1) > max_bytes) {
      out += "...";
      break;
    }
    const auto b = static_cast<unsigned char>(s[i]);
    const bool c1_control = n == 2 && b == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0;
    if (n == 0 || (n == 1 && (b < 0x20 || b == 0x7f)) || c1_control)
      out.push_back('?');  // not UTF-8, or a control character
    else
      out.append(s.substr(i, n));
    i += std::max<size_t>(n, 1);
  }
  return out;
}

bool hasControlOrNoncharacter(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    uint32_t cp = b;
    size_t n = 1;
    if (b >= 0xF0) {
      n = 4;
      cp = b & 0x07;
    } else if (b >= 0xE0) {
      n = 3;
      cp = b & 0x0F;
    } else if (b >= 0xC0) {
      n = 2;
      cp = b & 0x1F;
    }
    for (size_t k = 1; k < n && i + k < s.size(); ++k)
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += n;
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return true;
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) return true;
  }
  return false;
}

}  // namespace ganglion
