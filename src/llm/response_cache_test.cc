#include "llm/response_cache.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace ganglion::llm {
namespace {

namespace json = boost::json;
using namespace std::chrono;

TEST(ResponseCache, NormalFormIgnoresFieldOrder) {
  auto a =
      json::parse(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0})").as_object();
  auto b =
      json::parse(R"({"temperature":0,"messages":[{"content":"hi","role":"user"}],"model":"m"})").as_object();
  EXPECT_EQ(normalJson(a), normalJson(b));
  EXPECT_EQ(cacheKey("k", "chat", a), cacheKey("k", "chat", b));
  EXPECT_NE(cacheKey("k", "chat", a), cacheKey("other-key", "chat", a));  // keys never share answers
  EXPECT_NE(cacheKey("k", "chat", a), cacheKey("k", "embeddings", a));
  auto c = json::parse(R"({"model":"m","messages":[{"role":"user","content":"hi!"}],"temperature":0})")
               .as_object();
  EXPECT_NE(cacheKey("k", "chat", a), cacheKey("k", "chat", c));
}

TEST(ResponseCache, TtlAndLruBound) {
  ResponseCache cache;
  auto t = steady_clock::now();
  cache.setClockForTesting([&] { return t; });
  auto key = [](int i) { return sha256(std::to_string(i)); };
  cache.put(key(1), {std::string(1000, 'a'), false, "p", "m"}, seconds(10), 10'000);
  ASSERT_TRUE(cache.get(key(1)));
  EXPECT_EQ(cache.get(key(1))->payload.size(), 1000u);
  t += seconds(11);
  EXPECT_FALSE(cache.get(key(1)));  // expired
  EXPECT_EQ(cache.size(), 0u);
  for (int i = 0; i < 20; ++i) {
    cache.put(key(i), {std::string(1000, 'x'), true, "p", "m"}, seconds(60), 5'000);
    if (i == 1) {
      ASSERT_TRUE(cache.get(key(0)));  // 0 was used: 1 is now the oldest
    }
  }
  EXPECT_LE(cache.bytes(), 5'000u);
  EXPECT_TRUE(cache.get(key(19)));
  EXPECT_FALSE(cache.get(key(1)));
  cache.put(key(99), {std::string(6'000, 'y'), false, "p", "m"}, seconds(60), 5'000);
  EXPECT_FALSE(cache.get(key(99)));  // bigger than the whole cache
}

}  // namespace
}  // namespace ganglion::llm
