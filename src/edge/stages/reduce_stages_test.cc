// map, deadband / change_only, dedup and downsample, each through a built pipeline.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "edge/expr/expr.h"
#include "edge/pipeline.h"
#include "edge/test_pipeline.h"

namespace ganglion::edge {
namespace {

using test_support::Harness;
using test_support::standardNames;

std::vector<double> values(const Harness& h) {
  std::vector<double> v;
  for (const Record& r : h.out.records) v.push_back(r.value);
  return v;
}

std::string attr(const Harness& h, const Record& r, std::string_view key) {
  const std::string attrs = h.text(r, "attrs");
  const expr::Value v = expr::findAttr(attrs, key);
  if (v.type == expr::Type::kNull) return "<none>";
  if (v.type == expr::Type::kNumber) return fmt::format("{}", v.number);
  return std::string(v.view());
}

TEST(EdgeMap, ComputesTheValueRenamesTheMetricAndSetsAttributes) {
  MapSpec m;
  m.when = "metric == 'temp_f'";
  m.value = "(value - 32) / 1.8";
  m.metric = "temperature";
  m.unit = "degC";
  m.set = {{"was", "value"},
           {"hot", "value > 100"},
           {"side", "device == 'a' ? 'east' : 'west'"},
           {"gone", "null"}};
  Harness h({.name = "p", .stages = {m}});
  h.reading("a", "temp_f", 1000, 212);
  h.reading("b", "temp_f", 1000, 50);
  h.reading("a", "flow", 1000, 7);  // `when` is false: unchanged
  ASSERT_EQ(h.out.size(), 3u);
  const Record& a = h.out.records[0];
  EXPECT_DOUBLE_EQ(a.value, 100);
  EXPECT_EQ(h.pipeline->series().metric(a.series), "temperature");
  EXPECT_EQ(h.pipeline->series().device(a.series), "a");
  EXPECT_EQ(attr(h, a, "unit"), "degC");
  EXPECT_EQ(attr(h, a, "was"), "212");  // every expression reads the record as it came in
  EXPECT_EQ(attr(h, a, "hot"), "1");
  EXPECT_EQ(attr(h, a, "side"), "east");
  EXPECT_EQ(attr(h, a, "gone"), "<none>");
  EXPECT_DOUBLE_EQ(h.out.records[1].value, 10);
  EXPECT_EQ(attr(h, h.out.records[1], "hot"), "0");
  EXPECT_EQ(attr(h, h.out.records[1], "side"), "west");
  EXPECT_EQ(h.out.records[2].value, 7);
  EXPECT_EQ(h.pipeline->series().metric(h.out.records[2].series), "flow");
  EXPECT_EQ(h.text(h.out.records[2], "attrs"), "");
}

TEST(EdgeMap, ReplacesExistingAttributesAndKeepsTheOthers) {
  MapSpec m;
  m.unit = "m3/h";
  m.set = {{"line", "attrs.line * 10"}};
  Harness h({.name = "p", .stages = {m}});
  Batch b;
  Record r;
  r.series = h.pipeline->series().intern("plant", "pump-1", "flow");
  r.value = 2;
  b.push(r);
  std::string attrs;
  expr::appendAttr(attrs, "unit", "l/min", false);
  expr::appendAttr(attrs, "site", "north", false);
  expr::appendAttr(attrs, "line", "3", true);
  b.addText(h.names->find("attrs"), attrs);
  b.addNumber(h.names->find("score"), 4.5);  // other fields stay
  h.pipeline->push(b, 0);
  ASSERT_EQ(h.out.size(), 1u);
  const Record& out = h.out.records[0];
  EXPECT_EQ(attr(h, out, "unit"), "m3/h");
  EXPECT_EQ(attr(h, out, "site"), "north");
  EXPECT_EQ(attr(h, out, "line"), "30");
  EXPECT_EQ(h.field(out, "score"), 4.5);
  // One of each key: the old unit and line are gone.
  size_t at = 0, entries = 0;
  expr::AttrEntry e;
  const std::string text = h.text(out, "attrs");
  while (expr::nextAttr(text, at, e)) ++entries;
  EXPECT_EQ(entries, 3u);
}

TEST(EdgeMap, ANonNumberValueLeavesTheRecordWithoutOne) {
  MapSpec m;
  m.value = "value / attrs.divisor";  // no such attribute: null
  Harness h({.name = "p", .stages = {m}});
  h.reading("a", "x", 1, 5);
  ASSERT_EQ(h.out.size(), 1u);
  EXPECT_FALSE(h.out.records[0].hasValue());
  EXPECT_EQ(h.pipeline->stages()[0]->counters.no_value, 1u);
}

TEST(EdgeMap, BuildErrorsNameThePart) {
  auto names = standardNames();
  MapSpec m;
  m.value = "device";
  auto built = buildPipeline({.name = "p", .stages = {m}}, names);
  ASSERT_FALSE(built.ok());
  EXPECT_NE(built.error().message.find("stages[0].map: value: the expression gives a string, not a number"),
            std::string::npos)
      << built.error().message;
  MapSpec bad;
  bad.set = {{"x", "value +"}};
  built = buildPipeline({.name = "p", .stages = {bad}}, names);
  ASSERT_FALSE(built.ok());
  EXPECT_NE(built.error().message.find("stages[0].map: set.x: 1:"), std::string::npos)
      << built.error().message;
  MapSpec twice;
  twice.unit = "degC";
  twice.set = {{"unit", "'degF'"}};
  built = buildPipeline({.name = "p", .stages = {twice}}, names);
  ASSERT_FALSE(built.ok());
  EXPECT_NE(built.error().message.find("unit is given twice"), std::string::npos);
}

TEST(EdgeMap, ARenameIntoAFullSeriesTableIsCountedAndDropped) {
  MapSpec m;
  m.metric = "renamed";
  Harness h({.name = "p", .stages = {m}, .max_series = 2});
  h.reading("a", "x", 1, 1);  // a/x and a/renamed: the table is full, and both are there
  h.reading("a", "x", 2, 2);
  EXPECT_EQ(h.out.size(), 2u);
  EXPECT_EQ(h.pipeline->stages()[0]->counters.series_limit, 0u);
  Harness g({.name = "p", .stages = {m}, .max_series = 1});
  g.reading("a", "x", 1, 1);  // a/x fits, a/renamed does not
  EXPECT_EQ(g.out.size(), 0u);
  EXPECT_EQ(g.pipeline->stages()[0]->counters.series_limit, 1u);
}

TEST(EdgeDeadband, PassesMovesBeyondTheBandQualityChangesAndHeartbeats) {
  Harness h({.name = "p", .stages = {DeadbandSpec{.absolute = 0.5, .heartbeat_ms = 10'000}}});
  h.reading("a", "t", 0, 20.0);                                // first: passes
  h.reading("a", "t", 1000, 20.4);                             // inside the band
  h.reading("a", "t", 2000, 20.5);                             // exactly the band: inside
  h.reading("a", "t", 3000, 20.6);                             // beyond: passes, the new reference
  h.reading("a", "t", 4000, 20.2);                             // 0.4 from 20.6: inside
  h.reading("a", "t", 5000, 20.2, 0, "plant", Quality::kBad);  // quality changed: passes
  h.reading("a", "t", 14'999, 20.2, 0, "plant", Quality::kBad);
  h.reading("a", "t", 15'000, 20.2, 0, "plant", Quality::kBad);  // heartbeat: 10 s since the last passed
  h.reading("b", "t", 4000, 20.2);                               // another series: its own first
  EXPECT_EQ(values(h), (std::vector<double>{20.0, 20.6, 20.2, 20.2, 20.2}));
  EXPECT_EQ(h.pipeline->stages()[0]->counters.suppressed, 4u);
}

TEST(EdgeDeadband, PercentOfTheLastValueAndChangeOnly) {
  Harness h({.name = "p", .stages = {DeadbandSpec{.percent = 10}}});
  for (double v : {100.0, 109.0, 111.0, 101.0, 99.0}) h.reading("a", "t", 0, v);
  EXPECT_EQ(values(h), (std::vector<double>{100.0, 111.0, 99.0}));
  Harness c({.name = "p", .stages = {DeadbandSpec{.change_only = true}}});
  for (double v : {1.0, 1.0, 1.0, 2.0, 2.0, 1.0}) c.reading("a", "t", 0, v);
  EXPECT_EQ(values(c), (std::vector<double>{1.0, 2.0, 1.0}));
  EXPECT_EQ(c.pipeline->stages()[0]->kind(), "change_only");
}

TEST(EdgeDedup, DropsRepeatsOfRecentReadingsPerSeries) {
  Harness h({.name = "p", .stages = {DedupSpec{.remember = 3}}});
  h.reading("a", "t", 1, 10);
  h.reading("a", "t", 1, 10);  // duplicate
  h.reading("a", "t", 1, 11);  // same time, another value: kept
  h.reading("b", "t", 1, 10);  // another series
  h.reading("a", "t", 2, 10);
  h.reading("a", "t", 3, 10);
  h.reading("a", "t", 1, 10);  // (1, 10) has left the 3 remembered: kept
  h.reading("a", "t", 3, -0.0 + 10);
  EXPECT_EQ(values(h), (std::vector<double>{10, 11, 10, 10, 10, 10}));
  EXPECT_EQ(h.pipeline->stages()[0]->counters.duplicates, 2u);
}

TEST(EdgeDedup, WhatItRemembersSurvivesARestart) {
  Harness h({.name = "p", .stages = {DedupSpec{.remember = 4}}});
  for (int i = 0; i < 6; ++i) h.reading("a", "t", i, i);
  const std::string state = h.pipeline->saveState();
  Harness next({.name = "p", .stages = {DedupSpec{.remember = 2}}});  // smaller: keeps the newest
  auto restored = next.pipeline->restoreState(state, 0, true);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(*restored, 1u);
  next.reading("a", "t", 5, 5);  // remembered
  next.reading("a", "t", 4, 4);  // remembered
  next.reading("a", "t", 3, 3);  // beyond the 2 kept
  EXPECT_EQ(values(next), (std::vector<double>{3}));
  // A restart (warmed_only) leaves out series not heard from in the last ten minutes; a
  // reload's hand-over keeps them.
  Harness late({.name = "p", .stages = {DedupSpec{}}});
  EXPECT_EQ(*late.pipeline->restoreState(state, 5 + kDedupRestoreWindowMs + 1, true), 0u);
  EXPECT_EQ(late.pipeline->series().size(), 0u);
  EXPECT_EQ(*late.pipeline->restoreState(state, 5 + kDedupRestoreWindowMs + 1, false), 1u);
  // Damaged state is refused whole.
  Harness bad({.name = "p", .stages = {DedupSpec{}}});
  std::string cut = state.substr(0, state.size() - 5);
  EXPECT_FALSE(bad.pipeline->restoreState(cut, 0, true).ok());
  std::string lying = state;
  lying[lying.size() - 4 * 16 - 4] = '\x7f';  // the count of the series' readings: far too many
  EXPECT_FALSE(bad.pipeline->restoreState(lying, 0, true).ok());
}

TEST(EdgeDownsample, OneReadingPerIntervalOrOneInN) {
  Harness h({.name = "p", .stages = {DownsampleSpec{.every_ms = 1000}}});
  for (int64_t ts : {0, 400, 999, 1000, 1500, 500, 3200, -1, -1000})
    h.reading("a", "t", ts, static_cast<double>(ts));
  h.reading("b", "t", 600, 600);
  // -1 and -1000 lie in intervals before the last passed: dropped.
  EXPECT_EQ(values(h), (std::vector<double>{0, 1000, 3200, 600}));
  Harness n({.name = "p", .stages = {DownsampleSpec{.nth = 3}}});
  for (int i = 0; i < 8; ++i) n.reading("a", "t", i, i);
  EXPECT_EQ(values(n), (std::vector<double>{0, 3, 6}));
  EXPECT_EQ(n.pipeline->stages()[0]->counters.suppressed, 5u);
  // Readings without a value pass and do not count towards n.
  Harness holes({.name = "p", .stages = {DownsampleSpec{.nth = 2}}});
  const double hole = std::nan("");
  for (double v : {1.0, hole, 2.0, hole, 3.0}) holes.reading("a", "t", 0, v);
  ASSERT_EQ(holes.out.size(), 4u);
  EXPECT_EQ(holes.out.records[0].value, 1);
  EXPECT_EQ(holes.out.records[3].value, 3);
  Harness all({.name = "p", .stages = {DownsampleSpec{.nth = 1}}});
  for (int i = 0; i < 3; ++i) all.reading("a", "t", i, i);
  EXPECT_EQ(all.out.size(), 3u);
}

}  // namespace
}  // namespace ganglion::edge
