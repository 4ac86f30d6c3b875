// Clock helpers shared by every module.
#pragma once

#include <chrono>
#include <cstdint>

namespace ganglion {

/// Milliseconds on the steady clock: timestamps kept in atomics (circuit breakers, ejections).
inline int64_t steadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Milliseconds since the epoch on the system clock: record timestamps (edge readings).
inline int64_t wallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace ganglion
