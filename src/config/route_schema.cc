// The `routes[]` section's fields and its `match` map, declared once
// (config/schema.h). What needs other sections (the target's upstream, the filters,
// whether listeners normalise paths) is read by the route reader in config_loader.cc.
#include <fmt/format.h>

#include <boost/asio/ip/address.hpp>
#include <boost/json.hpp>

#include "base/strings.h"
#include "config/schema.h"

namespace ganglion::config {

namespace json = boost::json;

namespace {

/// Puts a route's `host` in the form requests are compared in (lower case, no trailing dot),
/// or says why no request could ever match it.
std::string normaliseRouteHost(std::string& host) {
  const std::string given = host;
  host = toLower(host);
  if (!host.empty() && host.back() == '.' && host != "." && host.front() != '[') host.pop_back();
  if (host.empty()) return "host must not be empty";
  if (host.back() == '.') return fmt::format("host '{}' has an empty label", given);
  if (host.front() == '[') {
    if (host.find('%') != std::string::npos)
      return fmt::format("host '{}' has a zone ('%'), which no Host header can carry", given);
    boost::system::error_code ec;
    if (host.back() == ']') boost::asio::ip::make_address_v6(host.substr(1, host.size() - 2), ec);
    if (host.back() != ']' || ec)
      return fmt::format("host '{}' is not a bracketed IPv6 address like [::1] (the port is not compared)",
                         given);
    return {};
  }
  if (host.find(':') != std::string::npos)
    return fmt::format(
        "host '{}' has a ':': routes match the name only, without the port (an IPv6 address is written "
        "in brackets, like [::1])",
        given);
  std::string_view name = host;
  if (name.front() == '*') {
    if (name.size() < 3 || name[1] != '.')
      return fmt::format("host '{}' must be a name or a '*.suffix' wildcard", given);
    name.remove_prefix(2);
  }
  if (name.front() == '.' || name.find("..") != std::string_view::npos)
    return fmt::format("host '{}' has an empty label", given);
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) {
      const auto byte = static_cast<unsigned char>(c);
      const std::string shown =
          byte > 0x20 && byte < 0x7f ? fmt::format("'{}'", c) : fmt::format("byte 0x{:02x}", byte);
      return fmt::format(
          "host '{}' has {}, which no Host header can carry (letters, digits, '-', '.', '_'; "
          "a name in another script is written in its xn-- form)",
          given, shown);
    }
  return {};
}

}  // namespace

