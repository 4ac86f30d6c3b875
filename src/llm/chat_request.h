// An OpenAI chat completions request, parsed and checked field by field before any provider
// sees it. The checked JSON object is the gateway's request form: OpenAI-compatible providers
// get it back with the model replaced, other codecs translate from it. Worker thread.
#pragma once

#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "llm/api_error.h"

namespace ganglion::llm {

struct ChatRequest {
  boost::json::object body;  ///< as sent by the client, fields unknown to the gateway included
  std::string model;         ///< the model name the client asked for
  bool stream = false;
  bool include_usage = false;   ///< the client asked for a usage chunk at the end of the stream
  uint64_t max_output = 0;      ///< max_completion_tokens or max_tokens; 0 when absent
  uint64_t prompt_estimate = 0; ///< tokens, estimated from the text and images (for limits)
};

/// An error when the client asked for more than one choice (`n` > 1) from a provider that
/// returns one per call (`provider`: its kind, for the message); nullopt otherwise.
std::optional<ApiError> oneChoiceOnly(const ChatRequest& req, std::string_view provider);

/// Parses and checks `text`. On failure returns the 400 error naming the field (OpenAI's
/// wording and codes: missing_required_parameter, invalid_type, invalid_value, ...).
std::optional<ApiError> parseChatRequest(std::string_view text, ChatRequest& out);

/// An embeddings request: model and input (string, strings, tokens or token arrays).
struct EmbeddingsRequest {
  boost::json::object body;
  std::string model;
  uint64_t prompt_estimate = 0;
};
std::optional<ApiError> parseEmbeddingsRequest(std::string_view text, EmbeddingsRequest& out);

/// Parses a JSON object body; the error says where the JSON broke. Used by every endpoint.
std::optional<ApiError> parseJsonObject(std::string_view text, boost::json::object& out);

/// Rough token count of text (about four bytes a token, as OpenAI's guidance says).
inline uint64_t estimateTokens(size_t bytes) { return (bytes + 3) / 4; }

}  // namespace ganglion::llm
