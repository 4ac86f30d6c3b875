#include "server/config_loader.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>

#include "config/reader.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section
using namespace ganglion::upstream;
using namespace ganglion::llm;
namespace {

TEST(Config, IssueExampleLoads) {
  auto r = loadConfigText(R"(workers: 1
listeners:
  - name: public
    address: 127.0.0.1:8080
upstreams:
  - name: backend
    targets: [ "127.0.0.1:9000" ]
routes:
  - name: all
    match: { path_prefix: / }
    upstream: backend
)",
                          "ex.yaml");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].text());
  EXPECT_EQ(r.config->workers, 1u);
  EXPECT_EQ(r.config->listeners[0].address.port, 8080);
  EXPECT_EQ(r.config->routes[0].upstream, "backend");
}

TEST(Config, OnlyARegularFileIsRead) {
  // A directory read as an empty text ("the config must be a map of sections"); a FIFO blocked the
  // reload until something wrote to it.
  auto dir = std::filesystem::temp_directory_path() / fmt::format("ganglion-cfg-{}", ::getpid());
  std::filesystem::create_directories(dir);
  auto r = loadConfigFile(dir.string());
  ASSERT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message, "cannot read the config: it is a directory");
  auto fifo = dir / "config.yaml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  r = loadConfigFile(fifo.string());
  ASSERT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message, "cannot read the config: it is not a regular file");
  r = loadConfigFile((dir / "missing.yaml").string());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message, "cannot open the file");
  std::filesystem::remove_all(dir);
}

/// A config of one listener (with `listener_extra` after its address), one upstream and one
/// route whose match is `match`, loaded as "route.yaml".
LoadResult oneRoute(std::string_view match, std::string_view listener_extra = "") {
  return loadConfigText(fmt::format(R"(listeners:
  - name: public
    address: 127.0.0.1:8080{}
upstreams:
  - name: backend
    targets: [ "127.0.0.1:9000" ]
routes:
  - name: r
    match: {}
    upstream: backend
)",
                                    listener_extra, match),
                        "route.yaml");
}

/// The route host `host:` loads as, or the first error.
std::string routeHost(std::string_view host) {
  auto r = oneRoute(fmt::format(R"({{ host: "{}" }})", host));
  if (!r.config) return "error: " + r.errors[0].text();
  return *r.config->routes[0].match.host;
}

TEST(Config, RouteHostsLoadAsRequestsAreCompared) {
  // Each of these loaded, and no request could ever reach the route.
  EXPECT_EQ(routeHost("T.Example.org."), "t.example.org");
  EXPECT_EQ(routeHost("*.W.Example.Com."), "*.w.example.com");
  EXPECT_EQ(routeHost("[::1]"), "[::1]");
  EXPECT_EQ(routeHost("p.example.org:8080"),
            "error: route.yaml:9: host 'p.example.org:8080' has a ':': routes match the name only, without "
            "the port "
            "(an IPv6 address is written in brackets, like [::1])");
  EXPECT_NE(routeHost("::1").find("has a ':'"), std::string::npos);
  EXPECT_NE(routeHost("[::1]:80").find("is not a bracketed IPv6 address"), std::string::npos);
  EXPECT_NE(routeHost(".d.example.net").find("has an empty label"), std::string::npos);
  EXPECT_NE(routeHost("a..b").find("has an empty label"), std::string::npos);
  EXPECT_NE(routeHost("a b").find("which no Host header can carry"), std::string::npos);
  EXPECT_NE(routeHost("*x.com").find("must be a name or a '*.suffix' wildcard"), std::string::npos);
  EXPECT_NE(routeHost("a.*.com").find("which no Host header can carry"), std::string::npos);
  // Found by the second outside pass: these loaded and could never match.
  EXPECT_NE(routeHost("a.example..").find("has an empty label"), std::string::npos);
  EXPECT_NE(routeHost("[fe80::1%eth0]").find("has a zone"), std::string::npos);
  EXPECT_NE(routeHost("b\xc3\xbc"
                      "cher.example")
                .find("has byte 0xc3"),
            std::string::npos);
}

/// The first error of a route whose match is `match`, or "".
std::string matchError(std::string_view match, std::string_view listener_extra = "") {
  auto r = oneRoute(match, listener_extra);
  return r.config ? "" : r.errors[0].message;
}

TEST(Config, RoutePathsMustBeReachable) {
  // Requests are routed in normal form, so a path written otherwise matched nothing.
  EXPECT_EQ(
      matchError("{ path_prefix: /%61dmin }"),
      "path_prefix '/%61dmin' can never match: requests are routed in normal form ('/admin'); write that, "
      "or set normalize_path: false on the listeners");
  EXPECT_NE(matchError("{ path: /a//b }").find("('/a/b')"), std::string::npos);
  EXPECT_NE(matchError("{ path_prefix: /a/../b }").find("('/b')"), std::string::npos);
  EXPECT_NE(matchError("{ path_prefix: /%2fx }").find("('/%2Fx')"), std::string::npos);
  EXPECT_NE(matchError(R"({ path: "/a?x" })").find("has a '?' or '#'"), std::string::npos);
  EXPECT_EQ(matchError("{ path_prefix: /admin/ }"), "");
  EXPECT_EQ(matchError(R"({ path: "/users/{id}" })"), "");
  // A listener that routes raw paths may route a raw spelling.
  EXPECT_EQ(matchError("{ path_prefix: /a//b }", "\n    normalize_path: false"), "");
}

