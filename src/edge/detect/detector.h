// The detector seam: a method that scores one value of a series against what the series did
// before (robust z-score, EWMA control limits, a seasonal baseline, trend to a limit), and the
// `detect` stage that feeds it, raises events past the threshold, and passes every record
// through.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
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
  double rul_s = -1;    ///< trend: seconds until the limit is reached (-1: not estimated)
  /// hst: the feature that isolated the value in most trees (-1: none), and in how many.
  int feature = -1;
  int feature_votes = 0;
  double detail = 0;  ///< hst: the value's log2 mass
};

/// The smallest spread a score is measured in: `min_scale`, or (0: automatic) 10⁻⁹ of the
/// baseline's size, so a constant series still scores a change (and never divides by zero).
inline double spreadFloor(double min_scale, double baseline) {
  return min_scale > 0 ? min_scale : std::max(std::fabs(baseline) * 1e-9, 1e-12);
}
/// `distance` in units of `scale`, capped at 10⁹ (a non-finite result too).
inline double cappedScore(double distance, double scale) {
  const double score = std::min(distance / scale, 1e9);
  return std::isfinite(score) ? score : 1e9;
}

class Detector {
 public:
  virtual ~Detector() = default;
  /// Judges `x` (at event time `ts`, epoch ms) for the series in `slot` against its history,
  /// then learns it. Slots are dense (0, 1, 2, ... as series appear). Pipeline's worker.
  virtual Judgement observe(uint32_t slot, double x, int64_t ts) = 0;
  /// The event's reason: which feature, how far out, against what (appended to `out`).
  virtual void explain(std::string_view feature, double x, const Judgement& j, std::string& out) const = 0;
  virtual std::string_view method() const = 0;
  /// Multivariate methods (hst) judge several features at once: `xs` holds one value per
  /// `fields` entry, in order; the univariate ones judge `xs[0]`. Pipeline's worker.
  virtual Judgement observeAll(uint32_t slot, std::span<const double> xs, int64_t ts) {
    return observe(slot, xs[0], ts);
  }
  /// explain() for several features (`features` and `xs` in the same order).
  virtual void explainAll(std::span<const std::string> features, std::span<const double> xs,
                          const Judgement& j, std::string& out) const {
    explain(features[0], xs[0], j, out);
  }
  /// What else a saved state's meaning depends on (a seasonal detector's buckets): part of the
  /// stage's state key, so a change starts afresh.
  virtual std::string stateVariant() const { return {}; }
  /// The state of the series in `slot` (its history), appended to `out`; restore() reads it
  /// back into a detector of the same method, whose history may have another length (the
  /// newest values are kept). Pipeline's worker (restore: before it runs, or on its worker).
  virtual void save(uint32_t slot, std::string& out) const = 0;
  /// Returns false when `in` is not what save() wrote (the slot is left empty then).
  virtual bool restore(uint32_t slot, std::string_view in) = 0;
  /// Forgets the series in `slot` (idle and forgotten): the slot may be handed to another
  /// series, which starts afresh. Pipeline's worker.
  virtual void forget(uint32_t slot) = 0;
  /// Whether a saved series had warmed up (a restart restores only those: see
  /// Stage::restoreState).
  virtual bool worthRestoring(std::string_view in) const = 0;
};

struct DetectSpec {
  std::string name;  ///< the events' `detector`
  std::string method = "robust_zscore";
  std::string field = "value";      ///< the feature judged: `value` or a field (`rms`)
  std::vector<std::string> fields;  ///< hst: the features judged together (1 to kMaxHstFields)
  std::string metric;               ///< only records of this metric; empty: all
  uint32_t history = 120;           ///< values kept per series (ewma, seasonal: the baseline's span)
  uint32_t warmup = 0;              ///< values before judging; 0: min(history, 30)
  /// An event when score >= threshold; NaN: the method's default (thresholdOf()).
  double threshold = std::numeric_limits<double>::quiet_NaN();
  double min_scale = 0;        ///< floor of the spread; 0: automatic
  double lambda = 0.2;         ///< ewma: the weight of the newest value in the control statistic
  std::string season = "day";  ///< seasonal: `day` (24 hourly buckets) or `week` (168)
  int32_t utc_offset_min = 0;  ///< seasonal: local time = UTC + this (hours of the buckets)
  double limit = std::numeric_limits<double>::quiet_NaN();  ///< trend: the value not to reach
  int64_t horizon_ms = 0;  ///< trend: an event when the limit is nearer than this
  double min_t = 5;        ///< trend: the fitted slope's t-statistic must reach this
  uint32_t trees = 16;     ///< hst: trees in the ensemble
  uint32_t depth = 10;     ///< hst: each tree's depth
};

