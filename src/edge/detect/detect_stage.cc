#include <fmt/format.h>

#include "edge/detect/detector.h"

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
    if (r.series >= slot_of_series_.size()) slot_of_series_.resize(ctx.series.size(), kNoSlot);
    uint32_t& slot = slot_of_series_[r.series];
    if (slot == kNoSlot) slot = slots_++;
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
