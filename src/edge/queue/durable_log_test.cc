#include "edge/queue/durable_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>

#include "edge/queue/log_syncer.h"
#include "edge/queue/record_queue.h"

namespace ganglion::edge {
namespace {

namespace fs = std::filesystem;

class DurableLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("ganglion-log-{}-{}", ::getpid(), ::testing::UnitTest::GetInstance()->random_seed());
    dir_ /= ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_.parent_path()); }

  std::unique_ptr<DurableLog> open(uint64_t segment_bytes = 4096) {
    auto log = DurableLog::open(dir_, segment_bytes);
    EXPECT_TRUE(log.ok()) << (log.ok() ? "" : log.error().message);
    return log.ok() ? std::move(*log) : nullptr;
  }

  static std::vector<std::string> readAll(DurableLog& log, LogPosition from,
                                          std::vector<uint8_t>* tags = nullptr) {
    std::vector<std::string> out;
    std::vector<LogFrame> frames;
    while (true) {
      frames.clear();
      log.read(from, 100, 1 << 20, frames);
      if (frames.empty()) break;
      for (auto& f : frames) {
        out.push_back(f.payload);
        if (tags) tags->push_back(f.tag);
      }
    }
    return out;
  }

  /// Every damage note of `log`, joined.
  static std::string allNotes(const DurableLog& log) {
    return fmt::format("{}", fmt::join(log.damageNotes(), "; "));
  }

  std::vector<fs::path> segments() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().extension() == ".seg" && e.is_regular_file()) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }

  /// A file size limit at which the newest segment cannot grow by a byte (a full disk).
  rlim_t fullAt() const {
    const auto s = segments();
    return s.empty() ? 0 : static_cast<rlim_t>(fs::file_size(s.back()));
  }

  fs::path dir_;
};

TEST_F(DurableLogTest, BatchSpansSegmentsInOrder) {
  std::vector<std::string> want;
  {
    auto log = open(4096);
    ASSERT_TRUE(log);
    FrameBatch batch;
    for (int i = 0; i < 500; ++i) {
      const std::string head = fmt::format("h{}:", i);
      const std::string body = fmt::format("body-{:04}", i);
      ASSERT_TRUE(batch.add(static_cast<uint8_t>(i % 3), head, body));
      want.push_back(head + body);
    }
    EXPECT_EQ(log->append(batch), 500u);
    EXPECT_EQ(log->frames(), 500u);
    EXPECT_GT(segments().size(), 3u);  // ~20 bytes a frame: 4 KiB segments roll over
    EXPECT_EQ(readAll(*log, log->cursor()), want);
    // Each segment but the newest stopped where a single append would have stopped it.
    for (const auto& seg : segments()) EXPECT_LT(fs::file_size(seg), 4096u + 64u) << seg;
  }
  auto log = open(4096);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->frames(), 500u);
  std::vector<uint8_t> tags;
  EXPECT_EQ(readAll(*log, log->cursor(), &tags), want);
  for (size_t i = 0; i < tags.size(); ++i) EXPECT_EQ(tags[i], i % 3);
  EXPECT_EQ(log->corruptBytes(), 0u);
}

TEST_F(DurableLogTest, BatchCutShortByTheDiskKeepsAPrefix) {
  auto log = open(1 << 20);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->append(0, "before").ok());
  // The file size limit stands in for a full disk: write(2) fails with EFBIG past it.
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 2000;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  FrameBatch batch;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(batch.add(0, fmt::format("record-{:03}", i)));
  const size_t written = log->append(batch);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(written, 0u);  // one write for the segment: refused whole, nothing half-written
  EXPECT_NE(log->lastError().find("cannot write"), std::string::npos) << log->lastError();
  EXPECT_EQ(log->frames(), 1u);
  ASSERT_TRUE(log->append(0, "after").ok());
  EXPECT_EQ(readAll(*log, log->cursor()), (std::vector<std::string>{"before", "after"}));
  log.reset();
  log = open(1 << 20);
  EXPECT_EQ(readAll(*log, log->cursor()), (std::vector<std::string>{"before", "after"}));
  EXPECT_EQ(log->corruptBytes(), 0u);
}

