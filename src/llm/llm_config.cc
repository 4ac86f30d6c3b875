// The `providers:` and `models:` sections (the LLM gateway's config), validated with file
// and line like everything else.
#include <algorithm>
#include <boost/json.hpp>

#include "base/strings.h"
#include "llm/llm_schema.h"
#include "net/tls.h"
#include "upstream/http_url.h"

namespace ganglion::llm {

using namespace ganglion::config;  // this file reads config sections

namespace json = boost::json;

namespace {

constexpr std::string_view kStrategyNames[] = {"single",  "fallback", "weighted",
                                               "latency", "cost",     "least_busy"};

struct KindInfo {
  std::string_view kind;
  std::string_view default_base_url;  ///< empty: base_url is required
  bool needs_key;
};

// OpenAI-compatible servers are presets of the openai codec: only the base URL and whether a
// key is needed differ.
constexpr KindInfo kKinds[] = {
    {"openai", "https://api.openai.com/v1", true},
    {"azure", "", true},
    {"anthropic", "https://api.anthropic.com", true},
    {"gemini", "https://generativelanguage.googleapis.com", true},
    {"bedrock", "", false},
    {"mistral", "https://api.mistral.ai/v1", true},
    {"groq", "https://api.groq.com/openai/v1", true},
    {"deepseek", "https://api.deepseek.com/v1", true},
    {"together", "https://api.together.xyz/v1", true},
    {"openrouter", "https://openrouter.ai/api/v1", true},
    {"vllm", "http://127.0.0.1:8000/v1", false},
    {"ollama", "http://127.0.0.1:11434/v1", false},
    {"llamacpp", "http://127.0.0.1:8080/v1", false},
};

const KindInfo* findKind(std::string_view kind) {
  for (const auto& k : kKinds)
    if (k.kind == kind) return &k;
  return nullptr;
}

std::string kindList() {
  std::string out;
  for (const auto& k : kKinds) {
    if (!out.empty()) out += ", ";
    out += k.kind;
  }
  return out;
}

bool parseBaseUrl(ProviderConfig& p, std::string& error) {
  auto url = upstream::parseHttpUrl(p.base_url, "base_url", /*allow_query=*/false,
                                    "may not have a query, fragment or credentials");
  if (!url) {
    error = url.error().message;
    return false;
  }
  p.https = url->https;
  p.host = std::move(url->host);
  p.port = url->port;
  p.base_path = std::move(url->path);
  while (!p.base_path.empty() && p.base_path.back() == '/') p.base_path.pop_back();
  return true;
}

/// `{ input, output, cached_input, cache_write }` in USD per million tokens.
std::optional<Price> readPrice(Reader& r, const config::Node& n) {
  if (!n.IsMap()) {
    r.fail(n, "price is a map: { input, output, cached_input, cache_write } in USD per million tokens");
    return std::nullopt;
  }
  r.checkKeys(n, {"input", "output", "cached_input", "cache_write"}, "price");
  Price p;
  bool has_cached = false, has_write = false;
  auto field = [&](const char* key, Picodollars& out, bool* seen) {
    auto v = n[key];
    if (!v.IsDefined()) {
      if (!seen) r.fail(n, fmt::format("price needs '{}'", key));
      return;
    }
    auto text = r.str(v, key).value_or("");
    auto millionths = parseMillionths(text);
    if (!millionths || *millionths > 1'000'000'000'000ull)
      return r.fail(
          v, fmt::format("{} must be a price in USD per million tokens (up to 6 decimals), got '{}'", key,
                         text));
    out = *millionths;  // millionths of a USD per million tokens = picodollars per token
    if (seen) *seen = true;
  };
  field("input", p.input, nullptr);
  field("output", p.output, nullptr);
  field("cached_input", p.cached_input, &has_cached);
  field("cache_write", p.cache_write, &has_write);
  if (!has_cached) p.cached_input = p.input;
  if (!has_write) p.cache_write = p.input;
  return p;
}

void readKind(Reader& r, const config::Node& v, ProviderConfig& p) {
  auto kind = r.str(v, "kind");
  if (!kind) return;
  if (!findKind(*kind))
    return r.fail(v, fmt::format("unknown provider kind '{}' (known: {})", *kind, kindList()));
  p.kind = *kind;
}

json::value showKind(const ProviderConfig& p) { return json::string(p.kind); }

void readProviderIdleTimeout(Reader& r, const config::Node& v, ProviderConfig& p) {
  if (auto d = r.duration(v, "idle_timeout")) p.upstream.idle_timeout = *d;
}

json::value showProviderIdleTimeout(const ProviderConfig& p) {
  return json::string(durationText(p.upstream.idle_timeout));
}

void readTargetPrice(Reader& r, const config::Node& v, ModelTarget& t) { t.price = readPrice(r, v); }

json::value showTargetPrice(const ModelTarget& t) {
  if (!t.price) return nullptr;
  return json::object{{"input", formatMillionths(t.price->input)},
                      {"output", formatMillionths(t.price->output)},
                      {"cached_input", formatMillionths(t.price->cached_input)},
                      {"cache_write", formatMillionths(t.price->cache_write)}};
}

void readTokenizer(Reader& r, const config::Node& v, ModelTarget& t) {
  auto name = r.str(v, "tokenizer");
  if (!name) return;
  if (*name != "o200k_base" && *name != "cl100k_base" && *name != "none")
    return r.fail(v, fmt::format("unknown tokenizer '{}' (o200k_base, cl100k_base or none)", *name));
  t.tokenizer = *name;
}

void readStrategy(Reader& r, const config::Node& v, ModelConfig& m) {
  auto s = r.str(v, "strategy");
  if (!s) return;
  for (size_t i = 0; i < std::size(kStrategyNames); ++i)
    if (*s == kStrategyNames[i]) {
      m.strategy = static_cast<ModelStrategy>(i);
      return;
    }
  r.fail(v, fmt::format("strategy must be single, fallback, weighted, latency, cost or least_busy, got '{}'",
                        *s));
}

json::value showStrategy(const ModelConfig& m) { return json::string(strategyName(m.strategy)); }

json::value showModelTargets(const ModelConfig& m) {
  json::array out;
  for (const auto& t : m.targets) out.push_back(fieldsToJson(modelTargetSchema(), t));
  return out;
}

}  // namespace

const Schema<ProviderConfig>& providerSchema() {
  using P = ProviderConfig;
  static const Schema<ProviderConfig> schema{
      "provider",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &P::name,
           .default_text = "",
           .doc = "Unique. Named by model targets; sent back in `x-ganglion-provider`; logged as the access "
                  "log's `upstream`.",
           .required = true,
           .what = "provider name",
           .missing = "provider needs a 'name'"},
          {.name = "kind",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "required",
           .doc = "One of the kinds below.",
           .type_text = "string",
           .read = readKind,
           .show = showKind},
          {.name = "base_url",
           .kind = FieldKind::kString,
           .member = &P::base_url,
           .default_text = "per kind",
           .doc = "No query, fragment or credentials. The port defaults to 443 (`https`) or 80 (`http`); a "
                  "trailing `/` is dropped, and the path is put before every request path.",
           .type_text = "`http(s)://host[:port][/path]`"},
          {.name = "api_key",
           .kind = FieldKind::kString,
           .member = &P::api_key,
           .default_text = "required except for `vllm`, `ollama`, `llamacpp` and `bedrock`",
           .doc = "The provider credential. Use `${VAR}`. Redacted in `/config`. The client's gateway key is "
                  "never sent to a provider.",
           .secret = true},
          {.name = "api_version",
           .kind = FieldKind::kString,
           .member = &P::api_version,
           .default_text = "none",
           .doc =
               "`azure`: required, sent as `?api-version=`. `anthropic`: replaces the `anthropic-version` "
               "header (default `2023-06-01`; on `/v1/messages` the client's own header wins). Other kinds "
               "ignore it."},
          {.name = "region",
           .kind = FieldKind::kString,
           .member = &P::region,
           .default_text = "none",
           .doc = "`bedrock`: required; gives the default `base_url`."},
          {.name = "access_key_id",
           .kind = FieldKind::kString,
           .member = &P::access_key_id,
           .default_text = "none",
           .doc = "`bedrock`: required. Redacted in `/config`.",
           .secret = true},
          {.name = "secret_access_key",
           .kind = FieldKind::kString,
           .member = &P::secret_access_key,
           .default_text = "none",
           .doc = "`bedrock`: required. Redacted in `/config`.",
           .secret = true},
          {.name = "session_token",
           .kind = FieldKind::kString,
           .member = &P::session_token,
           .default_text = "none",
           .doc = "`bedrock`: optional. Redacted in `/config`.",
           .secret = true},
          {.name = "idle_timeout",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`4s`",
           .doc = "How long an idle pooled connection to the provider is kept (the provider upstream's "
                  "[`idle_timeout`](#upstreams)); keep it below the provider's own keep-alive timeout.",
           .type_text = "duration",
           .read = readProviderIdleTimeout,
           .show = showProviderIdleTimeout},
          {.name = "optional",
           .kind = FieldKind::kBool,
           .member = &P::optional,
           .default_text = "`false`",
           .doc = "With an empty `api_key` (such as `api_key: \"${OPENAI_API_KEY:-}\"` when the variable is "
                  "unset), the provider is left out instead of refused: model targets on it are dropped, and "
                  "so is a model left with no target. The start log and the welcome page name what was left "
                  "out. `llm:` routes stay valid with every provider left out (the API answers with no "
                  "models). This is how the default config switches OpenAI, Anthropic and Gemini on by their "
                  "usual environment variables."},
      },
      {},
  };
  return schema;
}

