// Trend to a limit: remaining useful life (detector.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "edge/detect/detector.h"
#include "edge/state/state_codec.h"

namespace ganglion::edge {
namespace {

constexpr double kHourMs = 3'600'000.0;

class Trend final : public Detector {
 public:
  explicit Trend(const DetectSpec& spec)
      : history_(spec.history),
        warmup_(std::max<uint32_t>(3, warmupOf(spec))),
        limit_(spec.limit),
        horizon_s_(static_cast<double>(spec.horizon_ms) / 1000.0),
        min_t_(spec.min_t) {}

  Judgement observe(uint32_t slot, double x, int64_t ts) override {
    if (slot >= series_.size()) series_.resize(slot + 1);
    auto& points = series_[slot];
    points.emplace_back(ts, x);
    if (points.size() > history_) points.pop_front();
    Judgement j;
    if (points.size() < warmup_) return j;
    // Least squares of x against time in hours before the newest point.
    const int64_t newest = std::max_element(points.begin(), points.end())->first;
    const double n = static_cast<double>(points.size());
    double mt = 0, mx = 0;
    for (const auto& [t, v] : points) {
      mt += static_cast<double>(t - newest) / kHourMs;
      mx += v;
    }
    mt /= n;
    mx /= n;
    double sxx = 0, sxy = 0;
    for (const auto& [t, v] : points) {
      const double dt = static_cast<double>(t - newest) / kHourMs - mt;
      sxx += dt * dt;
      sxy += dt * (v - mx);
    }
    j.judged = true;
    if (!(sxx > 0)) return j;        // every point at one time: no slope
    const double slope = sxy / sxx;  // per hour
    const double now = mx - slope * mt;
    double sse = 0;
    for (const auto& [t, v] : points) {
      const double fit = now + slope * static_cast<double>(t - newest) / kHourMs;
      sse += (v - fit) * (v - fit);
    }
    const double se = std::sqrt(sse / (n - 2) / sxx);
    const double t_stat = se > 0 ? std::fabs(slope) / se : (slope != 0 ? 1e9 : 0);
    j.baseline = now;
    j.scale = slope;
    if (!std::isfinite(now) || !std::isfinite(slope) || t_stat < min_t_ || slope == 0) return j;
    double rul_s;
    if ((slope > 0 && now >= limit_) || (slope < 0 && now <= limit_)) {
      rul_s = 0;  // there already
    } else {
      rul_s = (limit_ - now) / slope * 3600.0;
      if (!(rul_s > 0)) return j;  // heading away from the limit
    }
    j.rul_s = std::min(rul_s, 1e15);
    j.score = std::min(horizon_s_ / std::max(j.rul_s, 1e-3), 1e9);
    return j;
  }

  void explain(std::string_view feature, double, const Judgement& j, std::string& out) const override {
    fmt::format_to(std::back_inserter(out), "{} is {} {:.3g} per hour from {:.6g}: it reaches {:.6g} in {}",
                   feature, j.scale >= 0 ? "rising" : "falling", std::fabs(j.scale), j.baseline, limit_,
                   j.rul_s <= 0 ? std::string("no time (it is there)") : duration(j.rul_s));
  }

  std::string_view method() const override { return "trend"; }
  void forget(uint32_t slot) override {
    if (slot < series_.size()) series_[slot] = {};
  }

  // A slot: u32 points, then (ts, value) each, oldest first.
  void save(uint32_t slot, std::string& out) const override {
    StateEncoder e(out);
    if (slot >= series_.size()) return e.u32(0);
    e.u32(static_cast<uint32_t>(series_[slot].size()));
    for (const auto& [t, v] : series_[slot]) {
      e.i64(t);
      e.f64(v);
    }
  }

  bool worthRestoring(std::string_view in) const override {
    StateDecoder d(in);
    const uint32_t n = d.u32();
    return d.ok() && n >= warmup_;
  }

  bool restore(uint32_t slot, std::string_view in) override {
    StateDecoder d(in);
    const uint32_t n = d.u32();
    if (!d.ok() || in.size() != 4 + uint64_t{n} * 16) return false;
    std::deque<std::pair<int64_t, double>> points;
    for (uint32_t i = 0; i < n; ++i) {
      const int64_t t = d.i64();
      const double v = d.f64();
      if (!std::isfinite(v)) continue;
      points.emplace_back(t, v);
      if (points.size() > history_) points.pop_front();
    }
    if (slot >= series_.size()) series_.resize(slot + 1);
    for (const auto& p : series_[slot]) {  // what a reload's successor learned comes after
      points.push_back(p);
      if (points.size() > history_) points.pop_front();
    }
    series_[slot] = std::move(points);
    return true;
  }

 private:
  static std::string duration(double s) {
    if (s < 120) return fmt::format("{:.0f} s", s);
    if (s < 7200) return fmt::format("{:.1f} min", s / 60);
    if (s < 172'800) return fmt::format("{:.1f} h", s / 3600);
    return fmt::format("{:.1f} days", s / 86'400);
  }

  uint32_t history_, warmup_;
  double limit_, horizon_s_, min_t_;
  std::vector<std::deque<std::pair<int64_t, double>>> series_;
};

}  // namespace

std::unique_ptr<Detector> makeTrend(const DetectSpec& spec) { return std::make_unique<Trend>(spec); }

}  // namespace ganglion::edge
