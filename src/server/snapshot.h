// The immutable, versioned form of a config that workers run on: routes compiled, targets
// resolved. Built on the main thread, then shared read-only (shared_ptr<const Snapshot>).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.h"
#include "http/router.h"
#include "server/gateway_config.h"
#include "upstream/resolved_upstream.h"
#include "upstream/target_health.h"

namespace ganglion::llm {
class Catalog;
}

namespace ganglion::server {

// Resolved upstreams belong to the proxy (upstream/resolved_upstream.h); the snapshot holds them.
using upstream::ResolvedTarget;
using upstream::ResolvedUpstream;

/// Target health that outlives snapshots, keyed "upstream/target". Main thread.
class HealthRegistry {
 public:
  std::shared_ptr<upstream::TargetHealth> get(const std::string& upstream, const std::string& target) {
    auto& slot = entries_[key(upstream, target)];
    if (!slot) slot = std::make_shared<upstream::TargetHealth>();
    return slot;
  }
  /// Forgets targets no longer configured (snapshots still holding them keep them alive).
  void retainOnly(const std::vector<ResolvedUpstream>& upstreams);

 private:
  static std::string key(const std::string& upstream, const std::string& target) {
    return upstream + "/" + target;
  }
  std::map<std::string, std::shared_ptr<upstream::TargetHealth>> entries_;
};

struct Snapshot {
  Config config;
  uint64_t version = 0;
  http::Router router;
  std::vector<ResolvedUpstream> upstreams;  ///< config.upstreams, one per provider, one per edge sink
  std::vector<size_t> provider_upstreams;   ///< by config.providers index: index into upstreams
  std::shared_ptr<const llm::Catalog> llm;  ///< providers and models; null without providers
  std::string welcome_page;                 ///< what `welcome: {}` routes answer
};

struct BuildResult {
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<config::ConfigError> errors;
};

/// Compiles a validated config; resolves DNS names (blocking: main thread only). Target
/// health comes from `health`, so it carries over from the previous snapshot.
/// Names in `resolved` ("host:port" → addresses) are taken from it instead of resolving
/// again (DNS refresh resolves asynchronously first).
using ResolvedNames = std::map<std::string, std::vector<boost::asio::ip::tcp::endpoint>>;
/// Resolves the host names of `cfg`'s upstream targets (not providers', which resolve
/// lazily), as buildSnapshot would; a name that does not resolve adds an error. Blocking:
/// run on the blocking pool, then hand the result to buildSnapshot. Any thread.
ResolvedNames resolveUpstreamNames(const Config& cfg, std::vector<config::ConfigError>& errors);
BuildResult buildSnapshot(Config config, uint64_t version, HealthRegistry& health,
                          const ResolvedNames& resolved = {});

}  // namespace ganglion::server