namespace {

void readMatchHost(Reader& r, const config::Node& v, RouteMatch& m) {
  auto s = r.str(v, "host");
  if (!s) return;
  std::string host = *s;
  if (auto problem = normaliseRouteHost(host); !problem.empty()) return r.fail(v, problem);
  m.host = host;
}

/// `path` and `path_prefix` are checked alike (their reachability under path normalisation
/// is checked by the route reader, which knows the listeners).
template <std::optional<std::string> RouteMatch::*Member, const char* Key>
void readMatchPath(Reader& r, const config::Node& v, RouteMatch& m) {
  auto s = r.str(v, Key);
  if (!s) return;
  if (s->empty() || (*s)[0] != '/') return r.fail(v, fmt::format("{} must start with '/'", Key));
  if (s->find_first_of(" \t") != std::string::npos)
    return r.fail(v, fmt::format("{} has a space: write it percent-encoded (%20)", Key));
  m.*Member = *s;
}

template <std::optional<std::string> RouteMatch::*Member>
json::value showOptionalString(const RouteMatch& m) {
  if (!(m.*Member)) return nullptr;
  return json::string(*(m.*Member));
}

constexpr char kPath[] = "path";
constexpr char kPathPrefix[] = "path_prefix";

void readMethods(Reader& r, const config::Node& v, RouteMatch& m) {
  r.forEach(v, "methods", [&](const config::Node& item) {
    auto s = r.str(item, "method");
    if (!s) return;
    std::string upper = toUpper(*s);
    if (!isToken(upper)) return r.fail(item, fmt::format("'{}' is not a valid method", *s));
    m.methods.push_back(upper);
  });
}

json::value showMethods(const RouteMatch& m) {
  if (m.methods.empty()) return nullptr;
  json::array out;
  for (const auto& x : m.methods) out.emplace_back(x);
  return out;
}

void readMatchHeaders(Reader& r, const config::Node& v, RouteMatch& m) {
  if (!v.IsMap()) return r.fail(v, "match.headers must be a map of header: value");
  for (const auto& kv : v) {
    auto value = r.str(kv.second, "header value");
    if (!isToken(kv.first.Scalar()))
      r.fail(kv.first, "invalid header name in match.headers");
    else if (value)
      m.headers.emplace_back(toLower(kv.first.Scalar()), *value);
  }
}

json::value showMatchHeaders(const RouteMatch& m) {
  if (m.headers.empty()) return nullptr;
  json::object out;
  for (const auto& [k, v] : m.headers) out[k] = v;
  return out;
}

void readRewrite(Reader& r, const config::Node& v, RouteConfig& rt) {
  if (!v.IsMap()) return r.fail(v, "rewrite must be a map");
  r.checkKeys(v, {"path_prefix"}, "rewrite");
  auto p = v["path_prefix"];
  if (!p.IsDefined()) return;
  auto s = r.str(p, "rewrite.path_prefix");
  if (!s) return;
  if (s->empty() || (*s)[0] != '/') return r.fail(p, "rewrite.path_prefix must start with '/'");
  // It goes into the request line sent upstream, where a space would end the target.
  if (s->find_first_of(" \t") != std::string::npos)
    return r.fail(p, "rewrite.path_prefix has a space: write it percent-encoded (%20)");
  rt.rewrite_path_prefix = *s;
}

json::value showRewrite(const RouteConfig& rt) {
  if (!rt.rewrite_path_prefix) return nullptr;
  return json::object{{"path_prefix", *rt.rewrite_path_prefix}};
}

template <HeaderOps RouteConfig::*Member, const char* Key>
void readHeaderOps(Reader& r, const config::Node& v, RouteConfig& rt) {
  rt.*Member = r.headerOps(v, Key);
}

template <HeaderOps RouteConfig::*Member>
json::value showHeaderOps(const RouteConfig& rt) {
  return headerOpsToJson(rt.*Member);
}

constexpr char kRequestHeaders[] = "request_headers";
constexpr char kResponseHeaders[] = "response_headers";

json::value showUpstream(const RouteConfig& rt) {
  if (rt.upstream.empty()) return nullptr;
  return json::string(rt.upstream);
}

json::value showLlm(const RouteConfig& rt) {
  if (!rt.llm) return nullptr;
  return json::object{{"auth", rt.llm->require_key ? "key" : "none"}};
}

json::value showWelcome(const RouteConfig& rt) {
  if (!rt.welcome) return nullptr;
  return json::object{};
}

json::value showIngest(const RouteConfig& rt) {
  if (rt.ingest.empty()) return nullptr;
  return json::string(rt.ingest);
}

json::value showStatic(const RouteConfig& rt) {
  if (rt.static_shown.empty()) return nullptr;
  return json::parse(rt.static_shown);
}

json::value showFilters(const RouteConfig& rt) {
  json::array out;
  for (const auto& shown : rt.filters_shown) out.push_back(json::parse(shown));
  return out;
}

}  // namespace

const Schema<RouteMatch>& matchSchema() {
  static const Schema<RouteMatch> schema{
      "match",
      {
          {.name = "host",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "any",
           .doc = "The request's `Host`, compared without its port and without case (`API.Example.com:8080` "
                  "is `api.example.com`; a trailing dot is ignored). Either an exact name or a wildcard "
                  "`*.suffix`. IPv6 literals keep their brackets: `[::1]`.",
           .type_text = "string",
           .read = readMatchHost,
           .show = showOptionalString<&RouteMatch::host>},
          {.name = "path",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "The request path (the target up to `?`) must equal this exactly, or match it as a "
                  "template when it contains `{`.",
           .type_text = "string, starts with `/`",
           .read = readMatchPath<&RouteMatch::path, kPath>,
           .show = showOptionalString<&RouteMatch::path>},
          {.name = "path_prefix",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`/` when `path` is not set",
           .doc = "The request path must start with this string.",
           .type_text = "string, starts with `/`",
           .read = readMatchPath<&RouteMatch::path_prefix, kPathPrefix>,
           .show = showOptionalString<&RouteMatch::path_prefix>},
          {.name = "methods",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "any",
           .doc = "The request method must be one of these. Written in any case; compared in upper case. "
                  "`GET` also admits `HEAD`. Empty or absent: any method.",
           .type_text = "list of strings",
           .read = readMethods,
           .show = showMethods},
          {.name = "headers",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "For each entry, the request's first header of that name (name compared without case) "
                  "must have exactly this value (case-sensitive).",
           .type_text = "map name: value",
           .read = readMatchHeaders,
           .show = showMatchHeaders},
      },
      {},
      "route 'match' must be a map",
  };
  return schema;
}