TEST(Config, EveryErrorHasFileAndLine) {
  auto r = loadConfigText(R"(listeners:
  - name: public
    address: nonsense
upstreams:
  - name: backend
    targets: [ "127.0.0.1:9000" ]
routes:
  - name: all
    upstream: nowhere
    timeout: soon
)",
                          "bad.yaml");
  ASSERT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].text(), "bad.yaml:3: listener address must be host:port, got 'nonsense'");
  EXPECT_EQ(r.errors[1].line, 9);
  EXPECT_NE(r.errors[1].message.find("unknown upstream 'nowhere'"), std::string::npos);
  EXPECT_EQ(r.errors[2].line, 10);
}

TEST(Config, UnknownFieldIsAnError) {
  auto r = loadConfigText("listeners: [ { name: a, address: '127.0.0.1:1', adress: x } ]\n", "t.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("unknown field 'adress'"), std::string::npos);
}

TEST(Config, NestingTooDeepIsSaidSoAtAnyDepth) {
  // Past our 128 levels, and past yaml-cpp's own guard (which said "bad file").
  for (int depth : {200, 500, 5000}) {
    std::string text = "listeners:\n";
    for (int i = 0; i < depth; ++i) text += "- ";
    text += "x\n";
    auto r = loadConfigText(text, "t.yaml");
    ASSERT_EQ(r.errors.size(), 1u) << depth;
    EXPECT_EQ(r.errors[0].message, "the config nests deeper than 128 levels") << depth;
    EXPECT_EQ(r.errors[0].line, 2) << depth;
  }
}

TEST(Config, ListenersThatWouldBindOneSocketAreRefused) {
  // `check` passed these and `serve` then blamed "another process" for its own listener.
  const std::string routes = "routes: [ { name: r, match: { path_prefix: / }, welcome: {} } ]\n";
  for (const auto& [second, why] : std::vector<std::pair<std::string, std::string>>{
           {"localhost:18099", "binds the same address as listener 'a' (127.0.0.1:18099)"},
           {"0.0.0.0:18099", "overlaps listener 'a' on 127.0.0.1:18099"},
           {"127.0.0.1:18099", "binds the same address"}}) {
    auto r =
        loadConfigText("listeners:\n  - { name: a, address: '127.0.0.1:18099' }\n  - { name: b, address: '" +
                           second + "' }\n" + routes,
                       "t.yaml");
    ASSERT_EQ(r.errors.size(), 1u) << second;
    EXPECT_EQ(r.errors[0].line, 3) << second;
    EXPECT_NE(r.errors[0].message.find(why), std::string::npos) << r.errors[0].message;
  }
  auto apart = loadConfigText(
      "listeners:\n  - { name: a, address: '127.0.0.1:18099' }\n  - { name: b, address: '127.0.0.2:18099' }\n"
      "  - { name: c, address: '0.0.0.0:18100' }\n" +
          routes,
      "t.yaml");
  EXPECT_TRUE(apart.errors.empty()) << apart.errors[0].text();
}

TEST(Config, YamlSyntaxErrorHasLine) {
  auto r = loadConfigText("listeners:\n  - name: a\n    address: [ \n", "t.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_GT(r.errors[0].line, 0);
  EXPECT_NE(r.errors[0].message.find("YAML"), std::string::npos);
}

TEST(Config, EnvironmentExpansion) {
  setenv("GANGLION_TEST_TOKEN", "s3cret-T0ken-for-tests", 1);
  unsetenv("GANGLION_TEST_UNSET");
  auto r = loadConfigText(R"(listeners: [ { name: a, address: "127.0.0.1:1" } ]
admin: { address: "127.0.0.1:2", token: "${GANGLION_TEST_TOKEN}" }
)",
                          "t.yaml");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->admin.token, "s3cret-T0ken-for-tests");
  EXPECT_EQ(configToRedactedJson(*r.config).find("s3cret"), std::string::npos);

  auto bad = loadConfigText(R"(listeners: [ { name: a, address: "127.0.0.1:1" } ]
admin: { token: "${GANGLION_TEST_UNSET}" }
)",
                            "t.yaml");
  ASSERT_FALSE(bad.config);
  EXPECT_NE(bad.errors[0].message.find("GANGLION_TEST_UNSET"), std::string::npos);
  EXPECT_EQ(bad.errors[0].line, 2);

  auto fallback = loadConfigText(R"(listeners: [ { name: a, address: "${GANGLION_TEST_UNSET:-127.0.0.1:7}" } ]
)",
                                 "t.yaml");
  ASSERT_TRUE(fallback.config);
  EXPECT_EQ(fallback.config->listeners[0].address.port, 7);
}

