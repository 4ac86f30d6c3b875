// The immutable, versioned form of a config that workers run on: routes compiled, targets
// resolved. Built on the main thread, then shared read-only (shared_ptr<const Snapshot>).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "control/config.h"
#include "proxy/router.h"

namespace ganglion::control {

struct ResolvedTarget {
  std::string key;  ///< "host:port" as configured; names the per-worker connection pool
  std::string host_header;  ///< used when a request has no Host (HTTP/1.0)
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;
  uint32_t weight = 1;
};

struct ResolvedUpstream {
  const UpstreamConfig* config = nullptr;
  std::vector<ResolvedTarget> targets;
  std::vector<uint32_t> schedule;  ///< smooth weighted round-robin order of target indices
};

struct Snapshot {
  Config config;
  uint64_t version = 0;
  proxy::Router router;
  std::vector<ResolvedUpstream> upstreams;
};

struct BuildResult {
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<ConfigError> errors;
};

/// Compiles a validated config; resolves DNS names (blocking: main thread only).
BuildResult buildSnapshot(Config config, uint64_t version);

}  // namespace ganglion::control