TEST_F(DurableLogTest, MissingSegmentsAndADamagedCursorAreSaid) {
  {
    auto log = open(4096);
    ASSERT_TRUE(log);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(log->append(0, fmt::format("record-{:04}", i)).ok());
    EXPECT_EQ(log->corruption(), "");
  }
  auto segs = segments();
  ASSERT_GT(segs.size(), 4u);
  fs::remove(segs[2]);  // a middle one
  {
    auto log = open(4096);
    ASSERT_TRUE(log);
    EXPECT_NE(log->corruption().find("missing: its records are lost"), std::string::npos)
        << log->corruption();
    EXPECT_NE(log->corruption().find(segs[2].filename().string()), std::string::npos) << log->corruption();
  }
  fs::remove(segs[3]);
  fs::remove(segs[4]);
  {
    auto log = open(4096);
    ASSERT_TRUE(log);
    EXPECT_NE(log->corruption().find("are missing"), std::string::npos) << log->corruption();
    // Consumed into the second segment, which then goes: the cursor's segment is missing.
    std::vector<LogFrame> frames;
    LogPosition at = log->cursor();
    log->read(at, 5, 1 << 20, frames);
    log->consume(at, frames.size());
  }
  {
    std::ofstream(dir_ / "cursor", std::ios::binary | std::ios::trunc)
        << "scribbled over, not a cursor at all....";
    auto log = open(4096);
    ASSERT_TRUE(log);
    EXPECT_NE(allNotes(*log).find("the cursor is damaged"), std::string::npos) << allNotes(*log);
    EXPECT_GT(log->corruptBytes(), 0u);
  }
  fs::remove(dir_ / "cursor");
  auto log = open(4096);
  ASSERT_TRUE(log);
  EXPECT_NE(allNotes(*log).find("the cursor is missing"), std::string::npos) << allNotes(*log);
}

TEST_F(DurableLogTest, AFlippedHeaderByteKeepsTheFramesAndStrayNamesMakeNoGap) {
  std::vector<std::string> all;
  {
    auto log = open(4096);
    ASSERT_TRUE(log);
    for (int i = 0; i < 1000; ++i) {
      all.push_back(fmt::format("record-{:04}", i));
      ASSERT_TRUE(log->append(0, all.back()).ok());
    }
  }
  auto segs = segments();
  ASSERT_GT(segs.size(), 4u);
  const std::string last_name = segs.back().filename().string();
  {
    // One flipped byte in a middle segment's header, another in its id.
    std::fstream f(segs[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3);
    f.put('\xff');
    f.seekp(9);
    f.put('\x7f');
  }
  // A directory, and a file of garbage, named like segments far past the newest; a middle
  // file of garbage where a segment's id is free would be is not a gap either.
  fs::create_directories(dir_ / "00000000000000099999.seg" / "inside");
  std::ofstream(dir_ / "00000000000000088888.seg", std::ios::binary) << std::string(100, 'x');
  {
    auto log = open(4096);
    ASSERT_TRUE(log);
    const std::string notes = allNotes(*log);
    EXPECT_EQ(readAll(*log, log->cursor()), all) << notes;
    EXPECT_NE(notes.find(segs[1].filename().string() + ": its header was damaged (written again)"),
              std::string::npos)
        << notes;
    EXPECT_NE(notes.find("00000000000000099999.seg: not a file"), std::string::npos) << notes;
    EXPECT_NE(notes.find("00000000000000088888.seg: 100 damaged bytes"), std::string::npos) << notes;
    EXPECT_EQ(notes.find("missing"), std::string::npos) << notes;
    EXPECT_EQ(log->corruptBytes(), 16u + 100u);
    // Writing goes on after the newest real segment, not after the stray names.
    ASSERT_TRUE(log->append(0, "after").ok());
    EXPECT_EQ(segments().back().filename().string(), last_name);
  }
  EXPECT_TRUE(fs::is_directory(dir_ / "00000000000000099999.seg" / "inside"));  // not ours: left alone
  fs::remove_all(dir_ / "00000000000000099999.seg");
  all.push_back("after");
  auto log = open(4096);
  ASSERT_TRUE(log);
  EXPECT_EQ(allNotes(*log), "");  // the header was written again
  EXPECT_EQ(readAll(*log, log->cursor()), all);
}

TEST_F(DurableLogTest, TheCursorsSegmentGoneIsSaid) {
  {
    auto log = open(4096);
    ASSERT_TRUE(log);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(log->append(0, fmt::format("record-{:04}", i)).ok());
    std::vector<LogFrame> frames;
    LogPosition at = log->cursor();
    log->read(at, 5, 1 << 20, frames);
    log->consume(at, frames.size());
  }
  fs::remove(segments()[0]);  // the one the cursor points into
  auto log = open(4096);
  ASSERT_TRUE(log);
  EXPECT_NE(log->corruption().find("missing (the cursor was in it)"), std::string::npos) << log->corruption();
}

TEST_F(DurableLogTest, AFreshLogSaysNothing) {
  {
    auto log = open(4096);
    ASSERT_TRUE(log);
    EXPECT_EQ(log->corruption(), "");
    ASSERT_TRUE(log->append(0, "one").ok());
  }
  auto log = open(4096);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->corruption(), "");  // nothing consumed yet: an empty cursor is no damage
  EXPECT_EQ(log->corruptBytes(), 0u);
}