TEST(Config, AdminMustBeLoopbackAndHaveToken) {
  auto r = loadConfigText(R"(listeners: [ { name: a, address: "127.0.0.1:1" } ]
admin: { address: "0.0.0.0:9901", token: "" }
)",
                          "t.yaml");
  ASSERT_EQ(r.errors.size(), 2u);
}

TEST(Config, AdminTokenMustBeHardToGuess) {
  for (const char* weak :
       {"x", "                    ", "aaaaaaaaaaaaaaaaaaaa", "short-token-1", "has a space in it ok"}) {
    auto r = loadConfigText(fmt::format(R"(listeners: [ {{ name: a, address: "127.0.0.1:1" }} ]
admin: {{ token: "{}" }}
)",
                                        weak),
                            "t.yaml");
    ASSERT_FALSE(r.config) << weak;
    EXPECT_EQ(r.errors[0].line, 2) << weak;
    EXPECT_NE(r.errors[0].message.find("admin token is too weak"), std::string::npos) << r.errors[0].message;
    if (weak[0] != ' ' && weak[1] != 0) {
      EXPECT_EQ(r.errors[0].message.find(weak), std::string::npos) << "the token must not be echoed";
    }
  }
  auto ok = loadConfigText(R"(listeners: [ { name: a, address: "127.0.0.1:1" } ]
admin: { token: "Zq3-p9Lr_x7Wm2Kd" }
)",
                           "t.yaml");
  EXPECT_TRUE(ok.config);
}

TEST(Config, DurationsAndSizes) {
  auto r = loadConfigText(
      R"(listeners: [ { name: a, address: "127.0.0.1:1", header_timeout: 250ms, max_header_bytes: 8k } ]
upstreams: [ { name: u, targets: [ { address: "127.0.0.1:2", weight: 3 } ] } ]
routes: [ { name: r, upstream: u, max_body_bytes: 1M, timeout: 2m } ]
)",
      "t.yaml");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->listeners[0].header_timeout.count(), 250);
  EXPECT_EQ(r.config->listeners[0].max_header_bytes, 8192u);
  EXPECT_EQ(r.config->upstreams[0].targets[0].weight, 3u);
  EXPECT_EQ(r.config->routes[0].max_body_bytes, 1u << 20);
  EXPECT_EQ(r.config->routes[0].timeout.count(), 120000);
}

TEST(Config, StateSqliteAndRedis) {
  auto r = loadConfigText(R"(listeners: [ { name: a, address: "127.0.0.1:1" } ]
state:
  redis: "redis://:s3cret@cache.internal:6380/2"
  redis_timeout: 200ms
)",
                          "t.yaml");
  ASSERT_TRUE(r.config) << r.errors[0].text();
  const auto& st = r.config->state;
  EXPECT_TRUE(st.redis);
  EXPECT_EQ(st.redis_host, "cache.internal");
  EXPECT_EQ(st.redis_port, 6380);
  EXPECT_EQ(st.redis_password, "s3cret");
  EXPECT_EQ(st.redis_db, 2u);
  EXPECT_EQ(st.redis_timeout.count(), 200);
  auto file = loadConfigText(
      "listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\nstate: { sqlite: spend.db }\n", "t.yaml");
  ASSERT_TRUE(file.config);
  EXPECT_EQ(file.config->state.sqlite, "spend.db");
  EXPECT_FALSE(file.config->state.redis);
  auto plain = loadConfigText(
      "listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\nstate: { redis: redis://127.0.0.1 }\n",
      "t.yaml");
  ASSERT_TRUE(plain.config);
  EXPECT_EQ(plain.config->state.redis_port, 6379);
  EXPECT_EQ(plain.config->state.redis_db, 0u);
  // GET /config: the password redacted, the timeout in milliseconds like every duration.
  const std::string json = configToRedactedJson(*r.config);
  EXPECT_NE(
      json.find(R"("state":{"redis":"redis://:<redacted>@cache.internal:6380/2","redis_timeout":"200ms"})"),
      std::string::npos)
      << json;
  EXPECT_EQ(json.find("s3cret"), std::string::npos) << json;
  EXPECT_NE(configToRedactedJson(*file.config).find(R"("state":{"sqlite":"spend.db"})"), std::string::npos);
}

