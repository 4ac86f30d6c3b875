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
  keepRecords(batch, counters, &StageCounters::suppressed, [this](const Record& r) {
    return r.kind != RecordKind::kReading || !r.hasValue() || r.series == kNoSeries || passes(r);
  });
}

}  // namespace ganglion::edge