TEST(FrameBatch, RefusesAPayloadOverTheLimit) {
  FrameBatch batch;
  const std::string big(DurableLog::kMaxPayload, 'x');
  EXPECT_TRUE(batch.add(0, big));
  EXPECT_FALSE(batch.add(0, big, "y"));
  EXPECT_EQ(batch.size(), 1u);
}

TEST(Crc32c, KnownValues) {
  // RFC 3720 B.4 test vectors and the common check value.
  EXPECT_EQ(crc32c(0, "123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(0, std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(0, std::string(32, '\xff')), 0x62A8AB43u);
  // Continuing over pieces is the same as over the whole.
  EXPECT_EQ(crc32c(crc32c(0, "1234"), "56789"), 0xE3069283u);
}

TEST_F(DurableLogTest, AppendsReadsBackInOrderAcrossSegmentsAndReopen) {
  {
    auto log = open();
    for (int i = 0; i < 500; ++i)
      ASSERT_TRUE(log->append(static_cast<uint8_t>(i % 3), fmt::format("record-{}", i)).ok());
    EXPECT_EQ(log->frames(), 500u);
    EXPECT_GT(segments().size(), 2u);  // 4 KiB segments
    auto all = readAll(*log, log->cursor());
    ASSERT_EQ(all.size(), 500u);
    for (int i = 0; i < 500; ++i) EXPECT_EQ(all[i], fmt::format("record-{}", i));
  }
  auto log = open();
  EXPECT_EQ(log->frames(), 500u);
  std::vector<uint8_t> tags;
  auto all = readAll(*log, log->cursor(), &tags);
  ASSERT_EQ(all.size(), 500u);
  EXPECT_EQ(all[499], "record-499");
  EXPECT_EQ(tags[4], 1);
  EXPECT_EQ(log->corruptBytes(), 0u);
  // Appends after a reopen follow on.
  ASSERT_TRUE(log->append(0, "after").ok());
  EXPECT_EQ(readAll(*log, log->cursor()).back(), "after");
}

TEST_F(DurableLogTest, ConsumeMovesTheCursorRemovesSegmentsAndSurvivesReopen) {
  {
    auto log = open();
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(log->append(0, fmt::format("r{}", i)).ok());
    const size_t before = segments().size();
    LogPosition at = log->cursor();
    std::vector<LogFrame> frames;
    log->read(at, 550, 1 << 20, frames);
    ASSERT_EQ(frames.size(), 550u);
    log->consume(at, 550, 42);
    EXPECT_EQ(log->frames(), 50u);
    EXPECT_LT(segments().size(), before);
  }
  auto log = open();
  EXPECT_EQ(log->value(), 42u);
  EXPECT_EQ(log->frames(), 50u);
  auto rest = readAll(*log, log->cursor());
  ASSERT_EQ(rest.size(), 50u);
  EXPECT_EQ(rest.front(), "r550");
}

TEST_F(DurableLogTest, TornTailIsCutWithoutCountingDamage) {
  {
    auto log = open(1 << 20);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(log->append(0, fmt::format("whole-{}", i)).ok());
  }
  // Half a frame at the end, as a kill -9 in the middle of a write leaves it.
  const fs::path seg = segments().back();
  const auto size = fs::file_size(seg);
  {
    std::ofstream f(seg, std::ios::app | std::ios::binary);
    const char partial[] = {0x4A, 0x6E, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x01};
    f.write(partial, sizeof partial);
  }
  auto log = open(1 << 20);
  EXPECT_EQ(log->frames(), 10u);
  EXPECT_EQ(log->corruptBytes(), 0u);
  EXPECT_EQ(fs::file_size(seg), size);
  ASSERT_TRUE(log->append(0, "next").ok());
  auto all = readAll(*log, log->cursor());
  ASSERT_EQ(all.size(), 11u);
  EXPECT_EQ(all.back(), "next");
}

TEST_F(DurableLogTest, DamagedFrameIsSkippedAndReportedTheRestIsRead) {
  {
    auto log = open();
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(log->append(0, fmt::format("payload-{:04}", i)).ok());
  }
  // Flip bytes in the middle of the first (sealed) segment.
  const fs::path first = segments().front();
  {
    std::fstream f(first, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.write("\xde\xad\xbe\xef", 4);
  }
  auto log = open();
  EXPECT_GT(log->corruptBytes(), 0u);
  EXPECT_NE(log->corruption().find(first.filename().string()), std::string::npos) << log->corruption();
  auto all = readAll(*log, log->cursor());
  EXPECT_GE(all.size(), 198u);  // one frame (or two, if the bytes straddle) is lost
  EXPECT_LT(all.size(), 200u);
  EXPECT_EQ(all.back(), "payload-0199");
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1], all[i]);  // in order, none twice
}

TEST_F(DurableLogTest, AMiddleSegmentCutShortSaysItsRecordsAreLostNotAFewBytes) {
  {
    auto log = open(4096);
    for (int i = 0; i < 400; ++i) ASSERT_TRUE(log->append(0, fmt::format("payload-{:04}", i)).ok());
  }
  const auto segs = segments();
  ASSERT_GE(segs.size(), 3u);
  // Cut the second (closed) segment inside a frame, about half of it gone.
  const uint64_t size = fs::file_size(segs[1]);
  fs::resize_file(segs[1], size / 2 + 5);
  auto log = open(4096);
  const std::string& said = log->corruption();
  EXPECT_NE(said.find(segs[1].filename().string()), std::string::npos) << said;
  EXPECT_NE(said.find("cut short at " + std::to_string(size / 2 + 5) + " bytes"), std::string::npos) << said;
  EXPECT_NE(said.find("the records written after it are lost"), std::string::npos) << said;
  // Frames are 24 bytes here: about half a segment's worth is lost, said as a count.
  const auto about = said.find("(about ");
  ASSERT_NE(about, std::string::npos) << said;
  const int records = std::stoi(said.substr(about + 7));
  const int lost = 400 - static_cast<int>(readAll(*log, log->cursor()).size());
  EXPECT_GE(records, lost - 2) << said;
  EXPECT_LE(records, lost + 2) << said;
  // One note: the torn frame's own "damaged bytes" note is replaced by this one.
  EXPECT_EQ(log->damageNotes().size(), 1u);
}

TEST_F(DurableLogTest, EachDamagedSegmentIsNotedNotOnlyTheLast) {
  {
    auto log = open(4096);
    for (int i = 0; i < 400; ++i) ASSERT_TRUE(log->append(0, fmt::format("payload-{:04}", i)).ok());
  }
  const auto segs = segments();
  ASSERT_GE(segs.size(), 3u);
  for (int k : {0, 1}) {
    std::fstream f(segs[k], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.write("\xde\xad\xbe\xef", 4);
  }
  auto log = open(4096);
  const auto& notes = log->damageNotes();
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find(segs[0].filename().string()), std::string::npos) << notes[0];
  EXPECT_NE(notes[1].find(segs[1].filename().string()), std::string::npos) << notes[1];
  EXPECT_EQ(log->corruption(), notes[1]);
}

TEST_F(DurableLogTest, DamageFoundWhileReadingIsSkippedToo) {
  auto log = open(1 << 20);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(log->append(0, fmt::format("p{:03}", i)).ok());
  {
    std::fstream f(segments().front(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(DurableLog::kSegmentHeader + 5 * (DurableLog::kFrameHeader + 4) + 8);  // frame 5's CRC
    f.write("\x00\x00\x00\x00", 4);
  }
  auto all = readAll(*log, log->cursor());
  ASSERT_EQ(all.size(), 99u);
  EXPECT_EQ(all[4], "p004");
  EXPECT_EQ(all[5], "p006");
  EXPECT_EQ(log->corruptBytes(), DurableLog::kFrameHeader + 4);
}

TEST_F(DurableLogTest, ForeignOrHeaderlessSegmentIsReportedAndRemoved) {
  {
    auto log = open();
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(log->append(0, fmt::format("x{}", i)).ok());
  }
  const auto segs = segments();
  ASSERT_GE(segs.size(), 2u);
  {
    std::ofstream f(segs.front(), std::ios::trunc | std::ios::binary);
    f << "not a segment at all";
  }
  auto log = open();
  EXPECT_GT(log->corruptBytes(), 0u);
  auto all = readAll(*log, log->cursor());
  EXPECT_FALSE(all.empty());
  EXPECT_EQ(all.back(), "x599");
  EXPECT_EQ(log->frames(), all.size());
}

TEST_F(DurableLogTest, AnEmptySegmentBeforeTheNewestIsReported) {
  {
    auto log = open();
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(log->append(0, fmt::format("x{}", i)).ok());
  }
  const auto segs = segments();
  ASSERT_GE(segs.size(), 2u);
  fs::resize_file(segs.front(), 0);
  auto log = open();
  EXPECT_NE(log->corruption().find("empty (not the newest segment), removed"), std::string::npos)
      << log->corruption();
  EXPECT_FALSE(fs::exists(segs.front()));
  auto all = readAll(*log, log->cursor());
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.back(), "x599");
}

TEST_F(DurableLogTest, AFileNamedLikeASegmentWithNoValidIdIsReportedAndRemoved) {
  {
    auto log = open();
    ASSERT_TRUE(log->append(0, "kept").ok());
  }
  // 20 nines overflow a 64-bit id; the parse once wrapped and looked for another file.
  for (const char* junk : {"99999999999999999999.seg", "0000000000000000000x.seg", "1.seg"}) {
    std::ofstream f(dir_ / junk, std::ios::binary);
    f << "junk bytes";
  }
  auto log = open();
  EXPECT_EQ(log->corruptBytes(), 30u);
  EXPECT_NE(log->corruption().find("not a segment of this log"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "99999999999999999999.seg"));
  EXPECT_FALSE(fs::exists(dir_ / "1.seg"));
  EXPECT_EQ(readAll(*log, log->cursor()), std::vector<std::string>{"kept"});
}

TEST_F(DurableLogTest, ASecondOpenerOfTheDirectoryIsRefusedWhileTheFirstHoldsIt) {
  auto first = open();
  ASSERT_TRUE(first);
  auto second = DurableLog::open(dir_, 4096);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("is in use"), std::string::npos) << second.error().message;
  first.reset();
  EXPECT_TRUE(DurableLog::open(dir_, 4096).ok());  // released with the log
}

TEST_F(DurableLogTest, ASegmentLargerThanAnyTheLogWritesIsCutNotReadWhole) {
  {
    auto log = open();
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(log->append(0, fmt::format("r{:03}", i)).ok());
  }
  const auto segs = segments();
  ASSERT_GE(segs.size(), 3u);
  // A sparse file of 4 GiB in the middle (a disk fault, a careless truncate -s).
  const auto size = fs::file_size(segs[1]);
  fs::resize_file(segs[1], 4ull << 30);
  auto log = open();
  EXPECT_EQ(log->corruptBytes(), (4ull << 30) - size);
  EXPECT_EQ(fs::file_size(segs[1]), size);  // cut after its last frame
  EXPECT_LT(log->diskBytes(), 1u << 20);    // the rest does not count against the cap
  auto all = readAll(*log, log->cursor());
  ASSERT_EQ(all.size(), 600u);  // none of its records lost
  EXPECT_EQ(all.front(), "r000");
  EXPECT_EQ(all.back(), "r599");
}

TEST_F(DurableLogTest, DamageIsCountedOnceWhenReadAgain) {
  {
    auto log = open();
    for (int i = 0; i < 600; ++i) ASSERT_TRUE(log->append(0, fmt::format("payload-{:04}", i)).ok());
  }
  {
    std::fstream f(segments().front(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.write("\xde\xad\xbe\xef", 4);
  }
  auto log = open();
  const uint64_t at_open = log->corruptBytes();
  ASSERT_GT(at_open, 0u);
  readAll(*log, log->cursor());  // delivery reads the damaged segment again
  readAll(*log, log->cursor());
  EXPECT_EQ(log->corruptBytes(), at_open);
}

TEST_F(DurableLogTest, ShedDropsLowTagsFirstKeepsOrderAndNeverTheActiveSegment) {
  auto log = open(2048);
  // Readings (tag 0) with an event (tag 2) every 10th record.
  for (int i = 0; i < 400; ++i)
    ASSERT_TRUE(log->append(i % 10 == 0 ? 2 : 0, fmt::format("rec-{:04}", i)).ok());
  const uint64_t before = log->frames();
  uint64_t dropped = 0;
  while (const uint64_t n = log->shed(1, LogPosition{})) dropped += n;
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(log->frames(), before - dropped);
  std::vector<uint8_t> tags;
  auto all = readAll(*log, log->cursor(), &tags);
  EXPECT_EQ(all.size(), log->frames());
  // Every event is still there, in order; readings remain only in the segment being written.
  size_t events = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (tags[i] == 2) ++events;
    if (i) {
      EXPECT_LT(all[i - 1], all[i]);
    }
  }
  EXPECT_EQ(events, 40u);
  // Shedding everything below tag 3 drops events too, oldest first; the segment being
  // written stays.
  while (log->shed(3, LogPosition{})) {
  }
  auto rest = readAll(*log, log->cursor());
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back(), "rec-0399");
  // Reopen: the counts match what is there.
  log.reset();
  log = open(2048);
  EXPECT_EQ(log->frames(), rest.size());
}

TEST_F(DurableLogTest, ShedKeepsTheSegmentBeingRead) {
  auto log = open(2048);
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(log->append(0, fmt::format("rec-{:04}", i)).ok());
  LogPosition reading = log->cursor();
  std::vector<LogFrame> frames;
  log->read(reading, 10, 1 << 20, frames);
  while (log->shed(1, frames.back().at)) {
  }
  auto all = readAll(*log, log->cursor());
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front(), "rec-0000");  // the segment in flight is whole
}

