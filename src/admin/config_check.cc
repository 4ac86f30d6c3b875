#include "admin/config_check.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "admin/reply.h"
#include "base/bounded_json.h"
#include "http/headers.h"

namespace ganglion::admin {

namespace json = boost::json;

std::optional<ConfigFormat> configFormatOf(std::string_view media_type) {
  if (media_type == "application/json") return ConfigFormat::kJson;
  for (std::string_view yaml : {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
    if (media_type == yaml) return ConfigFormat::kYaml;
  return std::nullopt;
}

std::pair<int, std::string> checkConfigBody(std::string_view body, ConfigFormat format,
                                            const ConfigCheckers& check) {
  std::vector<config::ConfigError> found;
  if (format == ConfigFormat::kJson) {
    // A config of 10,000 routes holds about 200,000 values; the admin API reads at most 1 MiB.
    auto parsed = parseJsonBody(body, JsonBounds{200'000, 1'000'000, 64});
    if (!parsed) return {400, http::jsonErrorBody(400, parsed.error().code, parsed.error().message)};
    // The parser keeps the last of a key written twice; YAML refuses it, and so does JSON here.
    for (auto& dup : findDuplicateKeys(body))
      found.push_back(
          {"request body", 0, fmt::format("field '{}' is written twice", dup.key), std::move(dup.path)});
    if (found.empty()) found = check.json(*parsed);
  } else {
    found = check.yaml(std::string(body));
  }
  json::array errors;
  for (const auto& e : found) {
    json::object o;
    if (e.line > 0) o["line"] = e.line;
    if (!e.path.empty()) o["path"] = e.path;
    o["message"] = e.message;
    errors.push_back(std::move(o));
  }
  const bool valid = found.empty();
  return {valid ? 200 : 422,
          json::serialize(json::object{{"valid", valid}, {"errors", std::move(errors)}}) + "\n"};
}

}  // namespace ganglion::admin