/// hst: at most this many `fields`, and a `history` (its window) of at most this many values
/// (its counts are 16 bits) and at least this many (and as many to warm up on).
inline constexpr size_t kMaxHstFields = 8;
inline constexpr uint32_t kMaxHstHistory = 4096;
inline constexpr uint32_t kMinHstHistory = 256;

/// The methods, for errors and docs.
inline constexpr std::string_view kDetectMethods = "robust_zscore, ewma, seasonal, trend, hst";
/// The threshold a spec asks for, or its method's default.
double thresholdOf(const DetectSpec& spec);
/// The warm-up a spec asks for, or the default: the smaller of history and 30.
uint32_t warmupOf(const DetectSpec& spec);

class DetectStage final : public Stage {
 public:
  /// Field ids of the event fields (detector, score, verdict, reason, baseline) are interned in
  /// `names` beforehand by the pipeline builder; `metric` is the interned metric (kNotFound:
  /// any). `origin`: this stage's origin id (the events' ids).
  DetectStage(DetectSpec spec, std::unique_ptr<Detector> detector, const FieldNames& names, StringId metric,
              uint16_t origin);
  void process(Batch& batch, StageContext& ctx) override;
  std::string_view kind() const override { return "detect"; }
  void forgetSeries(const Forgetting& f) override;
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
  std::vector<std::string> feature_names_;  // `field`, or hst's `fields`
  std::vector<FieldId> features_;           // kNoField: the record's value
  FieldId detector_field_, score_field_, verdict_field_, reason_field_, baseline_field_, rul_field_;
  double threshold_;
  uint32_t slotOf(SeriesId series);

  std::vector<uint32_t> slot_of_series_;
  std::vector<SeriesId> series_of_slot_;  // kNoSeries: a free slot
  std::vector<uint32_t> free_slots_;      // slots of forgotten series, handed out again
  /// Per slot: the `ts` of the newest value learned, and the newest a restored state had
  /// learned (values at or before it are replays of what the state holds: skipped).
  std::vector<int64_t> last_ts_, restored_until_;
  std::string reason_;
  std::vector<double> xs_;
};

/// The robust z-score: |x - median| / (1.4826 * MAD) over the series' last `history` values
/// (a normal distribution's z-score, but a few wild values do not move the baseline). When more
/// than half the history is one value (MAD 0), the mean absolute deviation (* 1.2533) stands
/// in; when every value is equal, any change scores high (the spread floor is `min_scale`, or
/// 1e-9 of the median's size).
std::unique_ptr<Detector> makeRobustZScore(const DetectSpec& spec);

/// EWMA control limits (Roberts 1959): the statistic z = lambda * x + (1 - lambda) * z is
/// compared with a slow baseline (mean and deviation over about `history` values); the score
/// is |z - mean| in units of z's own deviation, sigma * sqrt(lambda / (2 - lambda)). Sensitive
/// to small lasting shifts and drifts that a single-value score misses.
std::unique_ptr<Detector> makeEwma(const DetectSpec& spec);

/// A seasonal baseline: per hour of day (or of week) a mean and mean absolute deviation over
/// about `history` values of that hour; the score is |x - mean| / (1.2533 * deviation). What
/// is learned is clipped to the threshold (a spike moves its hour's baseline little).
std::unique_ptr<Detector> makeSeasonal(const DetectSpec& spec);

/// Trend to a limit (remaining useful life): a least-squares line through the last `history`
/// values against time; when its slope is significant (t >= min_t) and heads for `limit`, the
/// time left until it gets there is `rul_s`, and the score is horizon / time left (>= 1: within
/// the horizon).
std::unique_ptr<Detector> makeTrend(const DetectSpec& spec);

/// Half-space trees (Tan, Ting and Liu 2011), multivariate: several features of a record
/// (`fields`: a window's rms, peak-to-peak and crest factor) judged together, so a combination
/// that never occurs is found even when each feature alone is in its usual range. The
/// features are scaled by the range the series showed while warming up; `trees` random trees
/// of `depth` halvings count how many of the last `history` values fell in each box (the
/// reference, replaced by the newest `history` values every `history` values). A value's mass
/// is, per tree, the count of the deepest box along its path that still holds enough
/// reference values, times 2^depth (a density); the score is how far the log of that mass
/// falls below the series' typical log-mass, in robust deviations (the typical level and
/// its deviation are exponentially weighted over about `history` values).
std::unique_ptr<Detector> makeHalfSpaceTrees(const DetectSpec& spec);

/// The detector of `spec.method` (null for an unknown method).
std::unique_ptr<Detector> makeDetector(const DetectSpec& spec);

}  // namespace ganglion::edge