TEST_F(DurableLogTest, ShedOfTheCursorSegmentCountsOnlyUnconsumedFrames) {
  auto log = open(2048);
  for (int i = 0; i < 600; ++i) ASSERT_TRUE(log->append(i == 5 ? 2 : 0, fmt::format("rec-{:04}", i)).ok());
  LogPosition at = log->cursor();
  std::vector<LogFrame> frames;
  log->read(at, 3, 1 << 20, frames);
  log->consume(at, 3);
  const uint64_t before = log->frames();
  const uint64_t dropped = log->shed(1, LogPosition{});
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(log->frames(), before - dropped);
  auto all = readAll(*log, log->cursor());
  EXPECT_EQ(all.size(), log->frames());
  EXPECT_EQ(all.front(), "rec-0005");  // the event survived, consumed frames did not come back
}

TEST_F(DurableLogTest, SyncerSyncsAndCallsBack) {
  auto log = open();
  ASSERT_TRUE(log->append(0, "x").ok());
  LogSyncer syncer;
  std::promise<bool> done;
  auto fds = log->unsyncedFds();
  EXPECT_FALSE(fds.empty());
  syncer.sync(std::move(fds), [&](bool ok) { done.set_value(ok); });
  EXPECT_TRUE(done.get_future().get());
  EXPECT_TRUE(log->unsyncedFds().empty());
  EXPECT_GE(syncer.fsyncs(), 1u);
}

