// Clock helpers shared by every module.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace ganglion {

/// Milliseconds on the steady clock: timestamps kept in atomics (circuit breakers, ejections).
inline int64_t steadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Nanoseconds on the steady clock: latencies measured across threads.
inline int64_t steadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// A doubling backoff: the pause before retry `attempt` (1 for the first) is `initial_ms`
/// doubled attempt - 1 times, at most `max_ms` (retries of sinks, reconnects of connectors,
/// LLM target retries).
inline int64_t doublingBackoffMs(int64_t initial_ms, int64_t max_ms, uint32_t attempt) {
  const uint32_t doublings = attempt == 0 ? 0 : std::min<uint32_t>(attempt - 1, 20);
  return std::min<int64_t>(max_ms, initial_ms << doublings);
}

/// Milliseconds since the epoch on the system clock: record timestamps (edge readings).
inline int64_t wallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace ganglion
