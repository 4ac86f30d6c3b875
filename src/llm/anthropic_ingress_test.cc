#include "llm/anthropic_ingress.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "llm/providers/openai.h"
#include "llm/testing.h"

namespace ganglion::llm {
namespace {

namespace json = boost::json;

TEST(AnthropicIngress, RequestBecomesAnOpenAiChat) {
  MessagesRequest req;
  auto err = parseMessagesRequest(
      R"({"model":"claude","max_tokens":64,"stream":true,"system":[{"type":"text","text":"sys"}],
    "stop_sequences":["END"],"metadata":{"user_id":"u1"},
    "tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}],
    "tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true},
    "messages":[
      {"role":"user","content":[{"type":"text","text":"look"},
                                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]},
      {"role":"assistant","content":[{"type":"text","text":"calling"},{"type":"tool_use","id":"t1","name":"f","input":{"a":1}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"42"}]},
                                {"type":"text","text":"thanks"}]}]})",
      req);
  ASSERT_TRUE(err.ok()) << err.error().message;
  EXPECT_TRUE(req.stream);
  EXPECT_TRUE(req.chat.include_usage);
  EXPECT_EQ(req.chat.max_output, 64u);
  const auto& b = req.chat.body;
  const auto& msgs = b.at("messages").as_array();
  ASSERT_EQ(msgs.size(), 5u);  // system, user, assistant, tool, user
  EXPECT_EQ(msgs[0].as_object().at("content"), "sys");
  EXPECT_EQ(msgs[1].as_object().at("content").as_array()[1].as_object().at("image_url").as_object().at("url"),
            "data:image/png;base64,AAAA");
  EXPECT_EQ(msgs[2]
                .as_object()
                .at("tool_calls")
                .as_array()[0]
                .as_object()
                .at("function")
                .as_object()
                .at("arguments"),
            "{\"a\":1}");
  EXPECT_EQ(msgs[3].as_object().at("role"), "tool");
  EXPECT_EQ(msgs[3].as_object().at("content"), "42");
  EXPECT_EQ(b.at("stop"), json::array{"END"});
  EXPECT_EQ(b.at("user"), "u1");
  EXPECT_EQ(b.at("parallel_tool_calls"), false);
  EXPECT_EQ(b.at("tool_choice").as_object().at("function").as_object().at("name"), "f");
}

TEST(AnthropicIngress, ErrorsNameTheField) {
  MessagesRequest req;
  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}]})", "model"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}]})", "max_tokens"},
      {R"({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]})", "max_tokens"},
      {R"({"model":"m","max_tokens":5,"messages":[]})", "messages"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]})", "messages.0.role"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"video"}]}]})",
       "messages.0.content.0.type"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"1","name":"f"}]}]})",
       "messages.0.content.0.type"},
  };
  for (const auto& c : cases) {
    auto err = parseMessagesRequest(c.body, req);
    ASSERT_FALSE(err.ok()) << c.body;
    EXPECT_EQ(err.error().param, c.param) << c.body << ": " << err.error().message;
    EXPECT_EQ(err.error().status, 400);
  }
}

TEST(AnthropicIngress, WholeCompletionBecomesAMessage) {
  std::string out;
  ASSERT_TRUE(messageFromCompletion(testing::fixture("openai/chat_response_tools.json"), out).ok());
  auto m = json::parse(out).as_object();
  EXPECT_EQ(m["type"], "message");
  EXPECT_EQ(m["stop_reason"], "tool_use");
  int tools = 0;
  for (const auto& block : m["content"].as_array())
    if (block.as_object().at("type") == "tool_use") {
      ++tools;
      EXPECT_TRUE(block.as_object().at("input").is_object());
    }
  EXPECT_EQ(tools, 2);
}

TEST(AnthropicIngress, StreamEncoderBuildsTheEventSequence) {
  llm::ProviderConfig p;
  p.kind = "openai";
  OpenAiCodec codec(p);
  auto dec = codec.chatStream();
  std::vector<json::object> chunks;
  Usage usage;
  ASSERT_TRUE(dec->feed(testing::fixture("openai/chat_stream_tools.sse"), chunks, usage).ok());
  MessagesStreamEncoder enc;
  std::string out;
  for (const auto& c : chunks) enc.chunk(c, out);
  enc.finish(usage, out);
  std::vector<std::string> kinds;
  std::map<int64_t, std::string> args;
  std::string_view rest = out;
  while (!rest.empty()) {
    size_t end = rest.find("\n\n");
    ASSERT_NE(end, std::string_view::npos);
    std::string_view block = rest.substr(0, end);
    rest.remove_prefix(end + 2);
    auto nl = block.find('\n');
    kinds.emplace_back(block.substr(7, nl - 7));
    auto data = json::parse(block.substr(nl + 7)).as_object();
    if (kinds.back() == "content_block_delta" && data["delta"].as_object()["type"] == "input_json_delta")
      args[data["index"].as_int64()] += std::string(data["delta"].as_object()["partial_json"].as_string());
  }
  EXPECT_EQ(kinds.front(), "message_start");
  EXPECT_EQ(kinds[kinds.size() - 2], "message_delta");
  EXPECT_EQ(kinds.back(), "message_stop");
  ASSERT_EQ(args.size(), 2u);
  for (auto& [index, text] : args) EXPECT_TRUE(json::parse(text).is_object()) << text;
  // Every block that starts also stops, in order.
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "content_block_start"),
            std::count(kinds.begin(), kinds.end(), "content_block_stop"));
}

}  // namespace
}  // namespace ganglion::llm
