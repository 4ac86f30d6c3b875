// Forgetting idle series: the string pool's holders, the series table's free ids, and every
// stage dropping what it kept for a forgotten series, so that a flood of invented names
// does not keep new devices out and a reused id or name never carries another's state.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "edge/pipeline.h"
#include "edge/test_pipeline.h"

namespace ganglion::edge {
namespace {

using test_support::Harness;

constexpr int64_t kMinute = 60'000;

TEST(EdgeStringPool, AcquiredNamesGoWithTheirLastHolderInternedOnesStay) {
  StringPool pool;
  const StringId kept = pool.intern("temperature");
  const StringId a = pool.acquire("bogus-1");
  EXPECT_EQ(pool.acquire("bogus-1"), a);
  EXPECT_EQ(pool.acquire("temperature"), kept);
  EXPECT_EQ(pool.size(), 3u);  // "", temperature, bogus-1
  pool.release(a);
  EXPECT_EQ(pool.find("bogus-1"), a);  // one holder left
  pool.release(a);
  EXPECT_EQ(pool.find("bogus-1"), StringPool::kNotFound);
  EXPECT_EQ(pool.size(), 2u);
  pool.release(kept);  // interned for good: stays
  pool.release(kept);
  EXPECT_EQ(pool.find("temperature"), kept);
  const StringId b = pool.acquire("room-7");
  EXPECT_EQ(b, a);  // the freed id is handed out again, with its new name
  EXPECT_EQ(pool.view(b), "room-7");
  EXPECT_EQ(pool.view(kept), "temperature");
}

TEST(EdgeSeriesTable, AFullTableTakesNewSeriesOnceOthersAreForgotten) {
  SeriesTable t(3);
  t.setClock(100);
  const SeriesId a = t.intern("plant", "bogus-1", "m");
  const SeriesId b = t.intern("plant", "bogus-2", "m");
  t.setClock(200);
  const SeriesId c = t.intern("plant", "real", "m");
  EXPECT_EQ(t.intern("plant", "new", "m"), kNoSeries);
  EXPECT_EQ(t.lastSeen(a), 100);
  EXPECT_EQ(t.lastSeen(c), 200);
  std::vector<uint8_t> keep(t.idLimit(), 0);
  keep[c] = 1;
  EXPECT_EQ(t.forgetAllBut(keep), 2u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_FALSE(t.inUse(a));
  EXPECT_FALSE(t.inUse(b));
  EXPECT_EQ(t.strings().find("bogus-1"), StringPool::kNotFound);  // its name went with it
  EXPECT_NE(t.strings().find("plant"), StringPool::kNotFound);    // still held by `real`
  const SeriesId n = t.intern("plant", "new", "m");
  EXPECT_EQ(n, a);  // the lowest free id first
  EXPECT_EQ(t.device(n), "new");
  EXPECT_EQ(t.intern("plant", "real", "m"), c);
  EXPECT_EQ(t.intern("plant", "bogus-2", "m"), b);  // a forgotten series comes back as a new one
  EXPECT_EQ(t.idLimit(), 3u);                       // ids stay below max_series
}

DetectSpec zscore() {
  DetectSpec d;
  d.name = "z";
  d.history = 20;
  d.warmup = 10;
  d.threshold = 6;
  return d;
}

// The flood: invented devices fill the table, the real device is refused; once the flood has
// been idle for forget_idle, a sweep forgets it, and the real device is taken and starts
// afresh in every stage.
TEST(EdgeForget, AFloodIsForgottenOnceIdleAndTheRealDeviceIsTakenAfresh) {
  MapSpec renamed;
  renamed.metric = "vibration";
  PipelineSpec spec{.name = "p",
                    .stages = {renamed, DedupSpec{}, DeadbandSpec{.absolute = 0.5}, zscore()},
                    .max_series = 40,
                    .forget_idle_ms = 10 * kMinute};
  Harness h(spec);
  EXPECT_EQ(h.pipeline->forgetAfterMs(), 10 * kMinute);
  int64_t wall = 1'000'000;
  for (int i = 0; i < 20; ++i) h.reading("bogus-" + std::to_string(i), "raw", wall + i, 5, wall);
  EXPECT_EQ(h.pipeline->series().size(), 40u);                                // each with its renamed series
  EXPECT_EQ(h.pipeline->series().intern("plant", "real", "raw"), kNoSeries);  // refused: full
  EXPECT_EQ(h.pipeline->forgetIdle(wall + kMinute), 0u);                      // not idle long enough yet
  wall += 10 * kMinute + 1;
  EXPECT_EQ(h.pipeline->forgetIdle(wall), 40u);
  EXPECT_EQ(h.pipeline->seriesForgotten(), 40u);
  EXPECT_EQ(h.pipeline->series().size(), 0u);
  EXPECT_EQ(h.pipeline->series().strings().find("bogus-3"), StringPool::kNotFound);
  // The real device now: its id is one a bogus device had, and every stage starts afresh for
  // it (the deadband passes its first reading, dedup has not seen (ts, 5), the detector
  // warms up instead of judging against the bogus history).
  h.out.clear();
  for (int i = 0; i < 10; ++i) h.reading("real", "raw", wall + i, i == 9 ? 500 : 5 + i, wall);
  ASSERT_EQ(h.out.size(), 10u);
  EXPECT_EQ(h.pipeline->series().device(h.out.records[0].series), "real");
  EXPECT_EQ(h.pipeline->series().metric(h.out.records[0].series), "vibration");
  EXPECT_TRUE(h.ofKind(RecordKind::kEvent).empty());  // still warming up (10 values)
  h.reading("bogus-1", "raw", wall, 5, wall);         // the flood again: a new series
  EXPECT_EQ(h.out.size(), 11u);
}

TEST(EdgeForget, SeriesSeenLatelyAndWhatWasMadeFromThemStay) {
  MapSpec renamed;
  renamed.metric = "vibration";
  Harness h(PipelineSpec{.name = "p", .stages = {renamed}, .max_series = 10, .forget_idle_ms = kMinute});
  for (int i = 0; i < 4; ++i) h.reading("old-" + std::to_string(i), "raw", 0, 1, 0);
  h.reading("live", "raw", 0, 1, 0);
  EXPECT_EQ(h.pipeline->series().size(), 10u);
  const SeriesId renamed_id = h.out.records.back().series;
  h.reading("live", "raw", 1, 2, 2 * kMinute);  // seen again; its renamed series was not looked up
  EXPECT_EQ(h.pipeline->forgetIdle(2 * kMinute), 8u);
  // `live` and its renamed series stay, with the renaming remembered.
  EXPECT_EQ(h.pipeline->series().size(), 2u);
  EXPECT_TRUE(h.pipeline->series().inUse(renamed_id));
  EXPECT_EQ(h.pipeline->series().metric(renamed_id), "vibration");
  h.out.clear();
  h.reading("live", "raw", 2, 3, 2 * kMinute);
  ASSERT_EQ(h.out.size(), 1u);
  EXPECT_EQ(h.out.records[0].series, renamed_id);
}

WindowSpec countWindow(int64_t size) {
  WindowSpec w;
  w.size_ms = size;
  w.aggregates = {Aggregate::kCount};
  return w;
}

TEST(EdgeForget, AnOpenWindowKeepsItsGroupAndForgottenGroupsAreUsedAgain) {
  Harness h(PipelineSpec{
      .name = "p", .stages = {countWindow(kMinute)}, .max_series = 10, .forget_idle_ms = kMinute});
  EXPECT_EQ(h.pipeline->forgetAfterMs(), kMinute);  // the window's length: no less
  for (int i = 0; i < 5; ++i) h.reading("d" + std::to_string(i), "m", 0, 1, 0);  // 5 series, 5 groups
  EXPECT_EQ(h.pipeline->series().size(), 10u);
  // Nothing closed yet (no tick): every group holds an open window and stays; the readings'
  // series go.
  EXPECT_EQ(h.pipeline->forgetIdle(2 * kMinute), 5u);
  EXPECT_EQ(h.pipeline->series().size(), 5u);
  h.pipeline->tick(2 * kMinute);  // wall time closes the windows
  ASSERT_EQ(h.ofKind(RecordKind::kWindow).size(), 5u);
  EXPECT_EQ(h.field(h.ofKind(RecordKind::kWindow)[0], "count"), 1);
  EXPECT_EQ(h.pipeline->forgetIdle(3 * kMinute), 0u);  // 5 of 10: under 90%, nothing goes
  h.reading("e1", "m", 0, 1, 3 * kMinute);             // 9 of 10
  h.reading("e2", "m", 0, 1, 3 * kMinute);
  EXPECT_EQ(h.pipeline->forgetIdle(3 * kMinute + 10'000), 5u);  // the closed groups
  EXPECT_EQ(h.pipeline->series().size(), 4u);
  // A new device gets a reused group: a window of its own readings only.
  h.out.clear();
  h.reading("new", "m", 10 * kMinute, 7, 3 * kMinute);
  h.reading("new", "m", 10 * kMinute + 1, 8, 3 * kMinute);
  h.pipeline->flush(3 * kMinute);
  auto windows = h.ofKind(RecordKind::kWindow);
  std::erase_if(windows, [&](const Record& r) { return h.pipeline->series().device(r.series) != "new"; });
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(h.field(windows[0], "count"), 2);
  EXPECT_EQ(h.pipeline->series().device(windows[0].series), "new");
}

TEST(EdgeForget, AJoinForgetsAForgottenDevicesPartnerValuesAndHeldReadingsKeepTheirSeries) {
  JoinSpec j{.on = "temperature", .with = {JoinPartner{.metric = "occupancy"}}, .within_ms = kMinute};
  Harness h(PipelineSpec{.name = "p", .stages = {j}, .max_series = 4, .forget_idle_ms = kMinute});
  h.reading("ghost", "occupancy", 0, 9, 0);
  h.reading("ghost2", "occupancy", 0, 9, 0);
  h.reading("ghost3", "occupancy", 0, 9, 0);
  EXPECT_EQ(h.pipeline->forgetIdle(0), 0u);  // under 90% full (3 of 4)
  h.reading("ghost4", "occupancy", 0, 9, 0);
  EXPECT_EQ(h.pipeline->forgetIdle(2 * kMinute), 4u);
  EXPECT_EQ(h.pipeline->series().strings().find("ghost"), StringPool::kNotFound);
  // New devices are handed the ghosts' name ids: none may see a ghost's occupancy.
  h.out.clear();
  for (int i = 0; i < 4; ++i) h.reading("room" + std::to_string(i), "temperature", 1, 21, 2 * kMinute);
  ASSERT_EQ(h.out.size(), 4u);
  for (const Record& r : h.out.records) EXPECT_TRUE(std::isnan(h.field(r, "occupancy")));
  EXPECT_EQ(h.pipeline->stages()[0]->counters.incomplete, 4u);
}

TEST(EdgeForget, AJoinKeepsPartnerValuesHeardLatelyWhateverTheirTimestamps) {
  // A device whose clock is far behind (ts 0, the wall clock minutes later), its occupancy
  // sent by two connectors: the idle connector's series goes, the value stays.
  JoinSpec j{.on = "temperature", .with = {JoinPartner{.metric = "occupancy"}}, .within_ms = kMinute};
  Harness h(PipelineSpec{.name = "p", .stages = {j}, .max_series = 4, .forget_idle_ms = kMinute});
  h.reading("room", "occupancy", 0, 3, 0, "a");
  h.reading("x", "co2", 0, 400, 0);
  h.reading("y", "co2", 0, 400, 0);
  h.reading("room", "occupancy", 0, 4, 2 * kMinute, "b");
  EXPECT_EQ(h.pipeline->forgetIdle(2 * kMinute), 3u);  // a's occupancy, x, y
  h.out.clear();
  h.reading("room", "temperature", 1, 21, 2 * kMinute, "b");
  ASSERT_EQ(h.out.size(), 1u);
  EXPECT_EQ(h.field(h.out.records[0], "occupancy"), 4);
}

TEST(EdgeForget, AHeldDrivingReadingKeepsItsSeries) {
  JoinSpec j{.on = "temperature",
             .with = {JoinPartner{.metric = "occupancy"}},
             .within_ms = kMinute,
             .wait_ms = 10 * kMinute};
  Harness h(PipelineSpec{.name = "p", .stages = {j}, .max_series = 2, .forget_idle_ms = kMinute});
  h.reading("room", "temperature", 0, 21, 0);  // held: waits for its occupancy
  h.reading("other", "co2", 0, 400, 0);
  ASSERT_EQ(h.out.size(), 1u);  // not joined: passes
  h.out.clear();
  EXPECT_EQ(h.pipeline->forgetAfterMs(), 11 * kMinute);  // within + wait
  EXPECT_EQ(h.pipeline->forgetIdle(12 * kMinute), 1u);   // co2 goes, the held reading's series stays
  h.pipeline->flush(12 * kMinute);
  ASSERT_EQ(h.out.size(), 1u);
  EXPECT_EQ(h.pipeline->series().device(h.out.records[0].series), "room");
}

TEST(EdgeForget, AForgottenDetectorSeriesIsLeftOutOfTheSavedState) {
  Harness h(PipelineSpec{.name = "p", .stages = {zscore()}, .max_series = 2, .forget_idle_ms = kMinute});
  for (int i = 0; i < 12; ++i) h.reading("gone", "m", i, 5, 0);
  for (int i = 0; i < 12; ++i) h.reading("kept", "m", i, 5, 2 * kMinute);
  EXPECT_EQ(h.pipeline->forgetIdle(2 * kMinute), 1u);
  const std::string state = h.pipeline->saveState();
  EXPECT_EQ(state.find("gone"), std::string::npos);
  EXPECT_NE(state.find("kept"), std::string::npos);
  Harness restored(
      PipelineSpec{.name = "p", .stages = {zscore()}, .max_series = 2, .forget_idle_ms = kMinute});
  ASSERT_TRUE(restored.pipeline->restoreState(state).ok());
  EXPECT_EQ(restored.pipeline->series().size(), 1u);
  // The slot the forgotten series had is handed to the next one, which starts afresh.
  h.out.clear();
  for (int i = 0; i < 10; ++i) h.reading("fresh", "m", 100 + i, i % 2 ? 1 : 1000, 2 * kMinute);
  EXPECT_TRUE(h.ofKind(RecordKind::kEvent).empty());  // warming up, not judged on `gone`'s history
}

TEST(EdgeForget, ASweepWaitsTenSecondsAfterTheLast) {
  Harness h(PipelineSpec{.name = "p", .stages = {}, .max_series = 2, .forget_idle_ms = kMinute});
  h.reading("a", "m", 0, 1, 0);
  h.reading("b", "m", 0, 1, 70'000);
  EXPECT_EQ(h.pipeline->forgetIdle(70'000), 1u);  // a
  h.reading("c", "m", 0, 1, 5'000);               // seen long ago (a clock that went back)
  EXPECT_EQ(h.pipeline->forgetIdle(79'999), 0u);  // c is idle, but the last sweep was < 10 s ago
  EXPECT_EQ(h.pipeline->forgetIdle(80'000), 1u);  // c; b was seen within forget_idle
  EXPECT_NE(h.pipeline->series().strings().find("b"), StringPool::kNotFound);
  EXPECT_EQ(h.pipeline->series().strings().find("c"), StringPool::kNotFound);
}

}  // namespace
}  // namespace ganglion::edge
