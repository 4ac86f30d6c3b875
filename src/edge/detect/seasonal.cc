// A seasonal baseline per hour of day or of week (detector.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "edge/detect/detector.h"
#include "edge/state/state_codec.h"

namespace ganglion::edge {
namespace {

constexpr int64_t kHourMs = 3'600'000;

class Seasonal final : public Detector {
 public:
  explicit Seasonal(const DetectSpec& spec)
      : buckets_(spec.season == "week" ? 168 : 24),
        offset_ms_(int64_t{spec.utc_offset_min} * 60'000),
        alpha_(2.0 / (spec.history + 1.0)),
        warmup_(warmupOf(spec)),
        threshold_(thresholdOf(spec)),
        min_scale_(spec.min_scale) {}

  /// The bucket of `ts`: the local hour of the day, or of the week from Monday 00:00.
  uint32_t bucketOf(int64_t ts) const {
    int64_t hours = (ts + offset_ms_) / kHourMs;
    if ((ts + offset_ms_) % kHourMs < 0) --hours;
    if (buckets_ == 168) hours += 72;  // 1970-01-01 was a Thursday: Monday is 72 hours before
    int64_t b = hours % buckets_;
    if (b < 0) b += buckets_;
    return static_cast<uint32_t>(b);
  }

  Judgement observe(uint32_t slot, double x, int64_t ts) override {
    if (slot >= series_.size()) series_.resize(slot + 1);
    auto& buckets = series_[slot];
    if (buckets.empty()) buckets.resize(buckets_);
    Bucket& b = buckets[bucketOf(ts)];
    Judgement j;
    double learn = x;
    if (b.n >= warmup_) {
      j.judged = true;
      j.baseline = b.mean;
      j.scale = std::max(1.2533 * b.mad, spreadFloor(min_scale_, b.mean));
      j.score = cappedScore(std::fabs(x - b.mean), j.scale);
      // An outlier teaches its hour only as much as a value at the threshold would.
      const double reach = threshold_ * j.scale;
      learn = std::clamp(x, b.mean - reach, b.mean + reach);
    }
    const double a = std::max(alpha_, 1.0 / (b.n + 1.0));
    const double dev = std::fabs(learn - b.mean);
    if (b.n == 0) {
      b.mean = learn;
    } else {
      b.mad += a * (dev - b.mad);
      b.mean += a * (learn - b.mean);
    }
    if (b.n < UINT32_MAX) ++b.n;
    // Values near a double's limit overflow the hour's baseline to inf, then NaN, which would
    // judge every later value far out: the hour starts again from this value.
    if (!std::isfinite(b.mean) || !std::isfinite(b.mad))
      b = std::isfinite(learn) ? Bucket{.mean = learn, .mad = 0, .n = 1} : Bucket{};
    return j;
  }

  void explain(std::string_view feature, double x, const Judgement& j, std::string& out) const override {
    fmt::format_to(std::back_inserter(out),
                   "{} {:.6g} is {:.3g} deviations {} this hour's usual {:.6g} (scale {:.3g})", feature, x,
                   j.score, x >= j.baseline ? "above" : "below", j.baseline, j.scale);
  }

  std::string_view method() const override { return "seasonal"; }
  void forget(uint32_t slot) override {
    if (slot < series_.size()) std::vector<Bucket>().swap(series_[slot]);
  }
  std::string stateVariant() const override { return fmt::format("{}h{:+}m", buckets_, offset_ms_ / 60'000); }

  // A slot: u32 buckets (0: none yet), then (mean, mad, n) per bucket.
  void save(uint32_t slot, std::string& out) const override {
    StateEncoder e(out);
    if (slot >= series_.size() || series_[slot].empty()) return e.u32(0);
    e.u32(buckets_);
    for (const Bucket& b : series_[slot]) {
      e.f64(b.mean);
      e.f64(b.mad);
      e.u32(b.n);
    }
  }

  bool worthRestoring(std::string_view in) const override {
    StateDecoder d(in);
    const uint32_t n = d.u32();
    for (uint32_t i = 0; i < n && d.ok(); ++i) {
      d.f64(), d.f64();
      if (d.u32() >= warmup_) return d.ok();
    }
    return false;
  }

  bool restore(uint32_t slot, std::string_view in) override {
    StateDecoder d(in);
    const uint32_t n = d.u32();
    if (!d.ok() || (n != 0 && n != buckets_)) return false;
    std::vector<Bucket> buckets(n);
    for (Bucket& b : buckets) {
      b.mean = d.f64();
      b.mad = d.f64();
      b.n = d.u32();
      if (!std::isfinite(b.mean) || !std::isfinite(b.mad) || b.mad < 0) b = Bucket{};
    }
    if (!d.ok() || !d.done()) return false;
    if (slot >= series_.size()) series_.resize(slot + 1);
    if (series_[slot].empty()) series_[slot] = std::move(buckets);  // a successor keeps its own
    return true;
  }

 private:
  struct Bucket {
    double mean = 0, mad = 0;
    uint32_t n = 0;
  };
  uint32_t buckets_;
  int64_t offset_ms_;
  double alpha_;
  uint32_t warmup_;
  double threshold_, min_scale_;
  std::vector<std::vector<Bucket>> series_;
};

}  // namespace

std::unique_ptr<Detector> makeSeasonal(const DetectSpec& spec) { return std::make_unique<Seasonal>(spec); }

}  // namespace ganglion::edge
