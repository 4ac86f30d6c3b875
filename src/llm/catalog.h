// The LLM half of a config snapshot: providers with their codecs and the upstream that reaches
// each, and the model names clients may ask for. Built on the main thread with the snapshot,
// then read by every worker.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/string_map.h"
#include "config/config.h"
#include "llm/llm_config.h"
#include "llm/provider.h"

namespace ganglion::llm {

struct CatalogProvider {
  const ProviderConfig* config = nullptr;
  std::unique_ptr<ProviderCodec> codec;  ///< null while the kind has no codec in this build
  size_t upstream = 0;                   ///< index into Snapshot::upstreams
  std::string host_header;               ///< "host", or "host:port" off the scheme's default port
};

/// What every worker learns about one target while calling it: its circuit breaker, time to
/// first token and calls in flight. Atomics, shared by the workers; lives with the snapshot.
struct TargetState {
  std::atomic<uint32_t> failures{0};      ///< consecutive
  std::atomic<int64_t> open_until_ms{0};  ///< circuit open until (steady clock); 0: closed
  std::atomic<int64_t> ttft_ewma_us{0};   ///< 0: no sample yet
  std::atomic<int32_t> inflight{0};
};

struct CatalogTarget {
  uint32_t provider = 0;  ///< index into Catalog::providers
  std::string model;      ///< the provider's model id
  uint32_t weight = 1;
  std::optional<llm::Price> price;  ///< config override, else built-in; unknown: nullopt
  uint64_t context_window = 0;      ///< tokens; 0: unknown
  /// Most output tokens of one answer without a client limit: config, Anthropic's default
  /// max_tokens (the codec always sends one), the built-in table; 0: unknown.
  uint64_t max_output = 0;
  /// Most prompt tokens: config context_window, else the built-in table; 0: unknown. Only
  /// for reservations (context_window alone decides which targets a prompt skips).
  uint64_t context_limit = 0;
  /// The OpenAI encoding that counts this target's prompts exactly ("o200k_base",
  /// "cl100k_base"): config `tokenizer`, else by model name for openai and azure providers;
  /// empty: none (prompts are estimated). Warmed on the compute pool when the catalog is built.
  std::string_view encoding;
  std::shared_ptr<TargetState> state = std::make_shared<TargetState>();
};

struct CatalogModel {
  const ModelConfig* config = nullptr;
  std::vector<CatalogTarget> targets;
};

/// What the LLM API reads of the rest of a config version: the gateway keys (limits, cache
/// opt-in), where shared limits live, and the response cache's settings.
struct LlmSettings {
  std::shared_ptr<const config::KeyTable> keys;
  config::StateConfig state;
  LlmCacheConfig cache;
};

class Catalog {
 public:
  /// `provider_upstreams[i]` is the upstream index of providers[i]. The configs must outlive
  /// the catalog (the snapshot holds both). Main thread.
  Catalog(const std::vector<ProviderConfig>& providers, const std::vector<ModelConfig>& models,
          const std::vector<size_t>& provider_upstreams, LlmSettings settings);
  /// The model a client named, or nullptr. Any thread.
  const CatalogModel* find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &models_[it->second];
  }
  const std::vector<CatalogModel>& models() const { return models_; }
  const std::vector<CatalogProvider>& providers() const { return providers_; }
  const LlmSettings& settings() const { return settings_; }

 private:
  std::vector<CatalogProvider> providers_;
  std::vector<CatalogModel> models_;
  StringMap<size_t> by_name_;
  LlmSettings settings_;
};

}  // namespace ganglion::llm
