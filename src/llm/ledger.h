// Per-key request rate, token rate and spend, shared by every worker of the process.
// Calls reserve before they run (the prompt estimate plus the most they may generate) and
// settle after with what the provider reported, so concurrent calls cannot overshoot a limit:
// 100 calls racing for a budget worth 10 admit at most 10. State survives config reloads
// (keyed by key name); limits come from each request's snapshot.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"

namespace ganglion::llm {

using config::KeyLimits;
using config::Picodollars;

/// Why a call was refused: an OpenAI-style 429.
struct Refusal {
  std::string code;  ///< rate_limit_exceeded (rpm, tpm) or budget_exceeded
  std::string message;
  int64_t retry_after_s = 0;  ///< when the limit may let the call through; 0: not by waiting
};

/// The refusals, worded the same whether the ledger or Redis (llm/shared_limits.h) refused.
Refusal requestRateRefusal(std::string_view key, uint32_t rpm, int64_t wait_s);
Refusal tooManyTokensRefusal(std::string_view key, uint64_t tokens, uint64_t tpm);
Refusal tokenRateRefusal(std::string_view key, uint64_t tpm, uint64_t tokens, int64_t wait_s);
Refusal budgetRefusal(std::string_view key, const KeyLimits& limits, Picodollars spent, Picodollars reserved,
                      int64_t left_s);

class KeyLedger {
 public:
  /// What a call holds between admit() and settle().
  struct Reservation {
    std::string key;
    uint64_t tokens = 0;
    Picodollars cost = 0;
    KeyLimits::Period period = KeyLimits::Period::kMonth;
    bool budgeted = false;  ///< the key has a budget: settle() records the spend
    bool active = false;
    bool shared = false;  ///< held in Redis (SharedLimits), not in this ledger
    std::string member;   ///< shared: the reservation's name in Redis
    uint64_t tpm = 0;     ///< shared: the key's token rate, to refill a bucket Redis let expire
  };

  /// Admits one call of `key` under `limits`, reserving `tokens` and `cost` against its token
  /// rate and budget. Any worker thread.
  std::optional<Refusal> admit(const std::string& key, const KeyLimits& limits, uint64_t tokens,
                               Picodollars cost, Reservation& out);
  /// Replaces a reservation with what the call used (0 and 0 when it failed before the
  /// provider answered). Idempotent. Any worker thread.
  void settle(Reservation& r, uint64_t tokens, Picodollars cost);

  /// Spend in the current period and in flight, for the admin API and tests. Any thread.
  struct Totals {
    Picodollars spent = 0, reserved = 0;
  };
  /// `period`: the key's budget period, so a spend from an earlier period reads as 0.
  Totals totals(const std::string& key, KeyLimits::Period period = KeyLimits::Period::kMonth);

  /// Spend to add to the persistent store: one row per key and period, of what was settled
  /// since the last call. Additive, so two processes on one store (a binary upgrade) never
  /// overwrite each other. Main thread (the store's flush timer).
  struct SpendDelta {
    std::string key;
    KeyLimits::Period kind = KeyLimits::Period::kMonth;
    int64_t period = 0;
    Picodollars amount = 0;
  };
  std::vector<SpendDelta> takeUnflushed();
  /// Every key's spend in the period it is in (amount: the whole spend, not a delta), for
  /// writing a store that lost its file. Any thread.
  std::vector<SpendDelta> currentSpend();
  /// Keeps unflushed spend from here on (without a store it is not kept). Main thread, at start.
  void persist() { persisting_ = true; }
  /// Gives back deltas a failed flush could not store; the next takeUnflushed() returns them.
  void keepUnflushed(std::vector<SpendDelta> deltas);
  /// Sets `key`'s spend in `period` from the store, unless the ledger already counts that
  /// period (so a reload cannot double it). Main thread, at start and reload.
  void restore(const std::string& key, KeyLimits::Period kind, int64_t period, Picodollars spent);

  /// For tests: a clock other than the system's.
  using Clock = std::chrono::system_clock;
  void setClockForTesting(std::function<Clock::time_point()> now) { now_ = std::move(now); }

 private:
  struct Entry {
    std::mutex mutex;
    double requests = 0;  ///< rpm bucket level
    double tokens = 0;    ///< tpm bucket level (may go negative after an underestimate)
    Clock::time_point refilled{};
    bool fresh = true;
    KeyLimits::Period kind = KeyLimits::Period::kMonth;
    int64_t period = -1;  ///< day or month number the spend belongs to
    Picodollars spent = 0;
    Picodollars unflushed = 0;  ///< part of `spent` not yet handed to the store
    Picodollars reserved = 0;   ///< in flight, whatever the period
  };
  Entry& entry(const std::string& key);
  /// Moves `e` (locked) to `kind`/`period` if it is elsewhere, keeping unflushed spend.
  void rollTo(const std::string& key, Entry& e, KeyLimits::Period kind, int64_t period);

  std::mutex map_mutex_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
  std::mutex carried_mutex_;
  std::vector<SpendDelta> carried_;  ///< unflushed spend of periods entries have left
  std::atomic<bool> persisting_{false};
  std::function<Clock::time_point()> now_ = [] { return Clock::now(); };
};

/// The budget period `t` falls in (UTC day or month number) and the seconds until it ends.
std::pair<int64_t, int64_t> budgetPeriod(KeyLimits::Period period, std::chrono::system_clock::time_point t);

}  // namespace ganglion::llm
