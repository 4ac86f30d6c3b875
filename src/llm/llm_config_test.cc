#include <gtest/gtest.h>

#include <cstdlib>

#include "http/router.h"
#include "llm/llm_schema.h"
#include "server/config_loader.h"

namespace ganglion::llm {

using namespace ganglion::config;
using namespace ganglion::server;
namespace {

// The exact file from issue 3.
constexpr const char* kIssueConfig = R"(listeners:
  - name: public
    address: 127.0.0.1:8080
providers:
  - name: openai-main
    kind: openai
    base_url: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY}
  - name: anthropic-main
    kind: anthropic
    base_url: https://api.anthropic.com
    api_key: ${ANTHROPIC_API_KEY}
  - name: gemini-main
    kind: gemini
    base_url: https://generativelanguage.googleapis.com
    api_key: ${GEMINI_API_KEY}
models:
  - name: gpt-4o-mini
    targets: [ { provider: openai-main, model: gpt-4o-mini } ]
  - name: claude-haiku
    targets: [ { provider: anthropic-main, model: claude-3-5-haiku-latest } ]
  - name: gemini-flash
    targets: [ { provider: gemini-main, model: gemini-2.0-flash } ]
  - name: resilient
    strategy: fallback
    targets:
      - { provider: openai-main, model: gpt-4o-mini }
      - { provider: anthropic-main, model: claude-3-5-haiku-latest }
keys:
  - name: demo
    key: sk-gw-demo
)";

class LlmConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("OPENAI_API_KEY", "sk-openai-secret", 1);
    setenv("ANTHROPIC_API_KEY", "sk-ant-secret", 1);
    setenv("GEMINI_API_KEY", "gemini-secret", 1);
  }
};

TEST_F(LlmConfig, IssueFileLoads) {
  auto r = loadConfigText(kIssueConfig, "llm.yaml");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].text());
  const auto& c = *r.config;
  ASSERT_EQ(c.providers.size(), 3u);
  EXPECT_EQ(c.providers[0].host, "api.openai.com");
  EXPECT_EQ(c.providers[0].port, 443);
  EXPECT_TRUE(c.providers[0].https);
  EXPECT_EQ(c.providers[0].base_path, "/v1");
  EXPECT_EQ(c.providers[1].base_path, "");
  EXPECT_EQ(c.providers[0].api_key, "sk-openai-secret");
  ASSERT_EQ(c.models.size(), 4u);
  EXPECT_EQ(c.models[0].strategy, ModelStrategy::kSingle);
  EXPECT_EQ(c.models[3].strategy, ModelStrategy::kFallback);
  EXPECT_EQ(c.models[3].targets[1].model, "claude-3-5-haiku-latest");
  ASSERT_EQ(c.keys.size(), 1u);
  std::string json = configToRedactedJson(c);
  EXPECT_EQ(json.find("sk-openai-secret"), std::string::npos);
  EXPECT_EQ(json.find("sk-ant-secret"), std::string::npos);
  EXPECT_EQ(json.find("sk-gw-demo"), std::string::npos);
  EXPECT_NE(json.find("\"strategy\":\"fallback\""), std::string::npos);
}

TEST_F(LlmConfig, PresetsDefaultTheirBaseUrl) {
  auto r = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
providers:
  - { name: local, kind: ollama }
  - { name: groq, kind: groq, api_key: k }
keys: [ { name: k, key: sk-test-key } ]
)",
                          "t.yaml");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].text());
  EXPECT_EQ(r.config->providers[0].base_url, "http://127.0.0.1:11434/v1");
  EXPECT_FALSE(r.config->providers[0].https);
  EXPECT_EQ(r.config->providers[0].port, 11434);
  EXPECT_EQ(r.config->providers[1].host, "api.groq.com");
}

TEST_F(LlmConfig, BedrockUrlComesFromRegion) {
  auto r = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
providers:
  - { name: aws, kind: bedrock, region: eu-west-1, access_key_id: AKIA, secret_access_key: s }
  - { name: aws2, kind: bedrock }
keys: [ { name: k, key: sk-test-key } ]
)",
                          "t.yaml");
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_NE(r.errors[0].message.find("needs a 'region'"), std::string::npos);
  auto ok = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
