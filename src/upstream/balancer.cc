#include "upstream/balancer.h"

#include <algorithm>
#include <cmath>

#include "base/hash.h"

namespace ganglion::upstream {

namespace {

constexpr uint32_t kNone = ~0u;

uint64_t nextRandom(uint64_t& s) {
  // xorshift64*: plenty for choosing between two targets.
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 2685821657736338717ull;
}

bool usable(const ResolvedUpstream& up, uint32_t i, int64_t now_ms, uint64_t tried) {
  bool was_tried = i < 64 && (tried >> i) & 1;
  return !was_tried && up.targets[i].health->available(now_ms);
}

/// Power of two choices: two random usable targets, keep the one with the lower cost.
template <typename Cost>
uint32_t twoChoices(const ResolvedUpstream& up, BalancerState& st, int64_t now_ms, uint64_t tried,
                    Cost cost) {
  const uint32_t n = static_cast<uint32_t>(up.targets.size());
  uint32_t a = kNone, b = kNone;
  for (int attempt = 0; attempt < 8 && (a == kNone || b == kNone); ++attempt) {
    uint32_t i = static_cast<uint32_t>(nextRandom(st.rng) % n);
    if (!usable(up, i, now_ms, tried)) continue;
    if (a == kNone)
      a = i;
    else if (i != a)
      b = i;
  }
  if (a == kNone) {  // random probing missed: scan for any usable target
    for (uint32_t i = 0; i < n; ++i)
      if (usable(up, i, now_ms, tried)) {
        a = i;
        break;
      }
  }
  if (a == kNone || b == kNone) return a;
  return cost(b) < cost(a) ? b : a;
}

}  // namespace

void recordLatency(TargetLoad& load, int64_t now_us, double sample_us) {
  constexpr double kDecayUs = 10e6;
  if (load.ewma_stamp_us == 0 || sample_us > load.ewma_us) {
    load.ewma_us = sample_us;  // peak: jump up at once, decay slowly
  } else {
    double w = std::exp(-static_cast<double>(now_us - load.ewma_stamp_us) / kDecayUs);
    load.ewma_us = load.ewma_us * w + sample_us * (1 - w);
  }
  load.ewma_stamp_us = now_us;
}

uint32_t pickTarget(const ResolvedUpstream& up, BalancerState& st, const http::RequestHead& req,
                    std::string_view client_ip, uint64_t tried) {
  const uint32_t n = static_cast<uint32_t>(up.targets.size());
  if (n == 0) return kNone;
  if (st.loads.size() != n) st.loads.resize(n);
  const int64_t now_ms = steadyMillis();
  for (int pass = 0; pass < 2; ++pass) {
    // Second pass: every untried target is down, so allow a tried one rather than fail.
    uint64_t avoid = pass == 0 ? tried : 0;
    uint32_t chosen = kNone;
    switch (up.config->balance) {
      case upstream::Balance::kRoundRobin:
        for (size_t step = 0; step < up.schedule.size(); ++step) {
          uint32_t i = up.schedule[st.next++ % up.schedule.size()];
          if (usable(up, i, now_ms, avoid)) {
            chosen = i;
            break;
          }
        }
        break;
      case upstream::Balance::kLeastRequest:
        chosen = twoChoices(up, st, now_ms, avoid, [&](uint32_t i) {
          return static_cast<double>(st.loads[i].inflight + 1) / up.targets[i].weight;
        });
        break;
      case upstream::Balance::kEwma:
        chosen = twoChoices(up, st, now_ms, avoid, [&](uint32_t i) {
          // Unmeasured targets look cheap so they get measured.
          double latency = st.loads[i].ewma_us > 0 ? st.loads[i].ewma_us : 1.0;
          return latency * (st.loads[i].inflight + 1) / up.targets[i].weight;
        });
        break;
      case upstream::Balance::kHash: {
        std::string_view key =
            up.config->hash_header.empty() ? client_ip : req.headers.get(up.config->hash_header);
        if (key.empty()) key = client_ip;  // requests without the header still spread
        uint64_t h = consistentHash(key);
        auto it = std::lower_bound(up.ring.begin(), up.ring.end(), std::make_pair(h, 0u));
        for (size_t step = 0; step < up.ring.size(); ++step, ++it) {
          if (it == up.ring.end()) it = up.ring.begin();
          if (usable(up, it->second, now_ms, avoid)) {
            chosen = it->second;
            break;
          }
        }
        break;
      }
    }
    if (chosen != kNone) return chosen;
  }
  return kNone;
}

}  // namespace ganglion::upstream