TEST(Config, BadStateIsRejectedWithLineAndReason) {
  struct Case {
    const char* state;
    const char* expect;
  } cases[] = {
      {"state: { redis: 'http://x:1' }", "must start with redis://"},
      {"state: { redis: 'rediss://x:1' }", "TLS"},
      {"state: { redis: 'redis://x:99999' }", "port"},
      {"state: { redis: 'redis://x/abc' }", "database"},
      {"state: { redis: 'redis://bob:pw@x' }", "ACL user"},
      {"state: { sqlite: '' }", "must name a file"},
      {"state: { redis_timeout: 0ms }", "from 1ms"},
      {"state: { sqlit: a.db }", "unknown field 'sqlit'"},
      {"state: [ a ]", "state must be a map"},
      {"state: { sqlite: a.db, redis: 'redis://x' }", "not both"},
      {"state: { redis: 'redis://:pw@[bad' }", "must be a URL like"},
  };
  for (const auto& c : cases) {
    auto r = loadConfigText(
        std::string("listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\n") + c.state + "\n", "t.yaml");
    ASSERT_FALSE(r.config) << c.state;
    EXPECT_EQ(r.errors[0].line, 2) << c.state;
    EXPECT_NE(r.errors[0].message.find(c.expect), std::string::npos)
        << c.state << ": " << r.errors[0].message;
  }
}

TEST(Config, UpstreamSectionsReadWithTheirSchemas) {
  auto r = loadConfigText(R"(listeners: [ { name: a, address: "127.0.0.1:1" } ]
upstreams:
  - name: u
    targets: [ "127.0.0.1:2", { address: "127.0.0.1:3", weight: 7 } ]
    balance: hash
    hash_on: header:X-User
    health_check: { path: /up, interval: 1ms, timeout: 1ms, expect_status: "200-204" }
    outlier: { consecutive_failures: 0 }
    retry_budget: { percent: 5, min: 1 }
    dns_refresh: 10ms
)",
                          "t.yaml");
  ASSERT_TRUE(r.config) << r.errors[0].text();
  const auto& u = r.config->upstreams[0];
  ASSERT_EQ(u.targets.size(), 2u);
  EXPECT_EQ(u.targets[1].weight, 7u);
  EXPECT_EQ(u.balance, Balance::kHash);
  EXPECT_EQ(u.hash_header, "x-user");
  ASSERT_TRUE(u.health_check);
  EXPECT_EQ(u.health_check->path, "/up");
  EXPECT_EQ(u.health_check->interval.count(), 100);  // raised to the floors
  EXPECT_EQ(u.health_check->timeout.count(), 10);
  EXPECT_EQ(u.health_check->expect_max, 204);
  EXPECT_EQ(u.outlier.consecutive_failures, 0u);
  EXPECT_EQ(u.outlier.base_ejection.count(), 30'000);  // untouched fields keep their defaults
  EXPECT_EQ(u.retry_budget.percent, 5u);
  EXPECT_EQ(u.retry_budget.min, 1u);
  EXPECT_EQ(u.dns_refresh.count(), 1000);
  const std::string json = configToRedactedJson(*r.config);
  EXPECT_NE(json.find(R"("hash_on":"header:x-user")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("health_check":{"path":"/up","host":"","interval":"100ms")"), std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("retry_budget":{"percent":5,"min":1})"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("targets":[{"address":"127.0.0.1:2","weight":1},)"), std::string::npos) << json;
}

TEST(Config, BadUpstreamSectionsAreRejectedWithLineAndReason) {
  struct Case {
    const char* extra;
    const char* expect;
  } cases[] = {
      {"outlier: [ 1 ]", "outlier must be a map"},
      {"retry_budget: 5", "retry_budget must be a map: { percent, min }"},
      {"retry_budget: { percent: 101 }", "retry_budget.percent"},
      {"health_check: { pth: /x }", "unknown field 'pth' in health_check"},
      {"health_check: { path: 'no slash' }", "health_check.path must be an absolute path"},
      {"health_check: { expect_status: '300-200' }", "expect_status must be a status or range"},
      {"outlier: { max_ejected_percent: 1000 }", "outlier.max_ejected_percent"},
      {"balance: random", "balance must be round_robin"},
      {"hash_on: client_ip", "hash_on needs 'balance: hash'"},
      {"targets: [ { weight: 2 } ]", "target needs an 'address'"},
      {"targets: [ { address: 'h:1', wieght: 2 } ]", "unknown field 'wieght' in target"},
      {"targets: []", "needs at least one target"},
  };
  for (const auto& c : cases) {
    const std::string yaml =
        std::string("listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\n") +
        "upstreams:\n  - name: u\n    " +
        (std::string_view(c.extra).starts_with("targets") ? "" : "targets: [ \"h:1\" ]\n    ") + c.extra +
        "\n";
    auto r = loadConfigText(yaml, "t.yaml");
    ASSERT_FALSE(r.config) << c.extra;
    EXPECT_GE(r.errors[0].line, 3) << c.extra;
    EXPECT_NE(r.errors[0].message.find(c.expect), std::string::npos)
        << c.extra << ": " << r.errors[0].message;
  }
}

