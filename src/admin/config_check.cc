#include "admin/config_check.h"

#include <fmt/format.h>

#include <boost/json.hpp>

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
    BoundedJson parsed = parseBoundedJson(body, JsonBounds{200'000, 1'000'000, 64}, json::storage_ptr());
    if (parsed.fault == JsonFault::kSyntax)
      return {400, http::jsonErrorBody(
                       400, "invalid_json",
                       fmt::format("the body is not valid JSON: {} at byte {}", parsed.reason, parsed.at))};
    if (parsed.fault != JsonFault::kNone)
      return {400, http::jsonErrorBody(400, "invalid_json",
                                       "the body nests deeper than 64 levels or holds too many values")};
    found = check.json(parsed.value);
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
