// `downsample: { every: 10s }` or `downsample: { nth: 10 }`: fewer readings per series.
// `every`: the first reading of each interval of event time passes (intervals aligned to the
// epoch, as windows are); the rest of that interval, and readings for an interval before the
// last one passed, are dropped. `nth`: the first reading and then every nth of the series
// pass. Dropped readings are counted as `suppressed`. Records that are not readings, and
// readings without a value, pass through (and do not count). (A window with `mean` or `last` is the
// downsampling that summarises instead.)
#pragma once

#include <cstdint>
#include <vector>

#include "edge/stages/stage.h"

namespace ganglion::edge {

struct DownsampleSpec {
  int64_t every_ms = 0;  ///< one reading per interval (0: by count)
  uint32_t nth = 0;      ///< one reading in nth (0: by time)
};

class DownsampleStage final : public Stage {
 public:
  explicit DownsampleStage(DownsampleSpec spec) : spec_(spec) {}
  void process(Batch& batch, StageContext& ctx) override;
  std::string_view kind() const override { return "downsample"; }
  void forgetSeries(const Forgetting& f) override { forgetBySeries(slots_, f); }

 private:
  struct Slot {
    int64_t interval = INT64_MIN;  ///< the interval of the last reading passed
    uint32_t count = 0;            ///< readings since the last passed (nth)
  };
  bool passes(const Record& r);

  DownsampleSpec spec_;
  std::vector<Slot> slots_;  // by SeriesId
};

}  // namespace ganglion::edge
