#include "llm/providers/openai.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "llm/testing.h"

namespace ganglion::llm {
namespace {

namespace json = boost::json;

llm::ProviderConfig provider(std::string kind = "openai") {
  llm::ProviderConfig p;
  p.name = "p";
  p.kind = kind;
  p.base_path = kind == "azure" ? "" : "/v1";
  p.api_key = "sk-secret";
  p.api_version = "2024-10-21";
  return p;
}

/// Decodes `bytes` fed in two parts split at `split`; returns the chunks as JSON text.
std::vector<std::string> decodeSplit(const std::string& bytes, size_t split, Usage& usage, bool& finished) {
  OpenAiCodec codec(provider());
  auto dec = codec.chatStream();
  std::vector<json::object> chunks;
  EXPECT_TRUE(dec->feed(std::string_view(bytes).substr(0, split), chunks, usage).ok());
  EXPECT_TRUE(dec->feed(std::string_view(bytes).substr(split), chunks, usage).ok());
  finished = dec->finished();
  std::vector<std::string> out;
  for (auto& c : chunks) out.push_back(json::serialize(c));
  return out;
}

TEST(OpenAiCodec, StreamDecodesTheSameAtEverySplit) {
  for (const char* file : {"openai/chat_stream_text.sse", "openai/chat_stream_tools.sse"}) {
    std::string bytes = testing::fixture(file);
    ASSERT_FALSE(bytes.empty()) << file;
    Usage whole;
    bool finished = false;
    auto expected = decodeSplit(bytes, bytes.size(), whole, finished);
    EXPECT_TRUE(finished) << file;
    EXPECT_TRUE(whole.reported) << file;
    EXPECT_GT(whole.prompt, 0u);
    for (size_t split = 0; split < bytes.size(); ++split) {
      Usage u;
      bool done = false;
      ASSERT_EQ(decodeSplit(bytes, split, u, done), expected) << file << " split at " << split;
      ASSERT_TRUE(done);
      ASSERT_EQ(u.completion, whole.completion);
    }
  }
}

TEST(OpenAiCodec, ToolCallArgumentsReassemble) {
  std::string bytes = testing::fixture("openai/chat_stream_tools.sse");
  Usage u;
  bool done = false;
  std::map<int64_t, std::string> args;
  for (const auto& text : decodeSplit(bytes, 17, u, done)) {
    auto chunk = json::parse(text).as_object();
    for (const auto& choice : chunk["choices"].as_array())
      if (auto* calls = choice.as_object().at("delta").as_object().if_contains("tool_calls"))
        for (const auto& call : calls->as_array())
          if (auto* fn = call.as_object().if_contains("function"))
            if (auto* a = fn->as_object().if_contains("arguments"))
              args[call.as_object().at("index").as_int64()] += std::string(a->as_string());
  }
  ASSERT_EQ(args.size(), 2u);
  for (auto& [index, text] : args) EXPECT_TRUE(json::parse(text).is_object()) << text;
}

TEST(OpenAiCodec, UsageFromWholeAnswer) {
  OpenAiCodec codec(provider());
  std::string body = testing::fixture("openai/chat_response.json"), out;
  Usage u;
  ASSERT_TRUE(codec.chatResponse(body, out, u).ok());
  EXPECT_EQ(out, body);  // passed through untouched
  auto expected = json::parse(body).as_object()["usage"].as_object();
  EXPECT_EQ(u.prompt, static_cast<uint64_t>(expected["prompt_tokens"].as_int64()));
  EXPECT_EQ(u.completion, static_cast<uint64_t>(expected["completion_tokens"].as_int64()));
  EXPECT_EQ(u.cached,
            static_cast<uint64_t>(expected["prompt_tokens_details"].as_object()["cached_tokens"].as_int64()));
  EXPECT_EQ(u.reasoning,
            static_cast<uint64_t>(
                expected["completion_tokens_details"].as_object()["reasoning_tokens"].as_int64()));
  EXPECT_FALSE(codec.chatResponse("not json", out, u).ok());
}

TEST(OpenAiCodec, RequestReplacesModelAndAsksForStreamUsage) {
  OpenAiCodec codec(provider());
  ChatRequest req;
  ASSERT_TRUE(
      parseChatRequest(
          R"({"model":"alias","stream":true,"messages":[{"role":"user","content":"hi"}],"x_extra":1})", req)
          .ok());
  ProviderRequest out;
  ASSERT_TRUE(codec.chatRequest(req, "gpt-4o-mini-2024-07-18", out).ok());
  EXPECT_EQ(out.path, "/v1/chat/completions");
  ASSERT_EQ(out.headers.size(), 1u);
  EXPECT_EQ(out.headers[0].second, "Bearer sk-secret");
  auto body = json::parse(out.body).as_object();
  EXPECT_EQ(body["model"], "gpt-4o-mini-2024-07-18");
  EXPECT_EQ(body["stream_options"].as_object()["include_usage"], true);
  EXPECT_EQ(body["x_extra"], 1);
}

TEST(OpenAiCodec, AzureUsesDeploymentUrlAndApiKeyHeader) {
  OpenAiCodec codec(provider("azure"));
  ChatRequest req;
  ASSERT_TRUE(parseChatRequest(R"({"model":"a","messages":[{"role":"user","content":"hi"}]})", req).ok());
  ProviderRequest out;
  ASSERT_TRUE(codec.chatRequest(req, "my-deployment", out).ok());
  EXPECT_EQ(out.path, "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21");
  ASSERT_EQ(out.headers.size(), 1u);
  EXPECT_EQ(out.headers[0].first, "api-key");
}

TEST(OpenAiCodec, ErrorsKeepTheProviderMessage) {
  OpenAiCodec codec(provider());
  auto e = codec.error(429, testing::fixture("openai/error_429.json"));
  EXPECT_EQ(e.status, 429);
  EXPECT_FALSE(e.message.empty());
  auto raw = codec.error(502, "<html>bad gateway</html>");
  EXPECT_EQ(raw.status, 502);
  EXPECT_NE(raw.message.find("bad gateway"), std::string::npos);
  auto empty = codec.error(503, "");
  EXPECT_EQ(empty.message, "the provider answered HTTP 503");
}

TEST(OpenAiCodec, MidStreamErrorIsReported) {
  OpenAiCodec codec(provider());
  auto dec = codec.chatStream();
  std::vector<json::object> chunks;
  Usage u;
  auto err =
      dec->feed("data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n", chunks, u);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.error().message, "overloaded");
  auto bad = codec.chatStream()->feed("data: [1,2]\n\n", chunks, u);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().status, 502);
}

}  // namespace
}  // namespace ganglion::llm
