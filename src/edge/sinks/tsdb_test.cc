#include "edge/sinks/tsdb.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>

namespace ganglion::edge {
namespace {

std::string record(std::string_view id, int64_t ts, std::string_view device, std::string_view metric,
                   std::string_view kind = "reading", double value = 1) {
  return fmt::format(
      R"({{"id":"{}","source":"lab","device":"{}","metric":"{}","ts":{},"kind":"{}","value":{}}})", id,
      device, metric, ts, kind, value);
}

class TsdbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("ganglion-tsdb-{}-{}", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                       ::getpid());
    std::filesystem::remove_all(dir_);
    path_ = (dir_ / "tsdb" / "local.sqlite").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  boost::json::array records(std::string_view query, std::string* next = nullptr) {
    auto q = parseTsdbQuery(query);
    EXPECT_TRUE(q.ok()) << (q ? "" : q.error().message);
    auto body = TsdbStore::query(path_, *q);
    EXPECT_TRUE(body.ok()) << (body ? "" : body.error().message);
    if (!body) return {};
    auto o = boost::json::parse(*body).as_object();
    if (next) *next = o.contains("next_after") ? std::string(o.at("next_after").as_string()) : "";
    EXPECT_EQ(o.at("count").as_int64(), static_cast<int64_t>(o.at("records").as_array().size()));
    return o.at("records").as_array();
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(TsdbTest, StoresOnceAndQueriesBySeriesAndTime) {
  // Nothing written yet: no records, not an error.
  EXPECT_TRUE(records("").empty());
  auto store = TsdbStore::open(path_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  std::string batch = record("lab-1", 1000, "p1", "temp") + "," + record("lab-2", 2000, "p1", "temp") + "," +
                      record("lab-3", 1500, "p2", "temp") + "," +
                      record("w/p1/temp/0", 0, "p1", "temp", "window");
  auto w = (*store)->write(batch);
  ASSERT_TRUE(w.ok()) << w.error().message;
  EXPECT_EQ(w->stored, 4u);
  EXPECT_EQ(w->duplicates, 0u);
  // The same batch again (sent again after a crash): nothing doubles.
  w = (*store)->write(batch + ",{\"ts\":5},[1]");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->stored, 0u);
  EXPECT_EQ(w->duplicates, 4u);
  EXPECT_EQ(w->unusable, 2u);
  EXPECT_EQ(w->unusable_reason, "a record without an id or an integer ts");

  auto all = records("");
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].at("id").as_string(), "w/p1/temp/0");  // oldest first
  EXPECT_EQ(all[3].at("id").as_string(), "lab-2");
  auto p1 = records("device=p1&kind=reading");
  ASSERT_EQ(p1.size(), 2u);
  EXPECT_EQ(p1[0].at("value").as_int64(), 1);
  EXPECT_EQ(records("device=p1&from=1000&to=2000").size(), 1u);  // [from, to)
  EXPECT_EQ(records("order=desc&limit=1")[0].at("id").as_string(), "lab-2");
  EXPECT_TRUE(records("device=p3").empty());
  EXPECT_EQ(records("metric=te%6Dp").size(), 4u);  // decoded

  // Pages: the cursor goes on where the last page ended, even within one ts.
  std::string next;
  auto first = records("limit=3", &next);
  ASSERT_EQ(first.size(), 3u);
  ASSERT_FALSE(next.empty());
  auto rest = records("limit=3&after=" + next, &next);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].at("id").as_string(), "lab-2");
  EXPECT_TRUE(next.empty());

  // Retention: what is older goes.
  auto pruned = (*store)->prune(1500);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 2u);
  EXPECT_EQ(records("").size(), 2u);
}

