// Readers and schemas of the LLM sections (`providers:`, `models:`, `llm_cache:`), declared
// once in llm_config.cc (config/schema.h). Main thread at load, or the blocking pool for
// POST /config/check.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/reader.h"
#include "config/schema.h"
#include "llm/llm_config.h"

namespace ganglion::llm {

/// Appends each provider of `list` to `providers`; an `optional` one without its api_key is
/// left out and named in `skipped` instead.
void readProviders(config::Reader& r, const config::Node& list, std::vector<ProviderConfig>& providers,
                   std::vector<std::string>& skipped);
/// After readProviders: targets must name known providers; a target of a skipped provider is
/// left out, and a model left with none is named in `skipped_models`.
void readModels(config::Reader& r, const config::Node& list, const std::vector<ProviderConfig>& providers,
                const std::vector<std::string>& skipped_providers, std::vector<ModelConfig>& models,
                std::vector<std::string>& skipped_models);
std::string_view strategyName(ModelStrategy s);

/// `providers[]`, `models[]`, a model's targets and its circuit breaker. Kind defaults,
/// references and duplicates are checked by the readers above.
const config::Schema<ProviderConfig>& providerSchema();
const config::Schema<ModelConfig>& modelSchema();
const config::Schema<ModelTarget>& modelTargetSchema();
const config::Schema<CircuitBreakerConfig>& circuitBreakerSchema();
const config::Schema<LlmCacheConfig>& llmCacheSchema();

}  // namespace ganglion::llm
