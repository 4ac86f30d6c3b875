// Choosing a target for a request: weighted round-robin, least-request and peak-EWMA (both
// power-of-two-choices over per-worker state), and consistent hashing on a header or the
// client address. Unavailable targets (failing health checks, ejected) are skipped.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "http/headers.h"
#include "upstream/resolved_upstream.h"

namespace ganglion::upstream {

/// What one worker knows about one target: requests in flight and the latency average.
struct TargetLoad {
  uint32_t inflight = 0;
  double ewma_us = 0;  ///< peak EWMA of time to response head
  int64_t ewma_stamp_us = 0;
};

/// Per-worker balancing state of one upstream, for one snapshot. Worker thread only.
struct BalancerState {
  uint32_t next = 0;  ///< position in the round-robin schedule
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  std::vector<TargetLoad> loads;  ///< by target index
  uint32_t inflight = 0;          ///< requests in flight to this upstream
  uint32_t retries_inflight = 0;
};

constexpr uint32_t kNoTarget = ~0u;

/// Picks a target index, avoiding those in `tried` (bit i = target i, for retries) when any
/// other is available. Returns kNoTarget when every target is unavailable.
uint32_t pickTarget(const ResolvedUpstream& up, BalancerState& state, const http::RequestHead& req,
                    std::string_view client_ip, uint64_t tried);

/// Folds a response-head latency into the target's peak EWMA (decay time 10 s).
void recordLatency(TargetLoad& load, int64_t now_us, double sample_us);

}  // namespace ganglion::upstream
