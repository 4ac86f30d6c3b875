#include "llm/providers/anthropic.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "llm/testing.h"

namespace ganglion::llm {
namespace {

namespace json = boost::json;
using testing::Decoded;
using testing::decodeSplit;

AnthropicCodec codec() {
  llm::ProviderConfig p;
  p.kind = "anthropic";
  p.api_key = "sk-ant-secret";
  return AnthropicCodec(p);
}

/// The text and tool calls a client reassembles from the chunks.
struct Assembled {
  std::string text;
  std::map<int64_t, std::pair<std::string, std::string>> tools;  // index → name, arguments
  std::string finish;
};

Assembled assemble(const std::vector<json::object>& chunks) {
  Assembled a;
  for (const auto& c : chunks) {
    for (const auto& choice : c.at("choices").as_array()) {
      const auto& delta = choice.at("delta").as_object();
      if (auto* t = delta.if_contains("content"); t && t->is_string()) a.text += t->as_string();
      if (auto* calls = delta.if_contains("tool_calls"))
        for (const auto& call : calls->as_array()) {
          auto& slot = a.tools[call.at("index").as_int64()];
          const auto& fn = call.at("function").as_object();
          if (auto* n = fn.if_contains("name")) slot.first += n->as_string();
          if (auto* args = fn.if_contains("arguments")) slot.second += args->as_string();
        }
      if (choice.at("finish_reason").is_string())
        a.finish = std::string(choice.at("finish_reason").as_string());
    }
  }
  return a;
}

TEST(AnthropicCodec, AssistantRefusalPartsAreItsWords) {
  ChatRequest req;
  ASSERT_TRUE(parseChatRequest(
                  R"({"model":"m","messages":[{"role":"user","content":"q"},
          {"role":"assistant","content":[{"type":"refusal","refusal":"I can't help with that."}]},
          {"role":"user","content":"why"}]})",
                  req)
                  .ok());
  ProviderRequest out;
  ASSERT_TRUE(codec().chatRequest(req, "claude-x", out).ok());
  const auto body = json::parse(out.body).as_object();
  const auto& messages = body.at("messages").as_array();
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[1].at("content").as_array()[0].at("text").as_string(), "I can't help with that.");
}

TEST(AnthropicCodec, StreamsDecodeTheSameAtEverySplit) {
  for (const char* file : {"anthropic/messages_stream_text.sse", "anthropic/messages_stream_tool_use.sse"}) {
    std::string bytes = testing::fixture(file);
    ASSERT_FALSE(bytes.empty()) << file;
    Decoded whole = decodeSplit(codec(), bytes, bytes.size());
    ASSERT_TRUE(whole.error.ok()) << file << ": " << whole.error.error().message;
    EXPECT_TRUE(whole.finished);
    EXPECT_TRUE(whole.usage.reported);
    for (size_t split = 0; split < bytes.size(); ++split) {
      Decoded part = decodeSplit(codec(), bytes, split);
      ASSERT_EQ(part.chunks, whole.chunks) << file << " split at " << split;
      ASSERT_EQ(part.usage.completion, whole.usage.completion);
    }
  }
}

TEST(AnthropicCodec, ToolUseStreamBecomesOpenAiToolCalls) {
  auto d = decodeSplit(codec(), testing::fixture("anthropic/messages_stream_tool_use.sse"), 100);
  auto a = assemble(d.chunks);
  EXPECT_FALSE(a.text.empty());
  ASSERT_EQ(a.tools.size(), 1u);
  EXPECT_EQ(a.tools[0].first, "get_weather");
  auto args = json::parse(a.tools[0].second);
  EXPECT_TRUE(args.is_object());
  EXPECT_EQ(a.finish, "tool_calls");
  // The last chunk is the usage chunk; the message_start input count carries over.
  EXPECT_TRUE(d.chunks.back().at("choices").as_array().empty());
  EXPECT_EQ(d.usage.prompt, 472u);
  EXPECT_GT(d.usage.completion, 1u);
}

TEST(AnthropicCodec, MidStreamErrorEndsTheStream) {
  std::string bytes = testing::fixture("anthropic/messages_stream_error.sse");
  auto d = decodeSplit(codec(), bytes, bytes.size() / 2);
  ASSERT_FALSE(d.error.ok());
  EXPECT_EQ(d.error.error().type, "overloaded_error");
  EXPECT_FALSE(d.finished);
}