TEST_F(DurableLogTest, LargeFramesLongerThanAReadChunk) {
  const std::string big(600 * 1024, 'b');
  {
    auto log = open(1 << 20);
    ASSERT_TRUE(log->append(0, "small").ok());
    ASSERT_TRUE(log->append(1, big).ok());
    ASSERT_TRUE(log->append(0, "after").ok());
  }
  auto log = open(1 << 20);
  EXPECT_EQ(log->frames(), 3u);
  auto all = readAll(*log, log->cursor());
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1], big);
  EXPECT_EQ(all[2], "after");
}

/// RLIMIT_FSIZE stands in for a full disk while it lives: write(2) fails with EFBIG past
/// `bytes` of any file.
class DiskLimit {
 public:
  explicit DiskLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    handler_ = ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = saved_;
    small.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &small);
  }
  ~DiskLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, handler_);
  }

 private:
  struct rlimit saved_ {};
  void (*handler_)(int) = nullptr;
};

std::vector<QueuedRecord> numbered(int from, int n) {
  std::vector<QueuedRecord> out;
  for (int i = from; i < from + n; ++i) {
    QueuedRecord& r = out.emplace_back();
    r.json = fmt::format("{}", i);
    r.enqueued_ms = 1000 + i;
  }
  return out;
}