TEST_F(TsdbTest, BucketsAggregateAFieldPerSeriesAndInterval) {
  auto store = TsdbStore::open(path_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  // Three minutes of p1, one of p2; a window record with `mean`; a record without a value.
  std::string batch = record("b0", 30'000, "p2", "temp", "reading", -4);
  for (int i = 0; i < 6; ++i) {
    batch += ',';
    batch += record(fmt::format("a{}", i), 60'000 * (i / 2) + i, "p1", "temp", "reading", 10 + i);
  }
  batch += R"(,{"id":"w0","device":"p1","metric":"temp","ts":0,"kind":"window","mean":7.5})";
  batch += R"(,{"id":"n0","device":"p1","metric":"temp","ts":1,"kind":"event","value":"high"})";
  batch += ',';
  batch += record("old", -30'000, "p1", "temp", "reading", 3);
  ASSERT_TRUE((*store)->write(batch).ok());
  auto buckets = [&](std::string_view query) {
    auto q = parseTsdbQuery(query);
    EXPECT_TRUE(q.ok()) << (q ? "" : q.error().message);
    auto body = TsdbStore::query(path_, *q);
    EXPECT_TRUE(body.ok()) << (body ? "" : body.error().message);
    auto o = boost::json::parse(*body).as_object();
    EXPECT_EQ(o.at("count").as_int64(), static_cast<int64_t>(o.at("buckets").as_array().size()));
    return o.at("buckets").as_array();
  };
  auto b = buckets("every=1m&kind=reading");
  ASSERT_EQ(b.size(), 5u);
  // Before 1970 too, a bucket starts at a multiple of `every` at or before its records.
  EXPECT_EQ(b[0].at("ts").as_int64(), -60'000);
  EXPECT_EQ(b[1].at("device").as_string(), "p1");
  EXPECT_EQ(b[1].at("ts").as_int64(), 0);
  EXPECT_EQ(b[1].at("count").as_int64(), 2);
  EXPECT_DOUBLE_EQ(b[1].at("mean").to_number<double>(), 10.5);
  EXPECT_DOUBLE_EQ(b[1].at("min").to_number<double>(), 10);
  EXPECT_DOUBLE_EQ(b[1].at("max").to_number<double>(), 11);
  EXPECT_DOUBLE_EQ(b[1].at("sum").to_number<double>(), 21);
  EXPECT_EQ(b[2].at("device").as_string(), "p2");
  EXPECT_DOUBLE_EQ(b[2].at("mean").to_number<double>(), -4);
  EXPECT_EQ(b[4].at("ts").as_int64(), 120'000);
  // The text value of the event is not a number, the window has none: left out.
  auto hours = buckets("every=1h&device=p1");
  ASSERT_EQ(hours.size(), 2u);
  EXPECT_EQ(hours[0].at("count").as_int64(), 1);
  EXPECT_EQ(hours[1].at("count").as_int64(), 6);
  // Another field: the windows' means.
  auto w = buckets("every=1h&field=mean");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_DOUBLE_EQ(w[0].at("mean").to_number<double>(), 7.5);
  EXPECT_EQ(buckets("every=1m&order=desc&limit=1")[0].at("ts").as_int64(), 120'000);
  EXPECT_TRUE(buckets("every=1m&device=nobody").empty());
}

TEST_F(TsdbTest, PastMaxBytesTheOldestReadingsGoFirstAndEventsLast) {
  auto store = TsdbStore::open(path_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  for (int b = 0; b < 20; ++b) {
    std::string batch = record(fmt::format("e{}", b), b * 1000, "p1", "temp", "event");
    for (int i = 0; i < 1000; ++i) {
      batch += ',';
      batch += record(fmt::format("r{}-{}", b, i), b * 1000 + i, "p1", "temp");
    }
    ASSERT_TRUE((*store)->write(batch).ok());
  }
  auto none = (*store)->shrinkTo(1ull << 30);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);
  auto gone = (*store)->shrinkTo(1u << 20);
  ASSERT_TRUE(gone.ok()) << gone.error().message;
  EXPECT_GT(*gone, 5000u);
  EXPECT_LT(*gone, 20'000u);
  auto again = (*store)->shrinkTo(1u << 20);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);  // under the cap now
  // Every event is still there; the readings left are the newest.
  EXPECT_EQ(records("kind=event&limit=100").size(), 20u);
  auto oldest = records("kind=reading&limit=1");
  ASSERT_EQ(oldest.size(), 1u);
  EXPECT_GT(oldest[0].at("ts").as_int64(), 5000);
  EXPECT_EQ(records("kind=reading&order=desc&limit=1")[0].at("id").as_string(), "r19-999");
}

TEST_F(TsdbTest, RetentionPrunesByEventTime) {
  auto store = TsdbStore::open(path_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  std::string batch;
  for (int i = 0; i < 10; ++i) {
    if (i) batch += ',';
    batch += record(fmt::format("r{}", i), i * 1000, "p1", "temp", i % 2 ? "event" : "reading");
  }
  ASSERT_TRUE((*store)->write(batch).ok());
  // Older than 5 s of event time goes, whatever its kind; the boundary stays.
  auto pruned = (*store)->prune(5000);
  ASSERT_TRUE(pruned.ok()) << pruned.error().message;
  EXPECT_EQ(*pruned, 5u);
  auto left = records("limit=100");
  ASSERT_EQ(left.size(), 5u);
  EXPECT_EQ(left[0].at("ts").as_int64(), 5000);
  auto again = (*store)->prune(5000);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
  // A record sent again after its prune is stored again (it is new to the store).
  ASSERT_TRUE((*store)->write(record("r0", 0, "p1", "temp")).ok());
  EXPECT_EQ(records("limit=100").size(), 6u);
}

TEST(TsdbQueryParams, BadParametersAreNamed) {
  auto bad = [](std::string_view q) {
    auto r = parseTsdbQuery(q);
    EXPECT_FALSE(r.ok()) << q;
    if (r.ok()) return std::string();
    EXPECT_EQ(r.error().status, 400);
    EXPECT_EQ(r.error().code, "invalid_parameter");
    return r.error().message;
  };
  EXPECT_EQ(bad("devise=p1"),
            "unknown parameter 'devise' (known: device, metric, source, kind, from, to, limit, order, after, "
            "every, "
            "field)");
  EXPECT_EQ(bad("every=0s"), "every must be a duration from 1ms to 8784h (1m, 1h), got '0s'");
  EXPECT_EQ(bad("every=soon"), "every must be a duration from 1ms to 8784h (1m, 1h), got 'soon'");
  EXPECT_EQ(bad("every=1m&field=a.b"),
            "field must be a record's number member: letters, digits and _ (value, mean)");
  EXPECT_EQ(bad("every=1m&field=x'%29--"),
            "field must be a record's number member: letters, digits and _ (value, mean)");
  EXPECT_EQ(bad("field=mean"), "field goes with every (what buckets aggregate)");
  EXPECT_EQ(bad("every=1m&after=1.2"), "after pages records, not buckets: narrow from and to instead");
  EXPECT_EQ(bad("from=yesterday"), "from must be a time in epoch milliseconds, got 'yesterday'");
  EXPECT_EQ(bad("limit=0"), "limit must be a whole number from 1 to 10000");
  EXPECT_EQ(bad("limit=10001"), "limit must be a whole number from 1 to 10000");
  EXPECT_EQ(bad("order=up"), "order must be asc or desc");
  EXPECT_EQ(bad("after=12"), "after must be the next_after of a previous page");
  EXPECT_EQ(bad("from=5&to=5"), "to must be after from");
  EXPECT_EQ(bad("device=a&device=b"), "device is given twice");
  EXPECT_EQ(bad("limit=1&limit=2"), "limit is given twice");  // the last one was kept silently
  EXPECT_EQ(bad("order=desc&order=asc"), "order is given twice");
  auto q = parseTsdbQuery("device=a%20b&from=-5&to=10&limit=7&order=desc&after=3.4");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q->device, "a b");
  EXPECT_EQ(*q->from, -5);
  EXPECT_EQ(q->limit, 7u);
  EXPECT_TRUE(q->newest_first);
  EXPECT_EQ(q->after->second, 4);
}

}  // namespace
}  // namespace ganglion::edge
