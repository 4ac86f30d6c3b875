#include "edge/stages/deadband.h"

#include <cmath>

namespace ganglion::edge {

bool DeadbandStage::passes(const Record& r) {
  if (r.series >= last_.size()) last_.resize(static_cast<size_t>(r.series) + 1);
  Last& last = last_[r.series];
  bool pass = !last.seen || r.quality != last.quality;
  if (!pass && spec_.heartbeat_ms > 0 && r.ts - last.ts >= spec_.heartbeat_ms) pass = true;
  if (!pass) {
    const double moved = std::fabs(r.value - last.value);
    const double band = spec_.absolute > 0 ? spec_.absolute : spec_.percent / 100.0 * std::fabs(last.value);
    pass = moved > band;
  }
  if (pass) last = Last{r.value, r.ts, r.quality, true};
  return pass;
}

void DeadbandStage::process(Batch& batch, StageContext&) {
  keepRecords(batch, counters, &StageCounters::suppressed, [this](const Record& r) {
    const bool judged = r.kind == RecordKind::kReading && r.hasValue() && r.series != kNoSeries;
    return !judged || passes(r);
  });
}

}  // namespace ganglion::edge