/// The numbers of a queue's next batch (delivered or not, as `delivered` says).
std::vector<int> takeNumbers(DurableQueue& q, bool delivered, uint32_t max = 10'000) {
  std::string body;
  const uint32_t n = q.take(max, body);
  std::vector<int> out;
  if (n) {
    size_t at = 0;
    while (at <= body.size()) {
      const size_t comma = std::min(body.find(',', at), body.size());
      out.push_back(std::stoi(body.substr(at, comma - at)));
      at = comma + 1;
    }
    q.finish(delivered);
  }
  return out;
}

std::vector<int> range(int from, int to) {
  std::vector<int> out;
  for (int i = from; i < to; ++i) out.push_back(i);
  return out;
}

TEST_F(DurableLogTest, RecordsTheDiskRefusesWaitInMemoryInOrderAndGoBackToDiskWhenItTakesThem) {
  auto opened = DurableQueue::open(dir_.string(), 1 << 20);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  std::unique_ptr<DurableQueue> q = std::move(*opened);
  auto batch = numbered(0, 3);
  EXPECT_EQ(q->push(batch), 0u);
  {
    DiskLimit full(fullAt());
    batch = numbered(3, 300);
    EXPECT_EQ(q->push(batch), 0u);  // nothing lost
    EXPECT_EQ(q->writeFailures(), 300u);
    EXPECT_EQ(q->heldRecords(), 300u);
    batch = numbered(303, 2);
    EXPECT_EQ(q->push(batch), 0u);  // after the held ones, in memory (the disk tried again)
    EXPECT_EQ(q->writeFailures(), 300u);
    EXPECT_EQ(q->records(), 305u);
    EXPECT_EQ(q->oldestMs(), 1000);
    EXPECT_EQ(takeNumbers(*q, true), range(0, 3));  // the disk's first
    EXPECT_EQ(q->oldestMs(), 1003);
    EXPECT_EQ(takeNumbers(*q, false, 100), range(3, 103));  // then memory's, not delivered
  }
  // The disk takes records again: what waited in memory goes first, then the new one.
  batch = numbered(305, 1);
  EXPECT_EQ(q->push(batch), 0u);
  EXPECT_EQ(q->heldRecords(), 0u);
  EXPECT_EQ(q->records(), 303u);
  q.reset();
  opened = DurableQueue::open(dir_.string(), 1 << 20);  // all on disk: a restart keeps them
  ASSERT_TRUE(opened.ok());
  q = std::move(*opened);
  EXPECT_EQ(q->records(), 303u);
  EXPECT_EQ(takeNumbers(*q, true), range(3, 306));
}

