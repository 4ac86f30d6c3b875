#include "edge/sinks/sink_host.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "edge/rules/rule_runner.h"

namespace ganglion::edge {
namespace {

boost::json::object parsed(const std::string& text) { return boost::json::parse(text).as_object(); }

TEST(RulesOutbox, AMessageCrossesTheOutboxByteForByte) {
  const std::string payload =
      "{\"device\":\"p\\\"1\",\"text\":\"line\\nnext \xc3\xa9\xe2\x82\xac\",\"v\":1.50}\x01";
  const std::string record = SinkHost::outboxRecord("alarms/p\"1/hot", payload, 2, true, {}, 0);
  SinkHost::Message m;
  std::string why;
  ASSERT_TRUE(SinkHost::outboxMessage(parsed(record), nullptr, m, why)) << why;
  EXPECT_EQ(m.topic, "alarms/p\"1/hot");
  EXPECT_EQ(m.payload, payload);  // "1.50" stays as written: the payload is not parsed again
  EXPECT_EQ(m.qos, 2);
  EXPECT_TRUE(m.retain);
  EXPECT_EQ(m.timed, nullptr);
}

TEST(RulesOutbox, OnlyThisProcesssAlarmsOfAKnownRuleAreTimed) {
  auto hot = std::make_shared<RuleStats>();
  const SinkHost::RuleStatsList rules{{"cold", std::make_shared<RuleStats>()}, {"hot", hot}};
  SinkHost::Message m;
  std::string why;
  ASSERT_TRUE(SinkHost::outboxMessage(parsed(SinkHost::outboxRecord("t", "{}", 1, false, "hot", 1234)),
                                      &rules, m, why));
  EXPECT_EQ(m.timed, hot);
  EXPECT_EQ(m.arrived_ns, 1234);
  // A rule no longer configured, or a record an earlier run queued (another token): not timed.
  SinkHost::Message gone;
  ASSERT_TRUE(SinkHost::outboxMessage(parsed(SinkHost::outboxRecord("t", "{}", 1, false, "warm", 1)), &rules,
                                      gone, why));
  EXPECT_EQ(gone.timed, nullptr);
  boost::json::object earlier = parsed(SinkHost::outboxRecord("t", "{}", 1, false, "hot", 1));
  earlier["run"] = static_cast<int64_t>(SinkHost::runToken() ^ 1);
  SinkHost::Message old;
  ASSERT_TRUE(SinkHost::outboxMessage(earlier, &rules, old, why));
  EXPECT_EQ(old.timed, nullptr);
  EXPECT_EQ(old.topic, "t");
}

TEST(RulesOutbox, ARecordThatIsNotAMessageIsRefused) {
  SinkHost::Message m;
  std::string why;
  for (const char* text :
       {R"({"topic":"t","qos":1,"retain":false})", R"({"topic":"","qos":1,"retain":false,"payload":""})",
        R"({"topic":"t","qos":3,"retain":false,"payload":""})",
        R"({"topic":"t","qos":1,"retain":0,"payload":""})",
        R"({"topic":"t","qos":1,"retain":false,"payload":{}})", R"({"id":"lab-1","value":3})"}) {
    why.clear();
    EXPECT_FALSE(SinkHost::outboxMessage(parsed(text), nullptr, m, why)) << text;
    EXPECT_EQ(why, "it is not an outbox message (topic, qos, retain, payload)");
  }
}

}  // namespace
}  // namespace ganglion::edge
