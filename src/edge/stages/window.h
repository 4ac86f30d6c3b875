// `window: { tumbling: 1s, by: [device, metric], aggregates: [...] }`: readings in, one record
// per closed window out (ts = the window's start, `window_ms`, one field per aggregate).
//
// Windows follow event time, per group (the series projected onto `by`): a window closes when
// the group's newest reading passes its end plus `allowed_lateness`, or when the group has had
// no reading for one window length of wall time (tick). A reading for a window that already
// closed is late: counted and dropped. Windows are aligned to the epoch (a 1 s window starts on
// a whole second). Records that are not readings (events, other windows) pass through.
#pragma once

#include <cstdint>
#include <vector>

#include "edge/stages/aggregates.h"
#include "edge/stages/stage.h"

namespace ganglion::edge {

struct WindowSpec {
  int64_t size_ms = 1000;
  int64_t allowed_lateness_ms = 0;
  bool by_source = false;
  bool by_device = true;
  bool by_metric = true;
  std::vector<Aggregate> aggregates;
};

class WindowStage final : public Stage {
 public:
  /// `origin`: the pipeline's origin id of this stage (window records' ids). Field ids of the
  /// aggregates and `window_ms` are interned in `names` by the pipeline builder beforehand.
  WindowStage(WindowSpec spec, const FieldNames& names, uint16_t origin);
  void process(Batch& batch, StageContext& ctx) override;
  void tick(Batch& out, StageContext& ctx) override;
  void flush(Batch& out, StageContext& ctx) override;
  std::string_view kind() const override { return "window"; }
  uint64_t oldestSeq() const override;

  /// Open windows right now (all groups), for metrics and tests.
  size_t openWindows() const;

 private:
  struct Group {
    SeriesId out_series = kNoSeries;
    int64_t watermark = INT64_MIN;     ///< the newest reading's ts
    int64_t closed_until = INT64_MIN;  ///< readings before this are late
    int64_t last_wall_ms = 0;
    std::vector<Accumulator> open;  ///< by start, oldest first; usually one
  };
  uint32_t groupOf(SeriesId series, SeriesTable& table);
  void add(Group& g, double value, int64_t ts, uint64_t seq);
  void closeThrough(Group& g, int64_t limit, Batch& out);
  /// Closes every open window of `g` (wall time, flush).
  void closeAll(Group& g, Batch& out);
  void emit(const Group& g, const Accumulator& acc, Batch& out);

  WindowSpec spec_;
  uint16_t origin_;
  bool moments_ = false;
  FieldId window_ms_field_;
  std::vector<FieldId> aggregate_fields_;
  std::vector<uint32_t> group_of_series_;  // SeriesId → group index (kNone: not yet)
  std::vector<Group> groups_;
  Batch scratch_;
};

}  // namespace ganglion::edge
