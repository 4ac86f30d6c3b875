// An upstream as a snapshot holds it: its config, its targets with their resolved addresses
// and shared health, and the balancing tables built from their weights. Built on the main
// thread with the snapshot, then read by every worker.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "upstream/target_health.h"
#include "upstream/upstream_config.h"

namespace ganglion::upstream {

struct ResolvedTarget {
  std::string key;          ///< "host:port" as configured; names the per-worker connection pool
  std::string host_header;  ///< used when a request has no Host (HTTP/1.0)
  std::string host;         ///< the configured host (name or address): TLS SNI and verification
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  ///< empty: not resolved yet (providers)
  uint32_t weight = 1;
  std::shared_ptr<TargetHealth> health;  ///< shared by workers and the health checker
};

struct ResolvedUpstream {
  const upstream::UpstreamConfig* config = nullptr;
  std::vector<ResolvedTarget> targets;
  std::vector<uint32_t> schedule;                   ///< smooth weighted round-robin order of target indices
  std::vector<std::pair<uint64_t, uint32_t>> ring;  ///< consistent-hash ring: point → target
};

}  // namespace ganglion::upstream
