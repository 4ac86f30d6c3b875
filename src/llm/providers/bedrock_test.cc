#include "llm/providers/bedrock.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "llm/testing.h"

namespace ganglion::llm {
namespace {

namespace json = boost::json;
using testing::Decoded;
using testing::decodeSplit;

llm::ProviderConfig provider() {
  llm::ProviderConfig p;
  p.kind = "bedrock";
  p.host = "bedrock-runtime.us-east-1.amazonaws.com";
  p.region = "us-east-1";
  p.access_key_id = "AKIDEXAMPLE";
  p.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  return p;
}

TEST(SigV4, DocumentedVectors) {
  auto doc = json::parse(testing::fixture("bedrock/sigv4_vector.json")).as_object();
  int checked = 0;
  for (const auto& vv : doc.at("vectors").as_array()) {
    const auto& v = vv.as_object();
    const auto& req = v.at("request").as_object();
    const auto& expected = v.at("expected").as_object();
    SigV4Input in;
    in.method = std::string(req.at("method").as_string());
    in.canonical_uri = uriEncode(std::string(req.at("path").as_string()), true);  // non-S3: encoded again
    in.canonical_query = std::string(req.at("query").as_string());
    for (const auto& h : req.at("headers").as_array()) {
      std::string name(h.as_array()[0].as_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      in.headers.emplace_back(name, std::string(h.as_array()[1].as_string()));
    }
    std::string body(req.at("body").as_string());
    in.payload = body;
    in.amz_date = std::string(v.at("amz_date").as_string());
    in.region = std::string(v.at("region").as_string());
    in.service = std::string(v.at("service").as_string());
    in.access_key = std::string(v.at("credentials").as_object().at("access_key_id").as_string());
    in.secret_key = std::string(v.at("credentials").as_object().at("secret_access_key").as_string());
    auto out = signV4(in);
    std::string name(v.at("name").as_string());
    if (auto* cr = expected.if_contains("canonical_request")) {
      EXPECT_EQ(out.canonical_request, cr->as_string()) << name;
    }
    if (auto* sts = expected.if_contains("string_to_sign")) {
      EXPECT_EQ(out.string_to_sign, sts->as_string()) << name;
    }
    EXPECT_EQ(out.signature, expected.at("signature").as_string()) << name;
    EXPECT_EQ(out.authorization, expected.at("authorization").as_string()) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

TEST(BedrockCodec, RequestIsTranslatedAndSigned) {
  BedrockCodec codec(provider());
  codec.setClockForTesting([] {
    return std::chrono::sys_days{std::chrono::year{2024} / 6 / 15} + std::chrono::hours(9) +
           std::chrono::minutes(30);
  });
  ChatRequest req;
  ASSERT_TRUE(parseChatRequest(R"({"model":"x","max_tokens":64,"temperature":0.5,"stop":"END",
    "messages":[{"role":"system","content":"sys"},
      {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
      {"role":"tool","tool_call_id":"t1","content":"42"}],
    "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required"})",
                               req)
                  .ok());
  ProviderRequest out;
  ASSERT_TRUE(codec.chatRequest(req, "anthropic.claude-3-haiku-20240307-v1:0", out).ok());
  EXPECT_EQ(out.path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse");
  ChatRequest two;
  ASSERT_TRUE(
      parseChatRequest(R"({"model":"x","n":2,"messages":[{"role":"user","content":"hi"}]})", two).ok());
  ProviderRequest refused_out;
  auto refused = codec.chatRequest(two, "anthropic.claude-3-haiku-20240307-v1:0", refused_out);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().param, "n");
  std::map<std::string, std::string> headers(out.headers.begin(), out.headers.end());
  EXPECT_EQ(headers["X-Amz-Date"], "20240615T093000Z");
  EXPECT_EQ(headers["Authorization"].rfind(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240615/us-east-1/bedrock/aws4_request, "
                "SignedHeaders=content-type;host;x-amz-date, Signature=",
                0),
            0u)
      << headers["Authorization"];
  auto b = json::parse(out.body).as_object();
  EXPECT_EQ(b["system"].as_array()[0].as_object()["text"], "sys");
  auto& msgs = b["messages"].as_array();
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0].as_object()["content"].as_array()[1].as_object()["image"].as_object()["format"], "png");
  EXPECT_EQ(msgs[1]
                .as_object()["content"]
                .as_array()[0]
                .as_object()["toolUse"]
                .as_object()["input"]
                .as_object()["a"],
            1);
  EXPECT_EQ(msgs[2].as_object()["content"].as_array()[0].as_object()["toolResult"].as_object()["toolUseId"],
            "t1");
  EXPECT_EQ(b["inferenceConfig"].as_object()["maxTokens"], 64);
  EXPECT_EQ(b["inferenceConfig"].as_object()["stopSequences"], json::array{"END"});
  EXPECT_TRUE(b["toolConfig"].as_object()["toolChoice"].as_object().contains("any"));
}

TEST(BedrockCodec, EventStreamsDecodeTheSameAtEverySplit) {
  BedrockCodec codec_(provider());
  for (const char* file : {"bedrock/converse_stream.bin", "bedrock/converse_stream_tool_use.bin"}) {
    std::string bytes = testing::fixture(file);
    ASSERT_FALSE(bytes.empty()) << file;
    Decoded whole = decodeSplit(codec_, bytes, bytes.size());
    ASSERT_TRUE(whole.error.ok()) << file << ": " << whole.error.error().message;
    EXPECT_TRUE(whole.finished) << file;
    EXPECT_TRUE(whole.usage.reported);
    for (size_t split = 0; split < bytes.size(); ++split)
      ASSERT_EQ(decodeSplit(codec_, bytes, split).chunks, whole.chunks) << file << " split at " << split;
  }
  auto tools = decodeSplit(codec_, testing::fixture("bedrock/converse_stream_tool_use.bin"), 50);
  std::string args, finish;
  for (const auto& c : tools.chunks)
    for (const auto& choice : c.at("choices").as_array()) {
      const auto& delta = choice.at("delta").as_object();
      if (auto* calls = delta.if_contains("tool_calls"))
        for (const auto& call : calls->as_array())
          if (auto* a = call.at("function").as_object().if_contains("arguments")) args += a->as_string();
      if (choice.at("finish_reason").is_string())
        finish = std::string(choice.at("finish_reason").as_string());
    }
  EXPECT_TRUE(json::parse(args).is_object()) << args;
  EXPECT_EQ(finish, "tool_calls");
}

TEST(BedrockCodec, ExceptionFramesAndCorruptionAreErrors) {
  BedrockCodec codec_(provider());
  auto d = decodeSplit(codec_, testing::fixture("bedrock/converse_stream_exception.bin"), 7);
  ASSERT_FALSE(d.error.ok());
  EXPECT_EQ(d.error.error().type, "throttlingException");
  EXPECT_EQ(d.error.error().status, 429);
  std::string bytes = testing::fixture("bedrock/converse_stream.bin");
  bytes[bytes.size() / 2] ^= 0x20;  // one flipped bit: a CRC no longer matches
  auto bad = decodeSplit(codec_, bytes, bytes.size());
  ASSERT_FALSE(bad.error.ok());
  EXPECT_NE(bad.error.error().message.find("CRC"), std::string::npos);
}

TEST(BedrockCodec, WholeAnswers) {
  BedrockCodec codec(provider());
  std::string out;
  Usage u;
  ASSERT_TRUE(codec.chatResponse(testing::fixture("bedrock/converse_response.json"), out, u).ok());
  auto c = json::parse(out).as_object();
  EXPECT_EQ(c["choices"].as_array()[0].as_object()["finish_reason"], "stop");
  EXPECT_TRUE(u.reported);
  EXPECT_GT(u.completion, 0u);
  ASSERT_TRUE(codec.chatResponse(testing::fixture("bedrock/converse_response_tool_use.json"), out, u).ok());
  auto t = json::parse(out).as_object();
  auto& choice = t["choices"].as_array()[0].as_object();
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_FALSE(choice["message"].as_object()["tool_calls"].as_array().empty());
  auto e = codec.error(400, R"({"message":"Malformed input request"})");
  EXPECT_EQ(e.message, "Malformed input request");
}

TEST(BedrockCodec, ResponseFormatTravelsAsAForcedToolAndReturnsAsContent) {
  BedrockCodec codec_(provider());
  ChatRequest req;
  ASSERT_TRUE(parseChatRequest(R"({"model":"x","messages":[{"role":"user","content":"city?"}],
    "response_format":{"type":"json_schema","json_schema":{"name":"c","schema":{"type":"object",
      "properties":{"city":{"type":"string"}}}}}})",
                               req)
                  .ok());
  ProviderRequest out;
  ASSERT_TRUE(codec_.chatRequest(req, "anthropic.claude-3-haiku-20240307-v1:0", out).ok());
  auto b = json::parse(out.body).as_object();
  auto& config = b["toolConfig"].as_object();
  EXPECT_EQ(config["toolChoice"].as_object()["tool"].as_object()["name"], "ganglion_json_response");
  auto& spec = config["tools"].as_array()[0].as_object()["toolSpec"].as_object();
  EXPECT_EQ(spec["inputSchema"]
                .as_object()["json"]
                .as_object()["properties"]
                .as_object()["city"]
                .as_object()["type"],
            "string");

