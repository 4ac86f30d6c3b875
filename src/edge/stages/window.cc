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
    if (isPercentile(a)) samples_ = true;
  }
  if (spec_.kind == WindowKind::kSession && spec_.max_length_ms <= 0)
    spec_.max_length_ms = std::max<int64_t>(3'600'000, spec_.size_ms);
}

uint32_t WindowStage::groupOf(SeriesId series, SeriesTable& table) {
  if (series >= group_of_series_.size()) group_of_series_.resize(table.idLimit(), kNoGroup);
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
  if (out >= group_of_series_.size()) group_of_series_.resize(table.idLimit(), kNoGroup);
  uint32_t index;
  if (!free_groups_.empty()) {
    index = free_groups_.back();
    free_groups_.pop_back();
    groups_[index] = Group{.out_series = out, .open = {}};
  } else {
    index = static_cast<uint32_t>(groups_.size());
    groups_.push_back(Group{.out_series = out, .open = {}});
  }
  group_of_series_[series] = index;  // `slot` may dangle after the resize
  group_of_series_[out] = index;
  return index;
}

void WindowStage::keepSeries(std::vector<uint8_t>& keep) const {
  for (const Group& g : groups_)
    if (g.out_series != kNoSeries && !g.open.empty()) keep[g.out_series] = 1;  // open windows
  const size_t n = std::min(group_of_series_.size(), keep.size());
  for (size_t s = 0; s < n; ++s)
    if (group_of_series_[s] != kNoGroup && keep[s]) keep[groups_[group_of_series_[s]].out_series] = 1;
}

void WindowStage::forgetSeries(const Forgetting& f) {
  for (uint32_t gi = 0; gi < groups_.size(); ++gi) {
    Group& g = groups_[gi];
    if (g.out_series == kNoSeries || f.kept(g.out_series)) continue;
    g = Group{};  // no open window: those keep their group
    free_groups_.push_back(gi);
  }
  for (size_t s = 0; s < group_of_series_.size(); ++s) {
    uint32_t& gi = group_of_series_[s];
    if (gi != kNoGroup && (!f.kept(static_cast<SeriesId>(s)) || groups_[gi].out_series == kNoSeries))
      gi = kNoGroup;
  }
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
    if (r.ts > g.watermark) {
      g.watermark = r.ts;
      // Everything that ends (plus lateness) at or before the new watermark closes.
      closeThrough(g, g.watermark, scratch_);
    }
    const bool taken = spec_.kind == WindowKind::kSession ? addSession(g, r.value, r.ts, r.seq, scratch_)
                                                          : addFixed(g, r.value, r.ts, r.seq);
    if (!taken) ++counters.late;
  }
  std::swap(batch, scratch_);
}

void WindowStage::addTo(Accumulator& acc, double value, int64_t ts, uint64_t seq) {
  acc.add(value, ts, moments_);
  if (samples_) acc.addSample(value);
  acc.min_seq = std::min(acc.min_seq, seq);
}

bool WindowStage::addFixed(Group& g, double value, int64_t ts, uint64_t seq) {
  const int64_t hop = spec_.kind == WindowKind::kHopping ? spec_.hop_ms : spec_.size_ms;
  // The windows holding ts start at multiples of hop in (ts - size, ts], newest first; one
  // that has closed (or would have: past the watermark by more than the lateness) ends the walk,
  // since the older ones end sooner.
  bool taken = false;
  auto it = g.open.end();
  for (int64_t start = windowStart(ts, hop); start > saturatingAdd(ts, -spec_.size_ms) && start != INT64_MIN;
       start = saturatingAdd(start, -hop)) {
    const int64_t end = saturatingAdd(start, spec_.size_ms);
    if (end <= g.closed_until || saturatingAdd(end, spec_.allowed_lateness_ms) <= g.watermark) break;
    while (it != g.open.begin() && (it - 1)->start > start) --it;
    if (it != g.open.begin() && (it - 1)->start == start) {
      addTo(*(it - 1), value, ts, seq);
    } else {
      Accumulator acc;
      acc.start = start;
      acc.rng = static_cast<uint64_t>(start);
      it = g.open.insert(it, std::move(acc));
      addTo(*it, value, ts, seq);
      ++it;
    }
    --it;  // the walk goes to older windows: they lie before this one
    taken = true;
    if (hop >= spec_.size_ms) break;  // tumbling: one window
  }
  return taken;
}

