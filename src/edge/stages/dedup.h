// `dedup: { remember: 32 }`: drops a reading that repeats one of the last `remember` readings
// of its series (the same time stamp and the same value): a device or broker that delivers a
// message twice (MQTT QoS 1 redelivery after a reconnect or a crash, a Modbus poll answered
// twice) yields one reading. Dropped readings are counted as `duplicates`. What it remembers
// is part of the pipeline's saved state, so a reading the ingest log replays after a restart
// and the broker's redelivery of the same reading make one. Records that are not readings, and
// readings without a value, pass through.
#pragma once

#include <cstdint>
#include <vector>

#include "edge/stages/stage.h"

namespace ganglion::edge {

struct DedupSpec {
  uint32_t remember = 32;  ///< readings remembered per series
};

class DedupStage final : public Stage {
 public:
  explicit DedupStage(DedupSpec spec) : spec_(spec) {}
  void process(Batch& batch, StageContext& ctx) override;
  std::string_view kind() const override { return "dedup"; }
  void forgetSeries(const Forgetting& f) override { forgetBySeries(rings_, f); }

  std::string stateKey() const override;
  void saveState(std::string& out, const SeriesTable& series) const override;
  Result<size_t> restoreState(std::string_view in, SeriesTable& series, int64_t now_ms,
                              bool warmed_only) override;

 private:
  struct Seen {
    int64_t ts = 0;
    uint64_t bits = 0;  ///< the value's bits (-0 as +0)
  };
  /// A series' recent readings: grows to `remember`, then a ring (memory follows what a
  /// series sent, not `remember` times the series table).
  struct Ring {
    std::vector<Seen> seen;
    uint32_t next = 0;  ///< where the next reading goes once full
  };
  /// Whether (ts, bits) was seen in `series`; remembers it when not.
  bool duplicate(SeriesId series, int64_t ts, uint64_t bits);

  DedupSpec spec_;
  std::vector<Ring> rings_;  // by SeriesId
};

/// At a restart, dedup restores only series whose newest remembered reading is this recent
/// (a broker redelivers what was in flight at the crash; a flood of invented names from
/// long ago must not fill the series table again at every start).
inline constexpr int64_t kDedupRestoreWindowMs = 10 * 60 * 1000;

}  // namespace ganglion::edge
