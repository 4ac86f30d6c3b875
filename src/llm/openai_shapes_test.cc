#include "llm/openai_shapes.h"

#include <gtest/gtest.h>

#include <set>

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
