// The gateway's diagnostic log (stderr): one timestamped line per event, safe from any thread.
// Details the clients must not see (internal addresses, provider error bodies) go here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ganglion {

/// Writes "<UTC time> ganglion: <message>" as one line. Any thread. Each thread writes at most
/// 50 lines a second (an outage must not flood the log or slow the workers); what it drops is
/// counted and reported with its next line.
void logLine(std::string_view message);

/// Each distinct line at most once a minute: a part that fails the same few ways again and
/// again (a device with several broken registers, a broker refusing each reconnection) logs
/// each of them once a minute, and the next time one is logged it says how many of it were
/// held back. Remembers the last 16 distinct lines. Not thread-safe: one per owner, used on
/// its owner's thread (or under its lock).
class RepeatLimiter {
 public:
  /// Logs `line` (with logLine) unless it was logged within the last minute.
  void log(std::string_view line);
  /// log() at `now_ms` on the steady clock; whether it wrote the line.
  bool logAt(std::string_view line, int64_t now_ms);

 private:
  struct Seen {
    std::string line;
    int64_t logged_ms;
    uint64_t held;  // not logged since
  };
  std::vector<Seen> seen_;
};

}  // namespace ganglion
