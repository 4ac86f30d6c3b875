#include "llm/ledger.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "base/strings.h"
#include "llm/prices.h"

namespace ganglion::llm {
namespace {

using namespace std::chrono;
constexpr Picodollars kDollar = 1'000'000'000'000ull;

TEST(Prices, BuiltinTableFindsDatedSnapshotsByPrefix) {
  auto mini = builtinPrice("openai", "gpt-4o-mini-2024-07-18");
  ASSERT_TRUE(mini);
  EXPECT_EQ(mini->input, 150'000u);  // $0.15 per million tokens = 150000 picodollars per token
  EXPECT_EQ(mini->output, 600'000u);
  EXPECT_EQ(mini->cached_input, 75'000u);
  auto full = builtinPrice("azure", "gpt-4o");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->input, 2'500'000u);
  EXPECT_FALSE(builtinPrice("openai", "gpt-4omni"));  // prefix must end at a boundary
  auto haiku = builtinPrice("anthropic", "claude-3-5-haiku-latest");
  ASSERT_TRUE(haiku);
  EXPECT_EQ(haiku->cache_write, 1'000'000u);
  EXPECT_TRUE(builtinPrice("gemini", "gemini-2.0-flash"));
  EXPECT_FALSE(builtinPrice("anthropic", "gpt-4o"));
  EXPECT_FALSE(builtinPrice("vllm", "my-local-llama"));
}

TEST(Prices, BuiltinTableKnowsOutputLimits) {
  EXPECT_EQ(builtinMaxOutput("openai", "gpt-4o-mini-2024-07-18"), 16'384u);
  EXPECT_EQ(builtinMaxOutput("openai", "o3-mini"), 100'000u);
  EXPECT_EQ(builtinMaxOutput("gemini", "gemini-2.5-pro"), 65'536u);
  EXPECT_EQ(builtinMaxOutput("openai", "my-local-llama"), 0u);  // unknown: the gateway's default
}

TEST(Prices, CostIsExact) {
  Price p{150'000, 600'000, 75'000, 150'000};
  Usage u;
  u.prompt = 1000;
  u.cached = 400;
  u.completion = 300;
  // 600 × 0.15e-6 + 400 × 0.075e-6 + 300 × 0.6e-6 = $0.0003
  EXPECT_EQ(costOf(p, u), 600 * 150'000ull + 400 * 75'000ull + 300 * 600'000ull);
  EXPECT_EQ(formatUsd(costOf(p, u)), "0.000300");
  // A million calls of that size sum exactly to $300.
  EXPECT_EQ(formatUsd(costOf(p, u) * 1'000'000), "300.000000");
  Usage anth;
  anth.prompt = 21 + 1880 + 2048;
  anth.cached = 2048;
  anth.cache_write = 1880;
  anth.completion = 26;
  Price h{800'000, 4'000'000, 80'000, 1'000'000};
  EXPECT_EQ(costOf(h, anth), 21 * 800'000ull + 2048 * 80'000ull + 1880 * 1'000'000ull + 26 * 4'000'000ull);
  EXPECT_EQ(worstCaseCost(p, 100, 50), 100 * 150'000ull + 50 * 600'000ull);
  EXPECT_EQ(formatUsd(12 * kDollar + 5), "12.000000000005");
}

TEST(Prices, ParseMillionthsIsExact) {
  EXPECT_EQ(parseMillionths("0.15"), 150'000u);
  EXPECT_EQ(parseMillionths("2.5"), 2'500'000u);
  EXPECT_EQ(parseMillionths("10"), 10'000'000u);
  EXPECT_EQ(parseMillionths("0.000001"), 1u);
  EXPECT_FALSE(parseMillionths("0.0000001"));
  EXPECT_FALSE(parseMillionths("-1"));
  EXPECT_FALSE(parseMillionths("1."));
  EXPECT_FALSE(parseMillionths(".5"));
  EXPECT_FALSE(parseMillionths("1e3"));
  EXPECT_FALSE(parseMillionths(""));
  for (const char* text : {"0.15", "2.5", "10", "0.000001", "0", "1000000.123456"})
    EXPECT_EQ(formatMillionths(*parseMillionths(text)), text);
}

TEST(KeyLedger, ConcurrentCallsNeverOvershootTheBudget) {
  KeyLedger ledger;
  KeyLimits limits;
  limits.budget = 10 * kDollar;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  std::vector<KeyLedger::Reservation> held(100);
  for (int i = 0; i < 100; ++i)
    threads.emplace_back([&, i] {
      if (!ledger.admit("k", limits, 10, kDollar, held[i])) admitted.fetch_add(1);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 10);
  EXPECT_EQ(ledger.totals("k").reserved, 10 * kDollar);
  // Each call turns out to cost half its reservation: five more fit afterwards.
  for (auto& r : held) ledger.settle(r, 5, kDollar / 2);
  EXPECT_EQ(ledger.totals("k").spent, 5 * kDollar);
  EXPECT_EQ(ledger.totals("k").reserved, 0u);
  EXPECT_EQ(ledger.totals("k", KeyLimits::Period::kDay).spent,
            0u);  // the spend is this month's, not this day's
  int more = 0;
  KeyLedger::Reservation r;
  while (!ledger.admit("k", limits, 10, kDollar, r)) {
    ledger.settle(r, 10, kDollar);
    ++more;
  }
  EXPECT_EQ(more, 5);
}

TEST(KeyLedger, BudgetRefusalSaysWhenThePeriodEnds) {
  KeyLedger ledger;
  // 2026-11-25T12:00:00Z
  auto t = sys_days{2026y / November / 25} + hours(12);
  ledger.setClockForTesting([&] { return t; });
  KeyLimits limits;
  limits.budget = kDollar;
  limits.period = KeyLimits::Period::kDay;
  KeyLedger::Reservation r;
  ASSERT_FALSE(ledger.admit("k", limits, 0, kDollar, r));
  ledger.settle(r, 0, kDollar);
  auto refused = ledger.admit("k", limits, 0, 1, r);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "budget_exceeded");
  EXPECT_EQ(refused->retry_after_s, 12 * 3600);
  t += hours(12);  // a new UTC day: the budget is whole again
  EXPECT_FALSE(ledger.admit("k", limits, 0, kDollar, r));
  auto [month, left] = budgetPeriod(KeyLimits::Period::kMonth, sys_days{2026y / December / 31} + hours(23));
  EXPECT_EQ(left, 3600);
  EXPECT_EQ(month, 2026 * 12 + 11);
}

TEST(KeyLedger, RequestsPerMinute) {
  KeyLedger ledger;
  auto t = system_clock::time_point{} + hours(1000);
  ledger.setClockForTesting([&] { return t; });
  KeyLimits limits;
  limits.rpm = 2;
  KeyLedger::Reservation r;
  EXPECT_FALSE(ledger.admit("k", limits, 0, 0, r));
  EXPECT_FALSE(ledger.admit("k", limits, 0, 0, r));
  auto refused = ledger.admit("k", limits, 0, 0, r);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, "rate_limit_exceeded");
  EXPECT_EQ(refused->retry_after_s, 30);  // one request refills every 30 s
  t += seconds(30);
  EXPECT_FALSE(ledger.admit("k", limits, 0, 0, r));
}

TEST(KeyLedger, TokensPerMinuteReserveThenRefund) {
  KeyLedger ledger;
  auto t = system_clock::time_point{} + hours(1000);
  ledger.setClockForTesting([&] { return t; });
  KeyLimits limits;
  limits.tpm = 1000;
  KeyLedger::Reservation a, b;
  ASSERT_FALSE(ledger.admit("k", limits, 800, 0, a));
  EXPECT_TRUE(ledger.admit("k", limits, 800, 0, b));  // only 200 left while `a` runs
  ledger.settle(a, 100, 0);                           // it used 100: 700 come back
  EXPECT_FALSE(ledger.admit("k", limits, 800, 0, b));
  auto too_big = ledger.admit("k", limits, 5000, 0, b);
  ASSERT_TRUE(too_big);
  EXPECT_EQ(too_big->retry_after_s, 0);  // waiting cannot help
}

}  // namespace
}  // namespace ganglion::llm
