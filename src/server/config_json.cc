// The config rendered for GET /config: everything the operator wrote, secrets redacted.
#include <fmt/format.h>

#include <boost/json.hpp>

#include "config/config.h"
#include "config/schema.h"
#include "llm/llm_config.h"
#include "net/tls_config.h"
#include "server/config_loader.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section

namespace json = boost::json;

std::string configToRedactedJson(const Config& c) {
  json::object root;
  root["source"] = c.source_path;
  root["workers"] = c.workers;
  json::array listeners;
  for (const auto& l : c.listeners) {
    listeners.push_back(fieldsToJson(listenerSchema(), l));
    if (l.tls) listeners.back().as_object()["tls"] = fieldsToJson(net::tlsServerSchema(), l.tls->settings());
  }
  root["listeners"] = std::move(listeners);
  json::array upstreams;
  for (const auto& u : c.upstreams) {
    upstreams.push_back(fieldsToJson(upstreamSchema(), u));
    if (u.tls) upstreams.back().as_object()["tls"] = fieldsToJson(net::tlsClientSchema(), u.tls->settings());
  }
  root["upstreams"] = std::move(upstreams);
  json::array routes;
  for (const auto& r : c.routes) routes.push_back(fieldsToJson(routeSchema(), r));
  root["routes"] = std::move(routes);
  json::array providers;
  for (const auto& p : c.providers) providers.push_back(fieldsToJson(llm::providerSchema(), p));
  root["providers"] = std::move(providers);
  json::array models;
  for (const auto& m : c.models) models.push_back(fieldsToJson(llm::modelSchema(), m));
  root["models"] = std::move(models);
  json::array keys;
  for (const auto& k : c.keys) keys.push_back(fieldsToJson(keySchema(), k));
  root["keys"] = std::move(keys);
  if (c.admin.enabled) {
    root["admin"] = fieldsToJson(adminSchema(), c.admin);
  }
  if (!c.state.sqlite.empty() || c.state.redis) root["state"] = fieldsToJson(stateSchema(), c.state);
  root["access_log"] = fieldsToJson(accessLogSchema(), c.access_log);
  root["llm_cache"] = fieldsToJson(llmCacheSchema(), c.llm_cache);
  return json::serialize(root);
}

}  // namespace ganglion::server
