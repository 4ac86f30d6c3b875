// The built-in filters, listed explicitly in registry.cc (no static self-registration).
// Factories run on the main thread at config load and report problems through the Reader,
// with the line of the offending field.
#pragma once

#include <yaml-cpp/yaml.h>

#include <memory>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/reader.h"
#include "http/filter.h"

namespace ganglion::filters {

using FilterPtr = std::shared_ptr<const http::Filter>;

/// Builds the filter `kind` from its config block; nullptr (with errors in `r`) when invalid.
/// `config` holds everything parsed before routes (keys in particular).
FilterPtr buildFilter(std::string_view kind, const config::Node& node, config::Reader& r,
                      const config::Config& config);

/// The kinds buildFilter knows, for error messages and docs.
const std::vector<std::string_view>& filterKinds();

// One factory per built-in filter.
FilterPtr buildKeyAuth(const config::Node& node, config::Reader& r, const config::Config& config);
FilterPtr buildRateLimit(const config::Node& node, config::Reader& r, const config::Config& config);
FilterPtr buildCors(const config::Node& node, config::Reader& r, const config::Config& config);
FilterPtr buildIpFilter(const config::Node& node, config::Reader& r, const config::Config& config);
FilterPtr buildHeaders(const config::Node& node, config::Reader& r, const config::Config& config);
FilterPtr buildPromptGuard(const config::Node& node, config::Reader& r, const config::Config& config);

}  // namespace ganglion::filters
