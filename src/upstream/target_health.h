// Health of one upstream target, shared by all workers (atomics, read on every pick) and by
// the main thread's active health checker. Kept across reloads in a HealthRegistry so a
// reload that keeps a target keeps what is known about it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "base/time.h"
#include "upstream/upstream_config.h"

namespace ganglion::upstream {

using ganglion::steadyMillis;

struct TargetHealth {
  std::atomic<bool> active_healthy{true};    ///< written by the health checker only
  std::atomic<int64_t> ejected_until_ms{0};  ///< passive ejection, steady clock
  std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<uint32_t> ejections{0};  ///< in a row; scales the next ejection
  std::atomic<uint64_t> ejections_total{0};
  // Health checker bookkeeping (main thread only).
  uint32_t check_passes = 0;
  uint32_t check_failures = 0;

  bool available(int64_t now_ms) const {
    return active_healthy.load(std::memory_order_relaxed) &&
           ejected_until_ms.load(std::memory_order_relaxed) <= now_ms;
  }
  bool ejected(int64_t now_ms) const { return ejected_until_ms.load(std::memory_order_relaxed) > now_ms; }

  /// A request to this target went well. Any worker; writes only when there is news, so the
  /// shared cache line stays read-mostly.
  void recordSuccess() {
    if (consecutive_failures.load(std::memory_order_relaxed) != 0)
      consecutive_failures.store(0, std::memory_order_relaxed);
    if (ejections.load(std::memory_order_relaxed) != 0 && !ejected(steadyMillis()))
      ejections.store(0, std::memory_order_relaxed);
  }

  /// A request failed (connect error, timeout, 5xx). Returns true when this failure should
  /// eject the target; the caller checks the upstream-wide cap and then calls eject().
  bool recordFailure(const upstream::OutlierConfig& cfg) {
    if (cfg.consecutive_failures == 0) return false;
    uint32_t n = consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
    return n >= cfg.consecutive_failures && !ejected(steadyMillis());
  }
  void eject(const upstream::OutlierConfig& cfg) {
    uint32_t times = std::min<uint32_t>(ejections.fetch_add(1, std::memory_order_relaxed) + 1, 10);
    ejected_until_ms.store(steadyMillis() + cfg.base_ejection.count() * times, std::memory_order_relaxed);
    consecutive_failures.store(0, std::memory_order_relaxed);
    ejections_total.fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace ganglion::upstream
