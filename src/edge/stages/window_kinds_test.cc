// Hopping and session windows, percentiles, and accumulators that merge.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "edge/pipeline.h"
#include "edge/stages/aggregates.h"
#include "edge/test_pipeline.h"

namespace ganglion::edge {
namespace {

using test_support::Harness;

WindowSpec hopping(int64_t size, int64_t hop, int64_t lateness = 0) {
  WindowSpec w;
  w.kind = WindowKind::kHopping;
  w.size_ms = size;
  w.hop_ms = hop;
  w.allowed_lateness_ms = lateness;
  w.aggregates = {Aggregate::kCount, Aggregate::kMean};
  return w;
}

WindowSpec session(int64_t gap, int64_t lateness = 0, int64_t max_length = 0) {
  WindowSpec w;
  w.kind = WindowKind::kSession;
  w.size_ms = gap;
  w.max_length_ms = max_length;
  w.allowed_lateness_ms = lateness;
  w.aggregates = {Aggregate::kCount, Aggregate::kMean};
  return w;
}

struct Window {
  int64_t ts;
  double count;
  double window_ms;
  bool operator==(const Window&) const = default;
};
std::ostream& operator<<(std::ostream& o, const Window& w) {
  return o << "{" << w.ts << ", " << w.count << ", " << w.window_ms << "}";
}

std::vector<Window> windows(const Harness& h) {
  std::vector<Window> out;
  for (const Record& r : h.ofKind(RecordKind::kWindow))
    out.push_back({r.ts, h.field(r, "count"), h.field(r, "window_ms")});
  return out;
}

TEST(EdgeHoppingWindow, AReadingCountsInEveryWindowItFallsIn) {
  Harness h({.name = "p", .stages = {hopping(1000, 500)}});
  for (int64_t ts : {0, 250, 600, 1100, 1600, 2600}) h.reading("a", "x", ts, static_cast<double>(ts));
  EXPECT_EQ(
      windows(h),
      (std::vector<Window>{{-500, 2, 1000}, {0, 3, 1000}, {500, 2, 1000}, {1000, 2, 1000}, {1500, 1, 1000}}));
  h.pipeline->flush(0);
  EXPECT_EQ(windows(h).size(), 7u);
  EXPECT_EQ(windows(h)[5], (Window{2000, 1, 1000}));
  EXPECT_EQ(windows(h)[6], (Window{2500, 1, 1000}));
  EXPECT_DOUBLE_EQ(h.field(h.ofKind(RecordKind::kWindow)[1], "mean"), (0 + 250 + 600) / 3.0);
}

TEST(EdgeHoppingWindow, ALateReadingJoinsOnlyTheWindowsStillOpen) {
  Harness h({.name = "p", .stages = {hopping(1000, 500)}});
  h.reading("a", "x", 0, 0);
  h.reading("a", "x", 2600, 0);  // closes every window ending by 2600
  h.reading("a", "x", 1400, 0);  // its windows [500, 1500) and [1000, 2000) have closed: late
  h.reading("a", "x", 2100, 0);  // [1500, 2500) has closed, [2000, 3000) is open
  EXPECT_EQ(h.pipeline->stages()[0]->counters.late, 1u);
  h.pipeline->flush(0);
  const auto w = windows(h);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[2], (Window{2000, 2, 1000}));
  EXPECT_EQ(w[3], (Window{2500, 1, 1000}));
}

TEST(EdgeSessionWindow, ReadingsLessThanAGapApartShareAWindow) {
  Harness h({.name = "p", .stages = {session(1000)}});
  for (int64_t ts : {0, 500, 900, 3000, 3500}) h.reading("a", "x", ts, 1);
  EXPECT_EQ(windows(h), (std::vector<Window>{{0, 3, 1900}}));  // ends a gap after 900
  h.reading("b", "x", 0, 1);                                   // another group: its own sessions
  h.pipeline->flush(0);
  EXPECT_EQ(windows(h), (std::vector<Window>{{0, 3, 1900}, {3000, 2, 1500}, {0, 1, 1000}}));
}

TEST(EdgeSessionWindow, ALateReadingThatBridgesTwoSessionsMergesThem) {
  Harness h({.name = "p", .stages = {session(1000, 5000)}});
  h.reading("a", "x", 0, 0);
  h.reading("a", "x", 1800, 1800);  // more than a gap later: a second session
  h.reading("a", "x", 900, 900);    // less than a gap from both
  EXPECT_EQ(h.pipeline->stages()[0]->counters.late, 0u);
  h.pipeline->flush(0);
  const auto w = windows(h);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0], (Window{0, 3, 2800}));
  EXPECT_DOUBLE_EQ(h.field(h.ofKind(RecordKind::kWindow)[0], "mean"), 900);
}

