#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "edge/detect/detector.h"
#include "edge/state/state_codec.h"

namespace ganglion::edge {
namespace {
constexpr uint32_t kNoSlot = UINT32_MAX;
}

DetectStage::DetectStage(DetectSpec spec, std::unique_ptr<Detector> detector, const FieldNames& names,
                         StringId metric, uint16_t origin)
    : spec_(std::move(spec)),
      detector_(std::move(detector)),
      metric_(metric),
      origin_(origin),
      feature_(spec_.field == "value" ? FieldNames::kNoField : names.find(spec_.field)),
      detector_field_(names.find("detector")),
      score_field_(names.find("score")),
      verdict_field_(names.find("verdict")),
      reason_field_(names.find("reason")),
      baseline_field_(names.find("baseline")) {}

void DetectStage::process(Batch& batch, StageContext& ctx) {
  // Events are appended after the records: walk only the records that came in.
  const size_t n = batch.records.size();
  counters.in += n;
  counters.out += n;
  for (size_t i = 0; i < n; ++i) {
    const Record r = batch.records[i];  // a copy: pushing events may move the vector
    if (r.series == kNoSeries || r.kind == RecordKind::kEvent || r.kind == RecordKind::kSummary) continue;
    if (metric_ != StringPool::kNotFound && ctx.series.key(r.series).metric != metric_) continue;
    double x;
    if (feature_ == FieldNames::kNoField) {
      if (!r.hasValue()) {
        ++counters.no_value;
        continue;
      }
      x = r.value;
    } else {
      const Field* f = batch.findField(r, feature_);
      if (!f || f->is_text) {
        ++counters.no_value;
        continue;
      }
      x = f->number;
    }
    const uint32_t slot = slotOf(r.series);
    if (r.ts <= restored_until_[slot]) {  // learned before the restart
      ++counters.replayed;
      continue;
    }
    last_ts_[slot] = std::max(last_ts_[slot], r.ts);
    const Judgement j = detector_->observe(slot, x);
    if (!j.judged || j.score < spec_.threshold) continue;
    Record event;
    event.kind = RecordKind::kEvent;
    event.series = r.series;
    event.ts = r.ts;
    event.value = x;
    event.origin = origin_;
    event.seq = static_cast<uint64_t>(r.ts);
    event.quality = r.quality;
    reason_.clear();
    detector_->explain(spec_.field, x, j, reason_);
    batch.push(event);
    batch.addText(detector_field_, spec_.name);
    batch.addNumber(score_field_, j.score);
    batch.addText(verdict_field_, "anomaly");
    batch.addText(reason_field_, reason_);
    batch.addNumber(baseline_field_, j.baseline);
    ++counters.events;
    ++counters.out;
  }
}

uint32_t DetectStage::slotOf(SeriesId series) {
  if (series >= slot_of_series_.size()) slot_of_series_.resize(series + 1, kNoSlot);
  uint32_t& slot = slot_of_series_[series];
  if (slot == kNoSlot) {
    slot = static_cast<uint32_t>(series_of_slot_.size());
    series_of_slot_.push_back(series);
    last_ts_.push_back(INT64_MIN);
    restored_until_.push_back(INT64_MIN);
  }
  return slot;
}

std::string DetectStage::stateKey() const {
  // What a history means: the detector, its method, the feature and the metric it judges.
  return fmt::format("detect\x1f{}\x1f{}\x1f{}\x1f{}", spec_.name, detector_->method(), spec_.field,
                     spec_.metric);
}

void DetectStage::saveState(std::string& out, const SeriesTable& series) const {
  StateEncoder e(out);
  e.u32(static_cast<uint32_t>(series_of_slot_.size()));
  std::string blob;
  for (uint32_t slot = 0; slot < series_of_slot_.size(); ++slot) {
    const SeriesId id = series_of_slot_[slot];
    e.str(series.source(id));
    e.str(series.device(id));
    e.str(series.metric(id));
    e.i64(std::max(last_ts_[slot], restored_until_[slot]));
    blob.clear();
    detector_->save(slot, blob);
    e.str(blob);
  }
}

Result<size_t> DetectStage::restoreState(std::string_view in, SeriesTable& series, int64_t now_ms,
                                         bool warmed_only) {
  StateDecoder d(in);
  const uint32_t count = d.u32();
  size_t restored = 0;
  std::vector<bool> seen;
  for (uint32_t i = 0; i < count && d.ok(); ++i) {
    const std::string_view source = d.str(), device = d.str(), metric = d.str();
    const int64_t until = d.i64();
    const std::string_view blob = d.str();
    if (!d.ok()) break;
    if (warmed_only && !detector_->worthRestoring(blob)) continue;
    const SeriesId id = series.intern(source, device, metric);
    if (id == kNoSeries) continue;  // the table is full: that series starts afresh
    const uint32_t slot = slotOf(id);
    if (slot >= seen.size()) seen.resize(slot + 1);
    if (seen[slot]) continue;  // a series named twice: the first counts
    seen[slot] = true;
    if (!detector_->restore(slot, blob))
      return Error(fmt::format("detector '{}': a series' history does not parse", spec_.name));
    // A reading timed ahead of the clock must not make later ones look like replays.
    restored_until_[slot] = std::max(restored_until_[slot], std::min(until, now_ms));
    ++restored;
  }
  if (!d.ok() || !d.done()) return Error(fmt::format("detector '{}': its state does not parse", spec_.name));
  return restored;
}

namespace {

class RobustZScore final : public Detector {
 public:
  explicit RobustZScore(const DetectSpec& spec)
      : history_(spec.history),
        warmup_(spec.warmup ? spec.warmup : std::min<uint32_t>(spec.history, 30)),
        min_scale_(spec.min_scale) {}

