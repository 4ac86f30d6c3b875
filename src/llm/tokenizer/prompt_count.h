// Prompt token counts for OpenAI-family models: the text counted exactly with the model's
// encoding, plus the framing OpenAI's chat format adds (OpenAI cookbook, "How to count tokens
// with tiktoken": 3 tokens a message, 1 more for a name, 3 to prime the reply; its fitted
// constants for tool definitions). Pure functions over a checked request body; any thread.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>

#include "llm/tokenizer/encoding.h"

namespace ganglion::llm::tokenizer {

struct PromptCount {
  uint64_t tokens = 0;
  /// The count is what OpenAI bills: plain text messages only. Tools, tool calls, images,
  /// several parts in one message and schemas are rendered in ways OpenAI does not publish, so
  /// with them the count is an estimate (cookbook formulas, image estimates).
  bool exact = true;
};

/// Each takes an optional budget (encoding.h): when the count stops on it, the result is
/// partial and `budget->stopped` is set.
///
/// A chat completions body (messages, tools, response_format). `media_estimate`: the tokens
/// its images, audio and files were estimated at (chat_request.cc), added as they are.
PromptCount countChatPrompt(const Encoding& enc, const boost::json::object& body, uint64_t media_estimate,
                            CountBudget* budget = nullptr);
/// An embeddings `input`: the sum of each input's tokens, no framing (token ids count one each).
PromptCount countEmbeddingsInput(const Encoding& enc, const boost::json::value& input,
                                 CountBudget* budget = nullptr);
/// A Responses API body: instructions, input (text or items) and tools, framed as chat messages.
PromptCount countResponsesPrompt(const Encoding& enc, const boost::json::object& body,
                                 CountBudget* budget = nullptr);

}  // namespace ganglion::llm::tokenizer
