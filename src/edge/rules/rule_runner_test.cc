#include "edge/rules/rule_runner.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace ganglion::edge {
namespace {

std::shared_ptr<const expr::Program> condition(std::string_view text) {
  const auto names = edgeFieldNames();
  expr::Scope scope;
  scope.names = names.get();
  scope.all_fields = true;
  scope.attrs_field = names->find("attrs");
  auto p = expr::compile(text, scope, true);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  return std::make_shared<const expr::Program>(std::move(*p));
}

/// A pass-through pipeline whose records the runner judges one at a time.
struct Bench {
  Bench() {
    PipelineSpec spec;
    spec.name = "line";
    auto built = buildPipeline(spec, edgeFieldNames());
    EXPECT_TRUE(built.ok());
    pipeline = std::move(*built);
    origin = pipeline->origin("plant");
  }
  /// Whether a reading of `device` with `value` at `ts` fires `runner`.
  bool fires(RuleRunner& runner, std::string_view device, double value, int64_t ts,
             std::string_view metric = "temp") {
    batch.clear();
    Record r;
    r.series = pipeline->series().intern("plant", device, metric);
    r.ts = ts;
    r.value = value;
    r.origin = origin;
    r.seq = static_cast<uint64_t>(ts);
    batch.push(r);
    return runner.fires(ev, batch.records[0], batch, *pipeline);
  }
  std::unique_ptr<Pipeline> pipeline;
  uint16_t origin = 0;
  Batch batch;
  expr::Evaluator ev;
};

std::shared_ptr<RuleConfig> rule(std::string_view when, std::string_view clear = {}, int64_t hold_off_ms = 0,
                                 std::string per = "device") {
  auto c = std::make_shared<RuleConfig>();
  c->name = "hot";
  c->when = when;
  c->when_program = condition(when);
  if (!clear.empty()) c->clear_program = condition(clear);
  c->hold_off = Millis(hold_off_ms);
  c->per = std::move(per);
  return c;
}

TEST(RuleRunner, StateSurvivesARestart) {
  Bench b;
  auto stats = std::make_shared<RuleStats>();
  auto config = rule("value > 10", "value < 5", 30'000);
  RuleRunner before(config, stats);
  EXPECT_TRUE(b.fires(before, "p1", 11, 100'000));  // raised, held off
  EXPECT_TRUE(b.fires(before, "p2", 11, 100'000));
  EXPECT_FALSE(b.fires(before, "p2", 1, 100'500));  // p2 cleared, still within its hold-off
  EXPECT_FALSE(b.fires(before, "p3", 1, 100'000));  // never matched: no state
  EXPECT_EQ(before.changes(), 3u);
  std::string state;
  before.saveState(state);

  Bench fresh;  // another process: other series ids
  RuleRunner after(config, stats);
  size_t restored = 0;
  ASSERT_TRUE(after.restoreState(state, restored));
  EXPECT_EQ(restored, 2u);
  EXPECT_FALSE(fresh.fires(after, "p1", 12, 200'000));  // still raised
  EXPECT_FALSE(fresh.fires(after, "p2", 12, 110'000));  // within its hold-off
  EXPECT_TRUE(fresh.fires(after, "p2", 12, 130'000));   // past it
  EXPECT_TRUE(fresh.fires(after, "p3", 12, 100'000));
  // A runner that has state of its own keeps it; a damaged state restores nothing.
  ASSERT_TRUE(after.restoreState(state, restored));
  EXPECT_EQ(restored, 0u);
  RuleRunner third(config, stats);
  for (size_t cut = 1; cut < state.size(); ++cut)
    EXPECT_FALSE(third.restoreState(std::string_view(state).substr(0, cut), restored)) << cut;
  EXPECT_FALSE(third.restoreState(state + "x", restored));
  EXPECT_EQ(third.keys(), 0u);
  // The key names what the state means: another condition is another key.
  EXPECT_NE(RuleRunner(rule("value > 11", "value < 5", 30'000), stats).stateKey(), after.stateKey());
  EXPECT_EQ(RuleRunner(rule("value > 10", "value < 5", 60'000), stats).stateKey(), after.stateKey());
}

TEST(RuleRunner, WithoutStateEveryMatchFires) {
  Bench b;
  auto stats = std::make_shared<RuleStats>();
  RuleRunner r(rule("value > 10"), stats);
  EXPECT_FALSE(b.fires(r, "p1", 5, 1000));
  EXPECT_TRUE(b.fires(r, "p1", 11, 1001));
  EXPECT_TRUE(b.fires(r, "p1", 12, 1002));
  EXPECT_EQ(stats->matched.load(), 2u);
  EXPECT_EQ(stats->fired.load(), 2u);
  EXPECT_EQ(r.keys(), 0u);  // nothing to remember
}

TEST(RuleRunner, HoldOffCountsRecordTimePerDevice) {
  Bench b;
  auto stats = std::make_shared<RuleStats>();
  RuleRunner r(rule("value > 10", {}, 30'000), stats);
  EXPECT_TRUE(b.fires(r, "p1", 11, 100'000));
  EXPECT_FALSE(b.fires(r, "p1", 11, 129'999));  // within 30 s of the firing
  EXPECT_TRUE(b.fires(r, "p2", 11, 129'999));   // another device has its own hold-off
  EXPECT_TRUE(b.fires(r, "p1", 11, 130'000));
  EXPECT_FALSE(b.fires(r, "p1", 11, 130'001, "vibration"));  // per device: any metric of it
  EXPECT_EQ(stats->suppressed.load(), 2u);
  EXPECT_EQ(stats->fired.load(), 3u);

  RuleRunner series(rule("value > 10", {}, 30'000, "series"), std::make_shared<RuleStats>());
  EXPECT_TRUE(b.fires(series, "p1", 11, 100'000));
  EXPECT_TRUE(b.fires(series, "p1", 11, 100'001, "vibration"));
  EXPECT_FALSE(b.fires(series, "p1", 11, 100'002));
  // Records older than the last firing are held too (late records, skewed clocks).
  EXPECT_FALSE(b.fires(series, "p1", 11, 99'000));
  EXPECT_FALSE(b.fires(series, "p1", 11, -5'000'000));
  EXPECT_TRUE(b.fires(series, "p1", 11, 130'000));

  RuleRunner whole(rule("value > 10", {}, 30'000, "rule"), std::make_shared<RuleStats>());
  EXPECT_TRUE(b.fires(whole, "p1", 11, 100'000));
  EXPECT_FALSE(b.fires(whole, "p2", 11, 100'001));
}

TEST(RuleRunner, HysteresisHoldsUntilTheClearCondition) {
  Bench b;
  auto stats = std::make_shared<RuleStats>();
  RuleRunner r(rule("value > 80", "value < 60"), stats);
  EXPECT_TRUE(b.fires(r, "p1", 85, 1));
  EXPECT_FALSE(b.fires(r, "p1", 90, 2));  // raised: no flapping
  EXPECT_FALSE(b.fires(r, "p1", 70, 3));  // between the two: still raised
  EXPECT_TRUE(b.fires(r, "p2", 81, 3));
  EXPECT_FALSE(b.fires(r, "p1", 59, 4));  // cleared
  EXPECT_TRUE(b.fires(r, "p1", 81, 5));
  EXPECT_EQ(stats->cleared.load(), 1u);
  EXPECT_EQ(stats->suppressed.load(), 1u);
  EXPECT_EQ(stats->fired.load(), 3u);
}

TEST(RuleRunner, KeysAreBoundedAndPastTheBoundMatchesStillFire) {
  Bench b;
  auto stats = std::make_shared<RuleStats>();
  RuleRunner r(rule("value > 10", "value < 5"), stats);
  for (size_t i = 0; i < 1000; ++i)
    b.fires(r, fmt::format("d{}", i), 1, 1);  // (the series table holds 100,000)
  EXPECT_EQ(r.keys(), 0u);                    // records that do not match keep no state
  for (size_t i = 0; i < RuleRunner::kMaxKeys; ++i) {
    const std::string device = fmt::format("d{}", i);  // not "d" + to_string: a GCC 12 false warning
    b.fires(r, device, 11, 1);                         // raised: kept
  }
  EXPECT_EQ(r.keys(), RuleRunner::kMaxKeys);
  EXPECT_TRUE(b.fires(r, "one-more", 11, 2));
  EXPECT_TRUE(b.fires(r, "one-more", 11, 3));  // no state for it: not held back
  EXPECT_EQ(r.keys(), RuleRunner::kMaxKeys);
  EXPECT_EQ(stats->untracked.load(), 2u);
}

TEST(RuleRunner, AFullTableForgetsKeysWhoseHoldOffIsOver) {
  Bench b;
  auto stats = std::make_shared<RuleStats>();
  RuleRunner r(rule("value > 10", {}, 1'000), stats);
  for (size_t i = 0; i < RuleRunner::kMaxKeys; ++i) b.fires(r, fmt::format("flood{}", i), 11, 1'000);
  EXPECT_EQ(r.keys(), RuleRunner::kMaxKeys);
  // A real device later: the flood's hold-offs are over, their keys make room, and the real
  // device's hold-off holds.
  EXPECT_TRUE(b.fires(r, "real", 11, 10'000));
  EXPECT_FALSE(b.fires(r, "real", 11, 10'500));
  EXPECT_LT(r.keys(), 10u);
  EXPECT_EQ(stats->untracked.load(), 0u);
}

TEST(RuleRunner, TopicsAndPayloads) {
  Bench b;
  RuleRunner r(rule("value > 10"), std::make_shared<RuleStats>());
  ASSERT_TRUE(b.fires(r, "pump-1", 11, 1764460800123));
  TopicTemplate t;
  t.pieces = {{false, "alarms/"}, {true, "device"}, {false, "/"},
              {true, "rule"},     {false, "/"},     {true, "kind"}};
  const Record& rec = b.batch.records[0];
  EXPECT_EQ(r.topic(t, rec, b.batch, *b.pipeline), "alarms/pump-1/hot/reading");
  // A value fills one level: a device named "pump/1" would reach other topics: none.
  ASSERT_TRUE(b.fires(r, "pump/1", 11, 1764460800123));
  EXPECT_EQ(r.topic(t, b.batch.records[0], b.batch, *b.pipeline), "");
  // A device name with a wildcard would make an invalid topic: none.
  ASSERT_TRUE(b.fires(r, "pump+1", 11, 1764460800124));
  EXPECT_EQ(r.topic(t, b.batch.records[0], b.batch, *b.pipeline), "");
  auto doc = boost::json::parse(r.payload(b.batch.records[0], b.batch, *b.pipeline)).as_object();
  EXPECT_EQ(doc["rule"], "hot");
  EXPECT_EQ(doc["device"], "pump+1");
  const std::string id(doc["id"].as_string());
  EXPECT_TRUE(id.ends_with("/hot")) << id;
}

}  // namespace
}  // namespace ganglion::edge
