#include "base/log.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>

#include "base/time.h"

namespace ganglion {

namespace {
constexpr uint32_t kLinesPerSecond = 50;
}

void logLine(std::string_view message) {
  thread_local int64_t second = 0;
  thread_local uint32_t written = 0;
  thread_local uint64_t dropped = 0;
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  if (now_s != second) {
    second = now_s;
    written = 0;
  }
  if (++written > kLinesPerSecond) {
    ++dropped;
    return;
  }
  std::time_t wall = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&wall, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (dropped) {
    std::fprintf(stderr, "%s ganglion: (%llu similar lines dropped)\n", when,
                 static_cast<unsigned long long>(dropped));
    dropped = 0;
  }
  std::fprintf(stderr, "%s ganglion: %.*s\n", when, static_cast<int>(message.size()), message.data());
}

void RepeatLimiter::log(std::string_view line) { logAt(line, steadyMillis()); }

bool RepeatLimiter::logAt(std::string_view line, int64_t now_ms) {
  constexpr int64_t kMinuteMs = 60'000;
  constexpr size_t kRemembered = 16;
  auto it = std::find_if(seen_.begin(), seen_.end(), [&](const Seen& s) { return s.line == line; });
  if (it != seen_.end() && now_ms - it->logged_ms < kMinuteMs) {
    ++it->held;
    return false;
  }
  if (it == seen_.end()) {
    if (seen_.size() == kRemembered)  // the one logged longest ago makes room
      seen_.erase(std::min_element(seen_.begin(), seen_.end(),
                                   [](const Seen& a, const Seen& b) { return a.logged_ms < b.logged_ms; }));
    seen_.push_back({std::string(line), now_ms, 0});
    logLine(line);
    return true;
  }
  if (it->held)
    logLine(std::string(line) + " (and " + std::to_string(it->held) +
            " more of this line in the last minute, not logged)");
  else
    logLine(line);
  it->logged_ms = now_ms;
  it->held = 0;
  return true;
}

}  // namespace ganglion
