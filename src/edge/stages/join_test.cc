// The join stage: as-of values of same-device and fixed-device partners, reach (`within`),
// missing partners, `wait` and its release, renamed output, state across restarts, and the
// errors a config gets.
#include "edge/stages/join.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "edge/edge_config.h"
#include "edge/pipeline.h"
#include "edge/test_pipeline.h"

namespace ganglion::edge {
namespace {

using test_support::Harness;
using test_support::standardNames;

constexpr int64_t kT0 = 1'764'460'800'000;

JoinSpec hvac() {
  return JoinSpec{.on = "temperature",
                  .with = {JoinPartner{.metric = "occupancy"},
                           JoinPartner{.metric = "outside", .device = "weather", .as = "outside_temp"}}};
}

PipelineSpec pipelineOf(JoinSpec j) { return PipelineSpec{.name = "p", .stages = {std::move(j)}}; }

std::vector<Record> readings(const Harness& h, std::string_view metric) {
  std::vector<Record> out;
  for (const Record& r : h.out.records)
    if (r.kind == RecordKind::kReading && h.pipeline->series().metric(r.series) == metric) out.push_back(r);
  return out;
}

TEST(EdgeJoin, EachDrivingReadingCarriesItsPartnersValuesAsOfItsTime) {
  Harness h(pipelineOf(hvac()));
  h.reading("weather", "outside", kT0, 4.5);
  h.reading("room1", "occupancy", kT0 + 1000, 3);
  h.reading("room2", "occupancy", kT0 + 1000, 0);
  h.reading("room1", "temperature", kT0 + 2000, 21.5, 0, "plant", Quality::kGood, 77);
  h.reading("room1", "occupancy", kT0 + 5000, 1);
  h.reading("weather", "outside", kT0 + 5500, 5.0);
  h.reading("room1", "temperature", kT0 + 6000, 22);
  h.reading("room2", "temperature", kT0 + 6000, 19);
  h.reading("room1", "co2", kT0 + 6000, 800);  // not joined: passes through
  const auto joined = readings(h, "temperature");
  ASSERT_EQ(joined.size(), 3u);
  EXPECT_EQ(joined[0].ts, kT0 + 2000);
  EXPECT_EQ(joined[0].value, 21.5);
  EXPECT_EQ(joined[0].seq, 77u);  // the driving reading's number, with the join's origin
  EXPECT_EQ(h.pipeline->originName(joined[0].origin), "p.stages[0].join");
  EXPECT_EQ(h.field(joined[0], "temperature"), 21.5);
  EXPECT_EQ(h.field(joined[0], "occupancy"), 3);
  EXPECT_EQ(h.field(joined[0], "outside_temp"), 4.5);
  EXPECT_EQ(h.field(joined[1], "occupancy"), 1);
  EXPECT_EQ(h.field(joined[1], "outside_temp"), 5.0);
  EXPECT_EQ(h.pipeline->series().device(joined[2].series), "room2");
  EXPECT_EQ(h.field(joined[2], "occupancy"), 0);
  EXPECT_EQ(h.field(joined[2], "outside_temp"), 5.0);  // the shared station's
  // Partners are consumed; the other metric passed.
  EXPECT_TRUE(readings(h, "occupancy").empty());
  EXPECT_TRUE(readings(h, "outside").empty());
  EXPECT_EQ(readings(h, "co2").size(), 1u);
  const StageCounters& c = h.pipeline->stages()[0]->counters;
  EXPECT_EQ(c.in, 9u);
  EXPECT_EQ(c.out, 4u);
  EXPECT_EQ(c.incomplete, 0u);
}

TEST(EdgeJoin, APartnerLaterInTheBatchOrBehindInTimeIsStillJoinedAsOf) {
  Harness h(pipelineOf(hvac()));
  // One batch: the driving reading first, its partners after it with earlier times.
  Batch b;
  auto add = [&](std::string_view device, std::string_view metric, int64_t ts, double v) {
    Record r;
    r.series = h.pipeline->series().intern("plant", device, metric);
    r.ts = ts;
    r.value = v;
    r.origin = h.source;
    b.push(r);
  };
  add("room1", "temperature", kT0 + 2000, 21);
  add("room1", "occupancy", kT0 + 1000, 2);
  add("room1", "occupancy", kT0 + 3000, 9);  // after the driving time: not its value
  add("weather", "outside", kT0 + 2000, 7);  // at the same time: its value
  h.pipeline->push(b, 0);
  auto joined = readings(h, "temperature");
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(h.field(joined[0], "occupancy"), 2);
  EXPECT_EQ(h.field(joined[0], "outside_temp"), 7);
  // A driving reading behind its partners' newest takes the value they had then.
  h.reading("room1", "temperature", kT0 + 1500, 20.5);
  joined = readings(h, "temperature");
  ASSERT_EQ(joined.size(), 2u);
  EXPECT_EQ(h.field(joined[1], "occupancy"), 2);
  EXPECT_TRUE(std::isnan(h.field(joined[1], "outside_temp")));  // nothing at or before 1.5 s
}

TEST(EdgeJoin, ABacklogLongerThanWithinKeepsEachDrivingReadingsOwnPartnerValue) {
  // A device catching up: one metric's backlog posted before the other's, spanning 6 × within
  // (an outside review found the first readings joined with nothing).
  JoinSpec j = hvac();
  j.with.pop_back();
  j.within_ms = 10'000;
  Harness h(pipelineOf(j));
  for (int i = 0; i < 7; ++i) h.reading("room1", "occupancy", kT0 + 5000 * i, i);
  for (int i = 0; i < 7; ++i) h.reading("room1", "temperature", kT0 + 5000 * i + 1, 20 + i);
  const auto joined = readings(h, "temperature");
  ASSERT_EQ(joined.size(), 7u);
  for (int i = 0; i < 7; ++i) EXPECT_EQ(h.field(joined[static_cast<size_t>(i)], "occupancy"), i) << i;
  EXPECT_EQ(h.pipeline->stages()[0]->counters.incomplete, 0u);
}

TEST(EdgeJoin, AJoinOnWhatAJoinBeforeItMade) {
  JoinSpec first = hvac();
  first.metric = "occupancy";  // its records are occupancy readings, carrying temperature
  first.with.pop_back();
  first.with[0] = JoinPartner{.metric = "occupancy", .device = "hall", .as = "hall_occupancy"};
  JoinSpec second{.on = "occupancy", .with = {JoinPartner{.metric = "co2"}}};
  Harness h(PipelineSpec{.name = "p", .stages = {first, second}});
  h.reading("hall", "occupancy", kT0, 7);
  h.reading("room1", "co2", kT0, 600);
  h.reading("room1", "temperature", kT0 + 1, 21);
  const auto joined = readings(h, "occupancy");
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(h.field(joined[0], "hall_occupancy"), 7);
  EXPECT_EQ(h.field(joined[0], "co2"), 600);
  EXPECT_EQ(h.field(joined[0], "temperature"), 21);
}

TEST(EdgeJoin, PartnersOutOfReachAreLeftOutOrDropTheRecord) {
  JoinSpec j = hvac();
  j.within_ms = 60'000;
  Harness keep(pipelineOf(j));
  keep.reading("room1", "occupancy", kT0, 1);
  keep.reading("weather", "outside", kT0 + 100'000, 3);
  keep.reading("room1", "temperature", kT0 + 100'000, 21);  // occupancy is 100 s old
  auto joined = readings(keep, "temperature");
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_TRUE(std::isnan(keep.field(joined[0], "occupancy")));
  EXPECT_EQ(keep.field(joined[0], "outside_temp"), 3);
  EXPECT_EQ(keep.pipeline->stages()[0]->counters.incomplete, 1u);

  j.drop_incomplete = true;
  Harness drop(pipelineOf(j));
  drop.reading("room1", "occupancy", kT0, 1);
  drop.reading("weather", "outside", kT0 + 100'000, 3);
  drop.reading("room1", "temperature", kT0 + 100'000, 21);
  drop.reading("room1", "occupancy", kT0 + 100'500, 1);
  drop.reading("room1", "temperature", kT0 + 101'000, 21);
  EXPECT_EQ(readings(drop, "temperature").size(), 1u);
  EXPECT_EQ(drop.pipeline->stages()[0]->counters.no_value, 1u);
}

TEST(EdgeJoin, TheJoinedRecordTakesTheWorstQualityAndItsOwnMetric) {
  JoinSpec j = hvac();
  j.metric = "hvac";
  j.as = "temp";
  Harness h(pipelineOf(j));
  h.reading("room1", "occupancy", kT0, 1, 0, "plant", Quality::kUncertain);
  h.reading("weather", "outside", kT0, 2, 0, "plant", Quality::kGood);
  h.reading("room1", "temperature", kT0, 20, 0, "plant", Quality::kGood);
  const auto joined = readings(h, "hvac");
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(joined[0].quality, Quality::kUncertain);
  EXPECT_EQ(h.pipeline->series().device(joined[0].series), "room1");
  EXPECT_EQ(h.field(joined[0], "temp"), 20);
  EXPECT_TRUE(readings(h, "temperature").empty());
}

TEST(EdgeJoin, WaitHoldsADrivingReadingUntilItsPartnersCatchUpOrTimeRunsOut) {
  JoinSpec j = hvac();
  j.wait_ms = 2000;
  Harness h(pipelineOf(j));
  const int64_t wall = 1'000'000;
  h.reading("weather", "outside", kT0, 5, wall);
  h.reading("room1", "occupancy", kT0, 1, wall);
  h.reading("room1", "temperature", kT0 + 1000, 21, wall, "plant", Quality::kGood, 10);
  EXPECT_TRUE(readings(h, "temperature").empty());  // the partners have not reached 1 s yet
  EXPECT_EQ(h.pipeline->oldestSeq(), 10u);
  h.reading("room1", "occupancy", kT0 + 900, 2, wall + 100);  // still behind: held
  EXPECT_TRUE(readings(h, "temperature").empty());
  h.reading("room1", "occupancy", kT0 + 1200, 3, wall + 200);
  h.reading("weather", "outside", kT0 + 1100, 6, wall + 300);  // both past: out at once
  auto joined = readings(h, "temperature");
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(h.field(joined[0], "occupancy"), 2);  // as of 1 s, with the reading that came late
  EXPECT_EQ(h.field(joined[0], "outside_temp"), 5);
  EXPECT_EQ(h.pipeline->oldestSeq(), UINT64_MAX);

  // A partner that stays silent: out after `wait` of wall time, with what there was.
  h.reading("room2", "occupancy", kT0 + 500, 0, wall + 400);
  h.reading("room2", "temperature", kT0 + 2000, 18, wall + 500, "plant", Quality::kGood, 11);
  h.pipeline->tick(wall + 1500);
  EXPECT_EQ(readings(h, "temperature").size(), 1u);
  h.pipeline->tick(wall + 2500);
  joined = readings(h, "temperature");
  ASSERT_EQ(joined.size(), 2u);
  EXPECT_EQ(h.field(joined[1], "occupancy"), 0);
  EXPECT_EQ(h.field(joined[1], "outside_temp"), 6);

  // A stop lets out what is held.
  h.reading("room3", "temperature", kT0 + 3000, 17, wall + 3000);
  EXPECT_EQ(readings(h, "temperature").size(), 2u);
  h.pipeline->flush(wall + 3001);
  joined = readings(h, "temperature");
  ASSERT_EQ(joined.size(), 3u);
  EXPECT_EQ(joined[2].value, 17);
  EXPECT_EQ(h.pipeline->stages()[0]->counters.incomplete, 1u);  // room3 had no occupancy
}

TEST(EdgeJoin, PartnersValuesSurviveARestart) {
  Harness before(pipelineOf(hvac()));
  before.reading("weather", "outside", kT0, 4);
  before.reading("room1", "occupancy", kT0, 2);
  const std::string state = before.pipeline->saveState();
  ASSERT_FALSE(state.empty());

  Harness after(pipelineOf(hvac()));
  auto restored = after.pipeline->restoreState(state, kT0 + 1000, /*warmed_only=*/true);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(*restored, 2u);
  after.reading("room1", "temperature", kT0 + 1000, 22);
  const auto joined = readings(after, "temperature");
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(after.field(joined[0], "occupancy"), 2);
  EXPECT_EQ(after.field(joined[0], "outside_temp"), 4);

  // A reload that adds a partner (and drops one) keeps what the others said.
  JoinSpec changed = hvac();
  changed.with.erase(changed.with.begin());
  changed.with.push_back(JoinPartner{.metric = "humidity"});
  Harness reloaded(pipelineOf(changed));
  auto kept = reloaded.pipeline->restoreState(state, kT0 + 1000, /*warmed_only=*/false);
  ASSERT_TRUE(kept.ok()) << kept.error().message;
  EXPECT_EQ(*kept, 1u);
  reloaded.reading("room1", "temperature", kT0 + 1000, 22);
  ASSERT_EQ(readings(reloaded, "temperature").size(), 1u);
  EXPECT_EQ(reloaded.field(readings(reloaded, "temperature")[0], "outside_temp"), 4);

  // Out of reach by the time of the restart: not restored. Damaged: an error.
  Harness late(pipelineOf(hvac()));
  auto none = late.pipeline->restoreState(state, kT0 + 2 * 3'600'000, true);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);
  Harness damaged(pipelineOf(hvac()));
  EXPECT_FALSE(damaged.pipeline->restoreState(state.substr(0, state.size() - 3), kT0, true).ok());
}

TEST(EdgeJoin, TheSameValuesSaveTheSameBytesWhateverOrderTheyCameIn) {
  // Devices seen in another order get other string ids, so another order in the map: the
  // saved state must not follow it (a restore then a save must give back the same bytes).
  Harness one(pipelineOf(hvac()));
  Harness two(pipelineOf(hvac()));
  std::vector<std::string> rooms;
  for (int i = 0; i < 40; ++i) rooms.push_back("room" + std::to_string(i));
  for (size_t i = 0; i < rooms.size(); ++i) {
    one.reading(rooms[i], "occupancy", kT0, static_cast<double>(i));
    two.reading(rooms[rooms.size() - 1 - i], "occupancy", kT0, static_cast<double>(rooms.size() - 1 - i));
  }
  const std::string saved = one.pipeline->saveState();
  EXPECT_EQ(two.pipeline->saveState(), saved);
  Harness restored(pipelineOf(hvac()));
  restored.reading("unrelated", "co2", kT0, 1);  // ids handed out differently again
  ASSERT_TRUE(restored.pipeline->restoreState(saved, kT0, false).ok());
  EXPECT_EQ(restored.pipeline->saveState(), saved);
}

TEST(EdgeJoin, AFixedDevicesDrivingMetricIsItsPartnerOnly) {
  // Each room's temperature with the outside temperature (the same metric, of device outside).
  JoinSpec j{.on = "temperature",
             .with = {JoinPartner{.metric = "temperature", .device = "outside", .as = "outside_temp"}}};
  Harness h(pipelineOf(j));
  h.reading("outside", "temperature", kT0, -3);
  h.reading("room1", "temperature", kT0 + 10, 21);
  const auto joined = readings(h, "temperature");
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(h.pipeline->series().device(joined[0].series), "room1");
  EXPECT_EQ(h.field(joined[0], "outside_temp"), -3);
}

TEST(EdgeJoin, JoinedNamesJoinTheGatewaysTableOnlyWhenTheirConfigIsInstalled) {
  const auto before = edgeFieldNames();
  auto read = fieldNamesWith(before, {"join_test_humidity", "join_test_lux", "join_test_humidity"});
  ASSERT_TRUE(read.ok());
  EXPECT_EQ((*read)->size(), before->size() + 2);
  EXPECT_EQ(edgeFieldNames(), before);  // read, not installed: a refused reload adds nothing
  auto same = fieldNamesWith(before, {"mean"});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, before);
  // One read against an older table no longer extends the installed one.
  auto other = fieldNamesWith(before, {"join_test_other"});
  ASSERT_TRUE(commitFieldNames(*read));
  EXPECT_EQ(edgeFieldNames(), *read);
  EXPECT_FALSE(commitFieldNames(*other));
  EXPECT_EQ(edgeFieldNames(), *read);
  // The cap names what this config asks for.
  std::vector<std::string> many;
  for (int i = 0; i < 5000; ++i) many.push_back("join_test_f" + std::to_string(i));
  auto refused = fieldNamesWith(edgeFieldNames(), many);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("this config names 5000 joined fields"), std::string::npos)
      << refused.error().message;
}

TEST(EdgeJoin, AConfigGetsAPreciseError) {
  auto error = [](JoinSpec j, std::vector<StageSpec> before = {}) {
    PipelineSpec spec{.name = "p", .stages = std::move(before)};
    spec.stages.push_back(std::move(j));
    auto names = standardNames();
    for (const auto& f : pipelineFieldNames(spec)) names->intern(f, FieldNames::Type::kNumber);
    auto built = buildPipeline(spec, names);
    return built.ok() ? std::string("built") : built.error().message;
  };
  JoinSpec j = hvac();
  j.with.clear();
  EXPECT_NE(error(j).find("with lists 1 to 8 partner metrics"), std::string::npos) << error(j);
  j = hvac();
  j.with[0].as = "mean";
  EXPECT_NE(error(j).find("'mean' is a name records already use"), std::string::npos) << error(j);
  j = hvac();
  j.with[0].as = "value";
  EXPECT_NE(error(j).find("'value' is a name records already use"), std::string::npos) << error(j);
  j = hvac();
  j.with[1].as = "occupancy";
  EXPECT_NE(error(j).find("two joined values are named 'occupancy'"), std::string::npos) << error(j);
  j = hvac();
  j.with[0].metric = "co2-ppm";
  EXPECT_NE(error(j).find("metric 'co2-ppm' is not a field name"), std::string::npos) << error(j);
  j = hvac();
  j.with[0].as = "9lives";
  EXPECT_NE(error(j).find("as: '9lives' is not a field name"), std::string::npos) << error(j);
  j = hvac();
  j.with.push_back(JoinPartner{.metric = "temperature", .as = "t2"});
  EXPECT_NE(error(j).find("temperature is the driving metric"), std::string::npos) << error(j);
  j = hvac();
  j.with.push_back(JoinPartner{.metric = "occupancy", .as = "occ2"});
  EXPECT_NE(error(j).find("with[2]: occupancy is listed twice"), std::string::npos) << error(j);
  j = hvac();
  j.wait_ms = 11 * 60 * 1000;
  EXPECT_NE(error(j).find("wait is at most 10m"), std::string::npos) << error(j);
  WindowSpec w;
  w.size_ms = 1000;
  w.aggregates = {Aggregate::kMean};
  EXPECT_NE(error(hvac(), {w}).find("consumes the readings, so this join would get none"), std::string::npos);
  EXPECT_EQ(error(hvac()), "built");
}

}  // namespace
}  // namespace ganglion::edge
