#include "upstream/worker_pools.h"

#include <fmt/format.h>

namespace ganglion::upstream {

std::vector<UpstreamRuntime> WorkerPools::runtimesFor(const std::vector<ResolvedUpstream>& upstreams,
                                                      telemetry::WorkerStats& stats) {
  std::vector<UpstreamRuntime> out;
  out.reserve(upstreams.size());
  std::map<std::string, std::shared_ptr<http::ConnectionPool>> pools;
  for (const auto& up : upstreams) {
    UpstreamRuntime rt;
    rt.def = &up;
    rt.stats = stats.upstream(up.config->name);
    rt.balancer.loads.resize(up.targets.size());
    for (const auto& target : up.targets) {
      // Connections are only interchangeable within one upstream and one TLS setting: the
      // same address may be reached in clear by one upstream and verified TLS by another.
      std::string key = fmt::format("{}/{}/{}", up.config->name, target.key,
                                    static_cast<const void*>(up.config->tls.get()));
      auto& pool = pools[key];
      if (!pool) {
        auto old = pools_.find(key);
        pool =
            old != pools_.end() ? old->second : std::make_shared<http::ConnectionPool>(up.config->keepalive);
      }
      pool->setMaxIdle(up.config->keepalive);
      rt.pools.push_back(pool);
    }
    out.push_back(std::move(rt));
  }
  pools_ = std::move(pools);
  return out;
}

void WorkerPools::expireIdle(std::span<UpstreamRuntime> upstreams) {
  for (auto& up : upstreams)
    for (auto& pool : up.pools) pool->expire(up.def->config->idle_timeout);
}

}  // namespace ganglion::upstream
