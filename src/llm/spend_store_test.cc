#include "llm/spend_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace ganglion::llm {
namespace {

using namespace std::chrono;
constexpr Picodollars kDollar = 1'000'000'000'000ull;

struct TempDb {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("ganglion-spend-" + std::to_string(::getpid()) + ".db");
  TempDb() { clear(); }
  ~TempDb() { clear(); }
  void clear() {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
      std::filesystem::remove(path.string() + suffix);
  }
};

config::KeyConfig budgetKey(std::string name, Picodollars budget, KeyLimits::Period period) {
  config::KeyConfig k;
  k.name = std::move(name);
  k.limits.budget = budget;
  k.limits.period = period;
  return k;
}

TEST(SpendStore, AReplacedFileGetsTheLargerSpend) {
  // A restore put an older or newer file at the path while the gateway ran: each key keeps
  // the larger of the file's figure and the ledger's, and the unflushed part is not added
  // on top.
  TempDb db;
  auto t = sys_days{2026y / November / 25} + hours(12);
  std::vector<config::KeyConfig> keys{budgetKey("team", 10 * kDollar, KeyLimits::Period::kMonth),
                                      budgetKey("ops", 10 * kDollar, KeyLimits::Period::kMonth)};
  KeyLedger ledger;
  ledger.setClockForTesting([&] { return t; });
  ledger.persist();
  auto store = SpendStore::open(db.path.string());
  ASSERT_TRUE(store);
  EXPECT_EQ((*store)->followFile(ledger), "");  // same file: nothing to do
  for (auto [name, cost] : {std::pair{"team", 2 * kDollar}, std::pair{"ops", 5 * kDollar}}) {
    KeyLedger::Reservation r;
    ASSERT_FALSE(ledger.admit(name, keys[0].limits, 0, cost, r));
    ledger.settle(r, 0, cost);
  }
  // The replacement: a file where "team" spent $3 (more than this process knows) and "ops" $1.
  std::filesystem::path other = db.path.string() + ".other";
  {
    KeyLedger elsewhere;
    elsewhere.setClockForTesting([&] { return t; });
    elsewhere.persist();
    auto o = SpendStore::open(other.string());
    ASSERT_TRUE(o);
    for (auto [name, cost] : {std::pair{"team", 3 * kDollar}, std::pair{"ops", kDollar}}) {
      KeyLedger::Reservation r;
      ASSERT_FALSE(elsewhere.admit(name, keys[0].limits, 0, cost, r));
      elsewhere.settle(r, 0, cost);
    }
    EXPECT_TRUE((*o)->flush(elsewhere).ok());
  }
  std::filesystem::rename(other, db.path);
  auto note = (*store)->followFile(ledger);
  EXPECT_NE(note.find("was replaced while the gateway ran"), std::string::npos) << note;
  EXPECT_TRUE((*store)->flush(ledger).ok());
  KeyLedger fresh;
  fresh.setClockForTesting([&] { return t; });
  ASSERT_TRUE((*SpendStore::open(db.path.string()))->loadInto(fresh, keys, t));
  EXPECT_EQ(fresh.totals("team").spent, 3 * kDollar);
  EXPECT_EQ(fresh.totals("ops").spent, 5 * kDollar);
}

TEST(SpendStore, SpendSurvivesARestart) {
  TempDb db;
  auto t = sys_days{2026y / November / 25} + hours(12);
  std::vector<config::KeyConfig> keys{budgetKey("team", 10 * kDollar, KeyLimits::Period::kMonth)};
  {
    KeyLedger ledger;
    ledger.setClockForTesting([&] { return t; });
    ledger.persist();
    auto store = SpendStore::open(db.path.string());
    ASSERT_TRUE(store) << store.error().message;
    ASSERT_TRUE((*store)->loadInto(ledger, keys, t));
    KeyLedger::Reservation r;
    ASSERT_FALSE(ledger.admit("team", keys[0].limits, 0, 3 * kDollar, r));
    ledger.settle(r, 0, 3 * kDollar + 7);  // picodollar-exact
    EXPECT_TRUE((*store)->flush(ledger).ok());
    ASSERT_FALSE(ledger.admit("team", keys[0].limits, 0, kDollar, r));
    ledger.settle(r, 0, kDollar);
    EXPECT_TRUE((*store)->flush(ledger).ok());
    EXPECT_TRUE((*store)->flush(ledger).ok());  // nothing new: nothing added twice
  }
  KeyLedger fresh;
  fresh.setClockForTesting([&] { return t; });
  auto store = SpendStore::open(db.path.string());
  ASSERT_TRUE(store);
  ASSERT_TRUE((*store)->loadInto(fresh, keys, t));
  EXPECT_EQ(fresh.totals("team").spent, 4 * kDollar + 7);
  KeyLedger::Reservation r;
  auto refused = fresh.admit("team", keys[0].limits, 0, 6 * kDollar, r);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "budget_exceeded");
  // Loading again (a reload) does not double what the ledger already counts.
  ASSERT_TRUE((*store)->loadInto(fresh, keys, t));
  EXPECT_EQ(fresh.totals("team").spent, 4 * kDollar + 7);
}

