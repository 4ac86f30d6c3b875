#include "llm/chat_request.h"

#include <gtest/gtest.h>

namespace ganglion::llm {
namespace {

ApiResult parse(const std::string& text) {
  ChatRequest req;
  return parseChatRequest(text, req);
}

TEST(ChatRequest, AcceptsTheFullSurface) {
  ChatRequest req;
  auto err = parseChatRequest(R"({
    "model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
    "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                   {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "42"}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
    "temperature": 0.2, "top_p": 1, "n": 1, "max_completion_tokens": 100, "seed": 3, "stop": ["\n"],
    "user": "u1", "parallel_tool_calls": true})",
                              req);
  ASSERT_TRUE(err.ok()) << err.error().message;
  EXPECT_EQ(req.model, "gpt-4o-mini");
  EXPECT_TRUE(req.stream);
  EXPECT_TRUE(req.include_usage);
  EXPECT_EQ(req.max_output, 100u);
  EXPECT_GT(req.prompt_estimate, 85u);  // the image alone costs 85
}

TEST(ChatRequest, ErrorsNameTheField) {
  struct Case {
    const char* body;
    const char* param;
    const char* code;
  } cases[] = {
      {R"({"messages":[{"role":"user","content":"x"}]})", "model", "missing_required_parameter"},
      {R"({"model":3,"messages":[]})", "model", "invalid_type"},
      {R"({"model":"m","messages":{}})", "messages", "invalid_type"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
       "messages[0].content[0].image_url", "missing_required_parameter"},
      {R"({"model":"m","messages":[{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"u"}}]}]})",
       "messages[0].content[0].type", "invalid_value"},
      {R"({"model":"m","messages":[{"role":"user"}]})", "messages[0].content", "missing_required_parameter"},
      // A refusal is the assistant's: in a user message it was sent on as nothing to Anthropic
      // and Gemini (an empty turn) while an OpenAI-compatible server got it as written.
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"refusal","refusal":"r"}]}]})",
       "messages[0].content[0].type", "invalid_value"},
      {R"({"model":"m","messages":[{"role":"user","content":"x","tool_calls":[]}]})",
       "messages[0].tool_calls", "invalid_value"},
      {R"({"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"1","type":"function","function":{"name":"f"}}]}]})",
       "messages[0].tool_calls[0].function.arguments", "missing_required_parameter"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})", "n", "integer_below_min_value"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1.5})", "max_tokens",
       "invalid_type"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]})", "stop",
       "array_above_max_length"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"})", "tool_choice",
       "invalid_value"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}})",
       "response_format.json_schema", "missing_required_parameter"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream",
       "invalid_type"},
  };
  for (const auto& c : cases) {
    auto err = parse(c.body);
    ASSERT_FALSE(err.ok()) << c.body;
    EXPECT_EQ(err.error().status, 400);
    EXPECT_EQ(err.error().param, c.param) << c.body << ": " << err.error().message;
    EXPECT_EQ(err.error().code, c.code) << c.body << ": " << err.error().message;
  }
}

TEST(ChatRequest, BadJsonSaysWhere) {
  for (const char* body : {"", "{", "[1]", "{\"model\": tru}", "nul", "{\"a\":1}{"}) {
    auto err = parse(body);
    ASSERT_FALSE(err.ok()) << body;
    EXPECT_EQ(err.error().code, "invalid_json") << body;
  }
  std::string deep(5000, '[');
  EXPECT_FALSE(parse(deep).ok());
}

TEST(EmbeddingsRequest, InputShapes) {
  EmbeddingsRequest req;
  EXPECT_TRUE(parseEmbeddingsRequest(R"({"model":"e","input":"hello world"})", req).ok());
  EXPECT_TRUE(parseEmbeddingsRequest(R"({"model":"e","input":[[1,2,3],[4]]})", req).ok());
  EXPECT_EQ(req.prompt_estimate, 4u);
  auto err = parseEmbeddingsRequest(R"({"model":"e","input":[]})", req);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().code, "empty_array");
  err = parseEmbeddingsRequest(R"({"model":"e","input":[{"a":1}]})", req);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().param, "input[0]");
}

}  // namespace
}  // namespace ganglion::llm

