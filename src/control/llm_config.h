// Readers for the LLM sections of the config (`providers:`, `models:`). Main thread, at load.
#pragma once

#include "control/config.h"
#include "control/yaml_reader.h"

namespace ganglion::control {

void readProviders(Reader& r, const YAML::Node& list, Config& cfg);
/// After readProviders: targets must name known providers.
void readModels(Reader& r, const YAML::Node& list, Config& cfg);
std::string_view strategyName(ModelStrategy s);

}  // namespace ganglion::control