  std::string answer;
  Usage u;
  ASSERT_TRUE(codec_
                  .chatResponse(R"({"output":{"message":{"role":"assistant","content":[
      {"toolUse":{"toolUseId":"t1","name":"ganglion_json_response","input":{"city":"Paris"}}}]}},
    "stopReason":"tool_use","usage":{"inputTokens":30,"outputTokens":12,"totalTokens":42}})",
                                answer, u)
                  .ok());
  auto choice = json::parse(answer).as_object()["choices"].as_array()[0].as_object();
  EXPECT_EQ(choice["message"].as_object()["content"], R"({"city":"Paris"})");
  EXPECT_FALSE(choice["message"].as_object().contains("tool_calls"));
  EXPECT_EQ(choice["finish_reason"], "stop");

  std::string bytes = testing::fixture("bedrock/converse_stream_json_answer.bin");
  ASSERT_FALSE(bytes.empty());
  Decoded whole = decodeSplit(codec_, bytes, bytes.size());
  ASSERT_TRUE(whole.error.ok()) << whole.error.error().message;
  std::string text, finish;
  for (const auto& c : whole.chunks)
    for (const auto& ch : c.at("choices").as_array()) {
      const auto& delta = ch.at("delta").as_object();
      EXPECT_FALSE(delta.contains("tool_calls"));
      if (auto* t = delta.if_contains("content")) text += t->as_string();
      if (ch.at("finish_reason").is_string()) finish = std::string(ch.at("finish_reason").as_string());
    }
  EXPECT_EQ(text, R"({"city": "Paris"})");
  EXPECT_EQ(finish, "stop");
  for (size_t split = 0; split < bytes.size(); ++split)
    ASSERT_EQ(decodeSplit(codec_, bytes, split).chunks, whole.chunks) << "split at " << split;
}