bool WindowStage::addSession(Group& g, double value, int64_t ts, uint64_t seq, Batch& out) {
  const int64_t gap = spec_.size_ms;
  if (ts < g.closed_until || saturatingAdd(saturatingAdd(ts, gap), spec_.allowed_lateness_ms) <= g.watermark)
    return false;
  // The sessions it reaches (less than a gap from their span) are adjacent in start order.
  size_t first = g.open.size(), count = 0;
  for (size_t i = 0; i < g.open.size(); ++i) {
    const Accumulator& a = g.open[i];
    if (saturatingAdd(a.first_ts, -gap) < ts && ts < saturatingAdd(a.last_ts, gap)) {
      if (!count) first = i;
      ++count;
    }
  }
  if (count == 1) {
    Accumulator& a = g.open[first];
    const int64_t longest = spec_.max_length_ms;
    if (ts > a.last_ts && ts - a.first_ts >= longest) {
      // Too long: this one ends at its last reading and the reading starts the next. Only
      // what it covered is closed: readings after its last one belong to the next session.
      emit(g, a, out);
      g.closed_until = std::max(g.closed_until, a.last_ts + 1);
      g.open.erase(g.open.begin() + static_cast<ptrdiff_t>(first));
      count = 0;
      first = g.open.size();
    }
  }
  if (!count) {
    size_t at = 0;
    while (at < g.open.size() && g.open[at].start < ts) ++at;
    Accumulator acc;
    acc.start = ts;
    acc.rng = static_cast<uint64_t>(ts);
    auto it = g.open.insert(g.open.begin() + static_cast<ptrdiff_t>(at), std::move(acc));
    addTo(*it, value, ts, seq);
    if (g.open.size() > kMaxOpenSessions) close(g, 0, out);
    return true;
  }
  Accumulator& into = g.open[first];
  addTo(into, value, ts, seq);
  into.start = std::min(into.start, ts);
  // A reading that bridges two sessions makes them one.
  for (size_t k = 1; k < count; ++k) into.merge(g.open[first + k], moments_);
  if (count > 1)
    g.open.erase(g.open.begin() + static_cast<ptrdiff_t>(first + 1),
                 g.open.begin() + static_cast<ptrdiff_t>(first + count));
  return true;
}

int64_t WindowStage::endOf(const Accumulator& acc) const {
  if (spec_.kind == WindowKind::kSession) return saturatingAdd(acc.last_ts, spec_.size_ms);
  return saturatingAdd(acc.start, spec_.size_ms);
}

void WindowStage::closeThrough(Group& g, int64_t limit, Batch& out) {
  // A window closes once limit >= its end + lateness; ends are in start order.
  size_t closed = 0;
  for (Accumulator& acc : g.open) {
    const int64_t end = endOf(acc);
    if (saturatingAdd(end, spec_.allowed_lateness_ms) > limit) break;
    emit(g, acc, out);
    g.closed_until = std::max(g.closed_until, end);
    ++closed;
  }
  if (closed) g.open.erase(g.open.begin(), g.open.begin() + static_cast<ptrdiff_t>(closed));
}

void WindowStage::close(Group& g, size_t i, Batch& out) {
  emit(g, g.open[i], out);
  g.closed_until = std::max(g.closed_until, endOf(g.open[i]));
  g.open.erase(g.open.begin() + static_cast<ptrdiff_t>(i));
}

void WindowStage::emit(const Group& g, Accumulator& acc, Batch& out) {
  Record r;
  r.kind = RecordKind::kWindow;
  r.series = g.out_series;
  r.ts = acc.start;
  r.origin = origin_;
  r.seq = acc.min_seq;  // in its id: see appendRecordId
  out.push(r);
  out.addNumber(window_ms_field_, static_cast<double>(endOf(acc) - acc.start));
  if (samples_) acc.sortSamples();
  for (size_t i = 0; i < spec_.aggregates.size(); ++i)
    if (auto v = acc.value(spec_.aggregates[i])) out.addNumber(aggregate_fields_[i], *v);
  ++counters.out;
}

void WindowStage::closeAll(Group& g, Batch& out) {
  for (Accumulator& acc : g.open) {
    emit(g, acc, out);
    g.closed_until = std::max(g.closed_until, endOf(acc));
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
