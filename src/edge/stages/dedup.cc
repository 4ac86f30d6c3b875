#include "edge/stages/dedup.h"

#include <fmt/format.h>

#include <cstring>

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
  if (series >= rings_.size()) {
    rings_.resize(static_cast<size_t>(series) + 1);
    seen_.resize(rings_.size() * spec_.remember);
  }
  Ring& r = rings_[series];
  Seen* seen = ring(series);
  for (uint32_t i = 0; i < r.count; ++i)
    if (seen[i].ts == ts && seen[i].bits == bits) return true;
  seen[r.next] = Seen{ts, bits};
  r.next = r.next + 1 == spec_.remember ? 0 : r.next + 1;
  if (r.count < spec_.remember) ++r.count;
  return false;
}

void DedupStage::process(Batch& batch, StageContext&) {
  const size_t n = batch.records.size();
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    const Record& r = batch.records[i];
    if (r.kind == RecordKind::kReading && r.hasValue() && r.series != kNoSeries &&
        duplicate(r.series, r.ts, valueBits(r.value))) {
      ++counters.duplicates;
      continue;
    }
    if (kept != i) batch.records[kept] = r;
    ++kept;
  }
  batch.records.resize(kept);
  counters.in += n;
  counters.out += kept;
}

std::string DedupStage::stateKey() const { return "dedup\x1fv1"; }

// Per series: its names, then how many readings, oldest first: (ts, bits) each.
void DedupStage::saveState(std::string& out, const SeriesTable& series) const {
  StateEncoder e(out);
  uint32_t with = 0;
  for (const Ring& r : rings_) with += r.count > 0;
  e.u32(with);
  for (SeriesId id = 0; id < rings_.size(); ++id) {
    const Ring& r = rings_[id];
    if (!r.count) continue;
    e.str(series.source(id));
    e.str(series.device(id));
    e.str(series.metric(id));
    e.u32(r.count);
    const Seen* seen = seen_.data() + static_cast<size_t>(id) * spec_.remember;
    const uint32_t oldest = r.count < spec_.remember ? 0 : r.next;
    for (uint32_t i = 0; i < r.count; ++i) {
      const Seen& s = seen[(oldest + i) % spec_.remember];
      e.i64(s.ts);
      e.u64(s.bits);
    }
  }
}

Result<size_t> DedupStage::restoreState(std::string_view in, SeriesTable& series, int64_t, bool) {
  StateDecoder d(in);
  const uint32_t count = d.u32();
  size_t restored = 0;
  for (uint32_t i = 0; i < count && d.ok(); ++i) {
    const std::string_view source = d.str(), device = d.str(), metric = d.str();
    const uint32_t n = d.u32();
    if (!d.ok() || n > d.left() / 16) {  // more readings than bytes: damaged
      d.fail();
      break;
    }
    const SeriesId id = series.intern(source, device, metric);
    // A smaller `remember` than when saved keeps the newest; the table full: starts afresh.
    const uint32_t skip = n > spec_.remember ? n - spec_.remember : 0;
    for (uint32_t k = 0; k < n; ++k) {
      const int64_t ts = d.i64();
      const uint64_t bits = d.u64();
      if (id != kNoSeries && k >= skip) duplicate(id, ts, bits);
    }
    if (id != kNoSeries) ++restored;
  }
  if (!d.ok() || !d.done()) return Error("dedup: its state does not parse");
  return restored;
}

}  // namespace ganglion::edge
