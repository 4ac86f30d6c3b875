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
  bool include_usage = false;    ///< the client asked for a usage chunk at the end of the stream
  uint64_t max_output = 0;       ///< max_completion_tokens or max_tokens; 0 when absent
  uint32_t choices = 1;          ///< `n`: every choice may use max_output tokens
  uint64_t prompt_estimate = 0;  ///< tokens, estimated from the text and images (what usage reports when
                                 ///< the provider could not)
  uint64_t media_estimate = 0;   ///< the part of prompt_estimate that is images, audio and files, not text
  uint64_t prompt_bound = 0;     ///< tokens the prompt cannot exceed whatever its text (what limits reserve)
  std::string unbounded;         ///< set: an input the provider expands on its side (a file by id), which no
                                 ///< bound covers; names it ("messages[0].content[1].file.file_id")
};

/// An error when the client asked for more than one choice (`n` > 1) from a provider that
/// returns one per call (`provider`: its kind, for the message); success otherwise.
ApiResult oneChoiceOnly(const ChatRequest& req, std::string_view provider);

/// Parses and checks `text`. On failure returns the 400 error naming the field (OpenAI's
/// wording and codes: missing_required_parameter, invalid_type, invalid_value, ...).
ApiResult parseChatRequest(std::string_view text, ChatRequest& out);

/// An embeddings request: model and input (string, strings, tokens or token arrays).
struct EmbeddingsRequest {
  boost::json::object body;
  std::string model;
  uint64_t prompt_estimate = 0;
  uint64_t prompt_bound = 0;
};
ApiResult parseEmbeddingsRequest(std::string_view text, EmbeddingsRequest& out);

/// Most JSON objects and arrays a request body may hold, most values of any kind, and how deep
/// they may nest: a body is refused before it is parsed when it has more, so its parsed form
/// stays bounded (a million empty content parts would cost ~400 MB, 30 MB of `0,` ~700 MB).
/// A million values holds the largest embeddings call (2,048 inputs, 300,000 tokens in all).
constexpr size_t kMaxJsonContainers = 100'000;
constexpr size_t kMaxJsonValues = 1'000'000;
constexpr unsigned kMaxJsonDepth = 64;
/// Most messages in one call, and content parts in one message.
constexpr size_t kMaxMessages = 50'000;
constexpr size_t kMaxPartsPerMessage = 5'000;

/// Parses a JSON object body; the error says where the JSON broke or which bound it broke.
/// Used by every endpoint.
ApiResult parseJsonObject(std::string_view text, boost::json::object& out);

/// Rough token count of text (about four bytes a token, as OpenAI's guidance says). For usage
/// the provider did not report, never for limits: dense text ("a a a") beats it.
inline uint64_t estimateTokens(size_t bytes) { return (bytes + 3) / 4; }
/// Tokens `bytes` of text cannot exceed: every BPE or SentencePiece token spans at least one
/// byte. What budgets and tpm reserve before a call; the call settles to its real usage.
inline uint64_t boundTokens(size_t bytes) { return bytes; }
/// Tokens one image may cost, the most any provider charges: gpt-4o-mini bills a 2048x768
/// high-detail image as 48,169 tokens; low detail as at most 2,833.
constexpr uint64_t kImageTokenBound = 50'000;
constexpr uint64_t kLowDetailImageTokenBound = 3'000;

}  // namespace ganglion::llm
