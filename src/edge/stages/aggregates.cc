#include "edge/stages/aggregates.h"

#include <algorithm>
#include <cmath>

namespace ganglion::edge {
namespace {

constexpr std::string_view kNames[kAggregateCount] = {
    "count", "sum",          "min",          "max",      "mean",     "stddev", "variance",
    "rms",   "peak_to_peak", "crest_factor", "skewness", "kurtosis", "rate",   "first",
    "last",  "p50",          "p90",          "p95",      "p99",
};

uint64_t nextRandom(uint64_t& state) {  // splitmix64: small, fast, well mixed
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Linear interpolation between the closest ranks of sorted `v` (numpy's default).
double percentile(const std::vector<double>& v, double q) {
  const double rank = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(rank);
  if (lo + 1 >= v.size()) return v.back();
  const double frac = rank - static_cast<double>(lo);
  return v[lo] * (1 - frac) + v[lo + 1] * frac;  // not v[lo] + frac * (difference): that overflows
}

}  // namespace

std::string_view aggregateName(Aggregate a) { return kNames[static_cast<size_t>(a)]; }

std::optional<Aggregate> aggregateFromName(std::string_view name) {
  for (size_t i = 0; i < kAggregateCount; ++i)
    if (kNames[i] == name) return static_cast<Aggregate>(i);
  return std::nullopt;
}

std::string_view aggregateNames() {
  return "count, sum, min, max, mean, stddev, variance, rms, peak_to_peak, crest_factor, skewness, kurtosis, "
         "rate, first, last, p50, p90, p95, p99";
}

void Accumulator::addSample(double x) {
  if (samples.size() < kMaxSamples) {
    samples.push_back(x);
    return;
  }
  // Reservoir sampling: the n-th reading replaces a kept one with probability kMaxSamples / n.
  const uint64_t j = nextRandom(rng) % n;
  if (j < kMaxSamples) samples[j] = x;
}

void Accumulator::merge(const Accumulator& o, bool moments) {
  if (o.n == 0) return;
  if (n == 0) {
    const int64_t keep_start = start;
    *this = o;
    start = std::min(keep_start, o.start);
    return;
  }
  const double na = static_cast<double>(n), nb = static_cast<double>(o.n), nn = na + nb;
  const double delta = o.mean - mean;
  const double d2 = delta * delta;
  if (moments) {
    m4 += o.m4 + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (nn * nn * nn) +
          6 * d2 * (na * na * o.m2 + nb * nb * m2) / (nn * nn) + 4 * delta * (na * o.m3 - nb * m3) / nn;
    m3 += o.m3 + d2 * delta * na * nb * (na - nb) / (nn * nn) + 3 * delta * (na * o.m2 - nb * m2) / nn;
  }
  m2 += o.m2 + d2 * na * nb / nn;
  mean += delta * nb / nn;
  n += o.n;
  sum += o.sum;
  sumsq += o.sumsq;
  min = std::min(min, o.min);
  max = std::max(max, o.max);
  if (o.first_ts < first_ts) {
    first = o.first;
    first_ts = o.first_ts;
  }
  if (o.last_ts >= last_ts) {
    last = o.last;
    last_ts = o.last_ts;
  }
  start = std::min(start, o.start);
  min_seq = std::min(min_seq, o.min_seq);
  if (samples.size() + o.samples.size() <= kMaxSamples) {
    samples.insert(samples.end(), o.samples.begin(), o.samples.end());
    return;
  }
  // Over the cap: each side's samples stand for its readings, so each gives its share of
  // kMaxSamples by how many readings it held (a side sampled 1 in 10 must not weigh as much
  // as one kept whole), each share a uniform choice of that side's samples.
  size_t mine = static_cast<size_t>(std::llround(kMaxSamples * na / nn));
  mine = std::min(mine, samples.size());
  size_t theirs = std::min(kMaxSamples - mine, o.samples.size());
  mine = std::min(samples.size(), kMaxSamples - theirs);       // one side short: the other fills up
  auto choose = [this](std::vector<double>& from, size_t k) {  // a partial Fisher-Yates shuffle
    for (size_t i = 0; i < k; ++i) std::swap(from[i], from[i + nextRandom(rng) % (from.size() - i)]);
    from.resize(k);
  };
  std::vector<double> other = o.samples;
  choose(samples, mine);
  choose(other, theirs);
  samples.insert(samples.end(), other.begin(), other.end());
}

void Accumulator::sortSamples() { std::sort(samples.begin(), samples.end()); }

std::optional<double> Accumulator::value(Aggregate a) const {
  if (n == 0) return std::nullopt;
  const double nn = static_cast<double>(n);
  // Past about 1e154 squares overflow: the second moment turns inf or NaN, and what depends on
  // it is left out (never a 0 that looks like a calm signal).
  const double variance = std::isnan(m2) ? m2 : std::max(m2, 0.0) / nn;
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
      if (std::isfinite(mean)) return mean;
      return finite(sum / nn);  // the running mean overflowed on a jump of 2e308; the sum may not
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
      if (!(rms > 0) || !std::isfinite(rms)) return std::nullopt;
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
    case Aggregate::kP50:
    case Aggregate::kP90:
    case Aggregate::kP95:
    case Aggregate::kP99: {
      if (samples.empty()) return std::nullopt;
      static constexpr double kQ[] = {0.5, 0.9, 0.95, 0.99};
      return finite(percentile(samples, kQ[static_cast<size_t>(a) - static_cast<size_t>(Aggregate::kP50)]));
    }
  }
  return std::nullopt;
}

}  // namespace ganglion::edge