providers:
  - { name: aws, kind: bedrock, region: eu-west-1, access_key_id: AKIA, secret_access_key: s }
keys: [ { name: k, key: sk-test-key } ]
)",
                           "t.yaml");
  ASSERT_TRUE(ok.config) << ok.errors[0].text();
  EXPECT_EQ(ok.config->providers[0].host, "bedrock-runtime.eu-west-1.amazonaws.com");
  EXPECT_EQ(configToRedactedJson(*ok.config).find("AKIA"), std::string::npos);
}

TEST_F(LlmConfig, ErrorsNameTheLine) {
  auto r = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
providers:
  - { name: a, kind: openaii, api_key: k }
  - { name: b, kind: openai }
  - { name: c, kind: openai, api_key: k, base_url: "ftp://x/v1" }
  - { name: d, kind: azure, api_key: k, base_url: "https://x.openai.azure.com" }
models:
  - name: m
    targets: [ { provider: nobody, model: x } ]
  - name: two
    strategy: single
    targets: [ { provider: c, model: x }, { provider: c, model: y } ]
  - name: counted
    targets: [ { provider: c, model: x, tokenizer: p50k_base } ]
)",
                          "t.yaml");
  ASSERT_FALSE(r.config);
  std::vector<std::string> texts;
  for (auto& e : r.errors) texts.push_back(e.text());
  auto has = [&](const std::string& needle) {
    for (auto& t : texts)
      if (t.find(needle) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("t.yaml:3: unknown provider kind 'openaii'"));
  EXPECT_TRUE(has("t.yaml:4: provider 'b' needs an 'api_key'"));
  EXPECT_TRUE(has("t.yaml:5: base_url 'ftp://x/v1' must use http or https"));
  EXPECT_TRUE(has("t.yaml:6: azure provider 'd' needs an 'api_version'"));
  EXPECT_TRUE(has("t.yaml:9: model 'm' names unknown provider 'nobody'"));
  EXPECT_TRUE(has("t.yaml:11: model 'two' has 2 targets: 'single' takes exactly one"));
  EXPECT_TRUE(has("t.yaml:14: unknown tokenizer 'p50k_base' (o200k_base, cl100k_base or none)"));
}

TEST_F(LlmConfig, UnsetProviderKeyIsAnError) {
  unsetenv("GEMINI_API_KEY");
  auto r = loadConfigText(kIssueConfig, "llm.yaml");
  ASSERT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 16);
  EXPECT_NE(r.errors[0].message.find("GEMINI_API_KEY"), std::string::npos);
}

TEST_F(LlmConfig, ImplicitApiRouteIsAddedAndRankedLast) {
  auto r = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
upstreams: [ { name: web, targets: [ "127.0.0.1:2" ] } ]
routes: [ { name: all, match: { path_prefix: / }, upstream: web } ]
providers: [ { name: o, kind: ollama } ]
keys: [ { name: k, key: sk-test-key } ]
)",
                          "t.yaml");
  ASSERT_TRUE(r.config) << r.errors[0].text();
  ASSERT_EQ(r.config->routes.size(), 2u);
  const auto& api = r.config->routes[1];
  EXPECT_TRUE(api.implicit);
  EXPECT_TRUE(api.llm);
  EXPECT_EQ(api.match.path_prefix, "/v1/");
  http::Router router;
  router.build(r.config->routes);
  // An explicit catch-all wins over the implicit /v1/ route, longer prefix or not.
  EXPECT_EQ(router.routes().front().config->name, "all");
  EXPECT_EQ(router.routes().back().config->name, "llm-api");
}

TEST_F(LlmConfig, ExplicitLlmRoutes) {
  auto ok = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
routes: [ { name: ai, match: { path_prefix: /ai/ }, llm: { auth: none } } ]
providers: [ { name: o, kind: ollama } ]
)",
                           "t.yaml");
  ASSERT_TRUE(ok.config) << ok.errors[0].text();
  ASSERT_EQ(ok.config->routes.size(), 1u);  // no implicit route beside an explicit one
  EXPECT_FALSE(ok.config->routes[0].llm->require_key);
  EXPECT_EQ(ok.config->routes[0].max_body_bytes, kLlmMaxBodyBytes);  // bodies are read whole: not 1G

  auto bad = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
