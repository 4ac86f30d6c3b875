#include "llm/prompt_bounds.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "llm/chat_request.h"

namespace ganglion::llm {
namespace {

boost::json::object parse(std::string_view text) { return boost::json::parse(text).as_object(); }

TEST(MessagesPromptBound, CountsWhatAnthropicTargetsReceive) {
  auto b = boundMessagesPrompt(parse(R"({"model":"m","max_tokens":1,"system":"be brief","messages":[
    {"role":"user","content":[{"type":"text","text":"hello"},
      {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},
      {"type":"document","source":{"type":"text","media_type":"text/plain","data":"some text"}}]},
    {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[
      {"type":"image","source":{"type":"url","url":"https://x/y.png"}}]}]}]})"));
  EXPECT_TRUE(b.unbounded.empty()) << b.unbounded;
  EXPECT_GE(b.tokens, 2 * kImageTokenBound);  // the image inside the tool result counts too
}

TEST(MessagesPromptBound, ProviderSideInputsAreUnbounded) {
  EXPECT_EQ(boundMessagesPrompt(parse(R"({"messages":[{"role":"user","content":[
    {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0"}}]}]})"))
                .unbounded,
            "messages[0].content[0] (a document the provider renders)");
  EXPECT_EQ(boundMessagesPrompt(
                parse(R"({"messages":[],"tools":[{"type":"web_search_20250305","name":"web_search"}]})"))
                .unbounded,
            "tools[0] (a server tool)");
  EXPECT_TRUE(
      boundMessagesPrompt(parse(R"({"messages":[],"tools":[{"name":"f","input_schema":{"type":"object"}}]})"))
          .unbounded.empty());
  EXPECT_EQ(boundMessagesPrompt(parse(R"({"messages":[],"mcp_servers":[]})")).unbounded, "mcp_servers");
}

TEST(ResponsesPromptBound, StoredStateFilesAndBuiltInToolsAreUnbounded) {
  const std::string plain = R"({"model":"m","input":[{"role":"user","content":[
    {"type":"input_text","text":"hi"},{"type":"input_image","image_url":"https://x/y.png"}]}],
    "tools":[{"type":"function","name":"f","parameters":{}}]})";
  auto b = boundResponsesPrompt(parse(plain), plain.size());
  EXPECT_TRUE(b.unbounded.empty()) << b.unbounded;
  EXPECT_GE(b.tokens, kImageTokenBound + plain.size());
  const std::string nested = R"({"input":[{"type":"function_call_output","call_id":"c","output":[
    {"type":"input_image","image_url":"https://x/y.png"}]}]})";
  EXPECT_GE(boundResponsesPrompt(parse(nested), nested.size()).tokens, kImageTokenBound);
  EXPECT_EQ(boundResponsesPrompt(parse(R"({"input":"hi","previous_response_id":"resp_1"})"), 10).unbounded,
            "previous_response_id");
  EXPECT_EQ(boundResponsesPrompt(parse(R"({"input":"hi","tools":[{"type":"web_search"}]})"), 10).unbounded,
            "tools[0] (a built-in tool)");
  EXPECT_EQ(boundResponsesPrompt(
                parse(R"({"input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]})"), 10)
                .unbounded,
            "input[0].content[0] (a file the provider reads)");
}

TEST(ChatPromptBound, FilesByIdAreUnbounded) {
  ChatRequest req;
  ASSERT_TRUE(
      parseChatRequest(
          R"({"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]})",
          req)
          .ok());
  EXPECT_EQ(req.unbounded, "messages[0].content[0].file.file_id");
  ASSERT_TRUE(parseChatRequest(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})", req).ok());
  EXPECT_TRUE(req.unbounded.empty());
}

}  // namespace
}  // namespace ganglion::llm