const Schema<ModelTarget>& modelTargetSchema() {
  using T = ModelTarget;
  static const Schema<ModelTarget> schema{
      "model target",
      {
          {.name = "provider",
           .kind = FieldKind::kString,
           .member = &T::provider,
           .default_text = "",
           .doc = "The name of a provider.",
           .required = true,
           .missing = "model target needs a 'provider'"},
          {.name = "model",
           .kind = FieldKind::kString,
           .member = &T::model,
           .default_text = "",
           .doc = "The provider's model id (for `azure`, the deployment name). Replaces the client's model "
                  "name in the request sent.",
           .required = true,
           .missing = "model target needs a 'model' (the provider's model id)"},
          {.name = "weight",
           .kind = FieldKind::kInteger,
           .member = &T::weight,
           .default_text = "`1`",
           .doc = "Used by `weighted`.",
           .min = 1,
           .max = 10'000},
          {.name = "price",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "built-in table",
           .doc = "See [Model target `price`](#model-target-price).",
           .type_text = "map",
           .read = readTargetPrice,
           .show = showTargetPrice},
          {.name = "context_window",
           .kind = FieldKind::kInteger,
           .member = &T::context_window,
           .default_text = "the model's",
           .doc =
               "Tokens; see `context_window` above: it decides which prompts skip this target, and bounds "
               "the reservation of inputs the provider expands on its side (else the [built-in "
               "table](#built-in-prices)). Set it on targets the table does not know when keys with limits "
               "send such inputs.",
           .min = 1,
           .max = 100'000'000},
          {.name = "tokenizer",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "by model",
           .doc =
               "How the gateway counts this target's prompts when the provider reports no usage, for "
               "`count_tokens` and for the `context_window` check ([prompt "
               "count](llm-api.md#post-v1chatcompletions)). Default: for `openai` and `azure` providers the "
               "encoding OpenAI uses for the model id (`gpt-4o`, `gpt-4.1`, `gpt-5`, `o1`, `o3`, `o4-mini` "
               "→ `o200k_base`; `gpt-4`, `gpt-3.5-turbo`, `text-embedding-*` → `cl100k_base`), else `none` "
               "(an estimate of 4 bytes a token). Set it for Azure deployments named otherwise, and to "
               "`none` for servers that only borrow OpenAI's model names. The first target of a model "
               "decides.",
           .type_text = "`o200k_base`, `cl100k_base` or `none`",
           .read = readTokenizer,
           .show = [](const T& t) -> json::value {
             if (t.tokenizer.empty()) return nullptr;
             return json::string(t.tokenizer);
           }},
          {.name = "max_output",
           .kind = FieldKind::kInteger,
           .member = &T::max_output,
           .default_text = "built-in table",
           .doc =
               "The most output tokens one answer of this target may have. What a call that sets no "
               "`max_tokens` reserves per choice for this target ([Key limits and "
               "budgets](#key-limits-and-budgets)). Default: for `anthropic` targets 4096 (the `max_tokens` "
               "the gateway sends them when the client sets none), otherwise the [built-in "
               "table](#built-in-prices), otherwise 4096. Set it for models the table does not know that "
               "can write more than 4096 tokens; a value below what the model can write lets such calls "
               "overshoot.",
           .min = 1,
           .max = 100'000'000},
      },
      {},
      "a model target is a map: { provider, model, weight }",
  };
  return schema;
}

const Schema<CircuitBreakerConfig>& circuitBreakerSchema() {
  static const Schema<CircuitBreakerConfig> schema{
      "circuit_breaker",
      {
          {.name = "failures",
           .kind = FieldKind::kInteger,
           .member = &CircuitBreakerConfig::failures,
           .default_text = "`5`",
           .doc = "Consecutive failures that open a target's circuit; `0` turns it off.",
           .min = 0,
           .max = 1000,
           .what = "circuit_breaker.failures"},
          {.name = "cooldown",
           .kind = FieldKind::kDuration,
           .member = &CircuitBreakerConfig::cooldown,
           .default_text = "`30s`",
           .doc = "How long an open circuit sends calls to the other targets first.",
           .what = "circuit_breaker.cooldown"},
      },
      {},
      "circuit_breaker is a map: { failures: 5, cooldown: 30s }",
  };
  return schema;
}

const Schema<ModelConfig>& modelSchema() {
  using M = ModelConfig;
  static const Schema<ModelConfig> schema{
      "model",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &M::name,
           .default_text = "",
           .doc = "Unique. Listed by `GET /v1/models`.",
           .required = true,
           .what = "model name",
           .missing = "model needs a 'name'"},
          {.name = "targets",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "required, at least one",
           .doc = "`{ provider, model, weight, price }`, in the order they are tried.",
           .type_text = "list",
           .show = showModelTargets},
          {.name = "strategy",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`single` with one target, `fallback` with several",
           .doc = "See below.",
           .type_text = "string",
           .read = readStrategy,
           .show = showStrategy},
          {.name = "context_window",
           .kind = FieldKind::kInteger,
           .member = &M::context_window,
           .default_text = "none",
           .doc =
               "Tokens. Targets whose window (their own `context_window`, else this one) is smaller than "
               "the prompt estimate are skipped; if none is left the answer is `400 "
               "context_length_exceeded`. Also what a key with limits reserves as the prompt of a call "
               "whose input the provider expands on its side (a stored conversation, a file by id, a "
               "server tool): the largest window of the model's targets, each target's from its own "
               "`context_window`, else this one, else the [built-in table](#built-in-prices); a target with "
               "none of these makes such calls `400 unbounded_prompt` ([Key limits and "
               "budgets](#key-limits-and-budgets)). The built-in table is used only for that reservation, "
               "never to skip targets.",
           .min = 1,
           .max = 100'000'000},
          {.name = "retries",
           .kind = FieldKind::kInteger,
           .member = &M::retries,
           .default_text = "`0`",
           .doc = "Extra attempts on the same target after `429`, `408`, `409`, `5xx` or a connection "
                  "failure, before failing over. Backoff 250 ms doubling per retry, or the provider's "
                  "`Retry-After` if longer.",
           .min = 0,
           .max = 10},
          {.name = "retry_max_wait",
           .kind = FieldKind::kDuration,
           .member = &M::retry_max_wait,
           .default_text = "`10s`",
           .doc = "A wait (backoff or `Retry-After`) longer than this is not taken: the call fails over (or "
                  "returns the error with its `Retry-After`)."},
          {.name = "circuit_breaker",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`{ failures: 5, cooldown: 30s }`",
           .doc = "After `failures` consecutive failures (`429`, `5xx`, connection failures, missed "
                  "first-token deadlines) a target is tried last for `cooldown`; one success closes it. "
                  "`failures: 0` turns it off. State is shared by the workers.",
           .type_text = "map",
           .read = readSection<M, CircuitBreakerConfig, &M::breaker, circuitBreakerSchema>,
           .show = showSection<M, CircuitBreakerConfig, &M::breaker, circuitBreakerSchema>},
          {.name = "first_token_timeout",
           .kind = FieldKind::kDuration,
           .member = &M::first_token_timeout,
           .default_text = "`0` (off)",
           .doc = "Streams only: if the first event has not arrived this long after the call was sent, the "
                  "target counts as failed and the next one is tried (nothing has reached the client yet)."},
      },
      {},
  };
  return schema;
}

