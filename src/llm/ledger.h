// Per-key request rate, token rate and spend, shared by every worker of the process.
// Calls reserve before they run (the prompt estimate plus the most they may generate) and
// settle after with what the provider reported, so concurrent calls cannot overshoot a limit:
// 100 calls racing for a budget worth 10 admit at most 10. State survives config reloads
// (keyed by key name); limits come from each request's snapshot.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "control/config.h"

namespace ganglion::llm {

using control::KeyLimits;
using control::Picodollars;

/// Why a call was refused: an OpenAI-style 429.
struct Refusal {
  std::string code;     ///< rate_limit_exceeded (rpm, tpm) or budget_exceeded
  std::string message;
  int64_t retry_after_s = 0;  ///< when the limit may let the call through; 0: not by waiting
};

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
  };

  /// Admits one call of `key` under `limits`, reserving `tokens` and `cost` against its token
  /// rate and budget. Any worker thread.
  std::optional<Refusal> admit(const std::string& key, const KeyLimits& limits, uint64_t tokens, Picodollars cost,
                               Reservation& out);
  /// Replaces a reservation with what the call used (0 and 0 when it failed before the
  /// provider answered). Idempotent. Any worker thread.
  void settle(Reservation& r, uint64_t tokens, Picodollars cost);

  /// Spend in the current period and in flight, for the admin API and tests. Any thread.
  struct Totals {
    Picodollars spent = 0, reserved = 0;
  };
  /// `period`: the key's budget period, so a spend from an earlier period reads as 0.
  Totals totals(const std::string& key, KeyLimits::Period period = KeyLimits::Period::kMonth);

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
    int64_t period = -1;  ///< day or month number the spend belongs to
    Picodollars spent = 0;
    Picodollars reserved = 0;  ///< in flight, whatever the period
  };
  Entry& entry(const std::string& key);

  std::mutex map_mutex_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
  std::function<Clock::time_point()> now_ = [] { return Clock::now(); };
};

/// The budget period `t` falls in (UTC day or month number) and the seconds until it ends.
std::pair<int64_t, int64_t> budgetPeriod(KeyLimits::Period period, std::chrono::system_clock::time_point t);

}  // namespace ganglion::llm
