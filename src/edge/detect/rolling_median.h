// The last N values of a series, kept both in arrival order and sorted, for the median and
// the median absolute deviation (MAD) over a rolling history. Adding is O(N) moves (a memmove
// of doubles: ~50 ns for N = 120), the median O(1), the MAD O(N/2) by walking outward from the
// median. Detectors run on window features (one value per series per window), so N is small
// next to the reading rate.
#pragma once

#include <cstddef>
#include <vector>

namespace ganglion::edge {

class RollingMedian {
 public:
  explicit RollingMedian(size_t capacity = 0) : capacity_(capacity) {}
  void setCapacity(size_t capacity) { capacity_ = capacity; }
  /// Adds `x`, evicting the oldest value when full.
  void add(double x);
  size_t size() const { return sorted_.size(); }
  bool empty() const { return sorted_.empty(); }
  /// Both require !empty().
  double median() const;
  /// The median of |x - median|.
  double mad(double median) const;
  /// The mean of |x - median| (a fallback scale when more than half the values are equal).
  double meanAbsoluteDeviation(double median) const;
  const std::vector<double>& sorted() const { return sorted_; }
  /// Values oldest first (for snapshots).
  std::vector<double> inOrder() const;

 private:
  size_t capacity_;
  std::vector<double> ring_;  // arrival order, wrapping at capacity_
  size_t next_ = 0;           // where the next value goes once ring_ is full
  std::vector<double> sorted_;
};

}  // namespace ganglion::edge