TEST(EdgeSessionWindow, ALongSessionIsCutAndLateReadingsAreCounted) {
  Harness h({.name = "p", .stages = {session(1000, 0, 2000)}});
  for (int64_t ts = 0; ts <= 3000; ts += 500) h.reading("a", "x", ts, 1);
  EXPECT_EQ(windows(h), (std::vector<Window>{{0, 4, 2500}}));  // cut at 2000: 0..1500
  h.reading("a", "x", 1200, 1);                                // inside the session that was cut: late
  h.reading("a", "x", 9000, 1);                                // closes the second
  h.reading("a", "x", 5000, 1);                                // a gap and more behind the newest: late
  EXPECT_EQ(h.pipeline->stages()[0]->counters.late, 2u);
  EXPECT_EQ(windows(h), (std::vector<Window>{{0, 4, 2500}, {2000, 3, 2000}}));
}

TEST(EdgeSessionWindow, ReadingsAfterACutStartTheNextSessionNotLate) {
  // A device that never pauses: every reading is counted, in sessions of max_length.
  Harness h({.name = "p", .stages = {session(1000, 0, 2000)}});
  for (int64_t k = 0; k < 24; ++k) h.reading("a", "x", k * 250, 1);
  h.pipeline->flush(0);
  EXPECT_EQ(h.pipeline->stages()[0]->counters.late, 0u);
  double counted = 0;
  for (const Window& w : windows(h)) counted += w.count;
  EXPECT_EQ(counted, 24);
}

