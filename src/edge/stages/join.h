// `join: { on: temperature, with: [occupancy, { metric: outside_temp, device: weather }] }`:
// an as-of join of several series by event time. Each reading of the `on` metric (the driving
// reading) becomes one record of its device that carries, besides its own value, the value
// each partner series had at that time: the partner's newest reading at or before the driving
// reading's `ts`, no older than `within`. A partner is a metric of the same device (the
// room's occupancy for the room's temperature), or of one fixed device shared by all (the
// weather station's outside temperature for every room).
//
// The joined record is a reading: `ts` and `value` are the driving reading's, its id is the
// join's origin (which carries the pipeline settings' generation, as a window's does) and the
// driving reading's sequence number (a replay after a crash makes the same ids; a reload that
// changes the pipeline, and replays what its ingest log holds, makes new ones rather than
// other contents under an id already sent), its metric is `metric` (default: the `on` metric), its quality
// the worst of the values joined, and it carries one number field per value, named by `as` (default: the
// metric's name): `temperature`, `occupancy`, ... for later stages, rules and sinks. A partner without a
// value in reach leaves its field out (`missing: keep`, counted as `incomplete`) or drops the record
// (`missing: drop`, counted as `no_value`). The readings joined are consumed; other records pass through in
// order.
//
// `wait` (default 0: at once) holds a driving reading until every partner has a reading at or
// past its time, or until `wait` of wall time has gone by: a partner arriving a little behind
// (another connector, a slower poll) is still joined. Held readings keep their place in the
// ingest log (oldestSeq). What partners said lately is part of the pipeline's saved state.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "edge/stages/stage.h"

namespace ganglion::edge {

/// Partners per join at most.
inline constexpr size_t kMaxJoinPartners = 8;
/// Readings remembered per partner series (for drivers that arrive behind their partners).
inline constexpr size_t kJoinRecentPerSeries = 64;
/// Driving readings held (wait) per join stage at most: past it, a device's oldest goes out
/// with what it has.
inline constexpr size_t kMaxJoinHeld = 100'000;
/// The longest `wait`.
inline constexpr int64_t kMaxJoinWaitMs = 10 * 60 * 1000;

struct JoinPartner {
  std::string metric = {};
  std::string device = {};  ///< "" = the driving reading's device
  std::string as = {};      ///< the field's name ("" = metric)
  const std::string& field() const { return as.empty() ? metric : as; }
};

struct JoinSpec {
  std::string on = {};  ///< the driving metric
  std::string as = {};  ///< the driving value's field ("" = on)
  std::vector<JoinPartner> with = {};
  std::string metric = {};  ///< the joined record's metric ("" = on)
  int64_t within_ms = 3'600'000;
  int64_t wait_ms = 0;
  bool drop_incomplete = false;  ///< missing: drop
  const std::string& field() const { return as.empty() ? on : as; }
};

/// The number fields a join adds (its driving field, then its partners'), which the config's
/// FieldNames must hold before the pipeline is built.
std::vector<std::string> joinFieldNames(const JoinSpec& spec);

class JoinStage final : public Stage {
 public:
  /// Field ids must be interned beforehand (joinFieldNames); metrics and fixed devices are
  /// interned in `strings` (the pipeline's series strings). `origin`: the joined records' ids.
  JoinStage(JoinSpec spec, const FieldNames& names, StringPool& strings, uint16_t origin);
  void process(Batch& batch, StageContext& ctx) override;
  void tick(Batch& out, StageContext& ctx) override;
  void flush(Batch& out, StageContext& ctx) override;
  uint64_t oldestSeq() const override;
  void abandonHeld() override;
  std::string_view kind() const override { return "join"; }
  /// Held readings keep their series, and a kept driving series its joined records' series.
  void keepSeries(std::vector<uint8_t>& keep) const override;
  /// A partner's values go once no series it takes is kept and it has not spoken for the
  /// pipeline's forget_idle (restored values of a device that never came back, too).
  void forgetSeries(const Forgetting& f) override;

  std::string stateKey() const override;
  void saveState(std::string& out, const SeriesTable& series) const override;
  Result<size_t> restoreState(std::string_view in, SeriesTable& series, int64_t now_ms,
                              bool warmed_only) override;

 private:
  struct Sample {
    int64_t ts = 0;
    double value = 0;
    Quality quality = Quality::kGood;
  };
  /// A partner series' recent readings, oldest first.
  using Recent = std::vector<Sample>;
  /// What one partner said lately for one device, and when it last spoke (wall clock, epoch
  /// ms: a restore counts as speaking).
  struct Heard {
    Recent recent;
    int64_t wall_ms = 0;
  };
  /// A driving reading waiting for its partners (its fields copied out of the batch).
  struct Held {
    Record record;
    std::vector<Field> fields;
    std::string text;
    int64_t arrived_ms = 0;
  };
  struct Partner {
    StringId metric;
    StringId device;  // kNotFound: the driving reading's device
    FieldId field;
  };
  enum class Role : uint8_t { kNotJoined, kDriving, kPartner };

  /// Whether `p` takes readings of `key` (its metric; its fixed device, or any).
  static bool takes(const Partner& p, const SeriesKey& key) {
    return p.metric == key.metric && (p.device == StringPool::kNotFound || p.device == key.device);
  }
  Role roleOf(const Record& r, const SeriesTable& series) const;
  static uint64_t keyOf(size_t partner, StringId device) { return (uint64_t{partner} << 32) | device; }
  StringId deviceFor(const Partner& p, StringId driving_device) const {
    return p.device == StringPool::kNotFound ? driving_device : p.device;
  }
  /// Remembers `r` as partner `partner`'s reading for `device` (the entry holds the device's
  /// name in `strings`).
  void remember(size_t partner, StringId device, const Record& r, int64_t wall_ms, StringPool& strings);
  /// The partner's value at `ts` (nullptr: none within reach).
  const Sample* asOf(size_t partner, StringId device, int64_t ts) const;
  /// Whether every partner has said something at or past `ts` (its value there is final).
  bool settled(StringId device, int64_t ts) const;
  /// Appends the joined record of `r` (fields `fields`, texts in `text`) to `out`.
  void emit(const Record& r, const Field* fields, const std::string_view text, SeriesTable& series,
            Batch& out);
  /// Keeps `r` until its partners have spoken (a flooding device's oldest goes to `out`).
  void hold(const Batch& batch, const Record& r, int64_t wall_ms, SeriesTable& series, Batch& out);
  /// Lets out the held readings of `device` that are settled or waited long enough
  /// (`force`: all of them).
  void release(StringId device, int64_t wall_ms, bool force, SeriesTable& series, Batch& out);
  void emitHeld(const Held& h, SeriesTable& series, Batch& out);

  JoinSpec spec_;
  uint16_t origin_;
  StringId on_;
  FieldId on_field_;
  std::vector<Partner> partners_;
  bool any_fixed_ = false;
  std::unordered_map<uint64_t, Heard> recent_;  // keyOf(partner, device) → readings; holds device
  std::unordered_map<StringId, std::deque<Held>> held_;
  size_t held_count_ = 0;
  std::vector<SeriesId> out_series_;  // driving series → the joined records' series
  StringId out_metric_;
  std::vector<Role> roles_;        // per record of the batch
  std::vector<StringId> touched_;  // devices whose held readings may be released
  Batch scratch_;
};

}  // namespace ganglion::edge
