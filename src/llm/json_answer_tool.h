// OpenAI's response_format (JSON mode, JSON schema) for providers without it (Anthropic,
// Bedrock Converse): the schema travels as one tool the model is forced to call, and the
// call's input comes back to the client as the message content. Worker thread.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "llm/api_error.h"

namespace ganglion::llm {

/// The forced tool's name; an answer calling it is the JSON answer, not a tool call.
inline constexpr std::string_view kJsonAnswerTool = "ganglion_json_response";

struct JsonAnswerTool {
  std::string description;
  boost::json::value schema;  ///< an object schema
};

/// Sets `out` to the tool for `request`'s response_format when it asks for JSON; empty for text or no
/// response_format. An error (400 naming the field) when it cannot be carried: alongside the
/// client's own tools, or with a schema whose root is not an object. `provider` names the
/// provider in the message.
ApiResult jsonAnswerTool(const boost::json::object& request, std::string_view provider,
                         std::optional<JsonAnswerTool>& out);

}  // namespace ganglion::llm
