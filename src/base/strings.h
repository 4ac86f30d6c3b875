// Small string helpers used across the code base; none allocates unless it returns a string.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ganglion {

inline char asciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

/// Case-insensitive ASCII comparison, as HTTP field names need.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  }
  return true;
}

std::string toLower(std::string_view s);
std::string toUpper(std::string_view s);
std::string_view trim(std::string_view s);

/// True when the comma-separated list `list` holds `token` (case-insensitive), as in
/// `Connection: keep-alive, Upgrade`.
bool headerListContains(std::string_view list, std::string_view token);

/// Parses a duration such as "250ms", "10s", "5m", "1h" or a bare number of seconds.
std::optional<std::chrono::milliseconds> parseDuration(std::string_view text);

/// Parses a byte size such as "1024", "64k", "10M", "1G", "1GiB", "512KB" (powers of 1024).
std::optional<uint64_t> parseByteSize(std::string_view text);

/// Parses a decimal unsigned integer with no sign, spaces or overflow.
std::optional<uint64_t> parseUint(std::string_view text);

/// Parses the whole of `text` as a floating-point number (std::from_chars' general format: no
/// spaces, no leading '+'; "inf" and "nan" parse, so callers that want finite numbers check);
/// nullopt on anything else or out of range.
std::optional<double> parseDouble(std::string_view text);

/// Escapes `s` for inclusion inside a JSON string literal (no surrounding quotes).
/// "12.5" → 12500000: a non-negative decimal with at most 6 fraction digits, in millionths.
/// Exact (no floating point); nullopt on anything else or overflow.
std::optional<uint64_t> parseMillionths(std::string_view text);
/// The inverse of parseMillionths: 12500000 → "12.5", 1 → "0.000001", 3000000 → "3".
std::string formatMillionths(uint64_t millionths);

/// A URL safe to print in an error or a log: credentials ("user:pass@") and query values
/// ("?key=...") replaced by "<redacted>", but for InfluxDB's settings (db, rp, precision,
/// consistency, org, bucket); works on malformed URLs too.
std::string redactUrl(std::string_view url);

/// Decodes %XX escapes (a malformed escape is kept as written).
std::string decodePercent(std::string_view s);

/// `s` is well-formed UTF-8: no stray continuation bytes, overlong forms, surrogates or code
/// points past U+10FFFF.
bool isValidUtf8(std::string_view s);

void appendJsonEscaped(std::string& out, std::string_view s);

/// `d` as a JSON number, its shortest form that reads back the same (`4.5`, `0`, `1e+20`, not
/// boost::json's `4.5E0`); `null` when it is not finite.
void appendJsonNumber(std::string& out, double d);

/// Whether UTF-8 `s` holds a control character (U+0000-U+001F, U+007F-U+009F) or a Unicode
/// non-character (U+FDD0-U+FDEF, U+xxFFFE, U+xxFFFF): what names and MQTT topics must not
/// carry (MQTT 1.5.4; mosquitto drops a client that sends one). `s` must be valid UTF-8.
bool hasControlOrNoncharacter(std::string_view s);

/// The longest prefix of UTF-8 `s` of at most `max_bytes` that ends at a character boundary.
std::string_view utf8Prefix(std::string_view s, size_t max_bytes);

/// Text from outside (a peer's reason string, a topic, a config's bytes) as logs, status and
/// JSON may show it: control characters (C0, DEL, C1) and bytes that are not UTF-8 become '?'
/// (no escape sequences, no forged log lines, always valid UTF-8), and past `max_bytes` it is
/// cut at a character boundary and ends in "...".
std::string printableText(std::string_view s, size_t max_bytes = 256);

}  // namespace ganglion
