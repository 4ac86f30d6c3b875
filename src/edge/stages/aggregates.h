// Streaming aggregates of one window's readings: O(1) per reading. Mean and the central
// moments use Welford's/Terriberry's updates (stable for long windows of large values), rms
// the sum of squares; two accumulators merge (Chan et al.'s pairwise formulas) when session
// windows join. Only percentiles keep readings: up to kMaxSamples per window, then a uniform
// random sample of that many (reservoir sampling).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

namespace ganglion::edge {

enum class Aggregate : uint8_t {
  kCount,
  kSum,
  kMin,
  kMax,
  kMean,
  kStddev,       ///< population standard deviation
  kVariance,     ///< population variance
  kRms,          ///< root mean square
  kPeakToPeak,   ///< max - min
  kCrestFactor,  ///< max |x| / rms (absent when rms is 0)
  kSkewness,     ///< absent when the variance is 0
  kKurtosis,     ///< non-excess (a normal distribution: 3); absent when the variance is 0
  kRate,         ///< (last - first) / seconds between them (absent when they coincide)
  kFirst,
  kLast,
  kP50,  ///< percentiles: linear interpolation between the closest ranks (numpy's default)
  kP90,
  kP95,
  kP99,
};
inline constexpr size_t kAggregateCount = 19;
/// Readings a window keeps for its percentiles; past it, a uniform sample of this many.
inline constexpr size_t kMaxSamples = 10'000;

inline bool isPercentile(Aggregate a) { return a >= Aggregate::kP50 && a <= Aggregate::kP99; }

std::string_view aggregateName(Aggregate a);
std::optional<Aggregate> aggregateFromName(std::string_view name);
/// The names, comma-separated, for error messages and docs.
std::string_view aggregateNames();

struct Accumulator {
  int64_t start = 0;  ///< the window's start (epoch ms)
  uint64_t n = 0;
  double sum = 0, sumsq = 0, mean = 0, m2 = 0, m3 = 0, m4 = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double first = 0, last = 0;
  int64_t first_ts = 0, last_ts = 0;
  uint64_t min_seq =
      UINT64_MAX;  ///< the oldest reading's number (the ingest log keeps it until the window closes)
  std::vector<double> samples;  ///< for percentiles only (addSample); sorted by sortSamples()
  uint64_t rng = 0;             ///< the reservoir's random state

  /// `moments`: keep m3/m4 (skewness, kurtosis), which cost a few more operations.
  void add(double x, int64_t ts, bool moments) {
    const double n1 = static_cast<double>(n);
    ++n;
    const double nn = static_cast<double>(n);
    const double delta = x - mean;
    const double delta_n = delta / nn;
    const double term1 = delta * delta_n * n1;
    mean += delta_n;
    if (moments) {
      const double delta_n2 = delta_n * delta_n;
      m4 += term1 * delta_n2 * (nn * nn - 3 * nn + 3) + 6 * delta_n2 * m2 - 4 * delta_n * m3;
      m3 += term1 * delta_n * (nn - 2) - 3 * delta_n * m2;
    }
    m2 += term1;
    sum += x;
    sumsq += x * x;
    if (x < min) min = x;
    if (x > max) max = x;
    if (n == 1 || ts < first_ts) {
      first = x;
      first_ts = ts;
    }
    if (n == 1 || ts >= last_ts) {
      last = x;
      last_ts = ts;
    }
  }

  /// Keeps `x` for percentiles (after add(): `n` counts it already).
  void addSample(double x);
  /// Adds `o`'s readings (a session window joining another). `moments`: as for add().
  void merge(const Accumulator& o, bool moments);
  /// Sorts the samples: percentiles read them sorted.
  void sortSamples();

  /// The aggregate's value; nullopt when it has none for these readings. Percentiles need
  /// sortSamples() first.
  std::optional<double> value(Aggregate a) const;
};

}  // namespace ganglion::edge
