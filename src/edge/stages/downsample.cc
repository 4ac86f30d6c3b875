#include "edge/stages/downsample.h"

namespace ganglion::edge {

bool DownsampleStage::passes(const Record& r) {
  if (r.series >= slots_.size()) slots_.resize(static_cast<size_t>(r.series) + 1);
  Slot& s = slots_[r.series];
  if (spec_.nth > 0) {
    const bool pass = s.count == 0;
    s.count = pass ? (spec_.nth > 1 ? 1 : 0) : (s.count + 1 == spec_.nth ? 0 : s.count + 1);
    return pass;
  }
  // Floor division: intervals before 1970 are aligned too.
  int64_t interval = r.ts / spec_.every_ms;
  if (r.ts % spec_.every_ms < 0) --interval;
  if (interval <= s.interval) return false;
  s.interval = interval;
  return true;
}

void DownsampleStage::process(Batch& batch, StageContext&) {
  const size_t n = batch.records.size();
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    const Record& r = batch.records[i];
    if (r.kind == RecordKind::kReading && r.hasValue() && r.series != kNoSeries && !passes(r)) {
      ++counters.suppressed;
      continue;
    }
    if (kept != i) batch.records[kept] = r;
    ++kept;
  }
  batch.records.resize(kept);
  counters.in += n;
  counters.out += kept;
}

}  // namespace ganglion::edge
