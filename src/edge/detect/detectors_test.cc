// Every detector method on labelled data the test generates (normal noise, spikes, level
// shifts, drifts, daily seasons, rising vibration): detection rates and false alarms per hour
// within the bounds docs/edge.md states ("Detectors on labelled data"). Fixed seeds: the
// figures are reproducible.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "edge/detect/detector.h"

namespace ganglion::edge {
namespace {

constexpr int64_t kStart = 1'764'460'800'000;  // 2025-11-30 00:00 UTC, a Sunday
constexpr int64_t kHour = 3'600'000;

struct Point {
  int64_t ts;
  double x;
  bool anomaly = false;  ///< the label
};

/// Runs `spec`'s detector over `points` (one series); returns the indexes it raised events at.
std::vector<size_t> run(const DetectSpec& spec, const std::vector<Point>& points) {
  auto d = makeDetector(spec);
  EXPECT_NE(d, nullptr);
  std::vector<size_t> events;
  const double threshold = thresholdOf(spec);
  for (size_t i = 0; i < points.size(); ++i) {
    const Judgement j = d->observe(0, points[i].x, points[i].ts);
    if (j.judged && j.score >= threshold) events.push_back(i);
  }
  return events;
}

DetectSpec spec(std::string_view method, uint32_t history = 120) {
  return DetectSpec{.name = "t",
                    .method = std::string(method),
                    .field = "value",
                    .fields = {},
                    .metric = "",
                    .history = history};
}

/// N(mean, 1) every `step_ms` for `hours`.
std::vector<Point> noise(double hours, int64_t step_ms, uint64_t seed, double mean = 10) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(mean, 1);
  std::vector<Point> out;
  for (int64_t t = 0; t < static_cast<int64_t>(hours * kHour); t += step_ms)
    out.push_back({kStart + t, n(rng)});
  return out;
}

double perHour(size_t events, double hours) { return static_cast<double>(events) / hours; }

/// Events at labelled points / labelled points, and events elsewhere (after `from`).
struct Score {
  double detected;
  size_t false_alarms;
};
Score score(const std::vector<Point>& points, const std::vector<size_t>& events, size_t from = 0) {
  std::set<size_t> hit(events.begin(), events.end());
  size_t labelled = 0, found = 0, wrong = 0;
  for (size_t i = from; i < points.size(); ++i) {
    if (points[i].anomaly) {
      ++labelled;
      found += hit.count(i);
    } else {
      wrong += hit.count(i);
    }
  }
  return {labelled ? static_cast<double>(found) / static_cast<double>(labelled) : 1.0, wrong};
}

/// Spikes of `size` standard deviations at every `every`-th point past the warm-up.
void addSpikes(std::vector<Point>& points, size_t every, double size) {
  for (size_t i = 200; i < points.size(); i += every) {
    points[i].x += (i / every) % 2 ? size : -size;
    points[i].anomaly = true;
  }
}

TEST(EdgeDetectors, NormalNoiseRaisesFewFalseAlarms) {
  // 24 hours of N(10, 1) at one reading per 10 s: 8,640 readings.
  const auto points = noise(24, 10'000, 1);
  EXPECT_LE(perHour(run(spec("robust_zscore"), points).size(), 24), 0.5);
  EXPECT_LE(perHour(run(spec("ewma"), points).size(), 24), 1.0);
  EXPECT_LE(perHour(run(spec("seasonal"), points).size(), 24), 0.5);
  DetectSpec trend = spec("trend");
  trend.limit = 14;
  trend.horizon_ms = 48 * kHour;
  EXPECT_EQ(run(trend, points).size(), 0u);  // no trend in noise: never a predicted failure
}

TEST(EdgeDetectors, SpikesAreFound) {
  // 48 hours at one reading per 10 s, a spike of 8 standard deviations every 97 readings,
  // judged on the second day (a seasonal baseline learns each hour on the first).
  auto points = noise(48, 10'000, 2);
  addSpikes(points, 97, 8);
  for (const char* method : {"robust_zscore", "ewma", "seasonal"}) {
    SCOPED_TRACE(method);
    const Score s = score(points, run(spec(method), points), 8640);
    EXPECT_GE(s.detected, std::string(method) == "ewma" ? 0.9 : 0.98);
    // A spike can leave the EWMA statistic out for a reading or two: counted as false alarms.
    EXPECT_LE(perHour(s.false_alarms, 24), std::string(method) == "seasonal" ? 1.0 : 2.0);
  }
}

/// Readings until the first event at or after `from`; SIZE_MAX when none.
size_t delay(const std::vector<size_t>& events, size_t from) {
  for (size_t e : events)
    if (e >= from) return e - from;
  return SIZE_MAX;
}

TEST(EdgeDetectors, LevelShiftsAndDriftsAreFoundByEwmaSooner) {
  // A lasting shift of 1.5 standard deviations: too small for a single reading's score.
  auto shifted = noise(6, 10'000, 3);
  for (size_t i = 1000; i < shifted.size(); ++i) shifted[i].x += 1.5;
  const size_t ewma_shift = delay(run(spec("ewma"), shifted), 1000);
  EXPECT_LE(ewma_shift, 30u);
  EXPECT_GT(delay(run(spec("robust_zscore"), shifted), 1000), ewma_shift);
  // A drift of 0.01 standard deviations per reading.
  auto drifting = noise(6, 10'000, 4);
  for (size_t i = 1000; i < drifting.size(); ++i) drifting[i].x += 0.01 * static_cast<double>(i - 1000);
  const size_t ewma_drift = delay(run(spec("ewma"), drifting), 1000);
  EXPECT_LE(ewma_drift, 250u);
  EXPECT_GT(delay(run(spec("robust_zscore"), drifting), 1000), ewma_drift);
}

TEST(EdgeDetectors, TheSeasonalBaselineKnowsTheHour) {
  // 14 days at one reading per 5 minutes: a daily swing of +-6 (sin) plus N(0, 1) noise.
  // From day 8, one reading per day at 03:00 carries the 15:00 level (normal for the day,
  // wrong for the hour).
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n(0, 1);
  std::vector<Point> points;
  constexpr double kPi = 3.14159265358979;
  for (int64_t t = 0; t < 14 * 24 * kHour; t += 300'000) {
    const double hour = static_cast<double>(t % (24 * kHour)) / kHour;
    Point p{kStart + t, 20 + 6 * std::sin(2 * kPi * (hour - 9) / 24) + n(rng)};
    if (t >= 8 * 24 * kHour && t % (24 * kHour) == 3 * kHour) {
      p.x = 20 + 6 * std::sin(2 * kPi * (15.0 - 9) / 24) + n(rng);
      p.anomaly = true;
    }
    points.push_back(p);
  }
  const size_t from = 8 * 288;
  const Score seasonal = score(points, run(spec("seasonal", 60), points), from);
  EXPECT_GE(seasonal.detected, 0.99);
  EXPECT_LE(perHour(seasonal.false_alarms, 6 * 24), 0.1);
  // A baseline without hours sees the day's swing as normal.
  EXPECT_LE(score(points, run(spec("robust_zscore", 288), points), from).detected, 0.2);
  // Week buckets: seven times the history to learn, the same answer once learned.
  DetectSpec week = spec("seasonal", 30);
  week.season = "week";
  week.warmup = 5;
  std::vector<Point> weeks = points;
  EXPECT_GE(score(weeks, run(week, weeks), from).detected, 0.0);  // runs; only 1 of 2 weeks learned
}

TEST(EdgeDetectors, TrendEstimatesTheTimeToTheLimit) {
  // Vibration rms rising from 2 to 8 over 10 days, noise 0.3, a window every 10 minutes.
  std::mt19937_64 rng(6);
  std::normal_distribution<double> n(0, 0.3);
  DetectSpec trend = spec("trend", 288);  // the last two days
  trend.limit = 8;
  trend.horizon_ms = 48 * kHour;
  auto d = makeDetector(trend);
  const int64_t end = 10 * 24 * kHour;
  int64_t first_event = -1;
  double worst_error = 0;
  for (int64_t t = 0; t <= end; t += 600'000) {
    const double level = 2 + 6 * static_cast<double>(t) / static_cast<double>(end);
    const Judgement j = d->observe(0, level + n(rng), kStart + t);
    if (j.judged && j.score >= thresholdOf(trend) && first_event < 0) first_event = t;
    if (j.rul_s > 0 && t >= 4 * 24 * kHour && t <= end - 12 * kHour) {
      const double truth = static_cast<double>(end - t) / 1000;
      worst_error = std::max(worst_error, std::fabs(j.rul_s - truth) / truth);
    }
  }
  // The first event comes near 48 h before the end (within 12 h) and estimates hold to 25 %.
  ASSERT_GE(first_event, 0);
  EXPECT_NEAR(static_cast<double>(end - first_event) / kHour, 48, 12);
  EXPECT_LE(worst_error, 0.25);
}

/// A pump's window features: flow follows the demand (anywhere from 60 to 140 m3/h from one
/// window to the next) and power follows flow (0.1 kW per m3/h, noise 0.3 kW). Every 53rd reading past the
/// warm-up (from `from`) breaks the relation: power 3 kW off the flow's, inside power's own range.
struct PumpPoint {
  int64_t ts;
  double flow, power;
  bool anomaly = false;
};
std::vector<PumpPoint> pump(double hours, uint64_t seed, size_t from, size_t every) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0, 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<PumpPoint> out;
  for (int64_t t = 0; t < static_cast<int64_t>(hours * kHour); t += 10'000) {
    const double flow = 60 + 80 * u(rng);
    PumpPoint p{kStart + t, flow, 0.1 * flow + 0.3 * n(rng)};
    if (every && out.size() >= from && out.size() % every == 0) {
      const double off = (out.size() / every) % 2 ? 3 : -3;
      if (p.power + off > 7 && p.power + off < 13) {  // inside power's usual range
        p.power += off;
        p.anomaly = true;
      }
    }
    out.push_back(p);
  }
  return out;
}

struct MultiScore {
  double detected;
  double false_alarms_per_hour;
};
MultiScore runPump(const DetectSpec& spec, const std::vector<PumpPoint>& points, size_t from,
                   bool power_only) {
  auto d = makeDetector(spec);
  size_t labelled = 0, found = 0, wrong = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    const double xs[2] = {points[i].flow, points[i].power};
    const Judgement j = power_only ? d->observe(0, xs[1], points[i].ts) : d->observeAll(0, xs, points[i].ts);
    const bool event = j.judged && j.score >= thresholdOf(spec);
    if (i < from) continue;
    if (points[i].anomaly) {
      ++labelled;
      found += event;
    } else {
      wrong += event;
    }
  }
  const double hours = static_cast<double>(points.size() - from) * 10'000 / kHour;
  return {labelled ? static_cast<double>(found) / static_cast<double>(labelled) : 1.0,
          static_cast<double>(wrong) / hours};
}

DetectSpec hst(uint32_t history = 1024) {
  DetectSpec s = spec("hst", history);
  s.fields = {"flow", "power"};
  return s;
}

TEST(EdgeDetectors, HalfSpaceTreesFindABrokenRelation) {
  // 24 hours at one window per 10 s; judged past the warm-up (1,024) and a settling reference.
  const size_t from = 2000;
  const MultiScore quiet = runPump(hst(), pump(24, 11, from, 0), from, false);
  const auto faulty = pump(24, 12, from, 53);
  const MultiScore found = runPump(hst(), faulty, from, false);
  EXPECT_LE(quiet.false_alarms_per_hour, 0.5);
  EXPECT_LE(found.false_alarms_per_hour, 0.5);
  EXPECT_GE(found.detected, 0.85);
  // Power alone is in its usual range: a single-feature detector finds none.
  EXPECT_LE(runPump(spec("robust_zscore"), faulty, from, true).detected, 0.05);
  // And a value outside every range the series showed is found at once.
  auto d = makeDetector(hst());
  const auto normal = pump(3, 13, 0, 0);
  for (const PumpPoint& p : normal) d->observeAll(0, std::array{p.flow, p.power}, p.ts);
  const Judgement far = d->observeAll(0, std::array{250.0, 30.0}, normal.back().ts + 10'000);
  EXPECT_TRUE(far.judged);
  EXPECT_GE(far.score, thresholdOf(hst()));
  std::string reason;
  d->explainAll(std::array<std::string, 2>{"flow", "power"}, std::array{250.0, 30.0}, far, reason);
  EXPECT_NE(reason.find("flow 250, power 30: "), std::string::npos) << reason;
  EXPECT_NE(reason.find("less dense than usual"), std::string::npos) << reason;
  EXPECT_NE(reason.find("set it apart in"), std::string::npos) << reason;
  // At the smallest history a config may ask for too (fewer capped the score near the threshold).
  auto small = makeDetector(hst(kMinHstHistory));
  for (const PumpPoint& p : normal) small->observeAll(0, std::array{p.flow, p.power}, p.ts);
  EXPECT_GE(small->observeAll(0, std::array{250.0, 30.0}, normal.back().ts + 10'000).score,
            thresholdOf(hst()) + 2);
}

TEST(EdgeDetectors, HalfSpaceTreesWarmUpAndSkipWhatTheyCannotJudge) {
  DetectSpec s = hst(32);
  auto d = makeDetector(s);
  for (int i = 0; i < 31; ++i) EXPECT_FALSE(d->observeAll(0, std::array{1.0 * i, 2.0 * i}, i).judged);
  EXPECT_FALSE(d->observeAll(0, std::array{31.0, 62.0}, 31).judged);  // the 32nd builds the reference
  EXPECT_TRUE(d->observeAll(0, std::array{10.0, 20.0}, 32).judged);
  // Not finite, or the wrong number of features: neither judged nor learned.
  EXPECT_FALSE(d->observeAll(0, std::array{std::nan(""), 1.0}, 33).judged);
  EXPECT_FALSE(d->observeAll(0, std::array{HUGE_VAL, 1.0}, 33).judged);
  EXPECT_FALSE(d->observeAll(0, std::array{1.0}, 33).judged);
  // A constant feature: any change is far out, and nothing divides by zero.
  auto c = makeDetector(s);
  for (int i = 0; i < 40; ++i) c->observeAll(0, std::array{5.0, 1.0 * (i % 7)}, i);
  const Judgement j = c->observeAll(0, std::array{6.0, 3.0}, 41);
  EXPECT_TRUE(j.judged);
  EXPECT_TRUE(std::isfinite(j.score));
  EXPECT_GE(j.score, thresholdOf(s));
  // Series are separate: slot 1 warms up on its own.
  EXPECT_FALSE(c->observeAll(1, std::array{5.0, 1.0}, 42).judged);
}

TEST(EdgeDetectors, ValuesAtTheLimitOfADoubleDoNotBreakABaseline) {
  // ±1e308 one after the other overflow a mean or a deviation to inf, then NaN: the series
  // must start afresh and judge the normal values after them as normal, with a finite reason.
  for (std::string_view method : {"robust_zscore", "ewma", "seasonal"}) {
    DetectSpec s = spec(method, 5);
    s.warmup = 3;
    auto d = makeDetector(s);
    const double threshold = thresholdOf(s);
    int64_t ts = kStart;
    for (double x : {1e308, -1e308, 1e308, -1e308}) d->observe(0, x, ts += 100);
    int fired = 0;
    for (int i = 0; i < 30; ++i) {
      const double x = 10 + 0.1 * (i % 5);
      const Judgement j = d->observe(0, x, ts += 100);
      if (i < 10) continue;  // within `history` of the extremes: may still judge against them
      EXPECT_TRUE(std::isfinite(j.baseline) && std::isfinite(j.scale)) << method << " at " << i;
      std::string reason;
      d->explain("value", x, j, reason);
      EXPECT_EQ(reason.find("nan"), std::string::npos) << method << ": " << reason;
      EXPECT_EQ(reason.find("inf"), std::string::npos) << method << ": " << reason;
      if (j.judged && j.score >= threshold) ++fired;
    }
    EXPECT_EQ(fired, 0) << method;
  }
  // hst: extremes in its reference window make the spans inf; it builds the next one on the
  // values after them.
  DetectSpec s = hst(32);
  auto d = makeDetector(s);
  int64_t ts = kStart;
  for (double x : {1e308, -1e308, 1e308, -1e308}) d->observeAll(0, std::array{x, -x}, ts += 100);
  std::mt19937_64 rng(7);
  std::normal_distribution<double> n(10, 1);
  int fired = 0;
  const std::array<std::string, 2> features{"a", "b"};
  for (int i = 0; i < 400; ++i) {
    const double x = n(rng);
    const std::array<double, 2> xs{x, 2 * x + 0.1 * n(rng)};
    const Judgement j = d->observeAll(0, xs, ts += 100);
    if (i < 100) continue;
    std::string reason;
    d->explainAll(features, xs, j, reason);
    EXPECT_EQ(reason.find("nan"), std::string::npos) << reason;
    if (j.judged && j.score >= thresholdOf(s)) ++fired;
  }
  EXPECT_LE(fired, 3);
}

TEST(EdgeDetectors, StateRoundTripsForEveryMethod) {
  auto points = noise(2, 10'000, 7);
  for (const char* method : {"robust_zscore", "ewma", "seasonal", "trend", "hst"}) {
    SCOPED_TRACE(method);
    DetectSpec s = spec(method, std::string(method) == "hst" ? 256 : 120);
    s.limit = 100;
    s.horizon_ms = kHour;
    s.trees = 4;
    s.depth = 6;
    auto a = makeDetector(s);
    for (const Point& p : points) a->observe(0, p.x, p.ts);
    std::string saved;
    a->save(0, saved);
    EXPECT_TRUE(a->worthRestoring(saved));
    auto b = makeDetector(s);
    ASSERT_TRUE(b->restore(0, saved));
    std::string again;
    b->save(0, again);
    EXPECT_EQ(again, saved);
    // Both judge the next value alike.
    const Judgement ja = a->observe(0, 30, points.back().ts + 10'000);
    const Judgement jb = b->observe(0, 30, points.back().ts + 10'000);
    EXPECT_EQ(ja.judged, jb.judged);
    EXPECT_DOUBLE_EQ(ja.score, jb.score);
    EXPECT_FALSE(b->restore(1, saved.substr(0, saved.size() - 1)));
    std::string empty;
    makeDetector(s)->save(0, empty);
    EXPECT_FALSE(a->worthRestoring(empty));
  }
}

}  // namespace
}  // namespace ganglion::edge
