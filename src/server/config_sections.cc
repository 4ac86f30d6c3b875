#include "server/config_sections.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "llm/llm_schema.h"
#include "net/tls_config.h"
#include "server/config_loader.h"
#include "upstream/upstream_schema.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section

namespace json = boost::json;

namespace {

json::value showListeners(const Config& c) {
  json::array out;
  for (const auto& l : c.listeners) {
    out.push_back(fieldsToJson(listenerSchema(), l));
    if (l.tls) out.back().as_object()["tls"] = fieldsToJson(net::tlsServerSchema(), l.tls->settings());
  }
  return out;
}

json::value showUpstreams(const Config& c) {
  json::array out;
  for (const auto& u : c.upstreams) {
    out.push_back(fieldsToJson(upstream::upstreamSchema(), u));
    if (u.tls) out.back().as_object()["tls"] = fieldsToJson(net::tlsClientSchema(), u.tls->settings());
  }
  return out;
}

/// Each entry of a list section by its schema.
template <class T, std::vector<T> Config::*Member, const Schema<T>& (*Entry)()>
json::value showList(const Config& c) {
  return config::listToJson(Entry(), c.*Member);
}

void readProviderSection(Reader& r, const config::Node& v, Config& cfg) {
  llm::readProviders(r, v, cfg.providers, cfg.skipped_providers);
}
void readModelSection(Reader& r, const config::Node& v, Config& cfg) {
  llm::readModels(r, v, cfg.providers, cfg.skipped_providers, cfg.models, cfg.skipped_models);
}

json::value showAdmin(const Config& c) {
  if (!c.admin.enabled) return nullptr;
  return fieldsToJson(admin::adminSchema(), c.admin);
}

json::value showState(const Config& c) {
  if (c.state.sqlite.empty() && !c.state.redis) return nullptr;
  return fieldsToJson(stateSchema(), c.state);
}

}  // namespace

const Schema<Config>& topLevelSchema() {
  // Reading order (a reader may use what is above it), and the docs table's.
  static const Schema<Config> schema{
      "the top level",
      {
          {.name = "workers",
           .kind = FieldKind::kInteger,
           .member = &Config::workers,
           .default_text = "`0`",
           .doc =
               "Worker threads. `0` means one per CPU core (`std::thread::hardware_concurrency()`, at least "
               "1).",
           .min = 0,
           .max = 256},
          {.name = "listeners",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "At least one is required (`at least one listener is required`): see "
                  "[`listeners`](#listeners).",
           .type_text = "list",
           .read = &readListeners,
           .show = &showListeners},
          {.name = "upstreams",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "empty",
           .doc = "Where proxy routes send requests: see [`upstreams`](#upstreams).",
           .type_text = "list",
           .read = &readUpstreams,
           .show = &showUpstreams},
          {.name = "keys",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "empty",
           .doc = "Gateway API keys, for the `key_auth` filter and the LLM API: see [`keys`](#keys).",
           .type_text = "list",
           .read = &readKeySection,
           .show = &showList<KeyConfig, &Config::keys, keySchema>},
          {.name = "providers",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "empty",
           .doc =
               "LLM provider accounts: see [LLM gateway](#llm-gateway). With providers and no `llm:` route, "
               "the LLM API is served on `/v1/` ([implicit route](#the-implicit-v1-route)).",
           .type_text = "list",
           .read = &readProviderSection,
           .show = &showList<llm::ProviderConfig, &Config::providers, llm::providerSchema>},
          {.name = "models",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "empty",
           .doc = "Model names clients ask for, mapped to provider models: see [`models`](#models).",
           .type_text = "list",
           .read = &readModelSection,
           .show = &showList<llm::ModelConfig, &Config::models, llm::modelSchema>},
          {.name = "state",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "absent",
           .doc =
               "Where LLM key spend and limits are kept beyond one process: see [`state`](#state). Without "
               "it they are in memory.",
           .type_text = "map",
           .read = &readStateSection,
           .show = &showState},
          {.name = "connectors",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "empty",
           .doc = "Where device readings come from (edge): see [`connectors`](#connectors).",
           .type_text = "list",
           .read = [](Reader& r, const config::Node& v, Config& c) { edge::readConnectors(r, v, c.edge); },
           .show = [](const Config& c) { return edge::connectorsToJson(c.edge); }},
          {.name = "sinks",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "empty",
           .doc = "Where pipelines deliver records: see [`sinks`](#sinks).",
           .type_text = "list",
           .read = [](Reader& r, const config::Node& v, Config& c) { edge::readSinks(r, v, c.edge); },
           .show = [](const Config& c) { return edge::sinksToJson(c.edge); }},
          {.name = "pipelines",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "empty",
           .doc = "Readings from connectors through stages to sinks: see [`pipelines`](#pipelines).",
           .type_text = "list",
           .read = [](Reader& r, const config::Node& v, Config& c) { edge::readPipelines(r, v, c.edge); },
           .show = [](const Config& c) { return edge::pipelinesToJson(c.edge); }},
          {.name = "rules",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "empty",
           .doc = "Actions on records and events leaving pipelines: see [`rules`](#rules).",
           .type_text = "list",
           .read =
               [](Reader& r, const config::Node& v, Config& c) {
                 std::vector<std::string> models;
                 for (const auto& m : c.models) models.push_back(m.name);
                 edge::readRules(r, v, c.edge, models);
               },
           .show = [](const Config& c) { return edge::rulesToJson(c.edge); }},
          {.name = "edge",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "defaults",
           .doc = "Where the edge keeps its state: see [`edge`](#edge).",
           .type_text = "map",
           .read = [](Reader& r, const config::Node& v, Config& c) { edge::readEdgeSettings(r, v, c.edge); },
           .show = [](const Config& c) -> json::value {
             return config::fieldsToJson(edge::edgeSettingsSchema(), c.edge.settings);
           }},
          {.name = "routes",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "empty",
           .doc = "With no routes every request gets 404: see [`routes`](#routes).",
           .type_text = "list",
           .read = &readRoutes,
           .show = &showList<RouteConfig, &Config::routes, routeSchema>},
          {.name = "admin",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "absent",
           .doc = "The admin API is enabled only when this section is present: see [`admin`](#admin).",
           .type_text = "map",
           .read = &readAdminSection,
           .show = &showAdmin},
          {.name = "access_log",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "enabled, stdout",
           .doc = "See [`access_log`](#access_log).",
           .type_text = "map",
           .read = &readSection<Config, AccessLogConfig, &Config::access_log, accessLogSchema>,
           .show = &showSection<Config, AccessLogConfig, &Config::access_log, accessLogSchema>},
          {.name = "llm_cache",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "64MiB, 10m",
           .doc = "The [LLM response cache](#llm-response-cache).",
           .type_text = "map",
           .read = &readSection<Config, llm::LlmCacheConfig, &Config::llm_cache, llm::llmCacheSchema>,
           .show = &showSection<Config, llm::LlmCacheConfig, &Config::llm_cache, llm::llmCacheSchema>},
      },
      {}};
  return schema;
}

std::string configToRedactedJson(const Config& c) {
  json::object root;
  root["source"] = c.source_path;
  for (auto& [key, value] : fieldsToJson(topLevelSchema(), c)) root[key] = std::move(value);
  return json::serialize(root);
}

}  // namespace ganglion::server
