// YAML → Config, collecting every error with its file and line rather than stopping at the
// first, so `ganglion check` shows the operator the whole list at once.
#include "server/config_loader.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <boost/json/value.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "admin/admin_config.h"
#include "base/strings.h"
#include "config/reader.h"
#include "config/schema.h"
#include "filters/registry.h"
#include "http/filter.h"
#include "http/path.h"
#include "http/static_site.h"
#include "llm/llm_schema.h"
#include "net/host_address.h"
#include "net/tls_config.h"
#include "server/config_sections.h"
#include "server/listener_config.h"
#include "upstream/upstream_config.h"
#include "upstream/upstream_schema.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section
using upstream::Balance;
using upstream::UpstreamConfig;

namespace {

void readUpstream(Reader& r, const config::Node& n, Config& cfg) {
  UpstreamConfig u;
  u.at = n.place();
  if (!n.IsMap()) return r.fail(n, "an upstream must be a map");
  readFields(upstream::upstreamSchema(), n, u, r);
  const config::Node targets = n["targets"];
  if (!targets.IsDefined() || (targets.IsSequence() && targets.size() == 0))
    r.fail(n, fmt::format("upstream '{}' needs at least one target", u.name));
  if (auto v = n["hash_on"]; v.IsDefined() && u.balance != Balance::kHash)
    r.fail(v, "hash_on needs 'balance: hash'");
  if (auto v = n["tls"]; v.IsDefined()) u.tls = net::readTlsClient(r, v);
  cfg.upstreams.push_back(std::move(u));
}

/// A `path` or `path_prefix` no request can have once listeners normalise paths (http/path.h),
/// or an empty string.
std::string unreachablePath(std::string_view key, const std::string& path) {
  if (path.find_first_of("?#") != std::string::npos)
    return fmt::format("{} '{}' has a '?' or '#': routes match the path only", key, path);
  std::string normal = path;
  if (http::normalisePath(normal))
    return fmt::format(
        "{} '{}' can never match: requests are routed in normal form ('{}'); write that, or set "
        "normalize_path: false on the listeners",
        key, path, normal);
  return {};
}

filters::FilterInputs filterInputs(const Config& cfg) { return {cfg.keys, cfg.key_table, cfg.state}; }

void readFilters(Reader& r, const config::Node& list, const Config& cfg, RouteConfig& rt) {
  r.forEach(list, "filters", [&](const config::Node& item) {
    if (!item.IsMap() || item.size() != 1) {
      r.fail(item, "each filter is a map with one key naming it, e.g. '- rate_limit: { requests: 10 }'");
      return;
    }
    auto kv = *item.begin();
    std::string kind = kv.first.Scalar();
    if (auto built = filters::buildFilter(kind, kv.second, r, filterInputs(cfg)); built.filter) {
      rt.filters.push_back(std::move(built.filter));
      rt.filters_shown.push_back(std::move(built.shown));
    }
  });
}

void readKeys(Reader& r, const config::Node& list, Config& cfg) {
  auto table = std::make_shared<KeyTable>();
  std::unordered_set<std::string> names;
  r.forEach(list, "keys", [&](const config::Node& n) {
    if (!n.IsMap()) return r.fail(n, "a key is a map: { name, key } or { name, key_sha256 }");
    KeyConfig k;
    k.at = n.place();
    const size_t errors_before = r.errors.size();
    readFields(keySchema(), n, k, r);
    if (r.errors.size() != errors_before) return;
    if (!n["key"].IsDefined() && !n["key_sha256"].IsDefined())
      return r.fail(n, fmt::format("key '{}' needs 'key' or 'key_sha256'", k.name));
    // Hashed lookups: a linear scan per key made 50,000 keys take 12 s to load.
    if (names.contains(k.name)) return r.fail(n, fmt::format("duplicate key name '{}'", k.name));
    if (auto same = table->by_hash.find(k.hash); same != table->by_hash.end())
      return r.fail(n, fmt::format("key '{}' has the same secret as '{}'", k.name, same->second));
    table->by_hash.emplace(k.hash, k.name);
    names.insert(k.name);
    if (k.limits.any()) table->limits.emplace(k.name, k.limits);
    if (k.cache) table->cache.emplace(k.name, true);
    cfg.keys.push_back(std::move(k));
  });
  cfg.key_table = std::move(table);
}

void readRoute(Reader& r, const config::Node& n, Config& cfg) {
  RouteConfig rt;
  rt.at = n.place();
  if (!n.IsMap()) return r.fail(n, "a route must be a map");
  readFields(routeSchema(), n, rt, r);
  auto& m = rt.match;
  if (!n["match"].IsDefined()) m.path_prefix = "/";
  if (m.path && m.path_prefix) r.fail(n["match"], "match may have 'path' or 'path_prefix', not both");
  // Listeners that normalise paths route in normal form: a path written otherwise never matches.
  const bool normalised =
      std::any_of(cfg.listeners.begin(), cfg.listeners.end(), [](const auto& l) { return l.normalize_path; });
  for (const char* key : {"path", "path_prefix"}) {
    const auto& path = std::string_view(key) == "path" ? m.path : m.path_prefix;
    if (!normalised || !path || !n["match"].IsDefined()) continue;
    if (auto bad = unreachablePath(key, *path); !bad.empty()) r.fail(n["match"][key], bad);
  }
  // The target: exactly one of llm, static, welcome, ingest and upstream.
  const char* target = nullptr;
  for (const char* key : {"llm", "static", "welcome", "ingest", "upstream"}) {
    if (!n[key].IsDefined()) continue;
    if (target)
      r.fail(n[key], fmt::format("route '{}' has both '{}' and '{}': pick one", rt.name, target, key));
    else
      target = key;
  }
  if (auto v = n["llm"]; v.IsDefined()) {
    rt.llm.emplace();
    if (!v.IsMap() && !v.IsNull()) {
      r.fail(v, "llm is a map: {} or { auth: none }");
    } else if (v.IsMap()) {
      r.checkKeys(v, {"auth"}, "llm");
      if (auto a = v["auth"]; a.IsDefined()) {
        auto mode = r.str(a, "llm.auth").value_or("");
        if (mode == "none")
          rt.llm->require_key = false;
        else if (mode != "key")
          r.fail(a, fmt::format("llm.auth must be 'key' or 'none', got '{}'", mode));
      }
    }
  } else if (auto v = n["static"]; v.IsDefined()) {
    rt.static_files = http::readStaticSite(r, v, rt.static_shown);
  } else if (auto v = n["welcome"]; v.IsDefined()) {
    // The page a first run shows: what is configured and how to go on (no settings yet).
    if (!v.IsNull() && !(v.IsMap() && v.size() == 0))
      r.fail(v, "welcome takes no settings: write 'welcome: {}'");
    rt.welcome = true;
  } else if (auto v = n["ingest"]; v.IsDefined()) {
    if (auto s = r.str(v, "ingest")) rt.ingest = *s;
    rt.ingest_at = v.place();
  } else if (auto v = n["upstream"]; v.IsDefined()) {
    if (auto s = r.str(v, "upstream")) rt.upstream = *s;
    rt.upstream_at = v.place();
  } else {
    r.fail(
        n,
        fmt::format(
            "route '{}' needs an 'upstream' (or 'llm: {{}}' to serve the LLM API, 'static: {{ root: DIR }}' "
            "to serve files, 'ingest: CONNECTOR' to take device readings, or 'welcome: {{}}')",
            rt.name));
  }
  // The LLM API holds the whole body in memory.
  if (rt.llm && !n["max_body_bytes"].IsDefined()) rt.max_body_bytes = kLlmMaxBodyBytes;
  if (auto v = n["filters"]; v.IsDefined()) readFilters(r, v, cfg, rt);
  cfg.routes.push_back(std::move(rt));
}

void validateReferences(Reader& r, Config& cfg) {
  std::set<std::string> names;
  for (auto& l : cfg.listeners)
    if (!l.name.empty() && !names.insert(l.name).second)
      r.failAt(l.at, fmt::format("duplicate listener name '{}'", l.name));
  // Two listeners clash when they would bind one socket: the same port on the same address
  // (localhost is 127.0.0.1), or on any address when one of them is the wildcard.
  for (size_t i = 0; i < cfg.listeners.size(); ++i) {
    const auto& l = cfg.listeners[i];
    const auto mine = net::bindAddressOf(l.address.host);
    for (size_t j = 0; mine && l.address.port && j < i; ++j) {
      const auto& earlier = cfg.listeners[j];
      const auto theirs = net::bindAddressOf(earlier.address.host);
      if (!theirs || earlier.address.port != l.address.port) continue;
      if (*mine == *theirs) {
        r.failAt(l.at, fmt::format("listener '{}' on {} binds the same address as listener '{}' ({})", l.name,
                                   l.address.text(), earlier.name, earlier.address.text()));
        break;
      }
      if (mine->is_unspecified() || theirs->is_unspecified()) {
        r.failAt(l.at, fmt::format("listener '{}' on {} overlaps listener '{}' on {}: a wildcard address "
                                   "takes the port on every address",
                                   l.name, l.address.text(), earlier.name, earlier.address.text()));
        break;
      }
    }
  }
  names.clear();
  for (auto& u : cfg.upstreams)
    if (!u.name.empty() && !names.insert(u.name).second)
      r.failAt(u.at, fmt::format("duplicate upstream name '{}'", u.name));
  std::set<std::string> route_names;
  for (auto& rt : cfg.routes) {
    if (!rt.name.empty() && !route_names.insert(rt.name).second)
      r.failAt(rt.at, fmt::format("duplicate route name '{}'", rt.name));
    if (!rt.upstream.empty() && !names.count(rt.upstream))
      r.failAt(rt.upstream_at, fmt::format("route '{}' names unknown upstream '{}'", rt.name, rt.upstream));
    if (!rt.ingest.empty()) {
      const auto& connectors = cfg.edge.connectors;
      auto c = std::find_if(connectors.begin(), connectors.end(),
                            [&](const auto& k) { return k.name == rt.ingest; });
      if (c == connectors.end() && !cfg.edge.refused(rt.ingest))
        r.failAt(rt.ingest_at,
                 fmt::format("route '{}' ingests for unknown connector '{}'", rt.name, rt.ingest));
      else if (c != connectors.end() && c->kind != "http")
        r.failAt(rt.ingest_at, fmt::format("route '{}' ingests for connector '{}', which is not of kind http",
                                           rt.name, rt.ingest));
    }
  }
  if (cfg.listeners.empty()) r.failAt({}, "at least one listener is required");
  bool has_llm_route = false;
  for (auto& rt : cfg.routes) has_llm_route = has_llm_route || rt.llm.has_value();
  // Providers there only for edge rules (`summarize`), with no keys to guard an API: the
  // gateway calls them itself and serves no LLM API (docs/configuration.md, "LLM API").
  const bool edge_only_models = cfg.keys.empty() && cfg.edge.rules_summarize;
  if (!cfg.providers.empty() && !has_llm_route && !edge_only_models) {
    // The LLM API on every listener, ranked after every explicit route (docs/configuration.md).
    RouteConfig api;
    api.name = "llm-api";
    api.match.path_prefix = "/v1/";
    api.llm.emplace();
    api.implicit = true;
    api.at = cfg.providers.front().at;
    api.retries = 0;
    api.max_body_bytes = kLlmMaxBodyBytes;
    api.first_byte_timeout = std::chrono::minutes(10);
    api.idle_timeout = std::chrono::minutes(5);
    cfg.routes.push_back(std::move(api));
  }
  for (auto& rt : cfg.routes) {
    if (!rt.llm || !rt.llm->require_key) continue;
    if (cfg.keys.empty()) {
      r.failAt(rt.at, fmt::format("route '{}' serves the LLM API, which needs gateway keys: add 'keys:' "
                                  "(or 'llm: {{ auth: none }}' on an explicit route for local use)",
                                  rt.name));
      continue;
    }
    // The LLM API checks gateway keys with the key_auth filter, as any route does. A route
    // that lists none gets one, before its first rate_limit (whose `by: key` needs the key)
    // and after the filters before it (a CORS preflight carries no key).
    auto& chain = rt.filters;
    auto is = [](std::string_view kind) {
      return [kind](const std::shared_ptr<const http::Filter>& f) { return f->kind() == kind; };
    };
    if (std::any_of(chain.begin(), chain.end(), is("key_auth"))) continue;
    if (auto key_auth = filters::buildFilter("key_auth", config::Node::null(), r, filterInputs(cfg));
        key_auth.filter)
      chain.insert(std::find_if(chain.begin(), chain.end(), is("rate_limit")), std::move(key_auth.filter));
  }
  // With every provider optional and keyless the LLM API still answers (no models) instead
  // of refusing the config: one file serves whichever keys the environment has.
  if (cfg.providers.empty() && cfg.skipped_providers.empty())
    for (auto& rt : cfg.routes)
      if (rt.llm)
        r.failAt(rt.at,
                 fmt::format("route '{}' serves the LLM API but no 'providers' are configured", rt.name));
}

}  // namespace

