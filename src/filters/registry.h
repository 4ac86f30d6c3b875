// The built-in filters, listed explicitly in registry.cc (no static self-registration). Each
// declares its settings once with a config::Schema (reading, unknown-key errors, GET /config,
// its docs table). Factories run on the main thread (or the blocking pool, for
// POST /config/check) at config load and report problems through the Reader, with the line
// or JSON path of the offending field.
#pragma once

#include <boost/json/object.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/reader.h"
#include "config/schema.h"
#include "http/filter.h"

namespace ganglion::filters {

using FilterPtr = std::shared_ptr<const http::Filter>;

/// What filters read of the sections before routes: the gateway keys and where shared state
/// (Redis) lives. Borrowed for the factory call.
struct FilterInputs {
  const std::vector<config::KeyConfig>& keys;
  std::shared_ptr<const config::KeyTable> key_table;
  const config::StateConfig& state;
};

/// A built filter and its settings as GET /config shows them (`{"<kind>": {...}}`, secrets
/// redacted), as JSON text.
struct BuiltFilter {
  FilterPtr filter;  ///< null (with errors in the Reader) when the block is invalid
  std::string shown;
};

/// Builds the filter `kind` from its config block.
BuiltFilter buildFilter(std::string_view kind, const config::Node& node, config::Reader& r,
                        const FilterInputs& inputs);

/// The kinds buildFilter knows, for error messages and docs.
const std::vector<std::string_view>& filterKinds();

/// The field table of each filter's settings for docs/configuration.md, by kind.
struct FilterDocsTable {
  std::string_view kind;
  std::string table;
};
std::vector<FilterDocsTable> filterDocsTables();

/// Reads a filter's settings map with its schema into `out`; false (errors in `r`) when the
/// block is not a map or a field is bad.
template <class S>
bool readSettings(const config::Schema<S>& schema, const config::Node& node, S& out, config::Reader& r) {
  if (!config::isSectionMap(r, node, schema)) return false;
  const size_t errors_before = r.errors.size();
  config::readFields(schema, node, out, r);
  return r.errors.size() == errors_before;
}

// One factory per built-in filter: builds it and fills `shown` with its settings (the
// fields of its schema).
using Factory = FilterPtr (*)(const config::Node& node, config::Reader& r, const FilterInputs& inputs,
                              boost::json::object& shown);
FilterPtr buildKeyAuth(const config::Node&, config::Reader&, const FilterInputs&, boost::json::object&);
FilterPtr buildRateLimit(const config::Node&, config::Reader&, const FilterInputs&, boost::json::object&);
FilterPtr buildCors(const config::Node&, config::Reader&, const FilterInputs&, boost::json::object&);
FilterPtr buildIpFilter(const config::Node&, config::Reader&, const FilterInputs&, boost::json::object&);
FilterPtr buildHeaders(const config::Node&, config::Reader&, const FilterInputs&, boost::json::object&);
FilterPtr buildPromptGuard(const config::Node&, config::Reader&, const FilterInputs&, boost::json::object&);
FilterPtr buildOutputGuard(const config::Node&, config::Reader&, const FilterInputs&, boost::json::object&);
// Their docs tables (config::docsTable of each schema).
std::string keyAuthDocsTable();
std::string rateLimitDocsTable();
std::string corsDocsTable();
std::string ipFilterDocsTable();
std::string headersDocsTable();
std::string promptGuardDocsTable();
std::string outputGuardDocsTable();

}  // namespace ganglion::filters