TEST(Config, RoutesReadAndShowWithTheirSchema) {
  auto r = loadConfigText(R"(listeners: [ { name: a, address: "127.0.0.1:1" } ]
upstreams: [ { name: u, targets: [ "127.0.0.1:2" ] } ]
routes:
  - name: api
    match: { host: API.example.com., path_prefix: /api/, methods: [ get ], headers: { X-Env: prod } }
    upstream: u
    rewrite: { path_prefix: /v1/ }
    request_headers: { add: { authorization: "Bearer s3cret" }, remove: [ Cookie ] }
  - name: rest
    upstream: u
)",
                          "t.yaml");
  ASSERT_TRUE(r.config) << r.errors[0].text();
  const auto& api = r.config->routes[0];
  EXPECT_EQ(api.match.host, "api.example.com");
  EXPECT_EQ(api.match.methods, std::vector<std::string>{"GET"});
  EXPECT_EQ(api.match.headers[0].first, "x-env");
  EXPECT_EQ(api.rewrite_path_prefix, "/v1/");
  EXPECT_EQ(r.config->routes[1].match.path_prefix, "/");  // no match: everything
  const std::string json = configToRedactedJson(*r.config);
  EXPECT_NE(json.find(R"("match":{"host":"api.example.com","path_prefix":"/api/","methods":["GET"],)"
                      R"("headers":{"x-env":"prod"}},"upstream":"u")"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("rewrite":{"path_prefix":"/v1/"},"request_headers":{"add":{"authorization":)"
                      R"("<redacted>"},"remove":["cookie"]})"),
            std::string::npos)
      << json;
  EXPECT_EQ(json.find("s3cret"), std::string::npos) << json;
}

TEST(Config, FiltersReadAndShowWithTheirSchemas) {
  auto r = loadConfigText(R"(listeners: [ { name: a, address: "127.0.0.1:1" } ]
upstreams: [ { name: u, targets: [ "127.0.0.1:2" ] } ]
keys: [ { name: app, key: "0123456789abcdef" } ]
routes:
  - name: api
    upstream: u
    filters:
      - ip_filter: { deny: [ 203.0.113.0/24 ] }
      - cors: { allow_origins: [ "https://app.example.com" ], allow_methods: [ get ], max_age: 10m }
      - key_auth: { keys: [ app ] }
      - rate_limit: { requests: 10, by: "header:X-Tenant" }
      - headers: { request: { add: { authorization: "Bearer s3cret" } } }
      - prompt_guard: { deny: [ '(?i)ignore' ], roles: [ user, tool ] }
  - name: open
    upstream: u
    filters: [ { key_auth: } ]
)",
                          "t.yaml");
  ASSERT_TRUE(r.config) << r.errors[0].text();
  ASSERT_EQ(r.config->routes[0].filters.size(), 6u);
  const std::string json = configToRedactedJson(*r.config);
  for (
      const char* shown : {
          R"({"ip_filter":{"allow":[],"deny":["203.0.113.0/24"]}})",
          R"({"cors":{"allow_origins":["https://app.example.com"],"allow_methods":["GET"],"allow_headers":[],)"
          R"("expose_headers":[],"allow_credentials":false,"max_age":"600000ms"}})",
          R"({"key_auth":{"keys":["app"]}})",
          R"({"rate_limit":{"requests":10,"per":"1000ms","burst":10,"by":"header:X-Tenant"}})",
          R"({"headers":{"request":{"add":{"authorization":"<redacted>"},"remove":[]},)"
          R"("response":{"add":{},"remove":[]}}})",
          R"({"prompt_guard":{"deny":["(?i)ignore"],"allow":[],"roles":["user","tool"],"max_body_bytes":8388608}})",
          R"("filters":[{"key_auth":{"keys":[]}}])",
      })
    EXPECT_NE(json.find(shown), std::string::npos) << shown << "\n" << json;
  EXPECT_EQ(json.find("s3cret"), std::string::npos) << json;
}

TEST(Config, BadFilterSettingsAreRejectedWithLineAndReason) {
  auto r = loadConfigText(R"(listeners: [ { name: a, address: "127.0.0.1:1" } ]
upstreams: [ { name: u, targets: [ "127.0.0.1:2" ] } ]
keys: [ { name: app, key: "0123456789abcdef" } ]
routes:
  - name: api
    upstream: u
    filters:
      - cors: { allow_origins: [ "*" ], max_ages: 1s }
      - rate_limit: { requests: 5, per: 0s, by: "header:bad name" }
      - key_auth: { keys: [ app, nobody ] }
      - ip_filter: { allow: [ 10.0.0.0/33 ] }
      - prompt_guard: { deny: [ x ], max_body_bytes: 0 }
      - headers: [ nope ]
      - rate_limit: 7
)",
                          "t.yaml");
  ASSERT_FALSE(r.config);
  std::string all;
  for (const auto& e : r.errors) all += e.text() + "\n";
  for (const char* error : {
           "t.yaml:8: unknown field 'max_ages' in cors",
           "t.yaml:9: per must be longer than 0",
           "t.yaml:9: by must be client_ip, key or header:<name>, got 'header:bad name'",
           "t.yaml:10: key_auth names unknown key 'nobody'",
           "t.yaml:11: '10.0.0.0/33' is not an IP address or CIDR range",
           "t.yaml:12: prompt_guard max_body_bytes must be at least 1",
           "t.yaml:13: headers takes a map: { request: {add, remove}, response: {add, remove} }",
           "t.yaml:14: rate_limit takes a map: { requests, per, burst, by }",
       })
    EXPECT_NE(all.find(error), std::string::npos) << error << "\n" << all;
}

