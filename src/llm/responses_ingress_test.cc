#include "llm/responses_ingress.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace ganglion::llm {
namespace {

namespace json = boost::json;

json::object parse(std::string_view text) { return json::parse(text).as_object(); }

TEST(ResponsesIngress, ItemsBecomeChatMessages) {
  auto body = parse(R"({"model":"m","instructions":"be brief","max_output_tokens":40,
    "input":[{"role":"user","content":[{"type":"input_text","text":"weather?"},
                                       {"type":"input_image","image_url":"https://x/y.png"}]},
             {"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
             {"type":"function_call","call_id":"c2","name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"},
             {"type":"function_call_output","call_id":"c1","output":"sunny"},
             {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"rain"}]}],
    "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}],
    "text":{"format":{"type":"json_schema","name":"w","schema":{"type":"object"}}}})");
  ChatRequest chat;
  ASSERT_TRUE(chatFromResponsesRequest(body, chat).ok());
  const auto& msgs = chat.body.at("messages").as_array();
  ASSERT_EQ(msgs.size(), 5u);
  EXPECT_EQ(msgs[0].at("role"), "system");
  EXPECT_EQ(msgs[1].at("content").as_array()[1].at("type"), "image_url");
  EXPECT_EQ(msgs[2].at("tool_calls").as_array().size(), 2u);  // consecutive calls: one turn
  EXPECT_EQ(msgs[3].at("tool_call_id"), "c1");
  EXPECT_EQ(msgs[4].at("content"), "rain");
  EXPECT_EQ(chat.max_output, 40u);
  EXPECT_EQ(chat.body.at("tools").as_array()[0].at("function").at("name"), "get_weather");
  EXPECT_EQ(chat.body.at("response_format").at("json_schema").at("name"), "w");
}

TEST(ResponsesIngress, WhatOnlyOpenAiKeepsIsRefusedByName) {
  ChatRequest chat;
  auto err =
      chatFromResponsesRequest(parse(R"({"model":"m","input":"hi","previous_response_id":"r"})"), chat);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().param, "previous_response_id");
  err =
      chatFromResponsesRequest(parse(R"({"model":"m","input":"hi","tools":[{"type":"web_search"}]})"), chat);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().param, "tools[0]");
  err = chatFromResponsesRequest(
      parse(R"({"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]})"),
      chat);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().param, "input[0].content[0]");
}

TEST(ResponsesIngress, CompletionBecomesAResponse) {
  std::string out;
  ASSERT_TRUE(
      responseFromCompletion(
          R"({"id":"x","model":"claude","choices":[{"index":0,"finish_reason":"length","message":{"role":"assistant",
        "content":"hi","tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}}]}}],
        "usage":{"prompt_tokens":5,"completion_tokens":2}})",
          parse(R"({"instructions":"x"})"), out)
          .ok());
  auto r = parse(out);
  EXPECT_EQ(r.at("object"), "response");
  EXPECT_EQ(r.at("status"), "incomplete");
  EXPECT_EQ(r.at("incomplete_details").at("reason"), "max_output_tokens");
  const auto& output = r.at("output").as_array();
  ASSERT_EQ(output.size(), 2u);
  EXPECT_EQ(output[0].at("content").as_array()[0].at("text"), "hi");
  EXPECT_EQ(output[1].at("call_id"), "t1");
  EXPECT_EQ(r.at("usage").at("input_tokens"), 5);
  EXPECT_EQ(r.at("instructions"), "x");
}

TEST(ResponsesIngress, StreamEventsAreNumberedAndComplete) {
  auto request = parse(R"({"model":"m","input":"hi"})");
  ResponsesStreamEncoder enc(request);
  std::string out;
  enc.chunk(parse(R"({"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"he"}}]})"),
            out);
  enc.chunk(parse(R"({"choices":[{"index":0,"delta":{"content":"llo"}}]})"), out);
  enc.chunk(
      parse(
          R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{}"}}]}}]})"),
      out);
  Usage usage;
  usage.prompt = 3;
  usage.completion = 4;
  enc.finish(usage, out);
  std::vector<std::string> types;
  int64_t expected_seq = 0;
  for (size_t at = out.find("data: "); at != std::string::npos; at = out.find("data: ", at + 1)) {
    auto e = parse(std::string_view(out).substr(at + 6, out.find('\n', at) - at - 6));
    EXPECT_EQ(e.at("sequence_number").as_int64(), expected_seq++);
    types.emplace_back(e.at("type").as_string());
  }
  ASSERT_GE(types.size(), 8u);
  EXPECT_EQ(types.front(), "response.created");
  EXPECT_EQ(types.back(), "response.completed");
  auto last =
      parse(std::string_view(out).substr(out.rfind("data: ") + 6, out.size() - out.rfind("data: ") - 8));
  const auto& output = last.at("response").at("output").as_array();
  ASSERT_EQ(output.size(), 2u);
  EXPECT_EQ(output[0].at("content").as_array()[0].at("text"), "hello");
  EXPECT_EQ(output[1].at("type"), "function_call");
  EXPECT_EQ(last.at("response").at("usage").at("output_tokens"), 4);
}

}  // namespace
}  // namespace ganglion::llm

namespace ganglion::llm {
namespace {

TEST(ResponsesIngress, WrongTypesAreRefusedNamingTheResponsesField) {
  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {R"({"model":"m","input":"hi","instructions":5})", "instructions"},
      {R"({"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]})", "input[0].call_id"},
      {R"({"model":"m","input":[{"type":"function_call_output","output":"x"}]})", "input[0].call_id"},
      {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":5}]}]})",
       "input[0].content[0].text"},
      {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_image"}]}]})",
       "input[0].content[0].image_url"},
      {R"({"model":"m","input":"hi","tools":{"type":"function"}})", "tools"},
      {R"({"model":"m","input":"hi","tools":[{"type":"function"}]})", "tools[0].name"},
      {R"({"model":"m","input":"hi","tool_choice":5})", "tool_choice"},
      {R"({"model":"m","input":"hi","text":{"format":{"type":"xml"}}})", "text.format.type"},
      {R"({"model":"m","input":"hi","max_output_tokens":-1})", "max_output_tokens"},
      {R"({"model":"m","input":[]})", "input"},
  };
  for (const auto& c : cases) {
    ChatRequest chat;
    auto err = chatFromResponsesRequest(json::parse(c.body).as_object(), chat);
    ASSERT_FALSE(err.ok()) << c.body;
    EXPECT_EQ(err.error().status, 400) << c.body;
    EXPECT_EQ(err.error().param, c.param) << c.body << ": " << err.error().message;
  }
}

}  // namespace
}  // namespace ganglion::llm
