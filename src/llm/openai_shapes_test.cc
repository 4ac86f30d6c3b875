#include "llm/openai_shapes.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <set>

#include "llm/usage.h"

namespace ganglion::llm {
namespace {

TEST(UniqueId, NeverRepeatsWithinASecond) {
  std::set<std::string> seen;
  for (int i = 0; i < 10'000; ++i) {
    std::string id = uniqueId("chatcmpl-");
    ASSERT_EQ(id.rfind("chatcmpl-", 0), 0u);
    ASSERT_EQ(id.size(), 9u + 24u);
    ASSERT_TRUE(seen.insert(id).second) << id;
  }
  EXPECT_EQ(idOr("msg_", "abc"), "msg_abc");
  EXPECT_NE(idOr("msg_", ""), idOr("msg_", ""));
}

}  // namespace
}  // namespace ganglion::llm

namespace ganglion::llm {
namespace {

TEST(FinishEmbeddingsAnswer, FloatArraysBecomeLittleEndianFloat32) {
  std::string answer = R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[1.0,-2.5,0]},
    {"object":"embedding","index":1,"embedding":"AACAPw=="}],"model":"m"})";
  Usage usage;
  usage.prompt = 7;
  ASSERT_TRUE(finishEmbeddingsAnswer(answer, true, "gemini-embed", usage));
  auto v = boost::json::parse(answer).as_object();
  const auto& data = v.at("data").as_array();
  // 1.0f = 00 00 80 3f, -2.5f = 00 00 20 c0, 0.0f = 00 00 00 00
  EXPECT_EQ(data[0].at("embedding").as_string(), "AACAPwAAIMAAAAAA");
  EXPECT_EQ(data[1].at("embedding").as_string(), "AACAPw==");  // already encoded: kept
  EXPECT_EQ(v.at("model").as_string(), "m");                   // the provider's: kept
  EXPECT_EQ(v.at("usage").at("prompt_tokens").as_int64(), 7);  // missing: the call's
  std::string bare = R"({"data":[{"embedding":[0.5]}]})";
  ASSERT_TRUE(finishEmbeddingsAnswer(bare, false, "gemini-embed", usage));
  auto b = boost::json::parse(bare).as_object();
  EXPECT_EQ(b.at("model").as_string(), "gemini-embed");
  EXPECT_TRUE(b.at("data").as_array()[0].at("embedding").is_array());  // floats asked for: floats
  std::string not_embeddings = R"({"choices":[]})";
  EXPECT_FALSE(finishEmbeddingsAnswer(not_embeddings, true, "m", usage));
}

}  // namespace
}  // namespace ganglion::llm
