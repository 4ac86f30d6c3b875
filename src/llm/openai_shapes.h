// Building OpenAI response shapes from other providers' answers: the chat.completion object
// and chat.completion.chunk events that translating codecs (Anthropic, Gemini, Bedrock) emit.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <string_view>

#include "llm/usage.h"

namespace ganglion::llm {

/// Identity of a translated answer, repeated on every chunk.
struct ChunkStamp {
  std::string id;     ///< the provider's message id (prefixed as OpenAI clients expect)
  std::string model;  ///< the provider's model
  int64_t created = 0;
};

/// {"id",..,"object":"chat.completion.chunk","created",..,"model",..,"choices":[{"index":0,
/// "delta":delta,"finish_reason":finish or null}]}
boost::json::object chunk(const ChunkStamp& stamp, boost::json::object delta, std::string_view finish = {});

/// The final usage-only chunk: "choices": [] and the usage object.
boost::json::object usageChunk(const ChunkStamp& stamp, const Usage& usage);

/// A whole chat.completion with one choice.
boost::json::object completion(const ChunkStamp& stamp, boost::json::object message, std::string_view finish,
                               const Usage& usage);

/// One OpenAI tool call: {"id","type":"function","function":{"name","arguments"}}.
boost::json::object toolCall(std::string_view id, std::string_view name, std::string_view arguments);

/// Seconds since the epoch, for `created`.
int64_t nowSeconds();

}  // namespace ganglion::llm