namespace ganglion::llm {
namespace {

TEST(ChatRequestLimits, ChoicesMultiplyTheOutputToReserve) {
  ChatRequest req;
  ASSERT_TRUE(
      parseChatRequest(
          R"({"model":"m","n":128,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]})", req)
          .ok());
  EXPECT_EQ(req.choices, 128u);
  EXPECT_EQ(req.max_output, 100u);
  ASSERT_TRUE(parseChatRequest(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})", req).ok());
  EXPECT_EQ(req.choices, 1u);
}

TEST(ChatRequestLimits, DenseTextCannotBeatTheBound) {
  // "a a a ..." is about one token per two bytes: four times the bytes/4 estimate.
  std::string dense;
  for (int i = 0; i < 4000; ++i) dense += "a ";
  ChatRequest req;
  ASSERT_TRUE(
      parseChatRequest(R"({"model":"m","messages":[{"role":"user","content":")" + dense + R"("}]})", req)
          .ok());
  EXPECT_GE(req.prompt_bound, dense.size());  // one token per byte at most
  EXPECT_LT(req.prompt_estimate, req.prompt_bound);
}

TEST(ChatRequestLimits, ImagesReserveTheMostAProviderCharges) {
  ChatRequest req;
  ASSERT_TRUE(parseChatRequest(
                  R"({"model":"m","messages":[{"role":"user","content":[
        {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}}]}]})",
                  req)
                  .ok());
  EXPECT_GE(req.prompt_bound, kImageTokenBound + kLowDetailImageTokenBound);
  EXPECT_LT(req.prompt_estimate, 1000u);
}

TEST(ChatRequestLimits, EveryMessageFieldIsInTheBound) {
  // name, tool_call_id, refusal, a legacy function_call and unknown fields reach the model as
  // text: the bound holds their bytes (the prompt count reads them all).
  const std::string big(10000, 'n');
  ChatRequest req;
  ASSERT_TRUE(parseChatRequest(
                  R"({"model":"m","messages":[{"role":"user","content":"hi","name":")" + big +
                      R"("},{"role":"assistant","content":null,"function_call":{"name":"f","arguments":")" +
                      big + R"("}},{"role":"assistant","content":"ok","refusal":")" + big +
                      R"(","x_note":")" + big + R"("}]})",
                  req)
                  .ok());
  EXPECT_GE(req.prompt_bound, 4 * big.size());
}

TEST(ChatRequestLimits, FilesAndAudioAreEstimatedByTheirSize) {
  const std::string data(40000, 'A');
  ChatRequest req;
  ASSERT_TRUE(parseChatRequest(R"({"model":"m","messages":[{"role":"user","content":[
        {"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,)" +
                                   data + R"("}},
        {"type":"input_audio","input_audio":{"data":")" +
                                   data + R"(","format":"wav"}}]}]})",
                               req)
                  .ok());
  EXPECT_GE(req.media_estimate, 2 * data.size() / 4);  // a hang-up charged ~7 tokens for them
  EXPECT_LE(req.prompt_estimate, req.prompt_bound);
}

TEST(ChatRequestLimits, OversizedShapesAreRefusedWithTheReason) {
  ChatRequest req;
  std::string many = R"({"model":"m","messages":[{"role":"user","content":[)";
  for (size_t i = 0; i <= kMaxJsonContainers; ++i) many += i ? ",{}" : "{}";
  many += "]}]}";
  auto err = parseChatRequest(many, req);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().status, 400);
  EXPECT_EQ(err.error().code, "request_too_complex");

  std::string parts = R"({"model":"m","messages":[{"role":"user","content":[)";
  for (size_t i = 0; i <= kMaxPartsPerMessage; ++i)
    parts += std::string(i ? "," : "") + R"({"type":"text","text":""})";
  parts += "]}]}";
  err = parseChatRequest(parts, req);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().code, "array_above_max_length");
  EXPECT_EQ(err.error().param, "messages[0].content");

  std::string deep = R"({"model":"m","messages":[{"role":"user","content":"x"}],"x":)";
  for (unsigned i = 0; i < kMaxJsonDepth + 1; ++i) deep += "[";
  for (unsigned i = 0; i < kMaxJsonDepth + 1; ++i) deep += "]";
  deep += "}";
  err = parseChatRequest(deep, req);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().code, "invalid_json");
  EXPECT_NE(err.error().message.find("nests deeper"), std::string::npos);

  std::string zeros = R"({"model":"m","messages":[{"role":"user","content":"x"}],"x":[)";
  for (size_t i = 0; i <= kMaxJsonValues; ++i) zeros += i ? ",0" : "0";
  zeros += "]}";
  err = parseChatRequest(zeros, req);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().code, "request_too_complex");
  EXPECT_NE(err.error().message.find("JSON values"), std::string::npos);

  // Brackets and commas inside strings are text, not structure.
  std::string text(3 * kMaxJsonContainers, '[');
  text += std::string(2 * kMaxJsonValues, ',');
  EXPECT_TRUE(
      parseChatRequest(R"({"model":"m","messages":[{"role":"user","content":")" + text + R"("}]})", req)
          .ok());
}

}  // namespace
}  // namespace ganglion::llm
