#include "edge/ingest_log.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

namespace ganglion::edge {
namespace {

namespace fs = std::filesystem;

fs::path freshDir(std::string_view name) {
  fs::path dir = fs::temp_directory_path() / fmt::format("ganglion-ingest-{}-{}", ::getpid(), name);
  fs::remove_all(dir);
  return dir;
}

IncomingReadings readings(uint64_t first_seq, int n) {
  IncomingReadings in;
  in.connector = "plant";
  in.first_seq = first_seq;
  for (int i = 0; i < n; ++i) {
    DecodedReading r;
    r.device = "pump-1";
    r.metric = "vibration";
    r.ts = 1'764'460'800'000 + i;
    r.value = i * 0.5;
    in.add(r);
  }
  return in;
}

bool waitFor(const std::shared_ptr<DeliveryTicket>& ticket) {
  std::promise<bool> done;
  ticket->onDone([&](bool ok) { done.set_value(ok); });
  return done.get_future().get();
}

TEST(IngestLog, ReplaysWhatWasNotTrimmedWithItsRecordNumbers) {
  const fs::path dir = freshDir("replay");
  {
    auto log = IngestLog::open(dir);
    ASSERT_TRUE(log.ok());
    auto ticket = std::make_shared<DeliveryTicket>(1);
    auto first = (*log)->append(readings(100, 3), ticket);
    ASSERT_TRUE(first.has_value());
    (*log)->append(readings(103, 2), ticket = std::make_shared<DeliveryTicket>(1));
    EXPECT_TRUE(waitFor(ticket));
    (*log)->trim(*first, 1, 105);  // the first frame is done with
    // The syncer's callback holds the log a moment after the ticket completes; its lock on
    // the directory goes with the last reference.
    std::weak_ptr<IngestLog> gone = *log;
    log->reset();
    while (!gone.expired()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto log = IngestLog::open(dir);
  ASSERT_TRUE(log.ok());
  uint64_t max_seq = 0;
  auto entries = (*log)->replay(max_seq);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].readings->first_seq, 103u);
  ASSERT_EQ(entries[0].readings->items.size(), 2u);
  EXPECT_EQ(entries[0].readings->items[1].value, 0.5);
  EXPECT_EQ(max_seq, 105u);  // the stored next number counts too
  fs::remove_all(dir);
}

TEST(IngestLog, CountsTheTimeSendersWaitOnASlowDisk) {
  const fs::path dir = freshDir("stall");
  // A syncer that gathers for 300 ms stands in for a disk whose fsync takes that long.
  LogSyncer slow(std::chrono::milliseconds(300));
  auto log = IngestLog::open(dir, &slow);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ((*log)->stalledMs(), 0);
  auto ticket = std::make_shared<DeliveryTicket>(1);
  (*log)->append(readings(1, 1), ticket);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  const int64_t during = (*log)->stalledMs();  // the sync in progress counts already
  EXPECT_GE(during, 150 - IngestLog::kStallGraceMs - 10);
  EXPECT_TRUE(waitFor(ticket));
  const int64_t after = (*log)->stalledMs();
  EXPECT_GE(after, 300 - IngestLog::kStallGraceMs);
  EXPECT_LT(after, 2000);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ((*log)->stalledMs(), after);  // nothing waits: the clock runs again
  log->reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ganglion::edge
