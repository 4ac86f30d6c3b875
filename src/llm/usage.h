// Token usage of one call, as the provider reported it (or as the gateway estimated it when
// the provider could not: a client that hung up mid-stream).
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <string_view>

namespace ganglion::llm {

struct Usage {
  uint64_t prompt = 0;       ///< input tokens, cached ones included
  uint64_t completion = 0;   ///< output tokens, reasoning ones included
  uint64_t cached = 0;       ///< prompt tokens read from the provider's prompt cache
  uint64_t cache_write = 0;  ///< prompt tokens written to it (Anthropic)
  uint64_t reasoning = 0;
  bool reported = false;   ///< the provider sent usage
  bool estimated = false;  ///< counted by the gateway instead

  uint64_t total() const { return prompt + completion; }
};

/// Reads an OpenAI `usage` object (chat completions or embeddings); absent fields stay 0.
Usage usageFromOpenAI(const boost::json::object& usage);

/// Reads a Responses API `usage` object (input_tokens, output_tokens, ..._details).
Usage usageFromResponses(const boost::json::object& usage);

/// Writes `usage` as a Responses API usage object (the shape usageFromResponses reads).
boost::json::object usageToResponses(const Usage& usage);

/// Output tokens an answer without usage is assumed to hold (chat completion, Response or
/// Anthropic message JSON): four bytes a token of its generated text (every `content`, `text`,
/// `refusal`, `arguments` and `input` string in it). 0 when it is not JSON.
uint64_t estimateAnswerTokens(std::string_view answer);

/// Writes `usage` as OpenAI's chat completions usage object.
boost::json::object usageToOpenAI(const Usage& usage);

}  // namespace ganglion::llm