TEST(Config, TopLevelSectionsAreOneSchema) {
  auto r = loadConfigText("workers: 3\nlisteners: [ { name: a, address: \"127.0.0.1:1\" } ]\nlistner: []\n",
                          "t.yaml");
  ASSERT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].text().find("t.yaml:3: unknown field 'listner' in the top level"), std::string::npos)
      << r.errors[0].text();
  auto ok = loadConfigText("workers: 3\nlisteners: [ { name: a, address: \"127.0.0.1:1\" } ]\n", "t.yaml");
  ASSERT_TRUE(ok.config) << ok.errors[0].text();
  ASSERT_TRUE(ok.config->key_table);  // looked up by the LLM API even with no keys
  const std::string json = configToRedactedJson(*ok.config);
  // Every section shows, absent ones as their defaults (admin and state only when set).
  for (const char* shown : {R"("source":"t.yaml")", R"("workers":3)", R"("upstreams":[])", R"("keys":[])",
                            R"("routes":[])", R"("access_log":{"enabled":true,"path":"stdout"})",
                            R"("llm_cache":{"max_bytes":67108864,"ttl":"600000ms"})"})
    EXPECT_NE(json.find(shown), std::string::npos) << shown << "\n" << json;
  EXPECT_EQ(json.find("\"admin\""), std::string::npos) << json;
  EXPECT_EQ(json.find("\"state\""), std::string::npos) << json;
  auto bad = loadConfigText(
      "listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\nworkers: 300\naccess_log: 1\n", "t.yaml");
  ASSERT_FALSE(bad.config);
  ASSERT_EQ(bad.errors.size(), 2u);
  EXPECT_NE(bad.errors[0].text().find("t.yaml:2: workers"), std::string::npos) << bad.errors[0].text();
  EXPECT_EQ(bad.errors[1].text(), "t.yaml:3: access_log must be a map");
}

TEST(Config, BadRoutesAreRejectedWithLineAndReason) {
  struct Case {
    const char* extra;
    const char* expect;
  } cases[] = {
      {"match: [ 1 ]", "route 'match' must be a map"},
      {"match: { paht: /x }", "unknown field 'paht' in match"},
      {"match: { path: x }", "path must start with '/'"},
      {"match: { path: /a, path_prefix: /b }", "not both"},
      {"match: { path_prefix: /a/../b }", "can never match"},
      {"match: { methods: [ 'G T' ] }", "is not a valid method"},
      {"match: { headers: [ a ] }", "match.headers must be a map"},
      {"rewrite: /x", "rewrite must be a map"},
      {"rewrite: { path_prefix: x }", "rewrite.path_prefix must start with '/'"},
      {"retries: 11", "retries"},
      {"request_headers: { add: { 'a b': c } }", "not a valid header name"},
  };
  for (const auto& c : cases) {
    const std::string yaml = std::string("listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\n") +
                             "upstreams: [ { name: u, targets: [ \"h:1\" ] } ]\n" +
                             "routes:\n  - name: r\n    upstream: u\n    " + c.extra + "\n";
    auto r = loadConfigText(yaml, "t.yaml");
    ASSERT_FALSE(r.config) << c.extra;
    EXPECT_EQ(r.errors[0].line, 6) << c.extra << ": " << r.errors[0].text();
    EXPECT_NE(r.errors[0].message.find(c.expect), std::string::npos)
        << c.extra << ": " << r.errors[0].message;
  }
}