TEST(EdgeSessionWindow, AScatterOfSessionsIsBounded) {
  Harness h({.name = "p", .stages = {session(10, 100'000)}});
  h.reading("a", "x", 100'000, 1);
  for (int64_t i = 0; i < 200; ++i) h.reading("a", "x", 1000 + i * 100, 1);  // late, each its own session
  auto* stage = dynamic_cast<WindowStage*>(h.pipeline->stages()[0].get());
  ASSERT_NE(stage, nullptr);
  EXPECT_LE(stage->openWindows(), kMaxOpenSessions);
  EXPECT_EQ(windows(h).size(), 201 - kMaxOpenSessions);
}

TEST(EdgeAggregates, PercentilesInterpolateBetweenRanks) {
  WindowSpec w;
  w.size_ms = 1000;
  w.aggregates = {Aggregate::kP50, Aggregate::kP90, Aggregate::kP95, Aggregate::kP99};
  Harness h({.name = "p", .stages = {w}});
  for (int i = 100; i >= 1; --i) h.reading("a", "x", i, i);  // out of order on purpose
  h.reading("b", "x", 1, 7);                                 // one reading: every percentile is it
  h.pipeline->flush(0);
  const auto recs = h.ofKind(RecordKind::kWindow);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_DOUBLE_EQ(h.field(recs[0], "p50"), 50.5);
  EXPECT_DOUBLE_EQ(h.field(recs[0], "p90"), 90.1);
  EXPECT_DOUBLE_EQ(h.field(recs[0], "p95"), 95.05);
  EXPECT_DOUBLE_EQ(h.field(recs[0], "p99"), 99.01);
  EXPECT_EQ(h.field(recs[1], "p50"), 7);
  EXPECT_EQ(h.field(recs[1], "p99"), 7);
}

TEST(EdgeAggregates, PercentilesOfAHugeWindowComeFromABoundedSample) {
  Accumulator acc;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> uniform(0, 1);
  for (int i = 0; i < 200'000; ++i) {
    const double x = uniform(rng);
    acc.add(x, i, false);
    acc.addSample(x);
  }
  EXPECT_EQ(acc.samples.size(), kMaxSamples);
  acc.sortSamples();
  EXPECT_NEAR(*acc.value(Aggregate::kP50), 0.5, 0.02);
  EXPECT_NEAR(*acc.value(Aggregate::kP90), 0.9, 0.02);
  EXPECT_NEAR(*acc.value(Aggregate::kP99), 0.99, 0.01);
}

TEST(EdgeAggregates, MergedSamplesWeighEachSideByItsReadings) {
  // 100,000 readings of 1 (sampled) and 10,000 of 1000 (kept whole): the median is 1.
  Accumulator a, b;
  for (int i = 0; i < 100'000; ++i) {
    a.add(1, i, false);
    a.addSample(1);
  }
  for (int i = 0; i < 10'000; ++i) {
    b.add(1000, 200'000 + i, false);
    b.addSample(1000);
  }
  a.merge(b, false);
  EXPECT_EQ(a.samples.size(), kMaxSamples);
  a.sortSamples();
  EXPECT_EQ(*a.value(Aggregate::kP50), 1);
  EXPECT_EQ(*a.value(Aggregate::kP95), 1000);  // 1 in 11 readings is 1000
  // The other order gives the same.
  Accumulator c, d;
  for (int i = 0; i < 10'000; ++i) {
    c.add(1000, i, false);
    c.addSample(1000);
  }
  for (int i = 0; i < 100'000; ++i) {
    d.add(1, 20'000 + i, false);
    d.addSample(1);
  }
  c.merge(d, false);
  c.sortSamples();
  EXPECT_EQ(*c.value(Aggregate::kP50), 1);
}

TEST(EdgeAggregates, PercentilesOfHugeValuesDoNotOverflow) {
  Accumulator acc;
  for (double x : {1e308, -1e308}) {
    acc.add(x, 0, false);
    acc.addSample(x);
  }
  acc.sortSamples();
  EXPECT_EQ(*acc.value(Aggregate::kP50), 0);  // -1e308 + 0.5 * (2e308: overflow) would be inf
  EXPECT_DOUBLE_EQ(*acc.value(Aggregate::kP99), 0.98e308);
}

TEST(EdgeAggregates, MomentsOfHugeValuesAreLeftOutNotZero) {
  Accumulator acc;
  for (double x : {1e308, -1e308}) acc.add(x, 0, true);
  EXPECT_EQ(acc.value(Aggregate::kMean), 0.0);  // the sum is finite: the mean is too
  for (Aggregate a : {Aggregate::kStddev, Aggregate::kVariance, Aggregate::kRms, Aggregate::kCrestFactor,
                      Aggregate::kSkewness, Aggregate::kKurtosis})
    EXPECT_FALSE(acc.value(a).has_value()) << aggregateName(a);
  Accumulator big;
  for (double x : {2e154, 3e154, 4e154}) big.add(x, 0, false);
  EXPECT_FALSE(big.value(Aggregate::kCrestFactor).has_value());  // was 0: max / inf
  EXPECT_FALSE(big.value(Aggregate::kRms).has_value());
  EXPECT_NEAR(*big.value(Aggregate::kMean), 3e154, 1e140);
}

TEST(EdgeAggregates, MergingMatchesAddingOneByOne) {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> skewed(1.0, 0.8);
  Accumulator whole, a, b;
  for (int i = 0; i < 3000; ++i) {
    const double x = skewed(rng) * 1000;
    whole.add(x, i, true);
    whole.addSample(x);
    Accumulator& part = i % 3 == 0 ? a : b;  // interleaved: both halves span the same time
    part.add(x, i, true);
    part.addSample(x);
  }
  a.merge(b, true);
  a.sortSamples();
  whole.sortSamples();
  for (size_t k = 0; k < kAggregateCount; ++k) {
    const auto agg = static_cast<Aggregate>(k);
    SCOPED_TRACE(aggregateName(agg));
    const auto want = whole.value(agg), got = a.value(agg);
    ASSERT_EQ(want.has_value(), got.has_value());
    if (want) {
      EXPECT_NEAR(*got, *want, 1e-9 * std::max(1.0, std::fabs(*want)));
    }
  }
  Accumulator empty;
  empty.merge(whole, true);
  EXPECT_EQ(empty.n, whole.n);
}

TEST(EdgeWindow, HoppingBuildErrors) {
  auto names = test_support::standardNames();
  for (int64_t hop : {0, 2000, 10}) {
    auto built = buildPipeline({.name = "p", .stages = {hopping(1000, hop)}}, names);
    EXPECT_FALSE(built.ok()) << hop;
  }
  EXPECT_TRUE(buildPipeline({.name = "p", .stages = {hopping(1000, 1000)}}, names).ok());
}

}  // namespace
}  // namespace ganglion::edge
