// EWMA control limits (detector.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "edge/detect/detector.h"
#include "edge/state/state_codec.h"

namespace ganglion::edge {
namespace {

class Ewma final : public Detector {
 public:
  explicit Ewma(const DetectSpec& spec)
      : lambda_(spec.lambda),
        alpha_(2.0 / (spec.history + 1.0)),
        warmup_(warmupOf(spec)),
        min_scale_(spec.min_scale) {}

  Judgement observe(uint32_t slot, double x, int64_t) override {
    if (slot >= series_.size()) series_.resize(slot + 1);
    State& s = series_[slot];
    Judgement j;
    if (s.n == 0) {
      s = State{x, x, 0, 1};
      return j;
    }
    const double z = lambda_ * x + (1 - lambda_) * s.z;
    if (s.n >= warmup_) {
      const double sigma = std::max(std::sqrt(s.var), spreadFloor(min_scale_, s.mean));
      j.judged = true;
      j.baseline = s.mean;
      j.scale = sigma * std::sqrt(lambda_ / (2 - lambda_));
      j.score = cappedScore(std::fabs(z - s.mean), j.scale);
    }
    // The baseline: an exponentially weighted mean and variance over about `history` values
    // (plain running ones until then, so the first values do not weigh more).
    const double a = std::max(alpha_, 1.0 / (s.n + 1.0));
    const double d = x - s.mean;
    s.mean += a * d;
    s.var = (1 - a) * (s.var + a * d * d);
    s.z = z;
    if (s.n < UINT32_MAX) ++s.n;
    // Values near a double's limit (1e308, then -1e308) overflow the baseline to inf, then
    // NaN, which would judge every later value far out: the series starts again from this one.
    if (!std::isfinite(s.mean) || !std::isfinite(s.var) || !std::isfinite(s.z))
      s = std::isfinite(x) ? State{x, x, 0, 1} : State{};
    return j;
  }

  void explain(std::string_view feature, double x, const Judgement& j, std::string& out) const override {
    fmt::format_to(
        std::back_inserter(out),
        "{} {:.6g}: its EWMA is {:.3g} control deviations {} the baseline {:.6g} (deviation {:.3g}, "
        "lambda {:.3g})",
        feature, x, j.score, x >= j.baseline ? "above" : "below", j.baseline, j.scale, lambda_);
  }

  std::string_view method() const override { return "ewma"; }
  void forget(uint32_t slot) override {
    if (slot < series_.size()) series_[slot] = State{};
  }

  // A slot: z, mean, variance, count.
  void save(uint32_t slot, std::string& out) const override {
    StateEncoder e(out);
    const State s = slot < series_.size() ? series_[slot] : State{};
    e.f64(s.z);
    e.f64(s.mean);
    e.f64(s.var);
    e.u32(s.n);
  }

  bool worthRestoring(std::string_view in) const override {
    StateDecoder d(in);
    d.f64(), d.f64(), d.f64();
    const uint32_t n = d.u32();
    return d.ok() && n >= warmup_;
  }

  bool restore(uint32_t slot, std::string_view in) override {
    StateDecoder d(in);
    State s;
    s.z = d.f64();
    s.mean = d.f64();
    s.var = d.f64();
    s.n = d.u32();
    if (!d.ok() || !d.done()) return false;
    if (slot >= series_.size()) series_.resize(slot + 1);
    if (!std::isfinite(s.z) || !std::isfinite(s.mean) || !std::isfinite(s.var) || s.var < 0) s = State{};
    // A reload's successor that learned already keeps what it learned.
    if (series_[slot].n == 0) series_[slot] = s;
    return true;
  }

 private:
  struct State {
    double z = 0, mean = 0, var = 0;
    uint32_t n = 0;
  };
  double lambda_, alpha_;
  uint32_t warmup_;
  double min_scale_;
  std::vector<State> series_;
};

}  // namespace

std::unique_ptr<Detector> makeEwma(const DetectSpec& spec) { return std::make_unique<Ewma>(spec); }

}  // namespace ganglion::edge