TEST(Config, JsonConfigsAreCheckedLikeYamlWithJsonPaths) {
  auto ok = loadConfigJson(boost::json::parse(R"({
    "listeners": [ { "name": "a", "address": "127.0.0.1:1", "max_headers": 50 } ],
    "upstreams": [ { "name": "u", "targets": [ "127.0.0.1:2" ], "health_check": { "interval": "2s" } } ],
    "routes": [ { "name": "r", "upstream": "u", "retries": 3 } ] })"),
                           "request body");
  ASSERT_TRUE(ok.config) << ok.errors[0].text();
  EXPECT_EQ(ok.config->listeners[0].max_headers, 50u);  // a JSON number reads as the YAML scalar would
  EXPECT_EQ(ok.config->routes[0].retries, 3u);
  EXPECT_EQ(ok.config->upstreams[0].health_check->interval.count(), 2000);

  setenv("GANGLION_TEST_SECRET", "do-not-echo-this", 1);
  auto bad = loadConfigJson(boost::json::parse(R"({
    "listeners": [ { "name": "a", "address": "127.0.0.1:1", "max_headrs": 50 } ],
    "upstreams": [ { "name": "u", "targets": [ { "address": "h:1", "weight": 0 } ] } ],
    "routes": [ { "name": "r", "upstream": "nowhere" },
                { "name": "s", "upstream": "u", "match": { "path": "${GANGLION_TEST_SECRET}" } } ] })"),
                            "request body");
  ASSERT_FALSE(bad.config);
  std::string all;
  for (const auto& e : bad.errors) {
    EXPECT_EQ(e.line, 0);
    all += e.text() + "\n";
  }
  EXPECT_NE(all.find("request body: $.listeners[0].max_headrs: unknown field 'max_headrs' in listener"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("request body: $.upstreams[0].targets[0].weight: weight must be an integer from 1"),
            std::string::npos)
      << all;
  // Reference errors found after reading point at the value too.
  EXPECT_NE(all.find("request body: $.routes[0].upstream: route 'r' names unknown upstream 'nowhere'"),
            std::string::npos)
      << all;
  // ${VAR} is not expanded in configs sent to the gateway: an error must not echo a variable.
  EXPECT_NE(all.find("$.routes[1].match.path: path must start with '/'"), std::string::npos) << all;
  EXPECT_EQ(all.find("do-not-echo-this"), std::string::npos) << all;
  auto yaml =
      loadConfigText("listeners: [ { name: \"${GANGLION_TEST_SECRET}\", address: x } ]\n", "body.yaml",
                     /*expand_env=*/false);
  ASSERT_FALSE(yaml.config);
  EXPECT_EQ(yaml.errors[0].text().find("do-not-echo-this"), std::string::npos);
  unsetenv("GANGLION_TEST_SECRET");

  auto not_a_map = loadConfigJson(boost::json::parse("[1]"), "request body");
  ASSERT_EQ(not_a_map.errors.size(), 1u);
  EXPECT_EQ(not_a_map.errors[0].text(),
            "request body: $: the config must be a map of sections (listeners, routes, ...)");
}

// Found by an outside review of the config check (session 8); each failed before its fix.
TEST(Config, ErrorsNeverQuoteAnExpandedVariable) {
  setenv("GANGLION_TEST_TOKEN", "s3cret-T0ken-for-tests", 1);
  setenv("GANGLION_TEST_REDIS_PW", "p@ss/word", 1);
  auto r = loadConfigText(R"(workers: ${GANGLION_TEST_TOKEN}
listeners: [ { name: a, address: "127.0.0.1:1" } ]
providers: [ { name: o, kind: openai, api_key: k, base_url: "${GANGLION_TEST_TOKEN}" } ]
state: { redis: "redis://:${GANGLION_TEST_REDIS_PW}@h:6379/0" }
)",
                          "t.yaml");
  ASSERT_FALSE(r.config);
  std::string all;
  for (const auto& e : r.errors) all += e.text() + "\n";
  EXPECT_EQ(all.find("s3cret-T0ken"), std::string::npos) << all;
  EXPECT_EQ(all.find("word@h"), std::string::npos) << all;  // a / in the password split the URL
  EXPECT_NE(all.find("t.yaml:1: workers must be an integer from 0 to 256, got '${GANGLION_TEST_TOKEN}'"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("state.redis database must be a number from 0 to 1023"), std::string::npos) << all;
  unsetenv("GANGLION_TEST_REDIS_PW");
}

TEST(Config, ControlCharactersThatWouldSplitARequestAreRefused) {
  for (const char* extra :
       {"rewrite: { path_prefix: \"/a\\r\\nX-Injected: yes\" }", "rewrite: { path_prefix: \"/a b\" }",
        "match: { path_prefix: \"/a b\" }", "request_headers: { add: { x: \"v\\nX-Injected: yes\" } }"}) {
    auto r = loadConfigText(std::string("listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\n"
                                        "upstreams: [ { name: u, targets: [ \"h:1\" ], health_check: { host: "
                                        "\"h\" } } ]\nroutes:\n  - name: r\n    upstream: u\n    ") +
                                extra + "\n",
                            "t.yaml");
    ASSERT_FALSE(r.config) << extra;
    EXPECT_EQ(r.errors[0].line, 6) << extra << ": " << r.errors[0].text();
  }
  auto host = loadConfigText(
      "listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\n"
      "upstreams: [ { name: u, targets: [ \"h:1\" ], health_check: { host: \"h\\r\\nX-Injected: yes\" } } "
      "]\n",
      "t.yaml");
  ASSERT_FALSE(host.config);
  EXPECT_NE(host.errors[0].message.find("health_check.host holds a control character (byte 0x0d)"),
            std::string::npos)
      << host.errors[0].text();
  auto region = loadConfigText(
      "listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\n"
      "providers: [ { name: b, kind: bedrock, region: \"evil.example.com/\", access_key_id: a, "
      "secret_access_key: b } ]\n",
      "t.yaml");
  ASSERT_FALSE(region.config);
  EXPECT_NE(region.errors[0].message.find("region must be an AWS region name"), std::string::npos);
}