void readProviders(Reader& r, const config::Node& list, std::vector<ProviderConfig>& providers,
                   std::vector<std::string>& skipped) {
  std::shared_ptr<net::TlsClientContext> system_tls;  // one system-store context for all providers
  r.forEach(list, "providers", [&](const config::Node& n) {
    if (!n.IsMap()) return r.fail(n, "a provider is a map: { name, kind, base_url, api_key }");
    ProviderConfig p;
    p.at = n.place();
    readFields(providerSchema(), n, p, r);
    if (!n["name"].IsDefined()) return;  // reported by readFields
    // The region names the host calls are signed for and sent to (bedrock-runtime.<region>...).
    if (p.region.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
      r.fail(n["region"],
             "region must be an AWS region name like us-east-1 (lower-case letters, digits, '-')");
    const KindInfo* kind = findKind(p.kind);
    if (!kind) {
      if (!n["kind"].IsDefined())
        r.fail(n, fmt::format("provider '{}' needs a 'kind' ({})", p.name, kindList()));
      return;
    }
    if (!n["base_url"].IsDefined())
      p.base_url = p.kind == "bedrock" && !p.region.empty()
                       ? fmt::format("https://bedrock-runtime.{}.amazonaws.com", p.region)
                       : std::string(kind->default_base_url);
    if (p.base_url.empty()) {
      if (p.kind != "bedrock")  // bedrock's URL comes from its region, reported below
        r.fail(n, fmt::format("provider '{}' of kind {} needs a 'base_url'", p.name, p.kind));
    } else {
      std::string error;
      if (!parseBaseUrl(p, error)) r.fail(n["base_url"].IsDefined() ? n["base_url"] : n, error);
    }
    if (!n["api_key"].IsDefined() && kind->needs_key)
      r.fail(n, fmt::format("provider '{}' needs an 'api_key'", p.name));
    // `optional: true` with an empty key (api_key: "${OPENAI_API_KEY:-}" where the variable is
    // unset): the provider is left out instead of refused, so one config serves whichever keys
    // the environment has.
    if (p.optional && p.api_key.empty() && kind->needs_key) {
      for (const auto& other : providers)
        if (other.name == p.name) return r.fail(n, fmt::format("duplicate provider name '{}'", p.name));
      skipped.push_back(p.name);
      return;
    }
    if (p.kind == "azure" && p.api_version.empty())
      r.fail(n, fmt::format("azure provider '{}' needs an 'api_version'", p.name));
    if (p.kind == "bedrock") {
      if (p.region.empty()) r.fail(n, fmt::format("bedrock provider '{}' needs a 'region'", p.name));
      if (p.access_key_id.empty() || p.secret_access_key.empty())
        r.fail(n, fmt::format("bedrock provider '{}' needs 'access_key_id' and 'secret_access_key'", p.name));
    }
    for (const auto& other : providers)
      if (other.name == p.name) return r.fail(n, fmt::format("duplicate provider name '{}'", p.name));
    if (!p.host.empty()) {
      auto& up = p.upstream;
      up.name = "provider:" + p.name;
      up.targets.push_back({{p.host, p.port}, 1});
      up.connect_timeout = std::chrono::seconds(5);
      up.keepalive = 64;
      up.at = p.at;  // idle_timeout was read above
      if (p.https) {
        if (!system_tls) {  // verified against the system store; SNI and name = the target's host
          auto ctx = net::TlsClientContext::create({});
          if (!ctx) return r.fail(n, ctx.error().message);
          system_tls = *ctx;
        }
        up.tls = system_tls;
      }
    }
    providers.push_back(std::move(p));
  });
}

void readModels(Reader& r, const config::Node& list, const std::vector<ProviderConfig>& providers,
                const std::vector<std::string>& skipped_providers, std::vector<ModelConfig>& models,
                std::vector<std::string>& skipped_models) {
  r.forEach(list, "models", [&](const config::Node& n) {
    if (!n.IsMap()) return r.fail(n, "a model is a map: { name, strategy, targets }");
    ModelConfig m;
    m.at = n.place();
    readFields(modelSchema(), n, m, r);
    if (!n["name"].IsDefined()) return;  // reported by readFields
    size_t skipped_targets = 0;
    r.forEach(n["targets"], "targets", [&](const config::Node& t) {
      if (!t.IsMap()) return r.fail(t, "a model target is a map: { provider, model, weight }");
      if (auto v = t["provider"]; v.IsDefined() && v.IsScalar()) {
        const auto& skipped = skipped_providers;
        if (std::find(skipped.begin(), skipped.end(), v.Scalar()) != skipped.end()) {
          ++skipped_targets;  // its provider is optional and has no key here
          return;
        }
      }
      ModelTarget target;
      target.at = t.place();
      readFields(modelTargetSchema(), t, target, r);
      if (auto v = t["provider"]; v.IsDefined()) {
        bool known = false;
        for (const auto& p : providers) known = known || p.name == target.provider;
        if (!known) r.fail(v, fmt::format("model '{}' names unknown provider '{}'", m.name, target.provider));
      }
      m.targets.push_back(std::move(target));
    });
    if (m.targets.empty() && skipped_targets > 0) {
      skipped_models.push_back(m.name);
      return;
    }
    if (m.targets.empty()) r.fail(n, fmt::format("model '{}' needs at least one target", m.name));
    if (auto v = n["strategy"]; !v.IsDefined())
      m.strategy = m.targets.size() > 1 ? ModelStrategy::kFallback : ModelStrategy::kSingle;
    else if (m.strategy == ModelStrategy::kSingle && m.targets.size() > 1)
      r.fail(v,
             fmt::format("model '{}' has {} targets: 'single' takes exactly one", m.name, m.targets.size()));
    for (const auto& other : models)
      if (other.name == m.name) return r.fail(n, fmt::format("duplicate model name '{}'", m.name));
    models.push_back(std::move(m));
  });
}

const Schema<LlmCacheConfig>& llmCacheSchema() {
  static const Schema<LlmCacheConfig> schema{
      "llm_cache",
      {
          {.name = "max_bytes",
           .kind = FieldKind::kSize,
           .member = &LlmCacheConfig::max_bytes,
           .default_text = "`64MiB`",
           .doc = "The most bytes of answers kept; least recently used answers are dropped past it.",
           .what = "llm_cache.max_bytes"},
          {.name = "ttl",
           .kind = FieldKind::kDuration,
           .member = &LlmCacheConfig::ttl,
           .default_text = "`10m`",
           .doc = "How long an answer is served from the cache.",
           .what = "llm_cache.ttl"},
      },
      {},
      "llm_cache must be a map: { max_bytes: 64MiB, ttl: 10m }",
  };
  return schema;
}

std::string_view strategyName(ModelStrategy s) { return kStrategyNames[static_cast<size_t>(s)]; }

}  // namespace ganglion::llm
