// The `providers:` and `models:` sections (the LLM gateway's config), validated with file
// and line like everything else.
#include "control/llm_config.h"

#include <algorithm>
#include <boost/url/parse.hpp>

#include "base/strings.h"
#include "net/tls.h"

namespace ganglion::control {

namespace {

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
  auto url = boost::urls::parse_uri(p.base_url);
  if (!url) {
    error = fmt::format("base_url '{}' is not a URL", redactUrl(p.base_url));
    return false;
  }
  std::string scheme(url->scheme());
  if (scheme != "https" && scheme != "http") {
    error = fmt::format("base_url '{}' must use http or https", redactUrl(p.base_url));
    return false;
  }
  if (url->has_query() || url->has_fragment() || url->has_userinfo()) {
    error = fmt::format("base_url '{}' may not have a query, fragment or credentials", redactUrl(p.base_url));
    return false;
  }
  p.https = scheme == "https";
  p.host = std::string(url->host_address());
  if (p.host.empty()) {
    error = fmt::format("base_url '{}' has no host", redactUrl(p.base_url));
    return false;
  }
  p.port = p.https ? 443 : 80;
  if (url->has_port()) {
    auto port = parseUint(url->port());
    if (!port || *port == 0 || *port > 65535) {
      error = fmt::format("base_url '{}' has an invalid port", redactUrl(p.base_url));
      return false;
    }
    p.port = static_cast<uint16_t>(*port);
  }
  p.base_path = std::string(url->encoded_path());
  while (!p.base_path.empty() && p.base_path.back() == '/') p.base_path.pop_back();
  return true;
}

/// `{ input, output, cached_input, cache_write }` in USD per million tokens.
std::optional<Price> readPrice(Reader& r, const YAML::Node& n) {
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

}  // namespace

void readProviders(Reader& r, const YAML::Node& list, Config& cfg) {
  std::shared_ptr<net::TlsClientContext> system_tls;  // one system-store context for all providers
  r.forEach(list, "providers", [&](const YAML::Node& n) {
    if (!n.IsMap()) return r.fail(n, "a provider is a map: { name, kind, base_url, api_key }");
    r.checkKeys(n,
                {"name", "kind", "base_url", "api_key", "api_version", "region", "access_key_id",
                 "secret_access_key", "session_token", "idle_timeout", "optional"},
                "provider");
    ProviderConfig p;
    p.line = Reader::lineOf(n);
    if (auto v = n["name"]; v.IsDefined())
      p.name = r.str(v, "provider name").value_or("");
    else
      return r.fail(n, "provider needs a 'name'");
    const KindInfo* kind = nullptr;
    if (auto v = n["kind"]; v.IsDefined()) {
      p.kind = r.str(v, "kind").value_or("");
      kind = findKind(p.kind);
      if (!kind) return r.fail(v, fmt::format("unknown provider kind '{}' (known: {})", p.kind, kindList()));
    } else {
      return r.fail(n, fmt::format("provider '{}' needs a 'kind' ({})", p.name, kindList()));
    }
    if (auto v = n["region"]; v.IsDefined()) p.region = r.str(v, "region").value_or("");
    if (auto v = n["base_url"]; v.IsDefined())
      p.base_url = r.str(v, "base_url").value_or("");
    else if (p.kind == "bedrock" && !p.region.empty())
      p.base_url = fmt::format("https://bedrock-runtime.{}.amazonaws.com", p.region);
    else
      p.base_url = std::string(kind->default_base_url);
    if (p.base_url.empty()) {
      if (p.kind != "bedrock")  // bedrock's URL comes from its region, reported below
        r.fail(n, fmt::format("provider '{}' of kind {} needs a 'base_url'", p.name, p.kind));
    } else {
      std::string error;
      if (!parseBaseUrl(p, error)) r.fail(n["base_url"].IsDefined() ? n["base_url"] : n, error);
    }
    if (auto v = n["api_key"]; v.IsDefined())
      p.api_key = r.str(v, "api_key").value_or("");
    else if (kind->needs_key)
      r.fail(n, fmt::format("provider '{}' needs an 'api_key'", p.name));
    // `optional: true` with an empty key (api_key: "${OPENAI_API_KEY:-}" where the variable is
    // unset): the provider is left out instead of refused, so one config serves whichever keys
    // the environment has.
    if (auto v = n["optional"]; v.IsDefined())
      if (r.boolean(v, "optional").value_or(false) && p.api_key.empty() && kind->needs_key) {
        for (const auto& other : cfg.providers)
          if (other.name == p.name) return r.fail(n, fmt::format("duplicate provider name '{}'", p.name));
        cfg.skipped_providers.push_back(p.name);
        return;
      }
    if (auto v = n["api_version"]; v.IsDefined()) p.api_version = r.str(v, "api_version").value_or("");
    if (p.kind == "azure" && p.api_version.empty())
      r.fail(n, fmt::format("azure provider '{}' needs an 'api_version'", p.name));
    if (auto v = n["access_key_id"]; v.IsDefined()) p.access_key_id = r.str(v, "access_key_id").value_or("");
    if (auto v = n["secret_access_key"]; v.IsDefined())
      p.secret_access_key = r.str(v, "secret_access_key").value_or("");
    if (auto v = n["session_token"]; v.IsDefined()) p.session_token = r.str(v, "session_token").value_or("");
    if (auto v = n["idle_timeout"]; v.IsDefined())
      if (auto d = r.duration(v, "idle_timeout")) p.upstream.idle_timeout = *d;
    if (p.kind == "bedrock") {
      if (p.region.empty()) r.fail(n, fmt::format("bedrock provider '{}' needs a 'region'", p.name));
      if (p.access_key_id.empty() || p.secret_access_key.empty())
        r.fail(n, fmt::format("bedrock provider '{}' needs 'access_key_id' and 'secret_access_key'", p.name));
    }
    for (const auto& other : cfg.providers)
      if (other.name == p.name) return r.fail(n, fmt::format("duplicate provider name '{}'", p.name));
    if (!p.host.empty()) {
      auto& up = p.upstream;
      up.name = "provider:" + p.name;
      up.targets.push_back({{p.host, p.port}, 1});
      up.connect_timeout = std::chrono::seconds(5);
      up.keepalive = 64;
      up.line = p.line;  // idle_timeout was read above
      if (p.https) {
        if (!system_tls) {  // verified against the system store; SNI and name = the target's host
          auto ctx = net::TlsClientContext::create({});
          if (!ctx) return r.fail(n, ctx.error().message);
          system_tls = *ctx;
        }
        up.tls = system_tls;
      }
    }
    cfg.providers.push_back(std::move(p));
  });
}

void readModels(Reader& r, const YAML::Node& list, Config& cfg) {
  r.forEach(list, "models", [&](const YAML::Node& n) {
    if (!n.IsMap()) return r.fail(n, "a model is a map: { name, strategy, targets }");
    r.checkKeys(n,
                {"name", "strategy", "targets", "context_window", "retries", "retry_max_wait",
                 "circuit_breaker", "first_token_timeout"},
                "model");
    ModelConfig m;
    m.line = Reader::lineOf(n);
    if (auto v = n["name"]; v.IsDefined())
      m.name = r.str(v, "model name").value_or("");
    else
      return r.fail(n, "model needs a 'name'");
    size_t skipped_targets = 0;
    r.forEach(n["targets"], "targets", [&](const YAML::Node& t) {
      if (!t.IsMap()) return r.fail(t, "a model target is a map: { provider, model, weight }");
      if (auto v = t["provider"]; v.IsDefined() && v.IsScalar()) {
        const auto& skipped = cfg.skipped_providers;
        if (std::find(skipped.begin(), skipped.end(), v.Scalar()) != skipped.end()) {
          ++skipped_targets;  // its provider is optional and has no key here
          return;
        }
      }
      r.checkKeys(t, {"provider", "model", "weight", "price", "context_window", "max_output", "tokenizer"},
                  "model target");
      ModelTarget target;
      target.line = Reader::lineOf(t);
      if (auto v = t["provider"]; v.IsDefined()) {
        target.provider = r.str(v, "provider").value_or("");
        bool known = false;
        for (const auto& p : cfg.providers) known = known || p.name == target.provider;
        if (!known) r.fail(v, fmt::format("model '{}' names unknown provider '{}'", m.name, target.provider));
      } else {
        r.fail(t, "model target needs a 'provider'");
      }
      if (auto v = t["model"]; v.IsDefined())
        target.model = r.str(v, "model").value_or("");
      else
        r.fail(t, "model target needs a 'model' (the provider's model id)");
      if (auto v = t["weight"]; v.IsDefined())
        target.weight = r.integer<uint32_t>(v, "weight", 1, 10'000).value_or(1);
      if (auto v = t["price"]; v.IsDefined()) target.price = readPrice(r, v);
      if (auto v = t["context_window"]; v.IsDefined())
        target.context_window = r.integer<uint64_t>(v, "context_window", 1, 100'000'000).value_or(0);
      if (auto v = t["max_output"]; v.IsDefined())
        target.max_output = r.integer<uint64_t>(v, "max_output", 1, 100'000'000).value_or(0);
      if (auto v = t["tokenizer"]; v.IsDefined()) {
        target.tokenizer = r.str(v, "tokenizer").value_or("");
        if (target.tokenizer != "o200k_base" && target.tokenizer != "cl100k_base" &&
            target.tokenizer != "none")
          r.fail(v,
                 fmt::format("unknown tokenizer '{}' (o200k_base, cl100k_base or none)", target.tokenizer));
      }
      m.targets.push_back(std::move(target));
    });
    if (m.targets.empty() && skipped_targets > 0) {
      cfg.skipped_models.push_back(m.name);
      return;
    }
    if (m.targets.empty()) r.fail(n, fmt::format("model '{}' needs at least one target", m.name));
    m.strategy = m.targets.size() > 1 ? ModelStrategy::kFallback : ModelStrategy::kSingle;
    if (auto v = n["strategy"]; v.IsDefined()) {
      auto s = r.str(v, "strategy").value_or("");
      if (s == "single")
        m.strategy = ModelStrategy::kSingle;
      else if (s == "fallback")
        m.strategy = ModelStrategy::kFallback;
      else if (s == "weighted")
        m.strategy = ModelStrategy::kWeighted;
      else if (s == "latency")
        m.strategy = ModelStrategy::kLatency;
      else if (s == "cost")
        m.strategy = ModelStrategy::kCost;
      else if (s == "least_busy")
        m.strategy = ModelStrategy::kLeastBusy;
      else
        r.fail(v,
               fmt::format(
                   "strategy must be single, fallback, weighted, latency, cost or least_busy, got '{}'", s));
      if (m.strategy == ModelStrategy::kSingle && m.targets.size() > 1)
        r.fail(v, fmt::format("model '{}' has {} targets: 'single' takes exactly one", m.name,
                              m.targets.size()));
    }
    if (auto v = n["context_window"]; v.IsDefined())
      m.context_window = r.integer<uint64_t>(v, "context_window", 1, 100'000'000).value_or(0);
    if (auto v = n["retries"]; v.IsDefined())
      m.retries = r.integer<uint32_t>(v, "retries", 0, 10).value_or(0);
    if (auto v = n["retry_max_wait"]; v.IsDefined())
      if (auto d = r.duration(v, "retry_max_wait")) m.retry_max_wait = *d;
    if (auto v = n["first_token_timeout"]; v.IsDefined())
      if (auto d = r.duration(v, "first_token_timeout")) m.first_token_timeout = *d;
    if (auto v = n["circuit_breaker"]; v.IsDefined()) {
      if (!v.IsMap()) {
        r.fail(v, "circuit_breaker is a map: { failures: 5, cooldown: 30s }");
      } else {
        r.checkKeys(v, {"failures", "cooldown"}, "circuit_breaker");
        if (auto f = v["failures"]; f.IsDefined())
          m.breaker_failures = r.integer<uint32_t>(f, "circuit_breaker.failures", 0, 1000).value_or(5);
        if (auto c = v["cooldown"]; c.IsDefined())
          if (auto d = r.duration(c, "circuit_breaker.cooldown")) m.breaker_cooldown = *d;
      }
    }
    for (const auto& other : cfg.models)
      if (other.name == m.name) return r.fail(n, fmt::format("duplicate model name '{}'", m.name));
    cfg.models.push_back(std::move(m));
  });
}

std::string_view strategyName(ModelStrategy s) {
  switch (s) {
    case ModelStrategy::kSingle:
      return "single";
    case ModelStrategy::kFallback:
      return "fallback";
    case ModelStrategy::kWeighted:
      return "weighted";
    case ModelStrategy::kLatency:
      return "latency";
    case ModelStrategy::kCost:
      return "cost";
    case ModelStrategy::kLeastBusy:
      return "least_busy";
  }
  return "single";
}

}  // namespace ganglion::control
