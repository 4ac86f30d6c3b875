// The detector seam: a method that scores one value of a series against what the series did
// before (robust z-score today; EWMA limits, seasonal baselines, half-space trees next), and
// the `detect` stage that feeds it, raises events past the threshold, and passes every record
// through.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edge/detect/rolling_median.h"
#include "edge/stages/stage.h"

namespace ganglion::edge {

/// How one value compares with its series' history.
struct Judgement {
  bool judged = false;  ///< false while the series warms up
  double score = 0;     ///< >= 0; how far out, in the method's units
  double baseline = 0;  ///< what the method expected (the median for robust z-score)
  double scale = 0;     ///< the spread the score is measured in
};

class Detector {
 public:
  virtual ~Detector() = default;
  /// Judges `x` for the series in `slot` against its history, then learns it. Slots are dense
  /// (0, 1, 2, ... as series appear). Pipeline's worker.
  virtual Judgement observe(uint32_t slot, double x) = 0;
  /// The event's reason: which feature, how far out, against what (appended to `out`).
  virtual void explain(std::string_view feature, double x, const Judgement& j, std::string& out) const = 0;
  virtual std::string_view method() const = 0;
  /// The state of the series in `slot` (its history), appended to `out`; restore() reads it
  /// back into a detector of the same method, whose history may have another length (the
  /// newest values are kept). Pipeline's worker (restore: before it runs, or on its worker).
  virtual void save(uint32_t slot, std::string& out) const = 0;
  /// Returns false when `in` is not what save() wrote (the slot is left empty then).
  virtual bool restore(uint32_t slot, std::string_view in) = 0;
  /// Whether a saved series had warmed up (a restart restores only those: see
  /// Stage::restoreState).
  virtual bool worthRestoring(std::string_view in) const = 0;
};

struct DetectSpec {
  std::string name;  ///< the events' `detector`
  std::string method = "robust_zscore";
  std::string field = "value";  ///< the feature judged: `value` or a field (`rms`)
  std::string metric;           ///< only records of this metric; empty: all
  uint32_t history = 120;       ///< values kept per series
  uint32_t warmup = 0;          ///< values before judging; 0: min(history, 30)
  double threshold = 3.5;       ///< an event when score >= threshold
  double min_scale = 0;         ///< floor of the spread; 0: automatic
};

class DetectStage final : public Stage {
 public:
  /// Field ids of the event fields (detector, score, verdict, reason, baseline) are interned in
  /// `names` beforehand by the pipeline builder; `metric` is the interned metric (kNotFound:
  /// any). `origin`: this stage's origin id (the events' ids).
  DetectStage(DetectSpec spec, std::unique_ptr<Detector> detector, const FieldNames& names, StringId metric,
              uint16_t origin);
  void process(Batch& batch, StageContext& ctx) override;
  std::string_view kind() const override { return "detect"; }
  const DetectSpec& spec() const { return spec_; }
  std::string stateKey() const override;
  void saveState(std::string& out, const SeriesTable& series) const override;
  Result<size_t> restoreState(std::string_view in, SeriesTable& series, int64_t now_ms,
                              bool warmed_only) override;

 private:
  DetectSpec spec_;
  std::unique_ptr<Detector> detector_;
  StringId metric_;
  uint16_t origin_;
  FieldId feature_;  // kNoField: the record's value
  FieldId detector_field_, score_field_, verdict_field_, reason_field_, baseline_field_;
  uint32_t slotOf(SeriesId series);

  std::vector<uint32_t> slot_of_series_;
  std::vector<SeriesId> series_of_slot_;
  /// Per slot: the `ts` of the newest value learned, and the newest a restored state had
  /// learned (values at or before it are replays of what the state holds: skipped).
  std::vector<int64_t> last_ts_, restored_until_;
  std::string reason_;
};

/// The robust z-score: |x - median| / (1.4826 * MAD) over the series' last `history` values
/// (a normal distribution's z-score, but a few wild values do not move the baseline). When more
/// than half the history is one value (MAD 0), the mean absolute deviation (* 1.2533) stands
/// in; when every value is equal, any change scores high (the spread floor is `min_scale`, or
/// 1e-9 of the median's size).
std::unique_ptr<Detector> makeRobustZScore(const DetectSpec& spec);

}  // namespace ganglion::edge
