#include "llm/providers/gemini.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "llm/testing.h"

namespace ganglion::llm {
namespace {

namespace json = boost::json;
using testing::Decoded;
using testing::decodeSplit;

GeminiCodec codec() {
  llm::ProviderConfig p;
  p.kind = "gemini";
  p.api_key = "gm-secret";
  return GeminiCodec(p);
}

TEST(GeminiCodec, CrlfStreamDecodesTheSameAtEverySplit) {
  std::string bytes = testing::fixture("gemini/stream_text.sse");
  ASSERT_NE(bytes.find("\r\n\r\n"), std::string::npos);
  Decoded whole = decodeSplit(codec(), bytes, bytes.size());
  ASSERT_TRUE(whole.error.ok()) << whole.error.error().message;
  EXPECT_TRUE(whole.finished);
  std::string text;
  for (const auto& c : whole.chunks)
    for (const auto& ch : c.at("choices").as_array())
      if (auto* t = ch.at("delta").as_object().if_contains("content")) text += t->as_string();
  EXPECT_NE(text.find("predictions or decisions."), std::string::npos) << text;
  EXPECT_EQ(whole.chunks.back().at("choices").as_array().size(), 0u);  // usage chunk last
  // The last event's running totals: 9 prompt, 16 candidates + 371 thoughts.
  EXPECT_EQ(whole.usage.prompt, 9u);
  EXPECT_EQ(whole.usage.reasoning, 371u);
  EXPECT_EQ(whole.usage.completion, 16u + 371u);
  for (size_t split = 0; split < bytes.size(); ++split) {
    Decoded part = decodeSplit(codec(), bytes, split);
    ASSERT_EQ(part.chunks, whole.chunks) << "split at " << split;
  }
}

TEST(GeminiCodec, FunctionCallsBecomeToolCalls) {
  std::string out;
  Usage u;
  ASSERT_TRUE(
      codec().chatResponse(testing::fixture("gemini/generate_response_function_call.json"), out, u).ok());
  auto c = json::parse(out).as_object();
  auto& choice = c["choices"].as_array()[0].as_object();
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  auto& calls = choice["message"].as_object()["tool_calls"].as_array();
  ASSERT_EQ(calls.size(), 2u);
  auto args = json::parse(calls[1].as_object()["function"].as_object()["arguments"].as_string()).as_object();
  EXPECT_EQ(args["location"], "Tokyo, Japan");
  EXPECT_NE(calls[0].as_object()["id"], calls[1].as_object()["id"]);
  EXPECT_EQ(u.prompt, 97u);
  EXPECT_EQ(u.completion, 46u + 88u);
  EXPECT_EQ(u.reasoning, 88u);
  EXPECT_EQ(c["model"], "gemini-2.5-flash");
}

TEST(GeminiCodec, WholeTextAnswer) {
  std::string out;
  Usage u;
  ASSERT_TRUE(codec().chatResponse(testing::fixture("gemini/generate_response.json"), out, u).ok());
  auto c = json::parse(out).as_object();
  auto& choice = c["choices"].as_array()[0].as_object();
  EXPECT_EQ(choice["finish_reason"], "stop");
  EXPECT_TRUE(choice["message"].as_object()["content"].is_string());
  EXPECT_TRUE(u.reported);
}

TEST(GeminiCodec, RequestTranslation) {
  ChatRequest req;
  ASSERT_TRUE(parseChatRequest(R"({"model":"g","max_tokens":50,"temperature":0.3,"stop":["x"],
    "response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"}}},
    "messages":[
      {"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/"}}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{\"q\":1}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"plain text result"}],
    "tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}],
    "tool_choice":{"type":"function","function":{"name":"lookup"}}})",
                               req)
                  .ok());
  ProviderRequest out;
  ASSERT_TRUE(codec().chatRequest(req, "gemini-2.0-flash", out).ok());
  EXPECT_EQ(out.path, "/v1beta/models/gemini-2.0-flash:generateContent");
  EXPECT_EQ(out.headers[0], (std::pair<std::string, std::string>{"x-goog-api-key", "gm-secret"}));
  auto b = json::parse(out.body).as_object();
  EXPECT_EQ(b["systemInstruction"].as_object()["parts"].as_array()[0].as_object()["text"], "be brief");
  auto& contents = b["contents"].as_array();
  ASSERT_EQ(contents.size(), 3u);
  EXPECT_EQ(contents[0].as_object()["parts"].as_array()[1].as_object()["inlineData"].as_object()["mimeType"],
            "image/jpeg");
  EXPECT_EQ(contents[1].as_object()["role"], "model");
  auto& fr = contents[2].as_object()["parts"].as_array()[0].as_object()["functionResponse"].as_object();
  EXPECT_EQ(fr["name"], "lookup");
  EXPECT_EQ(fr["response"].as_object()["content"], "plain text result");
  auto& gen = b["generationConfig"].as_object();
  EXPECT_EQ(gen["maxOutputTokens"], 50);
  EXPECT_EQ(gen["responseMimeType"], "application/json");
  EXPECT_TRUE(gen["responseJsonSchema"].is_object());
  EXPECT_EQ(b["toolConfig"].as_object()["functionCallingConfig"].as_object()["mode"], "ANY");
  EXPECT_TRUE(b["tools"].as_array()[0].as_object()["functionDeclarations"].as_array()[0].as_object().contains(
      "parametersJsonSchema"));

  ChatRequest streamed;
  ASSERT_TRUE(
      parseChatRequest(R"({"model":"g","stream":true,"messages":[{"role":"user","content":"hi"}]})", streamed)
          .ok());
  ProviderRequest s;
  ASSERT_TRUE(codec().chatRequest(streamed, "gemini-2.0-flash", s).ok());
  EXPECT_EQ(s.path, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
}

