#include "llm/ledger.h"

#include <fmt/format.h>

#include <cmath>

#include "llm/prices.h"

namespace ganglion::llm {

std::pair<int64_t, int64_t> budgetPeriod(KeyLimits::Period period, std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto secs = duration_cast<seconds>(t.time_since_epoch()).count();
  auto day = floor<days>(t);
  if (period == KeyLimits::Period::kDay) {
    int64_t d = day.time_since_epoch().count();
    return {d, (d + 1) * 86400 - secs};
  }
  year_month_day ymd{day};
  int64_t month = static_cast<int>(ymd.year()) * 12 + static_cast<int64_t>(static_cast<unsigned>(ymd.month())) - 1;
  auto next = sys_days{year_month_day{ymd.year() / ymd.month() / 1} + months{1}};
  return {month, duration_cast<seconds>(next.time_since_epoch()).count() - secs};
}

KeyLedger::Entry& KeyLedger::entry(const std::string& key) {
  std::lock_guard lock(map_mutex_);
  auto& slot = entries_[key];
  if (!slot) slot = std::make_unique<Entry>();
  return *slot;
}

std::optional<Refusal> KeyLedger::admit(const std::string& key, const KeyLimits& limits, uint64_t tokens,
                                        Picodollars cost, Reservation& out) {
  out = Reservation{};
  if (!limits.any()) return std::nullopt;
  Entry& e = entry(key);
  const auto now = now_();
  std::lock_guard lock(e.mutex);
  // Token buckets refill continuously: rpm and tpm per minute, capacity one minute's worth.
  double elapsed = e.fresh ? 0 : std::chrono::duration<double>(now - e.refilled).count();
  if (e.fresh) {
    e.requests = limits.rpm;
    e.tokens = static_cast<double>(limits.tpm);
    e.fresh = false;
  }
  e.refilled = now;
  if (elapsed > 0) {
    e.requests = std::min<double>(limits.rpm, e.requests + elapsed * limits.rpm / 60.0);
    e.tokens = std::min<double>(static_cast<double>(limits.tpm), e.tokens + elapsed * static_cast<double>(limits.tpm) / 60.0);
  }
  if (limits.rpm && e.requests < 1.0) {
    double wait = (1.0 - e.requests) * 60.0 / limits.rpm;
    return Refusal{"rate_limit_exceeded",
                   fmt::format("Rate limit reached for key '{}': {} requests per minute.", key, limits.rpm),
                   static_cast<int64_t>(std::ceil(wait))};
  }
  if (limits.tpm) {
    if (tokens > limits.tpm)
      return Refusal{"rate_limit_exceeded",
                     fmt::format("Request too large for key '{}': it may use {} tokens, the limit is {} tokens per "
                                 "minute. Lower max_tokens or the prompt.",
                                 key, tokens, limits.tpm),
                     0};
    if (e.tokens < static_cast<double>(tokens)) {
      double wait = (static_cast<double>(tokens) - e.tokens) * 60.0 / static_cast<double>(limits.tpm);
      return Refusal{"rate_limit_exceeded",
                     fmt::format("Rate limit reached for key '{}': {} tokens per minute (this request may use {}).", key,
                                 limits.tpm, tokens),
                     static_cast<int64_t>(std::ceil(wait))};
    }
  }
  if (limits.budget) {
    auto [period, left_s] = budgetPeriod(limits.period, now);
    if (period != e.period) {
      e.period = period;
      e.spent = 0;
    }
    if (e.spent + e.reserved + cost > limits.budget) {
      return Refusal{"budget_exceeded",
                     fmt::format("Budget exhausted for key '{}': spent ${} of ${} this {}{}.", key, formatUsd(e.spent),
                                 formatUsd(limits.budget), limits.period == KeyLimits::Period::kDay ? "day" : "month",
                                 e.reserved ? fmt::format(", ${} reserved by calls in flight", formatUsd(e.reserved)) : ""),
                     left_s};
    }
    e.reserved += cost;
  }
  if (limits.rpm) e.requests -= 1.0;
  if (limits.tpm) e.tokens -= static_cast<double>(tokens);
  out = Reservation{key, limits.tpm ? tokens : 0, limits.budget ? cost : 0, limits.period, limits.budget != 0};
  out.active = true;
  return std::nullopt;
}

void KeyLedger::settle(Reservation& r, uint64_t tokens, Picodollars cost) {
  if (!r.active) return;
  r.active = false;
  Entry& e = entry(r.key);
  std::lock_guard lock(e.mutex);
  if (r.tokens) e.tokens += static_cast<double>(r.tokens) - static_cast<double>(tokens);
  if (r.budgeted) {
    e.reserved -= std::min(e.reserved, r.cost);
    auto [period, left_s] = budgetPeriod(r.period, now_());
    if (period != e.period) {  // the call ended in a new period: its cost belongs there
      e.period = period;
      e.spent = 0;
    }
    e.spent += cost;
  }
}

KeyLedger::Totals KeyLedger::totals(const std::string& key, KeyLimits::Period period) {
  Entry& e = entry(key);
  std::lock_guard lock(e.mutex);
  bool current = e.period == budgetPeriod(period, now_()).first;
  return {current ? e.spent : 0, e.reserved};
}

}  // namespace ganglion::llm
