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
  int64_t month =
      static_cast<int>(ymd.year()) * 12 + static_cast<int64_t>(static_cast<unsigned>(ymd.month())) - 1;
  auto next = sys_days{year_month_day{ymd.year() / ymd.month() / 1} + months{1}};
  return {month, duration_cast<seconds>(next.time_since_epoch()).count() - secs};
}

Refusal requestRateRefusal(std::string_view key, uint32_t rpm, int64_t wait_s) {
  return {"rate_limit_exceeded",
          fmt::format("Rate limit reached for key '{}': {} requests per minute.", key, rpm), wait_s};
}

Refusal tooManyTokensRefusal(std::string_view key, uint64_t tokens, uint64_t tpm) {
  return {
      "rate_limit_exceeded",
      fmt::format("Request too large for key '{}': it may use {} tokens, the limit is {} tokens per minute. "
                  "Lower max_tokens or the prompt.",
                  key, tokens, tpm),
      0};
}

Refusal tokenRateRefusal(std::string_view key, uint64_t tpm, uint64_t tokens, int64_t wait_s) {
  return {"rate_limit_exceeded",
          fmt::format("Rate limit reached for key '{}': {} tokens per minute (this request may use {}).", key,
                      tpm, tokens),
          wait_s};
}

Refusal budgetRefusal(std::string_view key, const KeyLimits& limits, Picodollars spent, Picodollars reserved,
                      int64_t left_s) {
  return {"budget_exceeded",
          fmt::format("Budget exhausted for key '{}': spent ${} of ${} this {}{}.", key, formatUsd(spent),
                      formatUsd(limits.budget), limits.period == KeyLimits::Period::kDay ? "day" : "month",
                      reserved ? fmt::format(", ${} reserved by calls in flight", formatUsd(reserved)) : ""),
          left_s};
}

KeyLedger::Entry& KeyLedger::entry(const std::string& key) {
  std::lock_guard lock(map_mutex_);
  auto& slot = entries_[key];
  if (!slot) slot = std::make_unique<Entry>();
  return *slot;
}

void KeyLedger::rollTo(const std::string& key, Entry& e, KeyLimits::Period kind, int64_t period) {
  if (e.period == period && e.kind == kind) return;
  if (e.unflushed && persisting_) {
    std::lock_guard lock(carried_mutex_);
    carried_.push_back({key, e.kind, e.period, e.unflushed});
  }
  e.kind = kind;
  e.period = period;
  e.spent = 0;
  e.unflushed = 0;
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
    e.tokens = std::min<double>(static_cast<double>(limits.tpm),
                                e.tokens + elapsed * static_cast<double>(limits.tpm) / 60.0);
  }
  if (limits.rpm && e.requests < 1.0) {
    double wait = (1.0 - e.requests) * 60.0 / limits.rpm;
    return requestRateRefusal(key, limits.rpm, static_cast<int64_t>(std::ceil(wait)));
  }
  if (limits.tpm) {
    if (tokens > limits.tpm) return tooManyTokensRefusal(key, tokens, limits.tpm);
    if (e.tokens < static_cast<double>(tokens)) {
      double wait = (static_cast<double>(tokens) - e.tokens) * 60.0 / static_cast<double>(limits.tpm);
      return tokenRateRefusal(key, limits.tpm, tokens, static_cast<int64_t>(std::ceil(wait)));
    }
  }
  if (limits.budget) {
    auto [period, left_s] = budgetPeriod(limits.period, now);
    rollTo(key, e, limits.period, period);
    if (e.spent + e.reserved + cost > limits.budget) {
      return budgetRefusal(key, limits, e.spent, e.reserved, left_s);
    }
    e.reserved += cost;
  }
  if (limits.rpm) e.requests -= 1.0;
  if (limits.tpm) e.tokens -= static_cast<double>(tokens);
  out = Reservation{};
  out.key = key;
  out.tokens = limits.tpm ? tokens : 0;
  out.cost = limits.budget ? cost : 0;
  out.period = limits.period;
  out.budgeted = limits.budget != 0;
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
    // A call that ends in a new period counts there.
    rollTo(r.key, e, r.period, budgetPeriod(r.period, now_()).first);
    e.spent += cost;
    e.unflushed += cost;
  }
}

KeyLedger::Totals KeyLedger::totals(const std::string& key, KeyLimits::Period period) {
  Entry& e = entry(key);
  std::lock_guard lock(e.mutex);
  bool current = e.kind == period && e.period == budgetPeriod(period, now_()).first;
  return {current ? e.spent : 0, e.reserved};
}

std::vector<KeyLedger::SpendDelta> KeyLedger::takeUnflushed() {
  std::vector<SpendDelta> out;
  {
    std::lock_guard lock(carried_mutex_);
    out.swap(carried_);
  }
  std::lock_guard map_lock(map_mutex_);
  for (auto& [key, e] : entries_) {
    std::lock_guard lock(e->mutex);
    if (!e->unflushed) continue;
    out.push_back({key, e->kind, e->period, e->unflushed});
    e->unflushed = 0;
  }
  return out;
}

std::vector<KeyLedger::SpendDelta> KeyLedger::currentSpend() {
  std::vector<SpendDelta> out;
  std::lock_guard map_lock(map_mutex_);
  for (auto& [key, e] : entries_) {
    std::lock_guard lock(e->mutex);
    if (e->spent) out.push_back({key, e->kind, e->period, e->spent});
  }
  return out;
}

void KeyLedger::keepUnflushed(std::vector<SpendDelta> deltas) {
  std::lock_guard lock(carried_mutex_);
  for (auto& d : deltas) carried_.push_back(std::move(d));
}

void KeyLedger::restore(const std::string& key, KeyLimits::Period kind, int64_t period, Picodollars spent) {
  Entry& e = entry(key);
  std::lock_guard lock(e.mutex);
  if (e.period == period && e.kind == kind) return;
  rollTo(key, e, kind, period);
  e.spent = spent;
}

}  // namespace ganglion::llm
