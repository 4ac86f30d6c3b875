#include "http/http_date.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <ctime>

namespace ganglion::http {

namespace {

constexpr std::array<std::string_view, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian; H. Hinnant's algorithm).
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool leapYear(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned daysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDaysIn[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leapYear(y) ? 29 : kDaysIn[m - 1];
}

/// A cursor over the field's text: each step consumes what it reads or fails.
struct Scan {
  std::string_view s;
  bool literal(std::string_view what) {
    if (s.substr(0, what.size()) != what) return false;
    s.remove_prefix(what.size());
    return true;
  }
  /// Exactly `digits` decimal digits.
  bool number(size_t digits, int& out) {
    if (s.size() < digits) return false;
    out = 0;
    for (size_t i = 0; i < digits; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    s.remove_prefix(digits);
    return true;
  }
  bool month(unsigned& out) {
    for (unsigned i = 0; i < kMonths.size(); ++i)
      if (literal(kMonths[i])) {
        out = i + 1;
        return true;
      }
    return false;
  }
  bool dayName(bool long_form) {
    static constexpr std::array<std::string_view, 7> kLong = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                              "Thursday", "Friday", "Saturday"};
    const auto& names = long_form ? kLong : kDays;
    for (auto name : names)
      if (literal(name)) return true;
    return false;
  }
  /// "HH:MM:SS"
  bool time(int& h, int& m, int& sec) {
    return number(2, h) && literal(":") && number(2, m) && literal(":") && number(2, sec);
  }
};

std::optional<int64_t> toSeconds(int64_t year, unsigned month, int day, int h, int m, int s) {
  // 60 is a leap second, which the epoch count does not hold: read as the next second.
  if (day < 1 || static_cast<unsigned>(day) > daysInMonth(year, month) || h > 23 || m > 59 || s > 60)
    return std::nullopt;
  return daysFromCivil(year, month, static_cast<unsigned>(day)) * 86400 + h * 3600 + m * 60 + s;
}

}  // namespace

void formatHttpDate(int64_t seconds, char* out) {
  constexpr int64_t kFirst = -62167219200;  // 0000-01-01T00:00:00Z
  constexpr int64_t kLast = 253402300799;   // 9999-12-31T23:59:59Z
  seconds = std::clamp(seconds, kFirst, kLast);
  int64_t days = seconds / 86400;
  int64_t rest = seconds % 86400;
  if (rest < 0) {
    rest += 86400;
    --days;
  }
  // civil_from_days (H. Hinnant).
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const auto y = static_cast<unsigned>(static_cast<int64_t>(yoe) + era * 400 + (m <= 2));
  const auto weekday = static_cast<size_t>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
  const auto two = [](char* at, unsigned v) {
    at[0] = static_cast<char>('0' + v / 10);
    at[1] = static_cast<char>('0' + v % 10);
  };
  std::memcpy(out, kDays[weekday].data(), 3);
  std::memcpy(out + 3, ", ", 2);
  two(out + 5, d);
  out[7] = ' ';
  std::memcpy(out + 8, kMonths[m - 1].data(), 3);
  out[11] = ' ';
  two(out + 12, y / 100);
  two(out + 14, y % 100);
  out[16] = ' ';
  two(out + 17, static_cast<unsigned>(rest / 3600));
  out[19] = ':';
  two(out + 20, static_cast<unsigned>(rest / 60 % 60));
  out[22] = ':';
  two(out + 23, static_cast<unsigned>(rest % 60));
  std::memcpy(out + 25, " GMT", 4);
}

std::string formatHttpDate(int64_t seconds) {
  std::string out(kHttpDateSize, ' ');
  formatHttpDate(seconds, out.data());
  return out;
}

std::optional<int64_t> parseHttpDate(std::string_view text) {
  int day = 0, year = 0, h = 0, m = 0, s = 0;
  unsigned month = 0;
  {  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    Scan in{text};
    if (in.dayName(false) && in.literal(", ") && in.number(2, day) && in.literal(" ") && in.month(month) &&
        in.literal(" ") && in.number(4, year) && in.literal(" ") && in.time(h, m, s) && in.literal(" GMT") &&
        in.s.empty())
      return toSeconds(year, month, day, h, m, s);
  }
  {  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year more than 50 years ahead is in the past
    Scan in{text};
    if (in.dayName(true) && in.literal(", ") && in.number(2, day) && in.literal("-") && in.month(month) &&
        in.literal("-") && in.number(2, year) && in.literal(" ") && in.time(h, m, s) && in.literal(" GMT") &&
        in.s.empty()) {
      std::tm now{};
      const std::time_t t = std::time(nullptr);
      gmtime_r(&t, &now);
      const int this_year = now.tm_year + 1900;
      int full = this_year / 100 * 100 + year;
      if (full > this_year + 50) full -= 100;
      return toSeconds(full, month, day, h, m, s);
    }
  }
  {  // asctime: "Sun Nov  6 08:49:37 1994" (the day is space-padded)
    Scan in{text};
    if (in.dayName(false) && in.literal(" ") && in.month(month) && in.literal(" ")) {
      if (!in.s.empty() && in.s.front() == ' ') {
        in.s.remove_prefix(1);
        if (!in.number(1, day)) return std::nullopt;
      } else if (!in.number(2, day)) {
        return std::nullopt;
      }
      if (in.literal(" ") && in.time(h, m, s) && in.literal(" ") && in.number(4, year) && in.s.empty())
        return toSeconds(year, month, day, h, m, s);
    }
  }
  return std::nullopt;
}

}  // namespace ganglion::http
