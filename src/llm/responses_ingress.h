// The OpenAI Responses API in front of providers that do not speak it (Anthropic, Gemini,
// Bedrock): a request is translated into the gateway's chat form, and the chat answer back
// into a Response, whole or as the Responses stream events. OpenAI-kind targets get the
// request as written (see LlmHandler::responses). Pure functions, any thread.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llm/api_error.h"
#include "llm/chat_request.h"
#include "llm/usage.h"

namespace ganglion::llm {

/// Translates a Responses request body (already parsed) into `out`: `instructions` and
/// `input` (a string, or message / function_call / function_call_output items with
/// input_text, output_text and input_image parts) become messages; function tools, tool_choice,
/// max_output_tokens, temperature, top_p, parallel_tool_calls and text.format carry over.
/// Inputs only OpenAI keeps (previous_response_id, files, built-in tools) are a 400 naming the
/// field.
ApiResult chatFromResponsesRequest(const boost::json::object& body, ChatRequest& out);

/// A chat completion (OpenAI shape) as a Response object: a message item with output_text,
/// function_call items, status (incomplete on length), usage.
/// `fallback_model`: the model id to report when the completion names none (Bedrock).
ApiResult responseFromCompletion(std::string_view completion, const boost::json::object& request,
                                 std::string& out, std::string_view fallback_model = {});

/// Chat chunks as Responses stream events (response.created, output_item.added,
/// output_text.delta, function_call_arguments.delta, ..., response.completed), each with its
/// sequence_number. One per streamed call; worker thread.
class ResponsesStreamEncoder {
 public:
  explicit ResponsesStreamEncoder(const boost::json::object& request, std::string_view fallback_model = {});
  void chunk(const boost::json::object& chunk, std::string& out);
  /// Closes the open items and appends response.completed (or response.incomplete).
  void finish(const Usage& usage, std::string& out);
  /// Appends an `error` event and response.failed.
  void error(const ApiError& e, std::string& out);

 private:
  struct Item {
    std::string id;
    bool is_call = false;
    std::string call_id, name, text;  ///< text: the message's text or the call's arguments
  };
  void start(std::string& out);
  void event(std::string& out, std::string_view type, boost::json::object data);
  boost::json::object responseObject(std::string_view status) const;
  boost::json::object itemJson(const Item& item, std::string_view status) const;
  void closeItem(std::string& out);

  const boost::json::object& request_;
  std::string id_;
  std::string model_;
  int64_t created_ = 0;
  int64_t sequence_ = 0;
  bool started_ = false;
  std::vector<Item> items_;
  int64_t open_ = -1;                     ///< index of the open item in items_
  std::map<int64_t, size_t> call_items_;  ///< chat tool call index → item
  std::string finish_reason_;
  Usage usage_;
};

}  // namespace ganglion::llm