TEST(SpendStore, TwoProcessesAddNotOverwrite) {
  TempDb db;
  auto t = sys_days{2026y / November / 25} + hours(12);
  std::vector<config::KeyConfig> keys{budgetKey("k", 100 * kDollar, KeyLimits::Period::kDay)};
  KeyLedger old_process, new_process;
  for (auto* l : {&old_process, &new_process}) {
    l->setClockForTesting([&] { return t; });
    l->persist();
  }
  auto a = SpendStore::open(db.path.string());
  auto b = SpendStore::open(db.path.string());
  ASSERT_TRUE(a && b);
  KeyLedger::Reservation r;
  ASSERT_FALSE(old_process.admit("k", keys[0].limits, 0, kDollar, r));
  old_process.settle(r, 0, 2 * kDollar);
  ASSERT_FALSE(new_process.admit("k", keys[0].limits, 0, kDollar, r));
  new_process.settle(r, 0, 5 * kDollar);
  EXPECT_TRUE((*a)->flush(old_process).ok());
  EXPECT_TRUE((*b)->flush(new_process).ok());
  KeyLedger restarted;
  restarted.setClockForTesting([&] { return t; });
  ASSERT_TRUE((*a)->loadInto(restarted, keys, t));
  EXPECT_EQ(restarted.totals("k", KeyLimits::Period::kDay).spent, 7 * kDollar);
}

TEST(SpendStore, APeriodEndedBeforeTheFlushIsStoredUnderItsOwnPeriod) {
  TempDb db;
  auto t = sys_days{2026y / November / 25} + hours(23) + minutes(59);
  std::vector<config::KeyConfig> keys{budgetKey("k", 100 * kDollar, KeyLimits::Period::kDay)};
  KeyLedger ledger;
  ledger.setClockForTesting([&] { return t; });
  ledger.persist();
  auto store = SpendStore::open(db.path.string());
  ASSERT_TRUE(store);
  KeyLedger::Reservation r;
  ASSERT_FALSE(ledger.admit("k", keys[0].limits, 0, kDollar, r));
  ledger.settle(r, 0, kDollar);  // spent on the 25th
  t += minutes(2);               // the 26th, before any flush
  ASSERT_FALSE(ledger.admit("k", keys[0].limits, 0, kDollar, r));
  ledger.settle(r, 0, 3 * kDollar);
  EXPECT_TRUE((*store)->flush(ledger).ok());
  KeyLedger on_the_26th;
  on_the_26th.setClockForTesting([&] { return t; });
  ASSERT_TRUE((*store)->loadInto(on_the_26th, keys, t));
  EXPECT_EQ(on_the_26th.totals("k", KeyLimits::Period::kDay).spent, 3 * kDollar);
  KeyLedger on_the_25th;
  auto before = t - minutes(2);
  on_the_25th.setClockForTesting([&] { return before; });
  ASSERT_TRUE((*store)->loadInto(on_the_25th, keys, before));
  EXPECT_EQ(on_the_25th.totals("k", KeyLimits::Period::kDay).spent, kDollar);
}

TEST(SpendStore, UnwritableFileIsAClearError) {
  auto store = SpendStore::open("/nonexistent-dir/state.db");
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("/nonexistent-dir/state.db"), std::string::npos)
      << store.error().message;
}

}  // namespace
}  // namespace ganglion::llm
