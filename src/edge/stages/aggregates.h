// Streaming aggregates of one window's readings: O(1) per reading, no stored samples.
// Mean and the central moments use Welford's/Terriberry's updates (stable for long windows
// of large values); rms from the sum of squares.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

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
};
inline constexpr size_t kAggregateCount = 15;

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

  /// The aggregate's value; nullopt when it has none for these readings.
  std::optional<double> value(Aggregate a) const;
};

}  // namespace ganglion::edge