  Judgement observe(uint32_t slot, double x) override {
    if (slot >= series_.size()) series_.resize(slot + 1, RollingMedian(history_));
    RollingMedian& h = series_[slot];
    Judgement j;
    if (h.size() >= warmup_) {
      j.judged = true;
      j.baseline = h.median();
      double scale = 1.4826 * h.mad(j.baseline);
      if (!(scale > 0)) scale = 1.2533 * h.meanAbsoluteDeviation(j.baseline);
      const double floor = min_scale_ > 0 ? min_scale_ : std::max(std::fabs(j.baseline) * 1e-9, 1e-12);
      j.scale = std::max(scale, floor);
      j.score = std::min(std::fabs(x - j.baseline) / j.scale, 1e9);
      if (!std::isfinite(j.score)) j.score = 1e9;
    }
    h.add(x);
    return j;
  }

  void explain(std::string_view feature, double x, const Judgement& j, std::string& out) const override {
    fmt::format_to(std::back_inserter(out),
                   "{} {:.6g} is {:.3g} robust deviations {} the median {:.6g} (scale {:.3g})", feature, x,
                   j.score, x >= j.baseline ? "above" : "below", j.baseline, j.scale);
  }

  std::string_view method() const override { return "robust_zscore"; }

  void save(uint32_t slot, std::string& out) const override {
    StateEncoder e(out);
    if (slot >= series_.size()) return e.u32(0);
    const std::vector<double> values = series_[slot].inOrder();
    e.u32(static_cast<uint32_t>(values.size()));
    for (double v : values) e.f64(v);
  }

  bool worthRestoring(std::string_view in) const override {
    StateDecoder d(in);
    const uint32_t n = d.u32();
    return d.ok() && n >= warmup_;
  }

  bool restore(uint32_t slot, std::string_view in) override {
    StateDecoder d(in);
    const uint32_t n = d.u32();
    if (!d.ok() || in.size() != 4 + uint64_t{n} * 8) return false;
    if (slot >= series_.size()) series_.resize(slot + 1, RollingMedian(history_));
    RollingMedian fresh(history_);
    for (uint32_t i = 0; i < n; ++i) {
      const double v = d.f64();
      if (std::isfinite(v)) fresh.add(v);  // the newest `history_` stay
    }
    // Values this run learned already (a reload's successor) come after the restored ones.
    for (double v : series_[slot].inOrder()) fresh.add(v);
    series_[slot] = std::move(fresh);
    return true;
  }

 private:
  uint32_t history_;
  uint32_t warmup_;
  double min_scale_;
  std::vector<RollingMedian> series_;
};

}  // namespace

std::unique_ptr<Detector> makeRobustZScore(const DetectSpec& spec) {
  return std::make_unique<RobustZScore>(spec);
}

}  // namespace ganglion::edge
