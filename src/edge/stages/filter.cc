#include "edge/stages/filter.h"

namespace ganglion::edge {

void FilterStage::process(Batch& batch, StageContext& ctx) {
  expr::Input in{nullptr, &batch, &ctx.series};
  keepRecords(batch, counters, &StageCounters::filtered, [&](const Record& r) {
    in.record = &r;
    return ctx.evaluator.test(condition_, in);
  });
}

}  // namespace ganglion::edge