const Schema<RouteConfig>& routeSchema() {
  using R = RouteConfig;
  static const Schema<RouteConfig> schema{
      "route",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &R::name,
           .default_text = "",
           .doc = "Unique among routes. Used in metrics and the access log.",
           .required = true,
           .what = "route name",
           .missing = "route needs a 'name'"},
          {.name = "match",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`{ path_prefix: / }`",
           .doc = "Conditions, all of which must hold (below).",
           .type_text = "map",
           .read = readSection<R, RouteMatch, &R::match, matchSchema>,
           .show = showSection<R, RouteMatch, &R::match, matchSchema>},
          {.name = "upstream",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "required, unless `llm`, `static`, `welcome` or `ingest` is set",
           .doc = "Name of an upstream defined in `upstreams`.",
           .type_text = "string",
           .show = showUpstream},
          {.name = "llm",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`{}` or `{ auth: none }`: the route serves the LLM API instead of forwarding; see [LLM "
                  "routes](#llm-routes). A route has one of `upstream`, `llm`, `static`, `welcome` and "
                  "`ingest`.",
           .type_text = "map",
           .show = showLlm},
          {.name = "static",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`{ root: DIR }`: the route serves the files under `DIR` (GET and HEAD) instead of "
                  "forwarding; see [Static files](#static-files).",
           .type_text = "map",
           .show = showStatic},
          {.name = "welcome",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc =
               "The route answers `GET` and `HEAD` with the welcome page (plain text, built at each "
               "load): the listeners, the routes in the order they are tried, the LLM API's providers and "
               "models (or how to switch them on), the gateway keys by name, the admin API, and how to go "
               "on. It never shows a secret. Other methods: `405`. The default `config/ganglion.yaml` puts "
               "it at `/`.",
           .type_text = "`{}`",
           .show = showWelcome},
          {.name = "ingest",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "The name of an `http` connector: the route takes device readings (`POST`; JSON, SenML or "
                  "line protocol) into the pipelines that read that connector; see [HTTP "
                  "ingest](edge.md#http-ingest).",
           .type_text = "string",
           .show = showIngest},
          {.name = "timeout",
           .kind = FieldKind::kDuration,
           .member = &R::timeout,
           .default_text = "`0` (none)",
           .doc = "Total time for the exchange with the upstream, from the start of forwarding (before "
                  "connecting) to the end of the response, retries included."},
          {.name = "first_byte_timeout",
           .kind = FieldKind::kDuration,
           .member = &R::first_byte_timeout,
           .default_text = "`60s`",
           .doc = "From the end of sending the request (head and body) until the upstream's response head "
                  "has been received."},
          {.name = "idle_timeout",
           .kind = FieldKind::kDuration,
           .member = &R::idle_timeout,
           .default_text = "`60s`",
           .doc = "Longest wait between two reads of the upstream's response body; also limits each write "
                  "of the request head and body to the upstream."},
          {.name = "retries",
           .kind = FieldKind::kInteger,
           .member = &R::retries,
           .default_text = "`1`",
           .doc = "Extra attempts after the first, in the cases listed under [Retries](#retries).",
           .min = 0,
           .max = 10},
          {.name = "max_body_bytes",
           .kind = FieldKind::kSize,
           .member = &R::max_body_bytes,
           .default_text = "`1G` (`32M` on LLM routes)",
           .doc = "Largest request body accepted. Over it: `413`."},
          {.name = "rewrite",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`{ path_prefix: /new }`: see [Rewrite](#rewrite).",
           .type_text = "map",
           .read = readRewrite,
           .show = showRewrite},
          {.name = "request_headers",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`{ add: {name: value, ...}, remove: [name, ...] }` applied to the request sent upstream.",
           .type_text = "map",
           .read = readHeaderOps<&R::request_headers, kRequestHeaders>,
           .show = showHeaderOps<&R::request_headers>},
          {.name = "response_headers",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "The same, applied to the response sent to the client.",
           .type_text = "map",
           .read = readHeaderOps<&R::response_headers, kResponseHeaders>,
           .show = showHeaderOps<&R::response_headers>},
          {.name = "filters",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "Filters run on the route's requests and responses: see [Filters](#filters).",
           .type_text = "list",
           .show = showFilters},
      },
      {},
  };
  return schema;
}

}  // namespace ganglion::config
