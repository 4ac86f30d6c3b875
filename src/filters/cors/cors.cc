// cors: answers preflight requests locally and adds Access-Control-* headers to responses
// for allowed origins. Requests from other origins are forwarded without CORS headers (the
// browser then refuses them), except preflights, which get 403.
#include <boost/json.hpp>

#include "filters/registry.h"

namespace ganglion::filters {

namespace {

struct CorsPolicy {
  std::vector<std::string> origins;  ///< exact origins; "*" allows any
  bool any_origin = false;
  std::string methods;  ///< comma-joined
  std::string headers;  ///< comma-joined; empty: echo the request's
  std::string expose;
  bool credentials = false;
  std::string max_age;  ///< seconds
};

class CorsFilter final : public http::Filter {
 public:
  explicit CorsFilter(CorsPolicy p) : p_(std::move(p)) {}

  http::FilterStatus onRequest(http::FilterContext& ctx) const override {
    std::string_view origin = ctx.request.headers.get("origin");
    if (origin.empty()) return http::FilterStatus::kContinue;
    bool allowed =
        p_.any_origin || std::find(p_.origins.begin(), p_.origins.end(), origin) != p_.origins.end();
    bool preflight =
        ctx.request.method == "OPTIONS" && ctx.request.headers.has("access-control-request-method");
    if (!allowed) {
      if (!preflight) return http::FilterStatus::kContinue;
      ctx.reply.status = 403;
      ctx.reply.type = "cors_origin_not_allowed";
      ctx.reply.message = fmt::format("origin '{}' is not allowed", origin);
      return http::FilterStatus::kReply;
    }
    // With credentials the origin must be echoed, never "*" (Fetch standard).
    std::string allow_origin = p_.any_origin && !p_.credentials ? "*" : std::string(origin);
    auto& out = preflight ? ctx.reply.headers : ctx.response_add;
    out.set("Access-Control-Allow-Origin", allow_origin);
    if (allow_origin != "*") out.set("Vary", "Origin");  // merged with the upstream's Vary below
    if (p_.credentials) out.set("Access-Control-Allow-Credentials", "true");
    if (!preflight) {
      if (!p_.expose.empty()) out.set("Access-Control-Expose-Headers", p_.expose);
      return http::FilterStatus::kContinue;
    }
    out.set("Access-Control-Allow-Methods", p_.methods);
    std::string_view requested = ctx.request.headers.get("access-control-request-headers");
    if (!p_.headers.empty())
      out.set("Access-Control-Allow-Headers", p_.headers);
    else if (!requested.empty())
      out.set("Access-Control-Allow-Headers", requested);
    if (!p_.max_age.empty()) out.set("Access-Control-Max-Age", p_.max_age);
    ctx.reply.status = 204;
    return http::FilterStatus::kReply;
  }
  /// Keeps the upstream's own Vary values: the response hook runs before response_add is
  /// applied, so fold "Origin" into an existing Vary here and drop the plain set.
  void onResponse(http::FilterContext& ctx, http::ResponseHead& head) const override {
    std::string_view ours = ctx.response_add.get("vary");
    std::string_view theirs = head.headers.get("vary");
    if (ours.empty() || theirs.empty() || headerListContains(theirs, "origin")) {
      if (!ours.empty() && headerListContains(theirs, "origin")) ctx.response_add.remove("vary");
      return;
    }
    std::string merged = fmt::format("{}, Origin", theirs);
    ctx.response_add.remove("vary");
    head.headers.set("Vary", merged);
  }
  std::string_view kind() const override { return "cors"; }

