// Readers for the LLM sections of the config (`providers:`, `models:`). Main thread, at load.
#pragma once

#include "config/config.h"
#include "config/reader.h"
#include "config/schema.h"

namespace ganglion::llm {

void readProviders(config::Reader& r, const config::Node& list, config::Config& cfg);
/// After readProviders: targets must name known providers.
void readModels(config::Reader& r, const config::Node& list, config::Config& cfg);
std::string_view strategyName(config::ModelStrategy s);

/// `providers[]`, `models[]`, a model's targets and its circuit breaker, declared once
/// (config/schema.h). Kind defaults, references and duplicates are checked by the
/// readers above.
const config::Schema<config::ProviderConfig>& providerSchema();
const config::Schema<config::ModelConfig>& modelSchema();
const config::Schema<config::ModelTarget>& modelTargetSchema();
const config::Schema<config::CircuitBreakerConfig>& circuitBreakerSchema();

}  // namespace ganglion::llm
