// POST /config/check: a config sent in the body (JSON or YAML) is checked as `ganglion check`
// checks a file, with every error located by JSON path or line. Nothing is applied.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace ganglion::admin {

enum class ConfigFormat { kJson, kYaml };

/// The format a Content-Type's media type (lower case, without parameters) names; nullopt
/// for any other type.
std::optional<ConfigFormat> configFormatOf(std::string_view media_type);

/// Checks `body` as a whole config; returns {HTTP status, JSON body}: 200 with
/// {"valid":true,"errors":[]}, 422 with the errors, 400 for JSON that does not parse. ${VAR}
/// is never expanded (an error could echo the gateway's environment). Reads the certificate
/// files a config names: call it on the blocking pool. Any thread.
std::pair<int, std::string> checkConfigBody(std::string_view body, ConfigFormat format);

}  // namespace ganglion::admin
