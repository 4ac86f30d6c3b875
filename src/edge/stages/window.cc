#include "edge/stages/window.h"

#include <algorithm>
#include <limits>

namespace ganglion::edge {
namespace {

constexpr uint32_t kNoGroup = std::numeric_limits<uint32_t>::max();

int64_t saturatingAdd(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) return b > 0 ? INT64_MAX : INT64_MIN;
  return out;
}

/// The start of the window holding `ts` (floor division: correct before 1970 too).
int64_t windowStart(int64_t ts, int64_t size) {
  int64_t r = ts % size;
  if (r < 0) r += size;
  int64_t start;
  if (__builtin_sub_overflow(ts, r, &start)) return INT64_MIN;  // a nonsense time: clamped
  return start;
}

}  // namespace

WindowStage::WindowStage(WindowSpec spec, const FieldNames& names, uint16_t origin)
    : spec_(std::move(spec)), origin_(origin), window_ms_field_(names.find("window_ms")) {
  for (Aggregate a : spec_.aggregates) {
    aggregate_fields_.push_back(names.find(aggregateName(a)));
    if (a == Aggregate::kSkewness || a == Aggregate::kKurtosis) moments_ = true;
  }
}

uint32_t WindowStage::groupOf(SeriesId series, SeriesTable& table) {
  if (series >= group_of_series_.size()) group_of_series_.resize(table.size(), kNoGroup);
  uint32_t& slot = group_of_series_[series];
  if (slot != kNoGroup) return slot;
  const SeriesKey& key = table.key(series);
  const SeriesKey projected{spec_.by_source ? key.source : kEmptyString,
                            spec_.by_device ? key.device : kEmptyString,
                            spec_.by_metric ? key.metric : kEmptyString};
  const SeriesId out = table.intern(projected);
  if (out == kNoSeries) return kNoGroup;
  // Series that project onto the same key share a group: find it through the output series.
  if (out < group_of_series_.size() && group_of_series_[out] != kNoGroup &&
      groups_[group_of_series_[out]].out_series == out) {
    slot = group_of_series_[out];
    return slot;
  }
  if (out >= group_of_series_.size()) group_of_series_.resize(table.size(), kNoGroup);
  const auto index = static_cast<uint32_t>(groups_.size());
  groups_.push_back(Group{.out_series = out, .open = {}});
  group_of_series_[series] = index;  // `slot` may dangle after the resize
  group_of_series_[out] = index;
  return index;
}

void WindowStage::process(Batch& batch, StageContext& ctx) {
  scratch_.clear();
  const size_t n = batch.records.size();
  counters.in += n;
  for (size_t i = 0; i < n; ++i) {
    const Record& r = batch.records[i];
    if (r.kind != RecordKind::kReading) {
      scratch_.copyFrom(batch, r);
      ++counters.out;
      continue;
    }
    if (!r.hasValue()) {
      ++counters.no_value;
      continue;
    }
    const uint32_t gi = r.series == kNoSeries ? kNoGroup : groupOf(r.series, ctx.series);
    if (gi == kNoGroup) {
      ++counters.series_limit;
      continue;
    }
    Group& g = groups_[gi];
    g.last_wall_ms = ctx.wall_ms;
    if (r.ts < g.closed_until ||
        (r.ts <= g.watermark && saturatingAdd(saturatingAdd(windowStart(r.ts, spec_.size_ms), spec_.size_ms),
                                              spec_.allowed_lateness_ms) <= g.watermark)) {
      ++counters.late;
      continue;
    }
    if (r.ts > g.watermark) {
      g.watermark = r.ts;
      // Everything that ends (plus lateness) at or before the new watermark closes.
      closeThrough(g, g.watermark, scratch_);
    }
    add(g, r.value, r.ts, r.seq);
  }
  std::swap(batch, scratch_);
}

void WindowStage::add(Group& g, double value, int64_t ts, uint64_t seq) {
  const int64_t start = windowStart(ts, spec_.size_ms);
  // Newest window last: the common case is the last one.
  auto it = g.open.end();
  while (it != g.open.begin() && (it - 1)->start > start) --it;
  if (it != g.open.begin() && (it - 1)->start == start) {
    (it - 1)->add(value, ts, moments_);
    (it - 1)->min_seq = std::min((it - 1)->min_seq, seq);
    return;
  }
  Accumulator acc;
  acc.start = start;
  acc.min_seq = seq;
  acc.add(value, ts, moments_);
  g.open.insert(it, acc);
}

void WindowStage::closeThrough(Group& g, int64_t limit, Batch& out) {
  // A window [s, s+size) closes once limit >= s + size + lateness.
  size_t closed = 0;
  for (const Accumulator& acc : g.open) {
    const int64_t end = saturatingAdd(acc.start, spec_.size_ms);
    if (saturatingAdd(end, spec_.allowed_lateness_ms) > limit) break;
    emit(g, acc, out);
    g.closed_until = std::max(g.closed_until, end);
    ++closed;
  }
  if (closed) g.open.erase(g.open.begin(), g.open.begin() + static_cast<ptrdiff_t>(closed));
}

void WindowStage::emit(const Group& g, const Accumulator& acc, Batch& out) {
  Record r;
  r.kind = RecordKind::kWindow;
  r.series = g.out_series;
  r.ts = acc.start;
  r.origin = origin_;
  r.seq = static_cast<uint64_t>(acc.start);
  out.push(r);
  out.addNumber(window_ms_field_, static_cast<double>(spec_.size_ms));
  for (size_t i = 0; i < spec_.aggregates.size(); ++i)
    if (auto v = acc.value(spec_.aggregates[i])) out.addNumber(aggregate_fields_[i], *v);
  ++counters.out;
}

void WindowStage::closeAll(Group& g, Batch& out) {
  for (const Accumulator& acc : g.open) {
    emit(g, acc, out);
    g.closed_until = std::max(g.closed_until, saturatingAdd(acc.start, spec_.size_ms));
  }
  g.open.clear();
}

void WindowStage::tick(Batch& out, StageContext& ctx) {
  for (Group& g : groups_)
    if (!g.open.empty() && ctx.wall_ms - g.last_wall_ms >= spec_.size_ms) closeAll(g, out);
}

void WindowStage::flush(Batch& out, StageContext&) {
  for (Group& g : groups_) closeAll(g, out);
}

uint64_t WindowStage::oldestSeq() const {
  uint64_t oldest = UINT64_MAX;
  for (const Group& g : groups_)
    for (const Accumulator& acc : g.open) oldest = std::min(oldest, acc.min_seq);
  return oldest;
}

size_t WindowStage::openWindows() const {
  size_t n = 0;
  for (const Group& g : groups_) n += g.open.size();
  return n;
}

}  // namespace ganglion::edge
