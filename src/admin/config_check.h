// POST /config/check: a config sent in the body (JSON or YAML) is checked as `ganglion check`
// checks a file, with every error located by JSON path or line. Nothing is applied.
#pragma once

#include <boost/json/fwd.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace ganglion::admin {

enum class ConfigFormat { kJson, kYaml };

/// The format a Content-Type's media type (lower case, without parameters) names; nullopt
/// for any other type.
std::optional<ConfigFormat> configFormatOf(std::string_view media_type);

/// The config loader, as the composition gives it to the admin API (which may not depend on
/// the server): every error of a config, none when valid. ${VAR} must not be expanded (an
/// error could echo the gateway's environment). Called on the blocking pool.
struct ConfigCheckers {
  std::function<std::vector<config::ConfigError>(const boost::json::value&)> json;
  std::function<std::vector<config::ConfigError>(const std::string&)> yaml;
};

/// Checks `body` as a whole config; returns {HTTP status, JSON body}: 200 with
/// {"valid":true,"errors":[]}, 422 with the errors, 400 for JSON that does not parse. Reads
/// the certificate files a config names: call it on the blocking pool. Any thread.
std::pair<int, std::string> checkConfigBody(std::string_view body, ConfigFormat format,
                                            const ConfigCheckers& check);

}  // namespace ganglion::admin
