// The config rendered for GET /config: everything the operator wrote, secrets redacted.
#include <fmt/format.h>

#include <boost/json.hpp>

#include "control/config.h"
#include "control/config_schema.h"
#include "control/llm_config.h"
#include "net/tls.h"

namespace ganglion::control {

namespace json = boost::json;

namespace {

json::value headerOps(const HeaderOps& ops) {
  json::object add;
  // Added header values often carry credentials (${UPSTREAM_TOKEN}): never shown.
  for (const auto& [k, v] : ops.add) add[k] = "<redacted>";
  json::array remove;
  for (const auto& r : ops.remove) remove.emplace_back(r);
  return json::object{{"add", std::move(add)}, {"remove", std::move(remove)}};
}

std::string millis(Millis d) { return std::to_string(d.count()) + "ms"; }

}  // namespace

std::string configToRedactedJson(const Config& c) {
  json::object root;
  root["source"] = c.source_path;
  root["workers"] = c.workers;
  json::array listeners;
  for (const auto& l : c.listeners) {
    listeners.push_back(fieldsToJson(listenerSchema(), l));
    if (l.tls) {
      json::array certs;
      for (const auto& c : l.tls->settings().certificates) {
        json::array names;
        for (const auto& n : c.server_names) names.emplace_back(n);
        certs.push_back(json::object{{"cert", c.cert}, {"key", c.key}, {"server_names", std::move(names)}});
      }
      listeners.back().as_object()["tls"] =
          json::object{{"certificates", std::move(certs)},
                       {"client_ca", l.tls->settings().client_ca},
                       {"require_client_cert", l.tls->settings().require_client_cert},
                       {"min_version", l.tls->settings().min_version}};
    }
  }
  root["listeners"] = std::move(listeners);
  json::array upstreams;
  for (const auto& u : c.upstreams) {
    upstreams.push_back(fieldsToJson(upstreamSchema(), u));
    if (u.tls) {
      const auto& t = u.tls->settings();
      upstreams.back().as_object()["tls"] =
          json::object{{"verify", t.verify}, {"ca", t.ca}, {"cert", t.cert}, {"server_name", t.server_name}};
    }
  }
  root["upstreams"] = std::move(upstreams);
  json::array routes;
  for (const auto& r : c.routes) {
    json::object match;
    if (r.match.host) match["host"] = *r.match.host;
    if (r.match.path) match["path"] = *r.match.path;
    if (r.match.path_prefix) match["path_prefix"] = *r.match.path_prefix;
    if (!r.match.methods.empty()) {
      json::array m;
      for (const auto& x : r.match.methods) m.emplace_back(x);
      match["methods"] = std::move(m);
    }
    if (!r.match.headers.empty()) {
      json::object h;
      for (const auto& [k, v] : r.match.headers) h[k] = v;
      match["headers"] = std::move(h);
    }
    json::object route{{"name", r.name},
                       {"match", std::move(match)},
                       {"upstream", r.upstream},
                       {"timeout", millis(r.timeout)},
                       {"first_byte_timeout", millis(r.first_byte_timeout)},
                       {"idle_timeout", millis(r.idle_timeout)},
                       {"retries", r.retries},
                       {"max_body_bytes", r.max_body_bytes},
                       {"request_headers", headerOps(r.request_headers)},
                       {"response_headers", headerOps(r.response_headers)}};
    json::array filters;
    for (const auto& k : r.filter_kinds) filters.emplace_back(k);
    route["filters"] = std::move(filters);
    if (r.rewrite_path_prefix) route["rewrite"] = json::object{{"path_prefix", *r.rewrite_path_prefix}};
    if (r.welcome) route["welcome"] = json::object{};
    if (r.llm) route["llm"] = json::object{{"auth", r.llm->require_key ? "key" : "none"}};
    routes.push_back(std::move(route));
  }
  root["routes"] = std::move(routes);
  json::array providers;
  for (const auto& p : c.providers) {
    json::object o{{"name", p.name}, {"kind", p.kind}, {"base_url", p.base_url}};
    if (!p.api_key.empty()) o["api_key"] = "<redacted>";
    if (!p.api_version.empty()) o["api_version"] = p.api_version;
    if (!p.region.empty()) o["region"] = p.region;
    if (!p.access_key_id.empty()) o["access_key_id"] = "<redacted>";
    if (!p.secret_access_key.empty()) o["secret_access_key"] = "<redacted>";
    if (!p.session_token.empty()) o["session_token"] = "<redacted>";
    providers.push_back(std::move(o));
  }
  root["providers"] = std::move(providers);
  json::array models;
  for (const auto& m : c.models) {
    json::array targets;
    for (const auto& t : m.targets) {
      json::object target{{"provider", t.provider}, {"model", t.model}, {"weight", t.weight}};
      if (t.context_window) target["context_window"] = t.context_window;
      if (t.max_output) target["max_output"] = t.max_output;
      if (!t.tokenizer.empty()) target["tokenizer"] = t.tokenizer;
      targets.push_back(std::move(target));
    }
    json::object o{{"name", m.name}, {"strategy", strategyName(m.strategy)}, {"targets", std::move(targets)}};
    if (m.context_window) o["context_window"] = m.context_window;
    models.push_back(std::move(o));
  }
  root["models"] = std::move(models);
  json::array keys;
  for (const auto& k : c.keys) keys.push_back(json::object{{"name", k.name}, {"key", "<redacted>"}});
  root["keys"] = std::move(keys);
  if (c.admin.enabled) {
    root["admin"] = fieldsToJson(adminSchema(), c.admin);
  }
  if (!c.state.sqlite.empty() || c.state.redis) {
    json::object st;
    if (!c.state.sqlite.empty()) st["sqlite"] = c.state.sqlite;
    if (c.state.redis) {
      st["redis"] = fmt::format("redis://{}{}:{}/{}", c.state.redis_password.empty() ? "" : ":<redacted>@",
                                c.state.redis_host, c.state.redis_port, c.state.redis_db);
      st["redis_timeout_ms"] = c.state.redis_timeout.count();
    }
    root["state"] = std::move(st);
  }
  root["access_log"] = fieldsToJson(accessLogSchema(), c.access_log);
  root["llm_cache"] = fieldsToJson(llmCacheSchema(), c.llm_cache);
  return json::serialize(root);
}

}  // namespace ganglion::control
