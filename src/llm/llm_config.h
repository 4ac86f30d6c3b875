// The LLM sections as read: `providers:`, `models:` and `llm_cache:`. Declared once in
// llm_config.cc (llm_schema.h); compiled into a Catalog per config version. Immutable once
// loaded.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "upstream/upstream_config.h"

namespace ganglion::llm {

using config::Millis;
using config::Picodollars;

/// An LLM provider account: where to call it and with which credentials (issue 3).
struct ProviderConfig {
  std::string name;
  std::string kind;      ///< openai, azure, anthropic, gemini, bedrock, or an OpenAI-compatible preset
  std::string base_url;  ///< scheme://host[:port][/path], defaulted from the kind
  bool https = true;
  std::string host;
  uint16_t port = 443;
  std::string base_path;    ///< path prefix from base_url, without trailing '/'
  std::string api_key;      ///< secret: never logged, redacted in /config
  std::string api_version;  ///< azure
  std::string region;       ///< bedrock
  std::string access_key_id, secret_access_key, session_token;  ///< bedrock (secrets)
  /// How the gateway reaches it: an upstream named "provider:<name>" with one target (TLS
  /// verified against the system store for https), pooled and health-tracked like any other.
  upstream::UpstreamConfig upstream;
  bool optional = false;  ///< left out (not refused) when its api_key is empty
  config::Place at;       ///< where it is written, for errors found later

  /// The credentials the gateway holds for this provider: redacted wherever a provider's
  /// words are shown to clients.
  std::array<std::string_view, 4> secrets() const {
    return {api_key, access_key_id, secret_access_key, session_token};
  }
};

/// Token prices in picodollars per token (= USD per million tokens × 1e6).
struct Price {
  Picodollars input = 0;
  Picodollars output = 0;
  Picodollars cached_input = 0;  ///< prompt tokens read from the provider's cache
  Picodollars cache_write = 0;   ///< prompt tokens written to it (Anthropic); input price if unset
};

/// One model reachable through a provider, as a model alias lists it.
struct ModelTarget {
  std::string provider;
  std::string model;
  uint32_t weight = 1;
  std::optional<Price> price;   ///< from the config; else the built-in table (llm/prices.h)
  uint64_t context_window = 0;  ///< tokens; 0: the model's, or unknown
  uint64_t max_output = 0;      ///< most output tokens of one answer; 0: built-in table, or unknown
  std::string tokenizer;        ///< "o200k_base", "cl100k_base" or "none"; empty: by provider kind and model
  config::Place at;             ///< where it is written, for errors found later
};

/// A target that keeps failing is tried last for a while (per model, shared by the workers).
struct CircuitBreakerConfig {
  uint32_t failures = 5;    ///< consecutive failures that open a target's circuit; 0 = off
  Millis cooldown{30'000};  ///< how long an open circuit sends calls elsewhere
};

enum class ModelStrategy { kSingle, kFallback, kWeighted, kLatency, kCost, kLeastBusy };

/// A model name clients ask for, mapped to provider models by a strategy.
struct ModelConfig {
  std::string name;
  ModelStrategy strategy = ModelStrategy::kSingle;
  std::vector<ModelTarget> targets;
  uint64_t context_window = 0;    ///< tokens; 0 = unknown. Targets too small for a prompt are skipped
  uint32_t retries = 0;           ///< extra attempts on the same target after 429/5xx/connection failures
  Millis retry_max_wait{10'000};  ///< a Retry-After longer than this moves on instead of waiting
  CircuitBreakerConfig breaker;
  Millis first_token_timeout{0};  ///< streams: no first event this soon → next target; 0 = off
  config::Place at;               ///< where it is written, for errors found later
};

/// The LLM response cache (opt-in per key with `cache: true`, per request with the
/// `x-ganglion-cache: on|off` header).
struct LlmCacheConfig {
  uint64_t max_bytes = 64ull << 20;  ///< least recently used entries go first past this
  Millis ttl{600'000};
};

}  // namespace ganglion::llm