TEST(Config, ErrorsAreBoundedInNumberAndLength) {
  std::string yaml = "listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\nroutes:\n  - name: r\n";
  for (int i = 0; i < 80'000; ++i) yaml += fmt::format("    bad{}: 1\n", i);  // quadratic before
  auto r = loadConfigText(yaml, "t.yaml");
  ASSERT_EQ(r.errors.size(), config::Reader::kMaxErrors + 1);
  bool told = false;
  for (const auto& e : r.errors) told = told || e.message.find("more than 1000 errors") != std::string::npos;
  EXPECT_TRUE(told);
  auto long_value = loadConfigText(
      "listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\nworkers: " + std::string(100'000, '7') + "\n",
      "t.yaml");
  ASSERT_FALSE(long_value.config);
  EXPECT_LE(long_value.errors[0].message.size(), config::Reader::kMaxMessageBytes);
  EXPECT_EQ(long_value.errors[0].message.substr(long_value.errors[0].message.size() - 3), "...");
}

TEST(Config, ASecondYamlDocumentIsRefused) {
  auto r =
      loadConfigText("listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\n---\nlisteners: bad\n", "t.yaml");
  ASSERT_FALSE(r.config);
  EXPECT_EQ(r.errors[0].text(),
            "t.yaml:2: the config holds more than one YAML document (a second starts with '---'): write one");
  // A marker before the only document, comments and directives are fine.
  EXPECT_TRUE(
      loadConfigText("%YAML 1.2\n# c\n---\nlisteners: [ { name: a, address: \"127.0.0.1:1\" } ]\n", "t.yaml")
          .config);
  // yaml-cpp's LoadAll looped without end on a JSON-like text with NUL bytes (config_fuzz):
  // tests/fuzz/crashes/config-yaml-loadall-loops-on-nul replays it.
}

TEST(Config, CertificatePathsMustBeRegularFiles) {
  // A FIFO blocked the load (a reload, the admin API's config check) until something wrote to it.
  const std::string fifo =
      std::filesystem::temp_directory_path() / fmt::format("ganglion-fifo-{}", ::getpid());
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto r = loadConfigText(
      fmt::format("listeners: [ {{ name: a, address: \"127.0.0.1:1\", tls: {{ certificates: "
                  "[ {{ cert: \"{0}\", key: \"{0}\" }} ] }} }} ]\n"
                  "upstreams: [ {{ name: u, targets: [ \"h:1\" ], tls: {{ ca: \"{0}\" }} }} ]\n",
                  fifo),
      "t.yaml");
  ::unlink(fifo.c_str());
  ASSERT_FALSE(r.config);
  std::string all;
  for (const auto& e : r.errors) all += e.text() + "\n";
  EXPECT_NE(all.find("certificate '" + fifo + "' is not a regular file"), std::string::npos) << all;
  EXPECT_NE(all.find("CA '" + fifo + "' is not a regular file"), std::string::npos) << all;
}

TEST(Config, TlsMapsReadWithTheirSchemas) {
  auto r = loadConfigText(R"(listeners:
  - name: a
    address: "127.0.0.1:1"
    tls: { certificates: [ { cert: c.pem, kye: k.pem } ], min_version: "1.3" }
  - name: b
    address: "127.0.0.1:2"
    tls: { certificates: [] }
upstreams:
  - { name: u, targets: [ "h:1" ], tls: { cert: c.pem } }
  - { name: v, targets: [ "h:1" ], tls: [ x ] }
)",
                          "t.yaml");
  ASSERT_FALSE(r.config);
  std::string all;
  for (const auto& e : r.errors) all += e.text() + "\n";
  EXPECT_NE(all.find("t.yaml:4: unknown field 'kye' in certificate"), std::string::npos) << all;
  EXPECT_NE(all.find("t.yaml:4: certificate needs 'key' (a PEM file)"), std::string::npos) << all;
  EXPECT_NE(all.find("t.yaml:7: tls needs at least one entry in 'certificates'"), std::string::npos) << all;
  EXPECT_NE(all.find("t.yaml:9: upstream tls needs both 'cert' and 'key', or neither"), std::string::npos)
      << all;
  EXPECT_NE(all.find("t.yaml:10: upstream tls is true, or a map"), std::string::npos) << all;
  auto ok = loadConfigText(
      "listeners: [ { name: a, address: \"127.0.0.1:1\" } ]\n"
      "upstreams: [ { name: u, targets: [ \"h:1\" ], tls: { verify: false, server_name: api.example } } ]\n",
      "t.yaml");
  ASSERT_TRUE(ok.config) << ok.errors[0].text();
  EXPECT_NE(configToRedactedJson(*ok.config)
                .find(R"("tls":{"verify":false,"ca":"","cert":"","key":"","server_name":"api.example",)"
                      R"("min_version":"1.2"})"),
            std::string::npos)
      << configToRedactedJson(*ok.config);
}

}  // namespace
}  // namespace ganglion::server
