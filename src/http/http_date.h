// HTTP dates (RFC 9110 5.6.7): written in the preferred IMF-fixdate form, read in all three
// forms a recipient must accept. For Last-Modified, If-Modified-Since and If-Range.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ganglion::http {

/// The length of every date formatHttpDate writes.
inline constexpr size_t kHttpDateSize = 29;

/// `seconds` since the epoch (UTC) as "Sun, 06 Nov 1994 08:49:37 GMT", into `out` (exactly
/// kHttpDateSize bytes; times outside years 0–9999 are clamped to them). Any thread.
void formatHttpDate(int64_t seconds, char* out);
std::string formatHttpDate(int64_t seconds);

/// Seconds since the epoch of an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), an RFC 850
/// date ("Sunday, 06-Nov-94 08:49:37 GMT") or an asctime date ("Sun Nov  6 08:49:37 1994");
/// nullopt for anything else (the caller then ignores the field, as RFC 9110 asks). The
/// weekday is not checked against the date. Any thread.
std::optional<int64_t> parseHttpDate(std::string_view text);

}  // namespace ganglion::http
