// A worker's keep-alive connection pools across config versions: each version gets its own
// UpstreamRuntime per upstream (fresh balancer state), and a pool carries over to the next
// version when its upstream, target and TLS settings stay the same.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "http/upstream_connection.h"
#include "telemetry/metrics.h"
#include "upstream/upstream_client.h"

namespace ganglion::upstream {

class WorkerPools {
 public:
  /// This worker's runtimes for `upstreams` (a snapshot's, same order), reusing the pools of
  /// the previous call where the key matches; pools of removed targets close once no older
  /// version holds them. Worker thread.
  std::vector<UpstreamRuntime> runtimesFor(const std::vector<ResolvedUpstream>& upstreams,
                                           telemetry::WorkerStats& stats);
  /// Closes connections idle longer than their upstream's idle_timeout. Worker thread (tick).
  static void expireIdle(std::span<UpstreamRuntime> upstreams);

 private:
  std::map<std::string, std::shared_ptr<http::ConnectionPool>> pools_;
};

}  // namespace ganglion::upstream
