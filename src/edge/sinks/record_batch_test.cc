#include "edge/sinks/record_batch.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace ganglion::edge {
namespace {

TopicTemplate templateOf(std::initializer_list<std::pair<bool, std::string>> pieces) {
  TopicTemplate t;
  for (const auto& [placeholder, text] : pieces) t.pieces.push_back({placeholder, text});
  return t;
}

TEST(SinkRecordBatch, SplitsRecordsInOrderAndStopsAtText) {
  std::vector<std::string> texts;
  std::string error;
  EXPECT_TRUE(forEachRecord(R"({"a":1},{"b":[1,2]},7)",
                            [&](std::string_view text, const boost::json::object* o) {
                              texts.push_back(std::string(text) + (o ? "" : " (not an object)"));
                            },
                            error));
  EXPECT_EQ(texts, (std::vector<std::string>{R"({"a":1})", R"({"b":[1,2]})", "7 (not an object)"}));
  texts.clear();
  EXPECT_FALSE(forEachRecord(
      R"({"a":1},{"b":)",
      [&](std::string_view text, const boost::json::object*) { texts.emplace_back(text); }, error));
  EXPECT_EQ(texts.size(), 1u);
  EXPECT_EQ(error.substr(0, 16), "it is not JSON (");
  EXPECT_TRUE(forEachRecord(
      "", [&](std::string_view, const boost::json::object*) { FAIL(); }, error));
}

TEST(SinkRecordBatch, TopicsAreFilledFromTheRecordAndChecked) {
  const auto t = templateOf(
      {{false, "up/"}, {true, "device"}, {false, "/"}, {true, "kind"}, {false, "/"}, {true, "detector"}});
  std::string error;
  auto record =
      boost::json::parse(R"({"device":"pump-1","kind":"event","detector":"vib","score":3})").as_object();
  EXPECT_EQ(topicOf(t, record, error), "up/pump-1/event/vib");
  EXPECT_TRUE(error.empty());
  record = boost::json::parse(R"({"device":"pump-1","kind":"reading","detector":7})").as_object();
  EXPECT_EQ(topicOf(t, record, error), "up/pump-1/reading/");  // a missing or non-text one is empty
  record = boost::json::parse(R"({"device":"a+b","kind":"reading"})").as_object();
  EXPECT_EQ(topicOf(t, record, error), "");
  EXPECT_EQ(error.substr(0, 40), "its topic 'up/a+b/reading/' is not valid");
  record = boost::json::parse(R"({"device":"a#","kind":"reading"})").as_object();
  EXPECT_EQ(topicOf(t, record, error), "");
  // A value fills one level: a '/' in it would reach another device's topics.
  record = boost::json::parse(R"({"device":"pump-2/x","kind":"reading"})").as_object();
  EXPECT_EQ(topicOf(t, record, error), "");
  EXPECT_EQ(error, "its device 'pump-2/x' holds a '/', which would add topic levels");
}

}  // namespace
}  // namespace ganglion::edge
