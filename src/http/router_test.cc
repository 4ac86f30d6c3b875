#include "http/router.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "config/config.h"
#include "server/config_loader.h"

namespace ganglion::http {
namespace {

server::Config parse(const std::string& yaml) {
  auto r = server::loadConfigText(yaml, "test.yaml");
  for (auto& e : r.errors) ADD_FAILURE() << e.text();
  if (!r.config) return server::Config{};
  return std::move(*r.config);
}

std::string routeFor(const Router& router, std::string method, std::string target, std::string host,
                     std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::RequestHead req;
  req.method = method;
  req.target = target;
  if (!host.empty()) req.headers.add("Host", host);
  for (auto& [k, v] : headers) req.headers.add(k, v);
  const CompiledRoute* r = router.match(req);
  return r ? r->config->name : "<none>";
}

constexpr const char* kConfig = R"(
listeners: [ { name: l, address: "127.0.0.1:1" } ]
upstreams: [ { name: u, targets: [ "127.0.0.1:2" ] } ]
routes:
  - { name: catchall, match: { path_prefix: / }, upstream: u }
  - { name: api, match: { path_prefix: /api }, upstream: u }
  - { name: api-v2, match: { path_prefix: /api/v2 }, upstream: u }
  - { name: exact, match: { path: /api/health }, upstream: u }
  - { name: user, match: { path: "/users/{id}" }, upstream: u }
  - { name: user-posts, match: { path: "/users/{id}/posts" }, upstream: u }
  - { name: post-only, match: { path_prefix: /api, methods: [ POST ] }, upstream: u }
  - { name: get-only, match: { path_prefix: /reports, methods: [ GET ] }, upstream: u }
  - { name: v2-header, match: { path_prefix: /api, headers: { x-version: "2" } }, upstream: u }
  - { name: wild, match: { host: "*.example.com" }, upstream: u }
  - { name: wild-deep, match: { host: "*.eu.example.com" }, upstream: u }
  - { name: exact-host, match: { host: "api.example.com" }, upstream: u }
)";

TEST(Router, PriorityRules) {
  auto cfg = parse(kConfig);
  Router router;
  router.build(cfg.routes);
  EXPECT_EQ(routeFor(router, "GET", "/", "x"), "catchall");
  EXPECT_EQ(routeFor(router, "GET", "/api/x", "x"), "api");
  EXPECT_EQ(routeFor(router, "GET", "/api/v2/x", "x"), "api-v2");
  EXPECT_EQ(routeFor(router, "GET", "/api/health?full=1", "x"), "exact");
  EXPECT_EQ(routeFor(router, "GET", "/users/42", "x"), "user");
  EXPECT_EQ(routeFor(router, "GET", "/users/42/posts", "x"), "user-posts");
  EXPECT_EQ(routeFor(router, "GET", "/users/", "x"), "catchall");
  EXPECT_EQ(routeFor(router, "GET", "/users/42/other", "x"), "catchall");
  EXPECT_EQ(routeFor(router, "POST", "/api/x", "x"), "post-only");
  // GET admits HEAD: a HEAD used to fall past the GET route (and its filters) to the catch-all.
  EXPECT_EQ(routeFor(router, "GET", "/reports/q", "x"), "get-only");
  EXPECT_EQ(routeFor(router, "HEAD", "/reports/q", "x"), "get-only");
  EXPECT_EQ(routeFor(router, "POST", "/reports/q", "x"), "catchall");
  EXPECT_EQ(routeFor(router, "HEAD", "/api/x", "x"), "api");  // POST admits no HEAD
  EXPECT_EQ(routeFor(router, "GET", "/api/x", "x", {{"X-Version", "2"}}), "v2-header");
  EXPECT_EQ(routeFor(router, "GET", "/api/x", "x", {{"X-Version", "3"}}), "api");
  EXPECT_EQ(routeFor(router, "GET", "/", "a.example.com"), "wild");
  EXPECT_EQ(routeFor(router, "GET", "/", "a.eu.example.com:8080"), "wild-deep");
  EXPECT_EQ(routeFor(router, "GET", "/api/health", "API.Example.com"), "exact-host");
  EXPECT_EQ(routeFor(router, "GET", "/", "example.com"), "catchall");
}

TEST(Router, NoMatchGivesNull) {
  auto cfg = parse(R"(
listeners: [ { name: l, address: "127.0.0.1:1" } ]
upstreams: [ { name: u, targets: [ "127.0.0.1:2" ] } ]
routes: [ { name: only, match: { path: /only }, upstream: u } ]
)");
  Router router;
  router.build(cfg.routes);
  EXPECT_EQ(routeFor(router, "GET", "/other", "x"), "<none>");
  EXPECT_EQ(routeFor(router, "GET", "/only", "x"), "only");
}

// The routing rules as a plain scan over the routes in priority order: what the index must
// give for every request.
bool scanTemplate(const CompiledRoute& r, std::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  size_t pos = 1;
  for (size_t i = 0; i < r.segments.size(); ++i) {
    size_t slash = path.find('/', pos);
    const bool last = i + 1 == r.segments.size();
    if (last != (slash == std::string_view::npos)) return false;
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(pos, slash - pos);
    const std::string& want = r.segments[i];
    const bool capture = want.size() >= 2 && want.front() == '{' && want.back() == '}';
    if (capture ? seg.empty() : seg != want) return false;
    pos = slash + 1;
  }
  return true;
}

const CompiledRoute* scan(const Router& router, const http::RequestHead& req) {
  const std::string host = normaliseHost(req.host());
  const std::string_view path = req.path();
  for (const auto& r : router.routes()) {
    if (r.host_kind == CompiledRoute::HostKind::kExact && host != r.host) continue;
    if (r.host_kind == CompiledRoute::HostKind::kWildcard &&
        (host.size() <= r.host.size() || !std::string_view(host).ends_with(r.host)))
      continue;
    if (r.path_kind == CompiledRoute::PathKind::kExact && path != r.path) continue;
    if (r.path_kind == CompiledRoute::PathKind::kPrefix && !path.starts_with(r.path)) continue;
    if (r.path_kind == CompiledRoute::PathKind::kTemplate && !scanTemplate(r, path)) continue;
    const auto& m = r.config->match;
    if (!m.methods.empty() && std::find(m.methods.begin(), m.methods.end(), req.method) == m.methods.end() &&
        !(req.method == "HEAD" && std::find(m.methods.begin(), m.methods.end(), "GET") != m.methods.end()))
      continue;
    bool ok = true;
    for (const auto& [name, value] : m.headers) {
      const http::Header* h = req.headers.find(name);
      ok = ok && h && h->value == value;
    }
    if (ok) return &r;
  }
  return nullptr;
}

TEST(Router, IndexAgreesWithAScanOnRandomTables) {
  std::mt19937 rng(20261130);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  const std::vector<std::string> hosts = {
      "", "a.example.com", "b.example.com", "*.example.com", "*.a.example.com", "*.com"};
  const std::vector<std::string> paths = {"path_prefix: /",    "path_prefix: /a",    "path_prefix: /a/b",
                                          "path_prefix: /ab",  "path_prefix: /a/",   "path: /a",
                                          "path: /a/b",        "path: /x",           "path: \"/a/{id}\"",
                                          "path: \"/{x}/b\"",  "path: \"/{x}/{y}\"", "path: \"/a/{id}/c\"",
                                          "path: \"/a//{x}\"", "path: \"/{x}\"",     ""};
  const std::vector<std::string> methods = {"", "methods: [ GET ]", "methods: [ POST, PUT ]"};
  const std::vector<std::string> headers = {"", "headers: { x-k: \"1\" }",
                                            "headers: { x-k: \"2\", x-j: \"1\" }"};
  const std::vector<std::string> targets = {"/",      "/a",     "/a/b",   "/ab",    "/a/",
                                            "/a/b/c", "/a/1/c", "/x",     "/q/b",   "/a//z",
                                            "/a?x=1", "//",     "/a/b?q", "/zz/yy", "/a/1"};
  const std::vector<std::string> req_hosts = {
      "a.example.com", "b.example.com", "z.a.example.com", "example.com", "x.com", "A.Example.COM:80", "",
      "a.example.com."};
  int compared = 0;
  for (int table = 0; table < 60; ++table) {
    // Raw paths: the index is compared with a scan on any spelling (no listener normalises).
    std::string yaml = R"(
listeners: [ { name: l, address: "127.0.0.1:1", normalize_path: false } ]
upstreams: [ { name: u, targets: [ "127.0.0.1:2" ] } ]
routes:
)";
    const int n = 1 + rng() % 25;
    for (int i = 0; i < n; ++i) {
      std::string match;
      auto add = [&](const std::string& part) {
        if (!part.empty()) match += (match.empty() ? "" : ", ") + part;
      };
      if (auto h = pick(hosts); !h.empty()) add("host: \"" + h + "\"");
      add(pick(paths));
      add(pick(methods));
      add(pick(headers));
      yaml += fmt::format("  - {{ name: r{}, match: {{ {} }}, upstream: u }}\n", i, match);
    }
    auto cfg = parse(yaml);
    Router router;
    router.build(cfg.routes);
    for (int q = 0; q < 200; ++q) {
      http::RequestHead req;
      req.method = rng() % 2 ? "GET" : "POST";
      req.target = pick(targets);
      if (auto h = pick(req_hosts); !h.empty()) req.headers.add("Host", h);
      if (rng() % 2) req.headers.add("x-k", rng() % 2 ? "1" : "2");
      if (rng() % 2) req.headers.add("x-j", "1");
      const CompiledRoute* want = scan(router, req);
      const CompiledRoute* got = router.match(req);
      ASSERT_EQ(got, want) << yaml << "\n"
                           << req.method << " " << req.target << " host " << req.host() << ": got "
                           << (got ? got->config->name : "<none>") << ", want "
                           << (want ? want->config->name : "<none>");
      ++compared;
    }
  }
  EXPECT_EQ(compared, 60 * 200);
}

TEST(Router, NormaliseHost) {
  EXPECT_EQ(normaliseHost("Example.COM:8080"), "example.com");
  EXPECT_EQ(normaliseHost("[::1]:80"), "[::1]");
  EXPECT_EQ(normaliseHost("a.b."), "a.b");
}

}  // namespace
}  // namespace ganglion::http
