#include "base/bounded_json.h"

#include <gtest/gtest.h>

namespace ganglion {
namespace {

TEST(JsonDuplicateKeys, NamesEachSecondOccurrenceByPath) {
  const auto found = findDuplicateKeys(
      R"({"workers": 1, "routes": [ {"name": "a"}, {"name": "b", "upstream": "x", "name": "c"} ],)"
      R"( "workers": 2, "a key": {"x": 1, "x": 2}})");
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[0].path, "$.routes[1].name");
  EXPECT_EQ(found[0].key, "name");
  EXPECT_EQ(found[1].path, "$.workers");
  EXPECT_EQ(found[2].path, "$[\"a key\"].x");
}

TEST(JsonDuplicateKeys, NoneInDistinctOrBadText) {
  EXPECT_TRUE(findDuplicateKeys(R"({"a": {"b": 1}, "b": {"a": 1}, "c": [ {"a": 1}, {"a": 2} ]})").empty());
  EXPECT_TRUE(findDuplicateKeys("[1, 2, 3]").empty());
  EXPECT_TRUE(findDuplicateKeys("{\"a\": 1,").empty());
  EXPECT_TRUE(findDuplicateKeys("").empty());
}

TEST(JsonDuplicateKeys, ArraysOfContainersCountTheirIndex) {
  const auto found = findDuplicateKeys(R"({"l": [ [1, {"k": 1}], 5, {"k": 1, "k": 2} ]})");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].path, "$.l[2].k");
}

TEST(JsonDuplicateKeys, StopsAtTheLimit) {
  std::string text = "{";
  for (int i = 0; i < 500; ++i) text += "\"a\": 1, ";
  text += "\"b\": 2}";
  EXPECT_EQ(findDuplicateKeys(text, 10).size(), 10u);
}

TEST(JsonChildPath, PlainAndQuotedKeys) {
  EXPECT_EQ(jsonChildPath("$", "routes"), "$.routes");
  EXPECT_EQ(jsonChildPath("$.a", "b c"), "$.a[\"b c\"]");
  EXPECT_EQ(jsonChildPath("$", "1st"), "$[\"1st\"]");
  EXPECT_EQ(jsonChildPath("$", ""), "$[\"\"]");
}

}  // namespace
}  // namespace ganglion
