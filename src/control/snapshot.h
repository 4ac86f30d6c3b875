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

#include "control/config.h"
#include "proxy/router.h"
#include "proxy/target_health.h"

namespace ganglion::llm {
class Catalog;
}

namespace ganglion::control {

struct ResolvedTarget {
  std::string key;          ///< "host:port" as configured; names the per-worker connection pool
  std::string host_header;  ///< used when a request has no Host (HTTP/1.0)
  std::string host;         ///< the configured host (name or address): TLS SNI and verification
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  ///< empty: not resolved yet (providers)
  uint32_t weight = 1;
  std::shared_ptr<proxy::TargetHealth> health;  ///< shared by workers and the health checker
};

struct ResolvedUpstream {
  const UpstreamConfig* config = nullptr;
  std::vector<ResolvedTarget> targets;
  std::vector<uint32_t> schedule;                   ///< smooth weighted round-robin order of target indices
  std::vector<std::pair<uint64_t, uint32_t>> ring;  ///< consistent-hash ring: point → target
};

/// Target health that outlives snapshots, keyed "upstream/target". Main thread.
class HealthRegistry {
 public:
  std::shared_ptr<proxy::TargetHealth> get(const std::string& upstream, const std::string& target) {
    auto& slot = entries_[key(upstream, target)];
    if (!slot) slot = std::make_shared<proxy::TargetHealth>();
    return slot;
  }
  /// Forgets targets no longer configured (snapshots still holding them keep them alive).
  void retainOnly(const std::vector<ResolvedUpstream>& upstreams);

 private:
  static std::string key(const std::string& upstream, const std::string& target) {
    return upstream + "/" + target;
  }
  std::map<std::string, std::shared_ptr<proxy::TargetHealth>> entries_;
};

struct Snapshot {
  Config config;
  uint64_t version = 0;
  proxy::Router router;
  std::vector<ResolvedUpstream> upstreams;  ///< config.upstreams, then one per provider
  std::vector<size_t> provider_upstreams;   ///< by config.providers index: index into upstreams
  std::shared_ptr<const llm::Catalog> llm;  ///< providers and models; null without providers
  std::string welcome_page;                 ///< what `welcome: {}` routes answer
};

struct BuildResult {
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<ConfigError> errors;
};

/// Compiles a validated config; resolves DNS names (blocking: main thread only). Target
/// health comes from `health`, so it carries over from the previous snapshot.
/// Names in `resolved` ("host:port" → addresses) are taken from it instead of resolving
/// again (DNS refresh resolves asynchronously first).
using ResolvedNames = std::map<std::string, std::vector<boost::asio::ip::tcp::endpoint>>;
BuildResult buildSnapshot(Config config, uint64_t version, HealthRegistry& health,
                          const ResolvedNames& resolved = {});

/// FNV-1a, 64-bit: the hash of consistent hashing (stable across runs and builds).
uint64_t hashKey(std::string_view key);

}  // namespace ganglion::control