TEST(AnthropicCodec, WholeAnswerWithCacheUsage) {
  std::string out;
  Usage u;
  ASSERT_TRUE(codec().chatResponse(testing::fixture("anthropic/messages_response.json"), out, u).ok());
  auto c = json::parse(out).as_object();
  EXPECT_EQ(c["object"], "chat.completion");
  auto& choice = c["choices"].as_array()[0].as_object();
  EXPECT_EQ(choice["finish_reason"], "stop");
  EXPECT_NE(choice["message"].as_object()["content"].as_string().find("Canberra"), std::string::npos);
  EXPECT_EQ(u.prompt, 21u + 1880u + 2048u);
  EXPECT_EQ(u.cached, 2048u);
  EXPECT_EQ(u.cache_write, 1880u);
  EXPECT_EQ(u.completion, 26u);
  EXPECT_EQ(c["usage"].as_object()["prompt_tokens_details"].as_object()["cached_tokens"], 2048);
}

TEST(AnthropicCodec, WholeToolUseAnswer) {
  std::string out;
  Usage u;
  ASSERT_TRUE(
      codec().chatResponse(testing::fixture("anthropic/messages_response_tool_use.json"), out, u).ok());
  auto c = json::parse(out).as_object();
  auto& choice = c["choices"].as_array()[0].as_object();
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  auto& calls = choice["message"].as_object()["tool_calls"].as_array();
  ASSERT_GE(calls.size(), 1u);
  EXPECT_TRUE(json::parse(calls[0].as_object()["function"].as_object()["arguments"].as_string()).is_object());
}