upstreams: [ { name: web, targets: [ "127.0.0.1:2" ] } ]
routes:
  - { name: both, upstream: web, llm: {} }
  - { name: nokeys, llm: {} }
  - { name: badauth, llm: { auth: maybe } }
providers: [ { name: o, kind: ollama } ]
)",
                            "t.yaml");
  ASSERT_FALSE(bad.config);
  std::string all;
  for (const auto& e : bad.errors) all += e.text() + "\n";
  EXPECT_NE(all.find("t.yaml:4: route 'both' has both 'llm' and 'upstream'"), std::string::npos) << all;
  EXPECT_NE(all.find("t.yaml:5: route 'nokeys' serves the LLM API, which needs gateway keys"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("t.yaml:6: llm.auth must be 'key' or 'none'"), std::string::npos) << all;

  auto none = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
routes: [ { name: ai, llm: { auth: none } } ]
)",
                             "t.yaml");
  ASSERT_FALSE(none.config);
  EXPECT_NE(none.errors[0].message.find("no 'providers' are configured"), std::string::npos);
}

TEST_F(LlmConfig, PricesAndKeyLimits) {
  auto ok = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
providers: [ { name: o, kind: ollama } ]
models:
  - { name: m, targets: [ { provider: o, model: x, price: { input: 0.15, output: "0.6" } } ] }
keys:
  - { name: k, key: sk-test-key, rpm: 60, tpm: 100000, budget: { usd: 12.5, period: day } }
)",
                           "t.yaml");
  ASSERT_TRUE(ok.config) << ok.errors[0].text();
  const auto& price = *ok.config->models[0].targets[0].price;
  EXPECT_EQ(price.input, 150'000u);
  EXPECT_EQ(price.output, 600'000u);
  EXPECT_EQ(price.cached_input, price.input);  // unset: the input price
  const auto& limits = ok.config->key_table->limits.at("k");
  EXPECT_EQ(limits.rpm, 60u);
  EXPECT_EQ(limits.tpm, 100'000u);
  EXPECT_EQ(limits.budget, 12'500'000'000'000u);
  EXPECT_EQ(limits.period, KeyLimits::Period::kDay);
  // GET /config shows the limits, never the key or its digest.
  const std::string json = configToRedactedJson(*ok.config);
  EXPECT_NE(json.find(R"("keys":[{"name":"k","key":"<redacted>","rpm":60,"tpm":100000,)"
                      R"("budget":{"usd":"12.5","period":"day"},"cache":false}])"),
            std::string::npos)
      << json;
  EXPECT_EQ(json.find("sk-test-key"), std::string::npos) << json;

  auto bad = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
providers: [ { name: o, kind: ollama } ]
models:
  - { name: m, targets: [ { provider: o, model: x, price: { input: 0.1 } } ] }
  - { name: n, targets: [ { provider: o, model: x, price: { input: -1, output: 1 } } ] }
keys:
  - { name: k, key: sk-test-key, budget: { usd: 0 } }
  - { name: j, key: sk-test-key2, budget: { usd: 5, period: week } }
  - { name: i, key: sk-test-key3, rpm: 0 }
)",
                            "t.yaml");
  ASSERT_FALSE(bad.config);
  std::string all;
  for (const auto& e : bad.errors) all += e.text() + "\n";
  EXPECT_NE(all.find("t.yaml:4: price needs 'output'"), std::string::npos) << all;
  EXPECT_NE(all.find("t.yaml:5: input must be a price in USD per million tokens"), std::string::npos) << all;
  EXPECT_NE(all.find("t.yaml:7: budget.usd must be a positive amount"), std::string::npos) << all;
  EXPECT_NE(all.find("t.yaml:8: budget.period must be 'day' or 'month'"), std::string::npos) << all;
  EXPECT_NE(all.find("t.yaml:9:"), std::string::npos) << all;
}

}  // namespace
}  // namespace ganglion::llm

