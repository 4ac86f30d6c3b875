// `window: { tumbling: 1s | hopping: 10s, hop: 2s | session: 30s, by: [device, metric],
// aggregates: [...] }`: readings in, one record per closed window out (ts = the window's
// start, `window_ms`, one field per aggregate).
//
// Windows follow event time, per group (the series projected onto `by`). Tumbling and
// hopping windows are aligned to the epoch (a 1 s window starts on a whole second; hopping
// windows start every `hop` and overlap, so a reading counts in each window it falls in). A
// session window holds readings less than `gap` apart: it ends `gap` after its last reading,
// and two sessions a late reading bridges become one; one longer than `max_length` is cut.
// A window closes when the group's newest reading passes its end plus `allowed_lateness`,
// or when the group has had no reading for one window length (a session: one gap) of wall
// time (tick). A reading for windows that all closed is late: counted and dropped. Records
// that are not readings (events, other windows) pass through.
#pragma once

#include <cstdint>
#include <vector>

#include "edge/stages/aggregates.h"
#include "edge/stages/stage.h"

namespace ganglion::edge {

enum class WindowKind : uint8_t { kTumbling, kHopping, kSession };

struct WindowSpec {
  WindowKind kind = WindowKind::kTumbling;
  int64_t size_ms = 1000;     ///< tumbling, hopping: the length; session: the gap
  int64_t hop_ms = 0;         ///< hopping: a window starts every hop (tumbling: size)
  int64_t max_length_ms = 0;  ///< session: a longer one is cut (0: an hour, or the gap when longer)
  int64_t allowed_lateness_ms = 0;
  bool by_source = false;
  bool by_device = true;
  bool by_metric = true;
  std::vector<Aggregate> aggregates;
};

/// A hopping window's length / hop at most (the windows a reading counts in).
inline constexpr int64_t kMaxHopsPerWindow = 64;
/// Open sessions per group at most; past it the oldest closes (a scatter of late readings).
inline constexpr size_t kMaxOpenSessions = 64;

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
  void keepSeries(std::vector<uint8_t>& keep) const override;
  void forgetSeries(const Forgetting& f) override;

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
  /// Adds a reading to the windows of `g` it falls in; false when they have all closed (late).
  bool addFixed(Group& g, double value, int64_t ts, uint64_t seq);
  bool addSession(Group& g, double value, int64_t ts, uint64_t seq, Batch& out);
  void addTo(Accumulator& acc, double value, int64_t ts, uint64_t seq);
  /// Where window `acc` ends: its start plus the length, or its last reading plus the gap.
  int64_t endOf(const Accumulator& acc) const;
  void closeThrough(Group& g, int64_t limit, Batch& out);
  /// Closes every open window of `g` (wall time, flush).
  void closeAll(Group& g, Batch& out);
  /// Emits the open window `i` of `g` and forgets it.
  void close(Group& g, size_t i, Batch& out);
  void emit(const Group& g, Accumulator& acc, Batch& out);

  WindowSpec spec_;
  uint16_t origin_;
  bool moments_ = false;
  bool samples_ = false;  // a percentile is asked for
  FieldId window_ms_field_;
  std::vector<FieldId> aggregate_fields_;
  std::vector<uint32_t> group_of_series_;  // SeriesId → group index (kNone: not yet)
  std::vector<Group> groups_;              // a forgotten group: out_series kNoSeries
  std::vector<uint32_t> free_groups_;      // forgotten groups, used again
  Batch scratch_;
};

}  // namespace ganglion::edge