TEST(BedrockCodec, EmbeddingsForTitanAndCohere) {
  BedrockCodec codec(provider());
  EmbeddingsRequest one;
  ASSERT_TRUE(parseEmbeddingsRequest(R"({"model":"e","input":"hello world","dimensions":512})", one).ok());
  ProviderRequest out;
  ASSERT_TRUE(codec.embeddingsRequest(one, "amazon.titan-embed-text-v2:0", out).ok());
  EXPECT_EQ(out.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
  EXPECT_EQ(json::parse(out.body), json::parse(R"({"inputText":"hello world","dimensions":512})"));
  std::map<std::string, std::string> headers(out.headers.begin(), out.headers.end());
  EXPECT_EQ(headers["Authorization"].rfind("AWS4-HMAC-SHA256 Credential=", 0), 0u);

  std::string answer;
  Usage u;
  ASSERT_TRUE(
      codec.embeddingsResponse(R"({"embedding":[0.1,-0.2],"inputTextTokenCount":3})", answer, u).ok());
  auto titan = json::parse(answer).as_object();
  EXPECT_EQ(titan["data"].as_array()[0].as_object()["embedding"], (json::array{0.1, -0.2}));
  EXPECT_TRUE(u.reported);
  EXPECT_EQ(u.prompt, 3u);

  EmbeddingsRequest batch;
  ASSERT_TRUE(parseEmbeddingsRequest(R"({"model":"e","input":["a","b"]})", batch).ok());
  ProviderRequest cohere_out;
  ASSERT_TRUE(codec.embeddingsRequest(batch, "cohere.embed-english-v3", cohere_out).ok());
  EXPECT_EQ(json::parse(cohere_out.body),
            json::parse(R"({"texts":["a","b"],"input_type":"search_document"})"));
  Usage none;
  ASSERT_TRUE(
      codec
          .embeddingsResponse(
              R"({"id":"x","embeddings":{"float":[[1.0],[2.0]]},"response_type":"embeddings_by_type"})",
              answer, none)
          .ok());
  EXPECT_EQ(json::parse(answer).as_object()["data"].as_array()[1].as_object()["index"], 1);
  EXPECT_FALSE(none.reported);  // Cohere reports no tokens: the router estimates them

  ProviderRequest refused_out;
  auto titan_batch = codec.embeddingsRequest(batch, "amazon.titan-embed-text-v2:0", refused_out);
  ASSERT_FALSE(titan_batch.ok());
  EXPECT_EQ(titan_batch.error().param, "input");
  auto other = codec.embeddingsRequest(one, "anthropic.claude-3-haiku-20240307-v1:0", refused_out);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, "embeddings_unsupported");
  EXPECT_FALSE(codec.embeddingsResponse("[1,2]", answer, u).ok());
  EXPECT_FALSE(codec.embeddingsResponse(R"({"embeddings":{"int8":[[1]]}})", answer, u).ok());
}

}  // namespace
}  // namespace ganglion::llm
