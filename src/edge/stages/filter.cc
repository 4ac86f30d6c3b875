#include "edge/stages/filter.h"

namespace ganglion::edge {

void FilterStage::process(Batch& batch, StageContext& ctx) {
  // Compacts in place: kept records move down; the fields of dropped ones stay in the arena
  // until the batch is cleared.
  const size_t n = batch.records.size();
  expr::Input in{nullptr, &batch, &ctx.series};
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    in.record = &batch.records[i];
    if (ctx.evaluator.test(condition_, in)) {
      if (kept != i) batch.records[kept] = batch.records[i];
      ++kept;
    }
  }
  batch.records.resize(kept);
  counters.in += n;
  counters.out += kept;
  counters.filtered += n - kept;
}

}  // namespace ganglion::edge
