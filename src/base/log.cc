#include "base/log.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>

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

}  // namespace ganglion
