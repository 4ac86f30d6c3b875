// The seam between a pipeline and its steps (filter, window, detector, ...): a stage edits a
// batch in place, and time-driven stages emit on the pipeline's clock. The loop that runs the
// stages in order is concrete (edge/pipeline.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "edge/expr/expr.h"
#include "edge/record.h"

namespace ganglion::edge {

/// What every stage of one pipeline shares. Pipeline's worker.
struct StageContext {
  SeriesTable& series;
  const FieldNames& names;
  expr::Evaluator& evaluator;
  int64_t wall_ms = 0;  ///< the wall clock at this batch or tick (epoch ms)
};

/// Counted per stage; the pipeline's metrics read them.
struct StageCounters {
  uint64_t in = 0;
  uint64_t out = 0;
  uint64_t filtered = 0;      ///< a filter's condition was not true
  uint64_t late = 0;          ///< a reading for a window already closed
  uint64_t series_limit = 0;  ///< the series table was full
  uint64_t no_value = 0;      ///< a record without the value or field the stage works on
  uint64_t events = 0;        ///< detector events raised
  uint64_t replayed = 0;      ///< values a restored state had learned already (skipped)
  uint64_t suppressed = 0;    ///< a deadband or downsample left it out (by design, not lost)
  uint64_t duplicates = 0;    ///< a reading dedup had seen already
  uint64_t incomplete = 0;    ///< a joined record without some partner's value (kept)
  uint64_t busy_ns = 0;       ///< time the stage took over its batches (process, tick, flush)
  uint64_t batches = 0;       ///< batches it took, and ticks that closed something
};

/// Keeps the records of `batch` for which `keep(record)` is true, in order (the fields of
/// the others stay in the arena until the batch is cleared); counts what came in, what went
/// out and, in `counters.*dropped`, the rest. The loop of the stages that only drop.
template <class Keep>
void keepRecords(Batch& batch, StageCounters& counters, uint64_t StageCounters::*dropped, Keep&& keep) {
  const size_t n = batch.records.size();
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!keep(batch.records[i])) continue;
    if (kept != i) batch.records[kept] = batch.records[i];
    ++kept;
  }
  batch.records.resize(kept);
  counters.in += n;
  counters.out += kept;
  counters.*dropped += n - kept;
}

/// What a stage is told when idle series are forgotten (Pipeline::forgetIdle): which series
/// stay (`keep`, indexed by SeriesId), the table (which still names the others), and the
/// wall time (epoch ms) before which state no kept series feeds is stale (a join's partner
/// values: the pipeline's clock less forget_idle).
struct Forgetting {
  const std::vector<uint8_t>& keep;
  SeriesTable& series;
  int64_t stale_before_ms = 0;
  bool kept(SeriesId id) const { return id < keep.size() && keep[id]; }
};

/// For state in a vector indexed by SeriesId: every series not kept starts afresh.
template <class T>
void forgetBySeries(std::vector<T>& by_series, const Forgetting& f) {
  for (size_t id = 0; id < by_series.size(); ++id)
    if (!f.kept(static_cast<SeriesId>(id))) by_series[id] = T{};
}

/// For a stage that makes series from others (`made[x]`: the series it made from x, a
/// renamed metric or a joined record's): a kept x keeps what was made from it...
inline void keepMadeSeries(const std::vector<SeriesId>& made, std::vector<uint8_t>& keep) {
  const size_t n = std::min(made.size(), keep.size());
  for (size_t x = 0; x < n; ++x)
    if (keep[x] && made[x] != kNoSeries) keep[made[x]] = 1;
}
/// ...and a mapping from or to a forgotten series goes (made again at the next reading).
inline void forgetMadeSeries(std::vector<SeriesId>& made, const Forgetting& f) {
  for (size_t x = 0; x < made.size(); ++x)
    if (made[x] != kNoSeries && (!f.kept(static_cast<SeriesId>(x)) || !f.kept(made[x]))) made[x] = kNoSeries;
}

class Stage {
 public:
  virtual ~Stage() = default;
  /// Edits `batch` in place: drops, changes, consumes or adds records. Records it does not
  /// work on pass through in order. Pipeline's worker, once per batch.
  virtual void process(Batch& batch, StageContext& ctx) = 0;
  /// The pipeline's periodic tick (ctx.wall_ms is now): appends to `out` what closes by wall
  /// time. Pipeline's worker.
  virtual void tick(Batch& out, StageContext& ctx) {
    (void)out;
    (void)ctx;
  }
  /// Appends everything still open (shutdown, or an explicit flush). Pipeline's worker.
  virtual void flush(Batch& out, StageContext& ctx) {
    (void)out;
    (void)ctx;
  }
  /// Forgets the readings it holds back for later (a join's `wait`) without emitting them: a
  /// reload's successor runs them again from the ingest log, with what it knows by then.
  /// Pipeline's worker, before flush().
  virtual void abandonHeld() {}
  /// The smallest `seq` of the readings the stage holds whose records are not out yet (open
  /// windows); UINT64_MAX when none. A pipeline's ingest log keeps readings from there on.
  /// Pipeline's worker.
  virtual uint64_t oldestSeq() const { return UINT64_MAX; }
  /// Forgetting idle series, first step: marks in `keep` (indexed by SeriesId, sized to the
  /// table's idLimit) the series it still needs although they are idle (those its open windows
  /// and held readings belong to) and those it made from a marked one (a window's group, a
  /// renamed metric). Stages are asked in order. Pipeline's worker.
  virtual void keepSeries(std::vector<uint8_t>& keep) const { (void)keep; }
  /// Second step: drops what it keeps for every series not kept, and every mapping to one;
  /// their ids are handed out again afterwards. Pipeline's worker.
  virtual void forgetSeries(const Forgetting& f) { (void)f; }
  /// State worth keeping across restarts (a detector's histories): a key naming what the
  /// state means ("" for a stage without such state; a stage whose key changed starts
  /// afresh; the pipeline reads it once, when the stage is added), the state keyed by series
  /// names (appended to `out`), and its restore, which returns how many series it restored,
  /// or an error when the state does not parse (what came before the damage may be
  /// restored). `now_ms`: the wall clock (epoch ms): no state reaches past it.
  /// `warmed_only`: series that had not warmed up are left out (a restart: a flood of
  /// invented devices must not fill the series table at every start; a reload's hand-over
  /// keeps them all). Pipeline's worker, or the main thread before the pipeline runs.
  virtual std::string stateKey() const { return {}; }
  virtual void saveState(std::string& out, const SeriesTable& series) const {
    (void)out;
    (void)series;
  }
  virtual Result<size_t> restoreState(std::string_view in, SeriesTable& series, int64_t now_ms,
                                      bool warmed_only) {
    (void)in;
    (void)series;
    (void)now_ms;
    (void)warmed_only;
    return size_t{0};
  }
  /// "filter", "map", "window", "detect", ... (metrics and errors name stages by kind and
  /// position).
  virtual std::string_view kind() const = 0;

  StageCounters counters;
};

}  // namespace ganglion::edge
