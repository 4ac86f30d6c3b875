#include "proxy/router.h"

#include <gtest/gtest.h>

#include "control/config.h"

namespace ganglion::proxy {
namespace {

control::Config parse(const std::string& yaml) {
  auto r = control::loadConfigText(yaml, "test.yaml");
  for (auto& e : r.errors) ADD_FAILURE() << e.text();
  if (!r.config) return control::Config{};
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
  - { name: v2-header, match: { path_prefix: /api, headers: { x-version: "2" } }, upstream: u }
  - { name: wild, match: { host: "*.example.com" }, upstream: u }
  - { name: wild-deep, match: { host: "*.eu.example.com" }, upstream: u }
  - { name: exact-host, match: { host: "api.example.com" }, upstream: u }
)";

TEST(Router, PriorityRules) {
  auto cfg = parse(kConfig);
  Router router;
  router.build(cfg.routes, cfg.upstreams);
  EXPECT_EQ(routeFor(router, "GET", "/", "x"), "catchall");
  EXPECT_EQ(routeFor(router, "GET", "/api/x", "x"), "api");
  EXPECT_EQ(routeFor(router, "GET", "/api/v2/x", "x"), "api-v2");
  EXPECT_EQ(routeFor(router, "GET", "/api/health?full=1", "x"), "exact");
  EXPECT_EQ(routeFor(router, "GET", "/users/42", "x"), "user");
  EXPECT_EQ(routeFor(router, "GET", "/users/42/posts", "x"), "user-posts");
  EXPECT_EQ(routeFor(router, "GET", "/users/", "x"), "catchall");
  EXPECT_EQ(routeFor(router, "GET", "/users/42/other", "x"), "catchall");
  EXPECT_EQ(routeFor(router, "POST", "/api/x", "x"), "post-only");
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
  router.build(cfg.routes, cfg.upstreams);
  EXPECT_EQ(routeFor(router, "GET", "/other", "x"), "<none>");
  EXPECT_EQ(routeFor(router, "GET", "/only", "x"), "only");
}

TEST(Router, NormaliseHost) {
  EXPECT_EQ(normaliseHost("Example.COM:8080"), "example.com");
  EXPECT_EQ(normaliseHost("[::1]:80"), "[::1]");
  EXPECT_EQ(normaliseHost("a.b."), "a.b");
}

}  // namespace
}  // namespace ganglion::proxy
