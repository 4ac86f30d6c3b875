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

  std::string stateKey() const override;
  void saveState(std::string& out, const SeriesTable& series) const override;
  Result<size_t> restoreState(std::string_view in, SeriesTable& series, int64_t now_ms,
                              bool warmed_only) override;

 private:
  struct Seen {
    int64_t ts = 0;
    uint64_t bits = 0;  ///< the value's bits (-0 as +0)
  };
  struct Ring {
    uint32_t next = 0;   ///< where the next reading goes
    uint32_t count = 0;  ///< how many are remembered (at most `remember`)
  };
  /// Whether (ts, bits) was seen in `series`; remembers it when not.
  bool duplicate(SeriesId series, int64_t ts, uint64_t bits);
  Seen* ring(SeriesId series) { return seen_.data() + static_cast<size_t>(series) * spec_.remember; }

  DedupSpec spec_;
  std::vector<Ring> rings_;  // by SeriesId
  std::vector<Seen> seen_;   // `remember` per SeriesId
};

}  // namespace ganglion::edge
