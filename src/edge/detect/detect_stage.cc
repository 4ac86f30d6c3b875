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
      feature_names_(spec_.fields.empty() ? std::vector<std::string>{spec_.field} : spec_.fields),
      detector_field_(names.find("detector")),
      score_field_(names.find("score")),
      verdict_field_(names.find("verdict")),
      reason_field_(names.find("reason")),
      baseline_field_(names.find("baseline")),
      rul_field_(names.find("rul_s")),
      threshold_(thresholdOf(spec_)) {
  for (const auto& f : feature_names_)
    features_.push_back(f == "value" ? FieldNames::kNoField : names.find(f));
}

void DetectStage::process(Batch& batch, StageContext& ctx) {
  // Events are appended after the records: walk only the records that came in.
  const size_t n = batch.records.size();
  counters.in += n;
  counters.out += n;
  for (size_t i = 0; i < n; ++i) {
    const Record r = batch.records[i];  // a copy: pushing events may move the vector
    if (r.series == kNoSeries || r.kind == RecordKind::kEvent || r.kind == RecordKind::kSummary) continue;
    if (metric_ != StringPool::kNotFound && ctx.series.key(r.series).metric != metric_) continue;
    xs_.clear();
    for (FieldId feature : features_) {
      if (feature == FieldNames::kNoField) {
        if (r.hasValue()) xs_.push_back(r.value);
      } else if (const Field* f = batch.findField(r, feature); f && !f->is_text) {
        xs_.push_back(f->number);
      }
    }
    if (xs_.size() != features_.size()) {
      ++counters.no_value;
      continue;
    }
    const uint32_t slot = slotOf(r.series);
    if (r.ts <= restored_until_[slot]) {  // learned before the restart
      ++counters.replayed;
      continue;
    }
    last_ts_[slot] = std::max(last_ts_[slot], r.ts);
    const Judgement j = detector_->observeAll(slot, xs_, r.ts);
    if (!j.judged || !(j.score >= threshold_)) continue;
    Record event;
    event.kind = RecordKind::kEvent;
    event.series = r.series;
    event.ts = r.ts;
    if (features_.size() == 1) event.value = xs_[0];
    event.origin = origin_;
    event.seq = r.seq;
    event.quality = r.quality;
    reason_.clear();
    detector_->explainAll(feature_names_, xs_, j, reason_);
    batch.push(event);
    batch.addText(detector_field_, spec_.name);
    batch.addNumber(score_field_, j.score);
    batch.addText(verdict_field_, "anomaly");
    batch.addText(reason_field_, reason_);
    batch.addNumber(baseline_field_, j.baseline);
    if (j.rul_s >= 0) batch.addNumber(rul_field_, j.rul_s);
    if (features_.size() > 1)  // the features judged together, as the record had them
      for (size_t f = 0; f < features_.size(); ++f) batch.addNumber(features_[f], xs_[f]);
    ++counters.events;
    ++counters.out;
  }
}

uint32_t DetectStage::slotOf(SeriesId series) {
  if (series >= slot_of_series_.size()) slot_of_series_.resize(series + 1, kNoSlot);
  uint32_t& slot = slot_of_series_[series];
  if (slot != kNoSlot) return slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    series_of_slot_[slot] = series;
  } else {
    slot = static_cast<uint32_t>(series_of_slot_.size());
    series_of_slot_.push_back(series);
    last_ts_.push_back(INT64_MIN);
    restored_until_.push_back(INT64_MIN);
  }
  return slot;
}

void DetectStage::forgetSeries(const Forgetting& f) {
  for (size_t id = 0; id < slot_of_series_.size(); ++id) {
    const uint32_t slot = slot_of_series_[id];
    if (slot == kNoSlot || f.kept(static_cast<SeriesId>(id))) continue;
    detector_->forget(slot);
    series_of_slot_[slot] = kNoSeries;
    last_ts_[slot] = INT64_MIN;
    restored_until_[slot] = INT64_MIN;
    free_slots_.push_back(slot);
    slot_of_series_[id] = kNoSlot;
  }
}

std::string DetectStage::stateKey() const {
  // What a history means: the detector, its method, the feature and the metric it judges.
  std::string key = fmt::format("detect\x1f{}\x1f{}\x1f{}\x1f{}", spec_.name, detector_->method(),
                                spec_.field, spec_.metric);
  if (std::string variant = detector_->stateVariant(); !variant.empty()) key += "\x1f" + variant;
  return key;
}

void DetectStage::saveState(std::string& out, const SeriesTable& series) const {
  StateEncoder e(out);
  e.u32(static_cast<uint32_t>(series_of_slot_.size() - free_slots_.size()));
  std::string blob;
  for (uint32_t slot = 0; slot < series_of_slot_.size(); ++slot) {
    const SeriesId id = series_of_slot_[slot];
    if (id == kNoSeries) continue;  // free
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

double thresholdOf(const DetectSpec& spec) {
  if (!std::isnan(spec.threshold)) return spec.threshold;
  if (spec.method == "ewma") return 3;
  if (spec.method == "trend") return 1;
  if (spec.method == "hst") return 7;
  return 3.5;
}

uint32_t warmupOf(const DetectSpec& spec) {
  if (spec.method == "hst") return spec.warmup ? spec.warmup : spec.history;
  return spec.warmup ? spec.warmup : std::min<uint32_t>(spec.history, 30);
}

std::unique_ptr<Detector> makeDetector(const DetectSpec& spec) {
  if (spec.method == "robust_zscore") return makeRobustZScore(spec);
  if (spec.method == "ewma") return makeEwma(spec);
  if (spec.method == "seasonal") return makeSeasonal(spec);
  if (spec.method == "trend") return makeTrend(spec);
  if (spec.method == "hst") return makeHalfSpaceTrees(spec);
  return nullptr;
}

}  // namespace ganglion::edge