void readListeners(Reader& r, const config::Node& v, Config& cfg) {
  r.forEach(v, "listeners", [&](const config::Node& n) { readListener(r, n, cfg.listeners); });
}

void readUpstreams(Reader& r, const config::Node& v, Config& cfg) {
  r.forEach(v, "upstreams", [&](const config::Node& n) { readUpstream(r, n, cfg); });
}

void readRoutes(Reader& r, const config::Node& v, Config& cfg) {
  r.forEach(v, "routes", [&](const config::Node& n) { readRoute(r, n, cfg); });
}

void readKeySection(Reader& r, const config::Node& v, Config& cfg) { readKeys(r, v, cfg); }

void readAdminSection(Reader& r, const config::Node& v, Config& cfg) { admin::readAdmin(r, v, cfg.admin); }

void readStateSection(Reader& r, const config::Node& v, Config& cfg) {
  readSection<Config, StateConfig, &Config::state, stateSchema>(r, v, cfg);
  if (!cfg.state.sqlite.empty() && v.IsMap() && v["redis"].IsDefined())
    r.fail(v, "state: set sqlite or redis, not both (with redis, spend is kept in Redis)");
}

namespace {

/// The 1-based line where a second YAML document starts (a `---` line after content), or 0.
/// A `---` at the start of a line always marks a document: block scalars are indented.
int secondDocumentLine(std::string_view text) {
  bool content = false;
  int line = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t end = std::min(text.find('\n', at), text.size());
    std::string_view l = text.substr(at, end - at);
    ++line;
    at = end + 1;
    if (l.substr(0, 3) == "---" && (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r')) {
      if (content) return line;
      l.remove_prefix(3);  // what follows the first marker on its line is content
    }
    const size_t first = l.find_first_not_of(" \t\r");
    if (first != std::string_view::npos && l[first] != '#' && !(first == 0 && l[0] == '%')) content = true;
  }
  return 0;
}

/// Every section of a config tree, whatever format it came in.
LoadResult loadTree(const config::Node& root, const std::string& path, bool expand_env) {
  LoadResult result;
  Reader r(path, expand_env);
  Config cfg;
  cfg.source_path = path;
  if (!root.IsMap()) {
    r.fail(root, "the config must be a map of sections (listeners, routes, ...)");
    if (root.line() == 0 && root.path().empty()) r.errors.back().line = 1;
    result.errors = std::move(r.errors);
    return result;
  }
  cfg.key_table = std::make_shared<KeyTable>();  // key_auth and the LLM API look keys up even with none
  readFields(topLevelSchema(), root, cfg, r);
  validateReferences(r, cfg);
  if (cfg.workers == 0) cfg.workers = std::max(1u, std::thread::hardware_concurrency());
  std::stable_sort(r.errors.begin(), r.errors.end(),
                   [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
  result.errors = std::move(r.errors);
  if (result.errors.empty()) result.config = std::move(cfg);
  return result;
}

LoadResult treeFailed(const config::TreeError& e, const std::string& path) {
  LoadResult result;
  result.errors.push_back({path, e.line, e.message, e.path});
  return result;
}

/// Messages can quote the config's own bytes (a YAML error, a value): shown in the log and as
/// JSON, they must be valid UTF-8 without control characters.
LoadResult printable(LoadResult result) {
  for (auto& e : result.errors) e.message = printableText(e.message, e.message.size());
  return result;
}

LoadResult loadText(const std::string& text, const std::string& path, bool expand_env) {
  // One document: a second one (after a `---` line) is refused rather than ignored. Found in
  // the text: yaml-cpp's LoadAll looped without end on some inputs (a NUL byte, found by
  // fuzzing), where Load stops after the first document.
  if (const int second = secondDocumentLine(text)) {
    LoadResult result;
    result.errors.push_back({path, second,
                             "the config holds more than one YAML document (a second starts "
                             "with '---'): write one"});
    return result;
  }
  YAML::Node yaml;
  try {
    yaml = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own guard (deeper than our limit, before our tree is built) says "bad file".
    LoadResult result;
    result.errors.push_back({path, e.mark.line >= 0 ? e.mark.line + 1 : 0,
                             fmt::format("the config nests deeper than {} levels", config::kMaxTreeDepth)});
    return result;
  } catch (const YAML::Exception& e) {
    LoadResult result;
    result.errors.push_back({path, e.mark.line >= 0 ? e.mark.line + 1 : 0, "YAML syntax: " + e.msg});
    return result;
  }
  auto tree = config::fromYaml(yaml);
  yaml.reset();  // the sections are read from the tree: yaml-cpp's copy goes before they are
  if (auto* e = std::get_if<config::TreeError>(&tree)) return treeFailed(*e, path);
  return loadTree(std::get<config::Node>(tree), path, expand_env);
}

}  // namespace

LoadResult loadConfigText(const std::string& text, const std::string& path, bool expand_env) {
  return printable(loadText(text, path, expand_env));
}

LoadResult loadConfigJson(const boost::json::value& json, const std::string& name) {
  auto tree = config::fromJson(json);
  if (auto* e = std::get_if<config::TreeError>(&tree)) return printable(treeFailed(*e, name));
  return printable(loadTree(std::get<config::Node>(tree), name, false));
}

LoadResult loadConfigFile(const std::string& path) {
  auto refuse = [&](std::string why) {
    LoadResult result;
    result.errors.push_back({path, 0, std::move(why)});
    return result;
  };
  // Only a regular file: a directory read as empty text, and a FIFO blocked the reload (and
  // the admin API waiting for it) until something wrote to it.
  std::error_code ec;
  const auto kind = std::filesystem::status(path, ec).type();
  if (kind == std::filesystem::file_type::directory)
    return refuse("cannot read the config: it is a directory");
  if (!ec && kind != std::filesystem::file_type::regular)
    return refuse("cannot read the config: it is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return refuse("cannot open the file");
  std::stringstream ss;
  ss << in.rdbuf();
  return loadConfigText(ss.str(), path);
}

}  // namespace ganglion::server