TEST(GeminiCodec, ErrorsKeepStatusAndMessage) {
  auto e = codec().error(400, testing::fixture("gemini/error_400.json"));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "INVALID_ARGUMENT");
  EXPECT_EQ(e.message, "API key not valid. Please pass a valid API key.");
}

TEST(GeminiCodec, Embeddings) {
  EmbeddingsRequest req;
  ASSERT_TRUE(parseEmbeddingsRequest(R"({"model":"e","input":["a","b"]})", req).ok());
  ProviderRequest out;
  ASSERT_TRUE(codec().embeddingsRequest(req, "text-embedding-004", out).ok());
  EXPECT_EQ(out.path, "/v1beta/models/text-embedding-004:batchEmbedContents");
  EXPECT_EQ(json::parse(out.body).as_object()["requests"].as_array().size(), 2u);
  std::string answer;
  Usage u;
  ASSERT_TRUE(
      codec()
          .embeddingsResponse(R"({"embeddings":[{"values":[0.1,0.2]},{"values":[0.3,0.4]}]})", answer, u)
          .ok());
  auto a = json::parse(answer).as_object();
  EXPECT_EQ(a["data"].as_array()[1].as_object()["index"], 1);
  EXPECT_FALSE(u.reported);
}

TEST(GeminiCodec, SeveralCandidatesBecomeSeveralChoices) {
  ChatRequest req;
  ASSERT_TRUE(
      parseChatRequest(R"({"model":"g","n":2,"messages":[{"role":"user","content":"name a colour"}]})", req)
          .ok());
  ProviderRequest out;
  ASSERT_TRUE(codec().chatRequest(req, "gemini-2.0-flash", out).ok());
  EXPECT_EQ(json::parse(out.body).as_object()["generationConfig"].as_object()["candidateCount"], 2);
  std::string answer;
  Usage usage;
  ASSERT_TRUE(codec()
                  .chatResponse(R"({"candidates":[
      {"content":{"role":"model","parts":[{"text":"Red"}]},"finishReason":"STOP","index":0},
      {"content":{"role":"model","parts":[{"functionCall":{"name":"pick","args":{"c":"blue"}}}]},
       "finishReason":"STOP","index":1}],
    "usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":6,"totalTokenCount":10},
    "modelVersion":"gemini-2.0-flash","responseId":"r1"})",
                                answer, usage)
                  .ok());
  auto choices = json::parse(answer).as_object()["choices"].as_array();
  ASSERT_EQ(choices.size(), 2u);
  EXPECT_EQ(choices[0].as_object()["index"], 0);
  EXPECT_EQ(choices[0].as_object()["message"].as_object()["content"], "Red");
  EXPECT_EQ(choices[0].as_object()["finish_reason"], "stop");
  EXPECT_EQ(choices[1].as_object()["index"], 1);
  EXPECT_EQ(choices[1].as_object()["finish_reason"], "tool_calls");
  auto& call = choices[1].as_object()["message"].as_object()["tool_calls"].as_array()[0].as_object();
  EXPECT_EQ(call["function"].as_object()["arguments"], R"({"c":"blue"})");
  EXPECT_EQ(usage.completion, 6u);

  ChatRequest streamed;
  ASSERT_TRUE(parseChatRequest(
                  R"({"model":"g","n":2,"stream":true,"messages":[{"role":"user","content":"x"}]})", streamed)
                  .ok());
  ProviderRequest s;
  auto refused = codec().chatRequest(streamed, "gemini-2.0-flash", s);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().param, "n");
}

}  // namespace
}  // namespace ganglion::llm
