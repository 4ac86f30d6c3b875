#include "edge/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <random>

#include "edge/detect/rolling_median.h"
#include "edge/record_json.h"
#include "edge/stages/aggregates.h"
#include "edge/test_pipeline.h"

namespace ganglion::edge {
namespace {

using test_support::Harness;
using test_support::standardNames;

WindowSpec window(int64_t size, std::vector<Aggregate> aggs, int64_t lateness = 0) {
  WindowSpec w;
  w.size_ms = size;
  w.allowed_lateness_ms = lateness;
  w.aggregates = std::move(aggs);
  return w;
}

TEST(EdgeWindow, TumblingWindowsCloseOnEventTime) {
  Harness h({.name = "p",
             .stages = {window(1000, {Aggregate::kCount, Aggregate::kMean, Aggregate::kMin, Aggregate::kMax,
                                      Aggregate::kRms})}});
  h.reading("pump-1", "vibration", 10'000, 1);
  h.reading("pump-1", "vibration", 10'500, 3);
  h.reading("pump-1", "vibration", 10'999, 2);
  EXPECT_TRUE(h.out.empty());
  h.reading("pump-1", "vibration", 11'000, 5);  // passes the first window's end
  ASSERT_EQ(h.out.size(), 1u);
  const Record& w = h.out.records[0];
  EXPECT_EQ(w.kind, RecordKind::kWindow);
  EXPECT_EQ(w.ts, 10'000);
  EXPECT_FALSE(w.hasValue());
  EXPECT_EQ(h.pipeline->series().device(w.series), "pump-1");
  EXPECT_EQ(h.pipeline->series().metric(w.series), "vibration");
  EXPECT_EQ(h.pipeline->series().source(w.series), "");  // not in `by`
  EXPECT_EQ(h.field(w, "window_ms"), 1000);
  EXPECT_EQ(h.field(w, "count"), 3);
  EXPECT_DOUBLE_EQ(h.field(w, "mean"), 2);
  EXPECT_EQ(h.field(w, "min"), 1);
  EXPECT_EQ(h.field(w, "max"), 3);
  EXPECT_DOUBLE_EQ(h.field(w, "rms"), std::sqrt((1 + 9 + 4) / 3.0));
  h.pipeline->flush(0);
  ASSERT_EQ(h.out.size(), 2u);
  EXPECT_EQ(h.out.records[1].ts, 11'000);
  EXPECT_EQ(h.field(h.out.records[1], "count"), 1);
}

TEST(EdgeWindow, GroupsFollowBy) {
  // by [device, metric] (the default): two sources of one device and metric share windows.
  Harness h({.name = "p", .stages = {window(1000, {Aggregate::kCount})}});
  h.reading("d", "m", 0, 1, 0, "a");
  h.reading("d", "m", 10, 1, 0, "b");
  h.reading("d", "m2", 20, 1, 0, "a");
  h.reading("e", "m", 30, 1, 0, "a");
  h.pipeline->flush(0);
  ASSERT_EQ(h.out.size(), 3u);
  EXPECT_EQ(h.field(h.out.records[0], "count"), 2);
  WindowSpec by_device = window(1000, {Aggregate::kCount});
  by_device.by_metric = false;
  Harness g({.name = "p", .stages = {by_device}});
  g.reading("d", "m", 0, 1);
  g.reading("d", "m2", 10, 1);
  g.pipeline->flush(0);
  ASSERT_EQ(g.out.size(), 1u);
  EXPECT_EQ(g.field(g.out.records[0], "count"), 2);
  EXPECT_EQ(g.pipeline->series().metric(g.out.records[0].series), "");
}

TEST(EdgeWindow, LateReadingsAreCountedAndDropped) {
  Harness h({.name = "p", .stages = {window(1000, {Aggregate::kCount})}});
  h.reading("d", "m", 5'100, 1);
  h.reading("d", "m", 6'200, 1);  // closes [5000, 6000)
  h.reading("d", "m", 5'900, 1);  // late
  h.reading("d", "m", 4'000, 1);  // late, older still
  h.reading("d", "m", 6'100, 1);  // out of order but its window is open
  EXPECT_EQ(h.pipeline->stages()[0]->counters.late, 2u);
  h.pipeline->flush(0);
  ASSERT_EQ(h.out.size(), 2u);
  EXPECT_EQ(h.field(h.out.records[0], "count"), 1);
  EXPECT_EQ(h.field(h.out.records[1], "count"), 2);
}

TEST(EdgeWindow, AllowedLatenessKeepsWindowsOpen) {
  Harness h({.name = "p", .stages = {window(1000, {Aggregate::kCount}, 500)}});
  h.reading("d", "m", 5'100, 1);
  h.reading("d", "m", 6'200, 1);  // [5000,6000) stays open until 6500
  h.reading("d", "m", 5'900, 1);  // accepted
  EXPECT_TRUE(h.out.empty());
  h.reading("d", "m", 6'500, 1);  // closes it
  ASSERT_EQ(h.out.size(), 1u);
  EXPECT_EQ(h.field(h.out.records[0], "count"), 2);
  h.reading("d", "m", 5'999, 1);  // now late
  EXPECT_EQ(h.pipeline->stages()[0]->counters.late, 1u);
}

TEST(EdgeWindow, WallTimeClosesIdleWindows) {
  Harness h({.name = "p", .stages = {window(1000, {Aggregate::kCount})}});
  h.reading("d", "m", 5'100, 1, /*wall=*/100'000);
  h.pipeline->tick(100'999);
  EXPECT_TRUE(h.out.empty());
  h.pipeline->tick(101'000);
  ASSERT_EQ(h.out.size(), 1u);
  // A reading for the closed window afterwards is late.
  h.reading("d", "m", 5'500, 1, 101'100);
  EXPECT_EQ(h.pipeline->stages()[0]->counters.late, 1u);
}

TEST(EdgeWindow, ExtremeTimestampsDoNotOverflow) {
  Harness h({.name = "p", .stages = {window(1000, {Aggregate::kCount}, 5000)}});
  h.reading("d", "m", INT64_MAX - 5, 1);
  h.reading("d", "m", INT64_MIN + 5, 1);
  h.reading("d", "m", -1, 1);
  h.pipeline->flush(0);
  EXPECT_EQ(h.out.size(), 1u);  // the other two are late behind the huge watermark
  EXPECT_EQ(h.pipeline->stages()[0]->counters.late, 2u);
  Harness g({.name = "p", .stages = {window(1000, {Aggregate::kCount})}});
  g.reading("d", "m", -1500, 1);
  g.pipeline->flush(0);
  ASSERT_EQ(g.out.size(), 1u);
  EXPECT_EQ(g.out.records[0].ts, -2000);
}

TEST(EdgeWindow, SeriesLimitIsCounted) {
  PipelineSpec spec{.name = "p", .stages = {window(1000, {Aggregate::kCount})}, .max_series = 3};
  Harness h(spec);
  h.reading("a", "m", 0, 1);  // series 0, its group's series 1
  h.reading("b", "m", 0, 1);  // series 2, group series would be 3: refused
  EXPECT_EQ(h.pipeline->stages()[0]->counters.series_limit, 1u);
  EXPECT_EQ(h.pipeline->series().intern("c", "d", "e"), kNoSeries);
}

TEST(EdgeAggregates, MatchDirectComputation) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(1000, 3);
  Accumulator acc;
  std::vector<double> xs;
  for (int i = 0; i < 500; ++i) {
    const double x = noise(rng);
    xs.push_back(x);
    acc.add(x, 1000 + i * 10, true);
  }
  const double n = static_cast<double>(xs.size());
  double mean = 0;
  for (double x : xs) mean += x / n;
  double m2 = 0, m3 = 0, m4 = 0, sq = 0;
  for (double x : xs) {
    m2 += std::pow(x - mean, 2);
    m3 += std::pow(x - mean, 3);
    m4 += std::pow(x - mean, 4);
    sq += x * x;
  }
  EXPECT_NEAR(*acc.value(Aggregate::kMean), mean, 1e-9);
  EXPECT_NEAR(*acc.value(Aggregate::kVariance), m2 / n, 1e-6);
  EXPECT_NEAR(*acc.value(Aggregate::kStddev), std::sqrt(m2 / n), 1e-7);
  EXPECT_NEAR(*acc.value(Aggregate::kSkewness), std::sqrt(n) * m3 / std::pow(m2, 1.5), 1e-6);
  EXPECT_NEAR(*acc.value(Aggregate::kKurtosis), n * m4 / (m2 * m2), 1e-6);
  EXPECT_NEAR(*acc.value(Aggregate::kRms), std::sqrt(sq / n), 1e-9);
  const auto [lo, hi] = std::minmax_element(xs.begin(), xs.end());
  EXPECT_EQ(*acc.value(Aggregate::kPeakToPeak), *hi - *lo);
  EXPECT_NEAR(*acc.value(Aggregate::kCrestFactor),
              std::max(std::fabs(*hi), std::fabs(*lo)) / std::sqrt(sq / n), 1e-9);
  EXPECT_NEAR(*acc.value(Aggregate::kRate), (xs.back() - xs.front()) / 4.99, 1e-9);
  EXPECT_EQ(*acc.value(Aggregate::kFirst), xs.front());
  EXPECT_EQ(*acc.value(Aggregate::kLast), xs.back());
  EXPECT_EQ(*acc.value(Aggregate::kCount), 500);
  // One reading: no spread, no rate.
  Accumulator one;
  one.add(2, 5, true);
  EXPECT_EQ(*one.value(Aggregate::kStddev), 0);
  EXPECT_FALSE(one.value(Aggregate::kKurtosis));
  EXPECT_FALSE(one.value(Aggregate::kRate));
  EXPECT_TRUE(aggregateFromName("crest_factor"));
  EXPECT_FALSE(aggregateFromName("median"));
}

TEST(EdgeRollingMedian, MatchesSortingEveryStep) {
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<int> d(0, 20);  // many ties
  RollingMedian rm(17);
  std::vector<double> all;
  for (int i = 0; i < 400; ++i) {
    const double x = d(rng) * 0.5;
    rm.add(x);
    all.push_back(x);
    std::vector<double> last(all.end() - std::min<size_t>(all.size(), 17), all.end());
    std::sort(last.begin(), last.end());
    const size_t n = last.size();
    const double med = n % 2 ? last[n / 2] : (last[n / 2 - 1] + last[n / 2]) / 2;
    ASSERT_DOUBLE_EQ(rm.median(), med);
    std::vector<double> dev;
    for (double v : last) dev.push_back(std::fabs(v - med));
    std::sort(dev.begin(), dev.end());
    const double mad = n % 2 ? dev[n / 2] : (dev[n / 2 - 1] + dev[n / 2]) / 2;
    ASSERT_DOUBLE_EQ(rm.mad(med), mad) << i;
    ASSERT_EQ(rm.inOrder(), std::vector<double>(all.end() - static_cast<ptrdiff_t>(n), all.end()));
  }
}

DetectSpec detector(std::string field, std::string metric, uint32_t history, double threshold) {
  DetectSpec d;
  d.name = "vib";
  d.field = std::move(field);
  d.metric = std::move(metric);
  d.history = history;
  d.threshold = threshold;
  return d;
}

TEST(EdgeDetect, WarmsUpThenFlagsASpike) {
  Harness h({.name = "p", .stages = {detector("value", "", 50, 6)}});
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(10, 0.5);
  for (int i = 0; i < 200; ++i) h.reading("d", "m", i * 1000, noise(rng));
  EXPECT_TRUE(h.ofKind(RecordKind::kEvent).empty());
  EXPECT_EQ(h.out.size(), 200u);  // every reading passes through
  h.reading("d", "m", 200'000, 30);
  auto events = h.ofKind(RecordKind::kEvent);
  ASSERT_EQ(events.size(), 1u);
  const Record& e = events[0];
  EXPECT_EQ(e.ts, 200'000);
  EXPECT_EQ(e.value, 30);
  EXPECT_EQ(h.text(e, "detector"), "vib");
  EXPECT_EQ(h.text(e, "verdict"), "anomaly");
  EXPECT_GT(h.field(e, "score"), 20);
  EXPECT_NEAR(h.field(e, "baseline"), 10, 0.3);
  EXPECT_NE(h.text(e, "reason").find("value 30 is"), std::string::npos) << h.text(e, "reason");
  EXPECT_NE(h.text(e, "reason").find("above the median"), std::string::npos);
  EXPECT_EQ(h.pipeline->stages()[0]->counters.events, 1u);
}

TEST(EdgeDetect, NoJudgementDuringWarmup) {
  DetectSpec spec = detector("value", "", 100, 3);
  spec.warmup = 10;
  Harness h({.name = "p", .stages = {spec}});
  for (int i = 0; i < 10; ++i) h.reading("d", "m", i, i % 2 ? 1 : 1000);  // wild, but warming up
  EXPECT_TRUE(h.ofKind(RecordKind::kEvent).empty());
}

TEST(EdgeDetect, MetricFilterAndSeriesAreSeparate) {
  Harness h({.name = "p", .stages = {detector("value", "vibration", 20, 6)}});
  for (int i = 0; i < 40; ++i) {
    h.reading("a", "vibration", i, 1 + (i % 3) * 0.01);
    h.reading("b", "vibration", i, 100 + (i % 3) * 0.01);
    h.reading("a", "temperature", i, 20 + (i % 3) * 0.01);
  }
  EXPECT_TRUE(h.ofKind(RecordKind::kEvent).empty());  // each series has its own baseline
  h.reading("a", "temperature", 50, 90);              // not a vibration: not judged
  EXPECT_TRUE(h.ofKind(RecordKind::kEvent).empty());
  h.reading("a", "vibration", 50, 100);
  EXPECT_EQ(h.ofKind(RecordKind::kEvent).size(), 1u);
}

TEST(EdgeDetect, ConstantSeriesStillJudges) {
  Harness h({.name = "p", .stages = {detector("value", "", 20, 6)}});
  for (int i = 0; i < 30; ++i) h.reading("d", "m", i, 5);
  EXPECT_TRUE(h.ofKind(RecordKind::kEvent).empty());
  h.reading("d", "m", 31, 5.5);
  auto events = h.ofKind(RecordKind::kEvent);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(std::isfinite(h.field(events[0], "score")));
  // More than half equal: the mean absolute deviation is the scale, no infinite scores.
  Harness g({.name = "p", .stages = {detector("value", "", 20, 6)}});
  for (int i = 0; i < 30; ++i) g.reading("d", "m", i, i % 4 == 0 ? 6 : 5);
  g.reading("d", "m", 31, 5.2);
  EXPECT_TRUE(g.ofKind(RecordKind::kEvent).empty());
}

TEST(EdgeDetectState, HistoriesSurviveARestart) {
  const PipelineSpec spec{.name = "p", .stages = {FilterSpec{"value > -1000"}, detector("value", "", 50, 6)}};
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(10, 0.5);
  std::string state;
  {
    Harness h(spec);
    EXPECT_TRUE(h.pipeline->hasState());
    for (int i = 0; i < 100; ++i) {
      h.reading("a", "m", i * 1000, noise(rng));
      h.reading("b", "m", i * 1000, 100 + noise(rng));
    }
    state = h.pipeline->saveState();
  }
  // A fresh pipeline judges at once with the restored histories (no warm-up), per series.
  Harness h(spec);
  auto restored = h.pipeline->restoreState(state);
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(*restored, 2u);
  h.reading("a", "m", 100'000, 30);
  h.reading("b", "m", 100'000, 110.2);
  auto events = h.ofKind(RecordKind::kEvent);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(h.pipeline->series().device(events[0].series), "a");
  EXPECT_NEAR(h.field(events[0], "baseline"), 10, 0.3);
  // Values at or before what the state had learned are replays: neither judged nor learned.
  h.reading("a", "m", 99'000, 500);
  EXPECT_EQ(h.ofKind(RecordKind::kEvent).size(), 1u);
  // Saved again, the state is the same size: 50 values a series, no more.
  EXPECT_EQ(h.pipeline->saveState().size(), state.size());
}

TEST(EdgeDetectState, AChangedDetectorStartsAfreshAndAShorterHistoryKeepsTheNewest) {
  std::string state;
  {
    Harness h({.name = "p", .stages = {detector("value", "", 100, 6)}});
    for (int i = 0; i < 100; ++i) h.reading("a", "m", i, i < 80 ? 1000 : 10 + (i % 2) * 0.1);
    state = h.pipeline->saveState();
  }
  {  // history 20: the 20 newest values (around 10) are the baseline
    DetectSpec shorter = detector("value", "", 20, 6);
    shorter.warmup = 20;
    Harness h({.name = "p", .stages = {shorter}});
    ASSERT_EQ(*h.pipeline->restoreState(state), 1u);
    h.reading("a", "m", 200, 10.05);
    EXPECT_TRUE(h.ofKind(RecordKind::kEvent).empty());
    h.reading("a", "m", 201, 1000);
    EXPECT_EQ(h.ofKind(RecordKind::kEvent).size(), 1u);
  }
  {  // another field: another key, nothing restored
    DetectSpec other = detector("value", "vibration", 100, 6);
    Harness h({.name = "p", .stages = {other}});
    EXPECT_EQ(*h.pipeline->restoreState(state), 0u);
  }
}

TEST(EdgeDetectState, ARestartLeavesOutSeriesThatHadNotWarmedUpAHandOverKeepsThem) {
  std::string state;
  {
    Harness h({.name = "p", .stages = {detector("value", "", 50, 6)}});  // warm-up 30
    for (int i = 0; i < 40; ++i) h.reading("warm", "m", i, 10 + (i % 3) * 0.1);
    for (int i = 0; i < 5; ++i) h.reading("cold", "m", i, 10);
    state = h.pipeline->saveState();
  }
  Harness restart({.name = "p", .stages = {detector("value", "", 50, 6)}});
  EXPECT_EQ(*restart.pipeline->restoreState(state, INT64_MAX, /*warmed_only=*/true), 1u);
  EXPECT_EQ(restart.pipeline->series().size(), 1u);
  Harness hand_over({.name = "p", .stages = {detector("value", "", 50, 6)}});
  EXPECT_EQ(*hand_over.pipeline->restoreState(state, INT64_MAX, /*warmed_only=*/false), 2u);
  EXPECT_EQ(hand_over.pipeline->series().size(), 2u);
}

TEST(EdgeDetectState, DamagedStateIsRefusedWhole) {
  Harness h({.name = "p", .stages = {detector("value", "", 10, 6)}});
  for (int i = 0; i < 20; ++i) h.reading("a", "m", i, i);
  const std::string state = h.pipeline->saveState();
  for (size_t cut = 0; cut < state.size(); ++cut) {
    Harness fresh({.name = "p", .stages = {detector("value", "", 10, 6)}});
    auto restored = fresh.pipeline->restoreState(std::string_view(state).substr(0, cut));
    if (cut == 0) {
      EXPECT_TRUE(restored.ok());  // no state at all
      continue;
    }
    EXPECT_FALSE(restored.ok()) << cut;
  }
  Harness fresh({.name = "p", .stages = {detector("value", "", 10, 6)}});
  EXPECT_FALSE(fresh.pipeline->restoreState(state + "x").ok());
  // A pipeline without state saves nothing.
  Harness plain({.name = "p", .stages = {FilterSpec{"value > 0"}}});
  EXPECT_FALSE(plain.pipeline->hasState());
  EXPECT_EQ(plain.pipeline->saveState(), "");
}

TEST(EdgePipeline, FilterWindowDetect) {
  PipelineSpec spec{.name = "pump-health",
                    .stages = {FilterSpec{"value > -1000 and value < 1000"},
                               window(1000, {Aggregate::kCount, Aggregate::kMean, Aggregate::kRms}),
                               detector("rms", "vibration", 120, 6)}};
  Harness h(spec);
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0, 0.1);
  int64_t ts = 0;
  for (int second = 0; second < 60; ++second)
    for (int i = 0; i < 100; ++i, ts += 10) h.reading("pump-1", "vibration", ts, noise(rng));
  h.reading("pump-1", "vibration", ts, 5000);  // filtered out
  EXPECT_EQ(h.pipeline->stages()[0]->counters.filtered, 1u);
  EXPECT_EQ(h.ofKind(RecordKind::kWindow).size(), 59u);
  EXPECT_TRUE(h.ofKind(RecordKind::kEvent).empty());
  // A bearing fault: vibration ten times stronger for one second.
  for (int i = 0; i < 100; ++i, ts += 10) h.reading("pump-1", "vibration", ts, noise(rng) * 10);
  h.reading("pump-1", "vibration", ts + 1000, 0);
  auto events = h.ofKind(RecordKind::kEvent);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].ts, 60'000);
  EXPECT_NE(h.text(events[0], "reason").find("rms "), std::string::npos);
  EXPECT_EQ(h.pipeline->originName(events[0].origin), "pump-health.vib");
  EXPECT_EQ(h.pipeline->originName(h.ofKind(RecordKind::kWindow)[0].origin), "pump-health.stages[1].window");
  EXPECT_EQ(h.pipeline->recordsOut(), h.out.size());
}

TEST(EdgePipeline, BuildErrorsNameTheStage) {
  auto names = standardNames();
  auto err = [&](PipelineSpec spec) {
    auto built = buildPipeline(spec, names);
    return built.ok() ? std::string("built") : built.error().message;
  };
  EXPECT_EQ(err({.name = "p", .stages = {FilterSpec{"valu > 1"}}}),
            "stages[0].filter: 1:1: unknown field 'valu' (did you mean 'value'?)");
  // Aggregates exist only after a window.
  EXPECT_EQ(err({.name = "p", .stages = {FilterSpec{"rms > 1"}}}),
            "stages[0].filter: 1:1: unknown field 'rms'");
  EXPECT_EQ(err({.name = "p", .stages = {window(1000, {Aggregate::kRms}), FilterSpec{"rms > 1"}}}), "built");
  EXPECT_EQ(
      err({.name = "p", .stages = {window(1000, {Aggregate::kMean}), detector("rms", "", 10, 3)}}),
      "stages[1].detect: no number field 'rms' reaches this stage (a window before it makes the aggregates)");
  DetectSpec bad = detector("value", "", 10, 3);
  bad.method = "magic";
  EXPECT_EQ(err({.name = "p", .stages = {bad}}),
            "stages[0].detect: unknown method 'magic' (known: robust_zscore, ewma, seasonal, trend, hst)");
  bad = detector("value", "", 10, 3);
  bad.warmup = 11;
  EXPECT_EQ(err({.name = "p", .stages = {bad}}),
            "stages[0].detect: warmup (11) must not exceed history (10)");
  EXPECT_EQ(err({.name = "p", .stages = {window(0, {Aggregate::kCount})}}),
            "stages[0].window: the window's length must be positive");
  EXPECT_NE(err({.name = "p", .stages = {window(1000, {})}}).find("needs at least one aggregate"),
            std::string::npos);
  EXPECT_EQ(err({.name = "p", .stages = {detector("value", "", 10, 3), detector("value", "", 20, 3)}}),
            "stages[1].detect: another detector of this pipeline is named 'vib'");
  // The detector's fields are visible after it.
  EXPECT_EQ(err({.name = "p",
                 .stages = {detector("value", "", 10, 3), FilterSpec{"score > 3 or kind == 'reading'"}}}),
            "built");
}

}  // namespace
}  // namespace ganglion::edge

namespace ganglion::edge {
namespace {

TEST(EdgeRecordJson, WireFormOfReadingsWindowsAndEvents) {
  PipelineSpec spec{
      .name = "p",
      .stages = {window(1000, {Aggregate::kCount, Aggregate::kMean}), detector("mean", "", 3, 3)}};
  Harness h(spec);
  Batch b;
  Record r;
  r.series = h.pipeline->series().intern("plant", "pump \"1\"", "vibration");
  r.ts = 1500;
  r.value = 0.5;
  r.seq = 42;
  r.origin = h.source;
  b.push(r);
  std::string attrs;
  expr::appendAttr(attrs, "site", "north", false);
  expr::appendAttr(attrs, "line", "3", true);
  expr::appendAttr(attrs, "bad", "x1", true);
  b.addText(h.names->find("attrs"), attrs);
  std::string json;
  appendRecordJson(json, b.records[0], b, *h.pipeline);
  auto v = boost::json::parse(json).as_object();
  EXPECT_EQ(v["id"], "plant-42");
  EXPECT_EQ(v["source"], "plant");
  EXPECT_EQ(v["device"], "pump \"1\"");
  EXPECT_EQ(v["ts"], 1500);
  EXPECT_EQ(v["kind"], "reading");
  EXPECT_EQ(v["value"], 0.5);
  EXPECT_EQ(v["quality"], "good");
  EXPECT_EQ(v["attrs"].as_object()["site"], "north");
  EXPECT_EQ(v["attrs"].as_object()["line"].to_number<double>(), 3.0);
  EXPECT_TRUE(v["attrs"].as_object()["bad"].is_null());

  for (int i = 0; i < 6; ++i)
    h.reading("d", "m", i * 1000, 1 + (i % 2) * 0.01, 0, "plant", Quality::kGood,
              100 + static_cast<uint64_t>(i));
  h.reading("d", "m", 6000, 50);
  h.reading("d", "m", 7000, 1);
  auto windows = h.ofKind(RecordKind::kWindow);
  ASSERT_FALSE(windows.empty());
  json.clear();
  appendRecordJson(json, windows[0], h.out, *h.pipeline);
  auto w = boost::json::parse(json).as_object();
  EXPECT_EQ(w["id"], "p.stages[0].window//d/m/0-100");  // ts, then its oldest reading's number
  EXPECT_TRUE(w["source"].is_null());
  EXPECT_EQ(w["kind"], "window");
  EXPECT_FALSE(w.contains("value"));
  EXPECT_EQ(w["window_ms"].to_number<double>(), 1000.0);
  EXPECT_EQ(w["count"].to_number<double>(), 1.0);
  auto events = h.ofKind(RecordKind::kEvent);
  ASSERT_EQ(events.size(), 1u);
  json.clear();
  appendRecordJson(json, events[0], h.out, *h.pipeline);
  auto e = boost::json::parse(json).as_object();
  EXPECT_EQ(e["id"], "p.vib//d/m/6000");
  EXPECT_EQ(e["kind"], "event");
  // Parts of derived ids are escaped: a device "a/b" with metric "c" and a device "a" with
  // metric "b/c" must not share an id.
  Record x;
  x.kind = RecordKind::kWindow;
  x.ts = 1;
  x.seq = 9;
  x.origin = h.pipeline->origin("o");
  x.series = h.pipeline->series().intern("", "a/b", "c");
  Record y = x;
  y.series = h.pipeline->series().intern("", "a", "b/c");
  std::string id_x, id_y;
  appendRecordId(id_x, x, *h.pipeline);
  appendRecordId(id_y, y, *h.pipeline);
  EXPECT_NE(id_x, id_y);
  EXPECT_EQ(id_x, "o//a%2Fb/c/1-9");
  EXPECT_EQ(id_y, "o//a/b%2Fc/1-9");
  EXPECT_EQ(e["detector"], "vib");
  EXPECT_EQ(e["verdict"], "anomaly");
  EXPECT_EQ(e["value"].to_number<double>(), 50.0);
  EXPECT_GT(e["score"].to_number<double>(), 3);
}

}  // namespace
}  // namespace ganglion::edge
