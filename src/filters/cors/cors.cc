// cors: answers preflight requests locally and adds Access-Control-* headers to responses
// for allowed origins. Requests from other origins are forwarded without CORS headers (the
// browser then refuses them), except preflights, which get 403.
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

std::string joinList(config::Reader& r, const config::Node& node, std::string_view what, bool upper) {
  std::string out;
  r.forEach(node, what, [&](const config::Node& n) {
    if (auto s = r.str(n, what)) {
      std::string v = *s;
      if (upper)
        for (char& c : v) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (!config::isToken(v)) {
        r.fail(n, fmt::format("'{}' is not a valid token in {}", *s, what));
        return;
      }
      if (!out.empty()) out += ", ";
      out += v;
    }
  });
  return out;
}

}  // namespace

FilterPtr buildCors(const config::Node& node, config::Reader& r, const config::Config&) {
  if (!node.IsMap()) {
    r.fail(node, "cors takes a map: { allow_origins, allow_methods, ... }");
    return nullptr;
  }
  r.checkKeys(
      node,
      {"allow_origins", "allow_methods", "allow_headers", "expose_headers", "allow_credentials", "max_age"},
      "cors");
  CorsPolicy p;
  r.forEach(node["allow_origins"], "allow_origins", [&](const config::Node& n) {
    if (auto s = r.str(n, "origin")) {
      if (*s == "*")
        p.any_origin = true;
      else if (s->find("://") == std::string::npos)
        r.fail(n, fmt::format("origin '{}' must look like https://host[:port]", *s));
      else
        p.origins.push_back(*s);
    }
  });
  if (!node["allow_origins"].IsDefined()) r.fail(node, "cors needs 'allow_origins'");
  p.methods = node["allow_methods"].IsDefined() ? joinList(r, node["allow_methods"], "allow_methods", true)
                                                : "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
  if (node["allow_headers"].IsDefined())
    p.headers = joinList(r, node["allow_headers"], "allow_headers", false);
  if (node["expose_headers"].IsDefined())
    p.expose = joinList(r, node["expose_headers"], "expose_headers", false);
  if (auto v = node["allow_credentials"]; v.IsDefined())
    if (auto b = r.boolean(v, "allow_credentials")) p.credentials = *b;
  if (auto v = node["max_age"]; v.IsDefined())
    if (auto d = r.duration(v, "max_age")) p.max_age = std::to_string(d->count() / 1000);
  return std::make_shared<CorsFilter>(std::move(p));
}

}  // namespace ganglion::filters
