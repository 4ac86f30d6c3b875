// `deadband: { absolute: 0.5 }`, `deadband: { percent: 2, heartbeat: 5m }` and
// `change_only: {}`: report by exception. A reading passes when it is the first of its series,
// when its value moved from the last value passed by more than the band, when its quality
// changed, or when `heartbeat` of event time has gone by since the last one passed; the others
// are dropped (counted as `suppressed`). `change_only` is a band of zero: any change passes.
// Records that are not readings, and readings without a value, pass through.
#pragma once

#include <cstdint>
#include <vector>

#include "edge/stages/stage.h"

namespace ganglion::edge {

struct DeadbandSpec {
  double absolute = 0;       ///< the band in the value's units
  double percent = 0;        ///< the band in percent of the last value passed (when absolute is 0)
  int64_t heartbeat_ms = 0;  ///< a reading passes anyway this long after the last (0: never)
  bool change_only = false;  ///< written as `change_only:` (both bands 0)
};

class DeadbandStage final : public Stage {
 public:
  explicit DeadbandStage(DeadbandSpec spec) : spec_(spec) {}
  void process(Batch& batch, StageContext& ctx) override;
  std::string_view kind() const override { return spec_.change_only ? "change_only" : "deadband"; }
  void forgetSeries(const Forgetting& f) override { forgetBySeries(last_, f); }

 private:
  struct Last {
    double value = 0;
    int64_t ts = 0;
    Quality quality = Quality::kGood;
    bool seen = false;
  };
  bool passes(const Record& r);

  DeadbandSpec spec_;
  std::vector<Last> last_;  // by SeriesId
};

}  // namespace ganglion::edge
