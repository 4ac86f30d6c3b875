#include "llm/json_answer_tool.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "llm/json_fields.h"

namespace ganglion::llm {

namespace json = boost::json;

ApiResult jsonAnswerTool(const json::object& request, std::string_view provider,
                         std::optional<JsonAnswerTool>& out) {
  out.reset();
  auto* rf = objectAt(request, "response_format");
  if (!rf) return {};
  auto type = stringAt(*rf, "type");
  if (type != "json_object" && type != "json_schema") return {};
  if (auto* tools = request.if_contains("tools"); tools && tools->is_array() && !tools->as_array().empty())
    return ApiError{
        400, "invalid_request_error",
        fmt::format("{} models take response_format as a forced tool call, which cannot be combined "
                    "with 'tools': send one or the other.",
                    provider),
        "response_format", "unsupported_parameter"};
  JsonAnswerTool tool{"Give the answer as a JSON object.", json::object{{"type", "object"}}};
  if (auto* js = objectAt(*rf, "json_schema")) {
    if (auto* schema = js->if_contains("schema"); schema && schema->is_object()) tool.schema = *schema;
    if (auto d = stringAt(*js, "description"); !d.empty())
      tool.description = fmt::format("Give the answer: {}", d);
  }
  if (stringAt(tool.schema.as_object(), "type") != "object")
    return ApiError{
        400, "invalid_request_error",
        fmt::format("{} models need a JSON schema whose root is an object (\"type\": \"object\").", provider),
        "response_format.json_schema.schema", "invalid_value"};
  out = std::move(tool);
  return {};
}

}  // namespace ganglion::llm