TEST_F(DurableLogTest, HeldRecordsInFlightStayInMemoryAndTheCapDropsReadingsFirst) {
  auto opened = DurableQueue::open(dir_.string(), 1 << 20);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  std::unique_ptr<DurableQueue> q = std::move(*opened);
  std::vector<QueuedRecord> batch;
  {
    DiskLimit full(fullAt());
    batch = numbered(0, 10);
    EXPECT_EQ(q->push(batch), 0u);
    EXPECT_EQ(takeNumbers(*q, false, 4), range(0, 4));
    std::string body;
    EXPECT_EQ(q->take(4, body), 4u);  // in flight
  }
  batch = numbered(10, 2);
  EXPECT_EQ(q->push(batch), 0u);
  EXPECT_EQ(q->heldRecords(), 12u);  // behind a batch in flight from memory: not to disk yet
  q->finish(true);
  batch = numbered(12, 1);
  EXPECT_EQ(q->push(batch), 0u);
  EXPECT_EQ(q->heldRecords(), 0u);
  EXPECT_EQ(takeNumbers(*q, true), range(4, 13));

  // Past kMaxHeldBytes (here the queue's smaller cap), raw readings go first.
  q->setMaxBytes(64 * 1024);
  {
    DiskLimit full(fullAt());
    batch = numbered(0, 1);
    batch[0].drop_class = 2;  // an event
    batch[0].json = "-1";
    EXPECT_EQ(q->push(batch), 0u);
    batch = numbered(0, 2000);  // 2,000 x 65 bytes: past 64 KiB
    const uint64_t dropped = q->push(batch);
    EXPECT_GT(dropped, 900u);
    EXPECT_EQ(q->heldDropped(), dropped);
    EXPECT_EQ(takeNumbers(*q, true, 1), std::vector<int>{-1});  // the event is kept
  }
}

