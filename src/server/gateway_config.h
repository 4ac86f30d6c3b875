// The whole config of a gateway: every section as read, each declared in its module. Built by
// config_loader.h, compiled into a Snapshot (snapshot.h); immutable once loaded.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_config.h"
#include "config/config.h"
#include "edge/edge_config.h"
#include "llm/llm_config.h"
#include "server/listener_config.h"
#include "upstream/upstream_config.h"

namespace ganglion::server {

struct Config {
  std::string source_path;
  unsigned workers = 0;  ///< 0 in the file means one per core; resolved at load
  std::vector<ListenerConfig> listeners;
  std::vector<upstream::UpstreamConfig> upstreams;
  std::vector<config::RouteConfig> routes;
  std::vector<config::KeyConfig> keys;
  std::shared_ptr<const config::KeyTable> key_table;
  std::vector<llm::ProviderConfig> providers;
  std::vector<llm::ModelConfig> models;
  /// Providers marked `optional` whose api_key was empty, left out with the model targets and
  /// models that needed them (the start log and the welcome page say so).
  std::vector<std::string> skipped_providers;
  std::vector<std::string> skipped_models;
  llm::LlmCacheConfig llm_cache;
  config::StateConfig state;
  admin::AdminConfig admin;
  AccessLogConfig access_log;
  edge::EdgeConfig edge;  ///< connectors, sinks, pipelines, edge settings
};

struct LoadResult {
  std::optional<Config> config;             ///< set only when `errors` is empty
  std::vector<config::ConfigError> errors;  ///< every problem found, in file order
};

}  // namespace ganglion::server
