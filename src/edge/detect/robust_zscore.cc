// The robust z-score detector (detector.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "edge/detect/detector.h"
#include "edge/detect/rolling_median.h"
#include "edge/state/state_codec.h"

namespace ganglion::edge {

namespace {

class RobustZScore final : public Detector {
 public:
  explicit RobustZScore(const DetectSpec& spec)
      : history_(spec.history), warmup_(warmupOf(spec)), min_scale_(spec.min_scale) {}

  Judgement observe(uint32_t slot, double x, int64_t) override {
    if (slot >= series_.size()) series_.resize(slot + 1, RollingMedian(history_));
    RollingMedian& h = series_[slot];
    Judgement j;
    if (h.size() >= warmup_) {
      j.judged = true;
      j.baseline = h.median();
      double scale = 1.4826 * h.mad(j.baseline);
      if (!(scale > 0)) scale = 1.2533 * h.meanAbsoluteDeviation(j.baseline);
      j.scale = std::max(scale, spreadFloor(min_scale_, j.baseline));
      j.score = cappedScore(std::fabs(x - j.baseline), j.scale);
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
  void forget(uint32_t slot) override {
    if (slot < series_.size()) series_[slot] = RollingMedian(history_);
  }

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
