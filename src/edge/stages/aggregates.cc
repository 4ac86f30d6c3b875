#include "edge/stages/aggregates.h"

#include <cmath>

namespace ganglion::edge {
namespace {

constexpr std::string_view kNames[kAggregateCount] = {
    "count",        "sum",          "min",      "max",      "mean", "stddev", "variance", "rms",
    "peak_to_peak", "crest_factor", "skewness", "kurtosis", "rate", "first",  "last",
};

}  // namespace

std::string_view aggregateName(Aggregate a) { return kNames[static_cast<size_t>(a)]; }

std::optional<Aggregate> aggregateFromName(std::string_view name) {
  for (size_t i = 0; i < kAggregateCount; ++i)
    if (kNames[i] == name) return static_cast<Aggregate>(i);
  return std::nullopt;
}

std::string_view aggregateNames() {
  return "count, sum, min, max, mean, stddev, variance, rms, peak_to_peak, crest_factor, skewness, kurtosis, "
         "rate, first, last";
}

std::optional<double> Accumulator::value(Aggregate a) const {
  if (n == 0) return std::nullopt;
  const double nn = static_cast<double>(n);
  const double variance = m2 > 0 ? m2 / nn : 0.0;
  auto finite = [](double v) -> std::optional<double> {
    if (!std::isfinite(v)) return std::nullopt;
    return v;
  };
  switch (a) {
    case Aggregate::kCount:
      return nn;
    case Aggregate::kSum:
      return finite(sum);
    case Aggregate::kMin:
      return min;
    case Aggregate::kMax:
      return max;
    case Aggregate::kMean:
      return finite(mean);
    case Aggregate::kStddev:
      return finite(std::sqrt(variance));
    case Aggregate::kVariance:
      return finite(variance);
    case Aggregate::kRms:
      return finite(std::sqrt(sumsq / nn));
    case Aggregate::kPeakToPeak:
      return finite(max - min);
    case Aggregate::kCrestFactor: {
      const double rms = std::sqrt(sumsq / nn);
      if (!(rms > 0)) return std::nullopt;
      return finite(std::max(std::fabs(max), std::fabs(min)) / rms);
    }
    case Aggregate::kSkewness:
      if (!(m2 > 0)) return std::nullopt;
      return finite(std::sqrt(nn) * m3 / std::pow(m2, 1.5));
    case Aggregate::kKurtosis:
      if (!(m2 > 0)) return std::nullopt;
      return finite(nn * m4 / (m2 * m2));
    case Aggregate::kRate:
      if (last_ts == first_ts) return std::nullopt;
      return finite((last - first) / (static_cast<double>(last_ts - first_ts) / 1000.0));
    case Aggregate::kFirst:
      return first;
    case Aggregate::kLast:
      return last;
  }
  return std::nullopt;
}

}  // namespace ganglion::edge