TEST(AnthropicCodec, RequestTranslation) {
  ChatRequest req;
  ASSERT_TRUE(parseChatRequest(R"({"model":"claude","stream":true,"temperature":1.5,"stop":"END","user":"u7",
    "max_tokens":300,"parallel_tool_calls":false,
    "messages":[
      {"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"look"},
                                {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
      {"role":"assistant","content":null,"tool_calls":[
        {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
        {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"sunny"},
      {"role":"tool","tool_call_id":"call_2","content":"rain"}],
    "tools":[{"type":"function","function":{"name":"get_weather","description":"d",
              "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
    "tool_choice":"required"})",
                               req)
                  .ok());
  ProviderRequest out;
  ASSERT_TRUE(codec().chatRequest(req, "claude-3-5-haiku-latest", out).ok());
  EXPECT_EQ(out.path, "/v1/messages");
  ASSERT_EQ(out.headers.size(), 2u);
  EXPECT_EQ(out.headers[0], (std::pair<std::string, std::string>{"x-api-key", "sk-ant-secret"}));
  EXPECT_EQ(out.headers[1].first, "anthropic-version");
  auto b = json::parse(out.body).as_object();
  EXPECT_EQ(b["model"], "claude-3-5-haiku-latest");
  EXPECT_EQ(b["system"], "be brief");
  EXPECT_EQ(b["max_tokens"], 300);
  EXPECT_EQ(b["temperature"], 1.0);
  EXPECT_EQ(b["stop_sequences"], json::array{"END"});
  EXPECT_EQ(b["metadata"].as_object()["user_id"], "u7");
  EXPECT_EQ(b["stream"], true);
  auto& msgs = b["messages"].as_array();
  ASSERT_EQ(msgs.size(), 3u);  // user, assistant, user (both tool results in one turn)
  auto& image = msgs[0].as_object()["content"].as_array()[1].as_object();
  EXPECT_EQ(image["source"].as_object()["media_type"], "image/png");
  auto& uses = msgs[1].as_object()["content"].as_array();
  ASSERT_EQ(uses.size(), 2u);
  EXPECT_EQ(uses[0].as_object()["input"].as_object()["city"], "Paris");
  auto& results = msgs[2].as_object()["content"].as_array();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].as_object()["tool_use_id"], "call_2");
  EXPECT_EQ(b["tools"].as_array()[0].as_object()["input_schema"].as_object()["type"], "object");
  EXPECT_EQ(b["tool_choice"].as_object()["type"], "any");
  EXPECT_EQ(b["tool_choice"].as_object()["disable_parallel_tool_use"], true);
}

TEST(AnthropicCodec, ErrorsKeepTypeAndMessage) {
  auto e = codec().error(400, testing::fixture("anthropic/error_400.json"));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_FALSE(e.message.empty());
  auto overloaded =
      codec().error(529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  EXPECT_EQ(overloaded.status, 529);
  EXPECT_EQ(overloaded.message, "Overloaded");
}

TEST(AnthropicCodec, ResponseFormatTravelsAsAForcedToolAndReturnsAsContent) {
  ChatRequest req;
  ASSERT_TRUE(parseChatRequest(R"({"model":"claude","messages":[{"role":"user","content":"weather?"}],
    "response_format":{"type":"json_schema","json_schema":{"name":"w","description":"the weather",
      "schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}})",
                               req)
                  .ok());
  ProviderRequest out;
  ASSERT_TRUE(codec().chatRequest(req, "claude-3-5-haiku-latest", out).ok());
  auto b = json::parse(out.body).as_object();
  ASSERT_EQ(b["tools"].as_array().size(), 1u);
  auto& tool = b["tools"].as_array()[0].as_object();
  EXPECT_EQ(tool["name"], "ganglion_json_response");
  EXPECT_EQ(tool["description"], "Give the answer: the weather");
  EXPECT_EQ(tool["input_schema"].as_object()["required"], json::array{"city"});
  EXPECT_EQ(b["tool_choice"], (json::object{{"type", "tool"}, {"name", "ganglion_json_response"}}));

  std::string answer;
  Usage usage;
  ASSERT_TRUE(
      codec()
          .chatResponse(R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-3-5-haiku",
    "content":[{"type":"tool_use","id":"toolu_1","name":"ganglion_json_response","input":{"city":"Paris"}}],
    "stop_reason":"tool_use","usage":{"input_tokens":20,"output_tokens":9}})",
                        answer, usage)
          .ok());
  auto choice = json::parse(answer).as_object()["choices"].as_array()[0].as_object();
  EXPECT_EQ(choice["message"].as_object()["content"], R"({"city":"Paris"})");
  EXPECT_FALSE(choice["message"].as_object().contains("tool_calls"));
  EXPECT_EQ(choice["finish_reason"], "stop");

  const std::string stream =
      "event: message_start\ndata: "
      "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"model\":\"claude\","
      "\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}\n\n"
      "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
      "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"ganglion_json_response\",\"input\":{}}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
      "{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
      "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\n\n"
      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
      "{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n"
      "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
      "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},"
      "\"usage\":{\"output_tokens\":9}}\n\n"
      "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  Decoded whole = decodeSplit(codec(), stream, stream.size());
  ASSERT_TRUE(whole.error.ok()) << whole.error.error().message;
  Assembled a = assemble(whole.chunks);
  EXPECT_EQ(a.text, R"({"city": "Paris"})");
  EXPECT_TRUE(a.tools.empty());
  EXPECT_EQ(a.finish, "stop");
  for (size_t split = 0; split < stream.size(); ++split)
    ASSERT_EQ(decodeSplit(codec(), stream, split).chunks, whole.chunks) << "split at " << split;
}

TEST(AnthropicCodec, RefusesWhatItCannotHonour) {
  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {R"({"model":"c","n":2,"messages":[{"role":"user","content":"hi"}]})", "n"},
      {R"({"model":"c","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"},
          "tools":[{"type":"function","function":{"name":"f"}}]})",
       "response_format"},
      {R"({"model":"c","messages":[{"role":"user","content":"hi"}],
          "response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"array"}}}})",
       "response_format.json_schema.schema"},
  };
  for (const auto& c : cases) {
    ChatRequest req;
    ASSERT_TRUE(parseChatRequest(c.body, req).ok()) << c.body;
    ProviderRequest out;
    auto refused = codec().chatRequest(req, "claude-3-5-haiku-latest", out);
    ASSERT_FALSE(refused.ok()) << c.body;
    EXPECT_EQ(refused.error().status, 400);
    EXPECT_EQ(refused.error().param, c.param);
  }
  ChatRequest one;
  ASSERT_TRUE(parseChatRequest(R"({"model":"c","n":1,"messages":[{"role":"user","content":"hi"}],
    "response_format":{"type":"json_object"}})",
                               one)
                  .ok());
  ProviderRequest out;
  EXPECT_TRUE(codec().chatRequest(one, "claude-3-5-haiku-latest", out).ok());
  EXPECT_EQ(json::parse(out.body).as_object()["tools"].as_array()[0].as_object()["input_schema"],
            (json::object{{"type", "object"}}));
}

}  // namespace
}  // namespace ganglion::llm