 private:
  CorsPolicy p_;
};

/// The settings as written, read with corsSchema().
struct CorsSettings {
  std::vector<std::string> allow_origins;
  std::vector<std::string> allow_methods{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
  std::vector<std::string> allow_headers;
  std::vector<std::string> expose_headers;
  bool allow_credentials = false;
  std::optional<config::Millis> max_age;
};

namespace json = boost::json;

void readOrigins(config::Reader& r, const config::Node& v, CorsSettings& s) {
  r.forEach(v, "allow_origins", [&](const config::Node& n) {
    auto origin = r.str(n, "origin");
    if (!origin) return;
    if (*origin != "*" && origin->find("://") == std::string::npos)
      r.fail(n, fmt::format("origin '{}' must look like https://host[:port]", *origin));
    else
      s.allow_origins.push_back(*origin);
  });
}

/// A list of HTTP tokens (methods upper-cased).
template <std::vector<std::string> CorsSettings::*Member, const char* What, bool Upper>
void readTokens(config::Reader& r, const config::Node& v, CorsSettings& s) {
  std::vector<std::string> out;
  r.forEach(v, What, [&](const config::Node& n) {
    auto token = r.str(n, What);
    if (!token) return;
    std::string t = Upper ? toUpper(*token) : *token;
    if (!config::isToken(t))
      r.fail(n, fmt::format("'{}' is not a valid token in {}", *token, What));
    else
      out.push_back(std::move(t));
  });
  s.*Member = std::move(out);
}

void readMaxAge(config::Reader& r, const config::Node& v, CorsSettings& s) {
  if (auto d = r.duration(v, "max_age")) s.max_age = *d;
}

json::value showMaxAge(const CorsSettings& s) {
  if (!s.max_age) return nullptr;
  return json::string(config::durationText(*s.max_age));
}

constexpr char kAllowMethods[] = "allow_methods";
constexpr char kAllowHeaders[] = "allow_headers";
constexpr char kExposeHeaders[] = "expose_headers";

const config::Schema<CorsSettings>& corsSchema() {
  using config::FieldKind;
  static const config::Schema<CorsSettings> schema{
      "cors",
      {
          {.name = "allow_origins",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "",
           .doc = "Origins (`https://host[:port]`) compared exactly with the `Origin` header, or `\"*\"` for "
                  "any.",
           .required = true,
           .missing = "cors needs 'allow_origins'",
           .type_text = "list",
           .read = &readOrigins,
           .show = &config::showStrings<CorsSettings, &CorsSettings::allow_origins>},
          {.name = "allow_methods",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS`",
           .doc = "Sent upper-cased in `Access-Control-Allow-Methods`.",
           .type_text = "list of tokens",
           .read = &readTokens<&CorsSettings::allow_methods, kAllowMethods, true>,
           .show = &config::showStrings<CorsSettings, &CorsSettings::allow_methods>},
          {.name = "allow_headers",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "echo the request's `Access-Control-Request-Headers`",
           .doc = "`Access-Control-Allow-Headers`.",
           .type_text = "list of tokens",
           .read = &readTokens<&CorsSettings::allow_headers, kAllowHeaders, false>,
           .show = &config::showStrings<CorsSettings, &CorsSettings::allow_headers>},
          {.name = "expose_headers",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`Access-Control-Expose-Headers`.",
           .type_text = "list of tokens",
           .read = &readTokens<&CorsSettings::expose_headers, kExposeHeaders, false>,
           .show = &config::showStrings<CorsSettings, &CorsSettings::expose_headers>},
          {.name = "allow_credentials",
           .kind = FieldKind::kBool,
           .member = &CorsSettings::allow_credentials,
           .default_text = "`false`",
           .doc =
               "Sends `Access-Control-Allow-Credentials: true`; `\"*\"` is then answered with the request's "
               "origin."},
          {.name = "max_age",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`Access-Control-Max-Age`, in whole seconds.",
           .type_text = "duration",
           .read = &readMaxAge,
           .show = &showMaxAge},
      },
      {},
      "cors takes a map: { allow_origins, allow_methods, ... }"};
  return schema;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& x : items) out += out.empty() ? x : ", " + x;
  return out;
}

}  // namespace

FilterPtr buildCors(const config::Node& node, config::Reader& r, const FilterInputs&, json::object& shown) {
  CorsSettings s;
  if (!readSettings(corsSchema(), node, s, r)) return nullptr;
  shown = config::fieldsToJson(corsSchema(), s);
  CorsPolicy p;
  for (const auto& origin : s.allow_origins) {
    if (origin == "*")
      p.any_origin = true;
    else
      p.origins.push_back(origin);
  }
  p.methods = joined(s.allow_methods);
  p.headers = joined(s.allow_headers);
  p.expose = joined(s.expose_headers);
  p.credentials = s.allow_credentials;
  if (s.max_age) p.max_age = std::to_string(s.max_age->count() / 1000);
  return std::make_shared<CorsFilter>(std::move(p));
}

std::string corsDocsTable() { return config::docsTable(corsSchema()); }

}  // namespace ganglion::filters