namespace ganglion::llm {

using namespace ganglion::config;
using namespace ganglion::server;
namespace {

TEST(LlmConfigJson, ProvidersAndModelsShowEveryFieldWithSecretsRedacted) {
  auto r = loadConfigText(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
providers:
  - { name: o, kind: openai, api_key: sk-provider-secret }
  - { name: b, kind: bedrock, region: us-east-1, access_key_id: AKIDSECRET, secret_access_key: wJalrSECRET }
models:
  - name: m
    strategy: weighted
    circuit_breaker: { failures: 0 }
    targets:
      - { provider: o, model: gpt-4o, weight: 3, price: { input: 2.5, output: 10 } }
      - { provider: b, model: claude, tokenizer: none }
keys: [ { name: k, key: sk-test-key } ]
)",
                          "t.yaml");
  ASSERT_TRUE(r.config) << r.errors[0].text();
  EXPECT_EQ(r.config->models[0].breaker.failures, 0u);
  EXPECT_EQ(r.config->models[0].breaker.cooldown.count(), 30'000);
  const std::string json = configToRedactedJson(*r.config);
  for (const char* secret : {"sk-provider-secret", "AKIDSECRET", "wJalrSECRET", "sk-test-key"})
    EXPECT_EQ(json.find(secret), std::string::npos) << secret << " in " << json;
  // An empty secret is left out: "<redacted>" would say it was set.
  EXPECT_NE(json.find(R"({"name":"o","kind":"openai","base_url":"https://api.openai.com/v1",)"
                      R"("api_key":"<redacted>","api_version":"","region":"","idle_timeout":"4000ms",)"
                      R"("optional":false})"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("access_key_id":"<redacted>","secret_access_key":"<redacted>","idle_timeout")"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("strategy":"weighted","context_window":0,"retries":0,"retry_max_wait":"10000ms",)"
                      R"("circuit_breaker":{"failures":0,"cooldown":"30000ms"})"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"({"provider":"o","model":"gpt-4o","weight":3,"price":{"input":"2.5","output":"10",)"
                      R"("cached_input":"2.5","cache_write":"2.5"},"context_window":0,"max_output":0})"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("tokenizer":"none")"), std::string::npos) << json;
}

TEST(ProviderBaseUrl, ErrorsNeverPrintCredentials) {
  for (const char* url :
       {"https://user:hunter2pass@api.example.com/v1", "https://api.example.com/v1?key=AIzaSECRET123",
        "ftp://user:hunter2pass@h/x?key=AIzaSECRET123", "https://u:hunter2pass@h:99999/v1"}) {
    auto r = loadConfigText(fmt::format(R"(listeners: [ {{ name: a, address: "127.0.0.1:1" }} ]
providers:
  - {{ name: p, kind: openai, api_key: k, base_url: "{}" }}
)",
                                        url),
                            "t.yaml");
    ASSERT_FALSE(r.config) << url;
    for (const auto& e : r.errors) {
      EXPECT_EQ(e.text().find("hunter2pass"), std::string::npos) << e.text();
      EXPECT_EQ(e.text().find("AIzaSECRET123"), std::string::npos) << e.text();
    }
  }
  EXPECT_EQ(redactUrl("https://u:p@h:1/x?a=1&b#f"), "https://<redacted>@h:1/x?a=<redacted>&b#<redacted>");
  EXPECT_EQ(redactUrl("http://h/v1"), "http://h/v1");
  EXPECT_EQ(redactUrl("http://h/write?db=plant&u=admin&p=SECRET&precision=ms"),
            "http://h/write?db=plant&u=<redacted>&p=<redacted>&precision=ms");
  // A fragment without a query (a token in it: found by an outside test), and a '?' inside one.
  EXPECT_EQ(redactUrl("http://h/x#frag=SECRET"), "http://h/x#<redacted>");
  EXPECT_EQ(redactUrl("http://h/x#a?b=SECRET"), "http://h/x#<redacted>");
  EXPECT_EQ(redactUrl("http://h#SECRET"), "http://h#<redacted>");
}

}  // namespace
}  // namespace ganglion::llm
