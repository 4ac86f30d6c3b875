// The Anthropic-compatible ingress (POST /v1/messages) for Claude-native clients. A request in
// Anthropic's shape goes through unchanged (model replaced) to Anthropic providers; for every
// other provider it is translated to the OpenAI form, and the answer translated back: a whole
// message, or the message_start ... message_stop event sequence built from OpenAI chunks.
#pragma once

#include <boost/json/object.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "llm/api_error.h"
#include "llm/chat_request.h"
#include "llm/usage.h"

namespace ganglion::llm {

struct MessagesRequest {
  boost::json::object body;  ///< as the client sent it
  std::string model;
  bool stream = false;
  ChatRequest chat;  ///< the same request in OpenAI's form (for non-Anthropic providers)
};

/// Parses and checks a Messages request (Anthropic's required fields and types); the error
/// names the field. Fills `out.chat` with the translation.
ApiResult parseMessagesRequest(std::string_view text, MessagesRequest& out);

/// An OpenAI chat.completion (JSON text) as an Anthropic message (JSON text).
ApiResult messageFromCompletion(std::string_view completion, std::string& out);

/// Builds Anthropic stream events from OpenAI chunks. One per streamed call.
class MessagesStreamEncoder {
 public:
  /// `prompt_tokens`: what message_start reports as input_tokens. Anthropic sends the real
  /// count there and clients read it there (LangChain's ChatAnthropic); a translated stream's
  /// provider reports usage only at the end, so this is the gateway's count before the call,
  /// and message_delta carries the provider's own at the end.
  explicit MessagesStreamEncoder(uint64_t prompt_tokens = 0) : prompt_tokens_(prompt_tokens) {}
  /// The provider's own prompt count, when it came before message_start was written (Gemini
  /// sends it with its first chunk): replaces the gateway's.
  void providerPromptTokens(uint64_t n) {
    if (!started_ && n > 0) prompt_tokens_ = n;
  }
  /// Appends the events that `chunk` implies to `out`.
  void chunk(const boost::json::object& chunk, std::string& out);
  /// Closes the open block and appends message_delta (stop reason, usage) and message_stop.
  void finish(const Usage& usage, std::string& out);
  /// Appends an `error` event.
  static void error(const ApiError& e, std::string& out);
  bool started() const { return started_; }

 private:
  void start(const boost::json::object& chunk, std::string& out);
  void closeBlock(std::string& out);

  bool started_ = false;
  int64_t next_block_ = 0;
  int64_t open_block_ = -1;
  bool open_is_text_ = false;
  std::map<int64_t, int64_t> tool_blocks_;  ///< OpenAI tool call index → content block index
  std::string stop_reason_ = "end_turn";
  uint64_t prompt_tokens_ = 0;
};

/// One Anthropic SSE event: "event: <type>\ndata: <json>\n\n".
void appendEvent(std::string& out, std::string_view type, const boost::json::object& data);

}  // namespace ganglion::llm
