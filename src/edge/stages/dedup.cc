#include "edge/stages/dedup.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "edge/state/state_codec.h"

namespace ganglion::edge {
namespace {

uint64_t valueBits(double v) {
  if (v == 0) v = 0;  // -0 and +0 are one value
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

}  // namespace

bool DedupStage::duplicate(SeriesId series, int64_t ts, uint64_t bits) {
  if (series >= rings_.size()) rings_.resize(static_cast<size_t>(series) + 1);
  Ring& r = rings_[series];
  for (const Seen& s : r.seen)
    if (s.ts == ts && s.bits == bits) return true;
  if (r.seen.size() < spec_.remember) {
    r.seen.push_back(Seen{ts, bits});
  } else {
    r.seen[r.next] = Seen{ts, bits};
    r.next = r.next + 1 == spec_.remember ? 0 : r.next + 1;
  }
  return false;
}

void DedupStage::process(Batch& batch, StageContext&) {
  keepRecords(batch, counters, &StageCounters::duplicates, [this](const Record& r) {
    return r.kind != RecordKind::kReading || !r.hasValue() || r.series == kNoSeries ||
           !duplicate(r.series, r.ts, valueBits(r.value));
  });
}

std::string DedupStage::stateKey() const { return "dedup\x1fv1"; }

// Per series: its names, then how many readings, oldest first: (ts, bits) each.
void DedupStage::saveState(std::string& out, const SeriesTable& series) const {
  StateEncoder e(out);
  uint32_t with = 0;
  for (const Ring& r : rings_) with += !r.seen.empty();
  e.u32(with);
  for (SeriesId id = 0; id < rings_.size(); ++id) {
    const Ring& r = rings_[id];
    if (r.seen.empty()) continue;
    e.str(series.source(id));
    e.str(series.device(id));
    e.str(series.metric(id));
    const auto n = static_cast<uint32_t>(r.seen.size());
    e.u32(n);
    const uint32_t oldest = n < spec_.remember ? 0 : r.next;
    for (uint32_t i = 0; i < n; ++i) {
      const Seen& s = r.seen[(oldest + i) % n];
      e.i64(s.ts);
      e.u64(s.bits);
    }
  }
}

Result<size_t> DedupStage::restoreState(std::string_view in, SeriesTable& series, int64_t now_ms,
                                        bool warmed_only) {
  StateDecoder d(in);
  const uint32_t count = d.u32();
  size_t restored = 0;
  std::vector<std::pair<int64_t, uint64_t>> readings;
  for (uint32_t i = 0; i < count && d.ok(); ++i) {
    const std::string_view source = d.str(), device = d.str(), metric = d.str();
    const uint32_t n = d.u32();
    if (!d.ok() || n > d.left() / 16) {  // more readings than bytes: damaged
      d.fail();
      break;
    }
    readings.clear();
    int64_t newest = INT64_MIN;
    for (uint32_t k = 0; k < n; ++k) {
      const int64_t ts = d.i64();
      readings.emplace_back(ts, d.u64());
      newest = std::max(newest, ts);
    }
    // A restart keeps only series heard from lately (a reload's hand-over keeps them all).
    if (warmed_only && newest < now_ms - kDedupRestoreWindowMs) continue;
    const SeriesId id = series.intern(source, device, metric);
    if (id == kNoSeries) continue;  // the table is full: that series starts afresh
    // A smaller `remember` than when saved keeps the newest.
    const size_t skip = n > spec_.remember ? n - spec_.remember : 0;
    for (size_t k = skip; k < readings.size(); ++k) duplicate(id, readings[k].first, readings[k].second);
    ++restored;
  }
  if (!d.ok() || !d.done()) return Error("dedup: its state does not parse");
  return restored;
}

}  // namespace ganglion::edge