/// Comma-separated numbers as ints.
std::vector<int> numbersOf(const std::string& body) {
  std::vector<int> out;
  for (size_t at = 0; at < body.size();) {
    const size_t comma = std::min(body.find(',', at), body.size());
    out.push_back(std::stoi(body.substr(at, comma - at)));
    at = comma + 1;
  }
  return out;
}

/// extend() on either queue: the records queued behind the batch in flight join it, within
/// the limits; a failed batch is handed again whole, a delivered one goes whole.
void checkExtend(RecordQueue& q) {
  auto batch = numbered(0, 3);
  q.push(batch);
  std::string body, more;
  ASSERT_EQ(q.take(10, body), 3u);
  EXPECT_EQ(q.extend(10, 1 << 20, more), 0u);  // nothing queued behind it yet
  batch = numbered(3, 4);
  q.push(batch);
  EXPECT_EQ(q.extend(2, 1 << 20, more), 2u);  // at most 2
  EXPECT_EQ(numbersOf(more), range(3, 5));
  more.clear();
  EXPECT_EQ(q.extend(10, 1, more), 0u);  // none fits in one byte
  EXPECT_EQ(q.extend(10, 1 << 20, more), 2u);
  EXPECT_EQ(numbersOf(more), range(5, 7));
  q.finish(false);  // failed: all of it again, in order
  body.clear();
  ASSERT_EQ(q.take(100, body), 7u);
  EXPECT_EQ(numbersOf(body), range(0, 7));
  batch = numbered(7, 1);
  q.push(batch);
  more.clear();
  EXPECT_EQ(q.extend(10, 1 << 20, more), 1u);
  q.finish(true);  // delivered: all of it goes
  EXPECT_EQ(q.records(), 0u);
  more.clear();
  EXPECT_EQ(q.extend(10, 1 << 20, more), 0u);  // nothing in flight: nothing to join
}

TEST_F(DurableLogTest, AFullDiskWithEverythingConsumedGetsTheActiveSegmentsSpaceBack) {
  // A disk filled up, then the receiver took everything: the segment being written was never
  // freed (it goes only once full, which the disk did not allow), and every append after
  // failed for good (an outside test saw 503 not_stored forever, across restarts).
  auto log = open(1 << 20);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(log->append(0, fmt::format("payload-{:04}", i)).ok());
  const uint64_t full_size = log->diskBytes();
  {
    DiskLimit full(fullAt());
    EXPECT_FALSE(log->append(0, "one more").ok());
    std::vector<LogFrame> frames;
    LogPosition at = log->cursor();
    log->read(at, 1000, 1 << 20, frames);
    ASSERT_EQ(frames.size(), 200u);
    log->consume(at, frames.size());
    EXPECT_LT(log->diskBytes(), full_size / 10);
    EXPECT_TRUE(log->append(0, "after").ok()) << log->lastError();  // writing works again
  }
  EXPECT_EQ(segments().size(), 1u);
  auto reopened = (log.reset(), open(1 << 20));
  EXPECT_EQ(readAll(*reopened, reopened->cursor()), std::vector<std::string>{"after"});
  EXPECT_EQ(reopened->corruption(), "");
}

TEST_F(DurableLogTest, TheCursorFileHasItsBytesFromTheStart) {
  // Written first on a full disk, the cursor file stayed empty and the next start sent every
  // record consumed since again, without a word. It is written when the log opens.
  { auto log = open(); }
  EXPECT_EQ(fs::file_size(dir_ / "cursor"), 36u);
}

TEST(RecordQueueExtend, MemoryQueue) {
  MemoryQueue q(1 << 20);
  checkExtend(q);
}

TEST_F(DurableLogTest, ExtendJoinsRecordsToTheBatchInFlight) {
  auto opened = DurableQueue::open(dir_.string(), 1 << 20);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  checkExtend(**opened);
}

}  // namespace
}  // namespace ganglion::edge
