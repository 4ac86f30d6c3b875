// Every config section, read in one place: a YAML file or text, or a JSON document, becomes a
// validated server::Config with every error located (file and line, or JSON path). Main thread at
// start and reload; the admin API's config check runs it on the blocking pool.
#pragma once

#include <string>

#include "server/gateway_config.h"

namespace boost::json {
class value;
}

namespace ganglion::server {

/// Reads, expands ${VAR} in scalars, and validates a YAML config file. Called on the main
/// thread at start and on reload; never on a worker.
LoadResult loadConfigFile(const std::string& path);

/// As loadConfigFile, from YAML text already in memory (`path` only names it in errors).
/// `expand_env` false leaves ${VAR} as written (configs sent to the admin API).
LoadResult loadConfigText(const std::string& text, const std::string& path, bool expand_env = true);

/// As loadConfigText, from a JSON document (an admin API body): the same sections and
/// checks, errors located by JSON path ("$.routes[0].upstream"), ${VAR} never expanded.
LoadResult loadConfigJson(const boost::json::value& json, const std::string& name);

/// Renders the config as JSON with every secret replaced by "<redacted>".
std::string configToRedactedJson(const Config& config);

}  // namespace ganglion::server
