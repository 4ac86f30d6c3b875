// Building OpenAI response shapes from other providers' answers: the chat.completion object
// and chat.completion.chunk events that translating codecs (Anthropic, Gemini, Bedrock) emit.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <string>
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

/// One choice of a chat.completion: {"index","message","logprobs":null,"finish_reason"}.
boost::json::object completionChoice(int64_t index, boost::json::object message, std::string_view finish);

/// A whole chat.completion with these choices.
boost::json::object completion(const ChunkStamp& stamp, boost::json::array choices, const Usage& usage);

/// A whole chat.completion with one choice.
boost::json::object completion(const ChunkStamp& stamp, boost::json::object message, std::string_view finish,
                               const Usage& usage);

/// The assistant message of a translated whole answer, assembled block by block.
struct AssistantAnswer {
  std::string text;
  bool has_text = false;
  boost::json::array tool_calls;

  void addText(std::string_view t) {
    text += t;
    has_text = true;
  }
  /// A tool use block: the response_format tool's input is the JSON answer and becomes text
  /// (llm/json_answer_tool.h); any other tool becomes an OpenAI tool call.
  void addToolUse(std::string_view id, std::string_view name, const boost::json::value* input);
  /// {"role":"assistant","content": text or null, "tool_calls" when any, "refusal": null}.
  /// Moves the tool calls out.
  boost::json::object message();
};

/// `finish` as OpenAI says it once the response_format tool is hidden: "tool_calls" becomes
/// "stop" when no real tool was `called`.
std::string_view finishAfterTools(std::string_view finish, bool called);

/// One OpenAI tool call: {"id","type":"function","function":{"name","arguments"}}.
boost::json::object toolCall(std::string_view id, std::string_view name, std::string_view arguments);

/// Seconds since the epoch, for `created`.
int64_t nowSeconds();

/// `prefix` + 24 random hex digits (96 bits): ids the gateway makes up when the provider
/// gives none (answers, tool calls). Never derived from the clock: two answers in one second
/// must not share an id. Any thread.
std::string uniqueId(std::string_view prefix);

/// `prefix` + `id`, or a uniqueId when the provider sent no id.
std::string idOr(std::string_view prefix, std::string_view id);

/// Makes an OpenAI embeddings answer whole, whichever provider it came from: with `base64`,
/// every `embedding` given as an array of numbers becomes what `encoding_format: "base64"`
/// asks for (the little-endian float32 vector, base64-encoded; strings stay); a missing
/// `model` becomes `model`, a missing `usage` the call's (both are required fields of the
/// OpenAI answer, and clients read them). False when `answer` is not such an answer.
bool finishEmbeddingsAnswer(std::string& answer, bool base64, std::string_view model,
                            const struct Usage& usage);

}  // namespace ganglion::llm
