// Readers for the LLM sections of the config (`providers:`, `models:`). Main thread, at load.
#pragma once

#include "control/config.h"
#include "control/config_schema.h"
#include "control/yaml_reader.h"

namespace ganglion::control {

void readProviders(Reader& r, const config::Node& list, Config& cfg);
/// After readProviders: targets must name known providers.
void readModels(Reader& r, const config::Node& list, Config& cfg);
std::string_view strategyName(ModelStrategy s);

/// `providers[]`, `models[]`, a model's targets and its circuit breaker, declared once
/// (control/config_schema.h). Kind defaults, references and duplicates are checked by the
/// readers above.
const Schema<ProviderConfig>& providerSchema();
const Schema<ModelConfig>& modelSchema();
const Schema<ModelTarget>& modelTargetSchema();
const Schema<CircuitBreakerConfig>& circuitBreakerSchema();

}  // namespace ganglion::control
