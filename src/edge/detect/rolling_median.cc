#include "edge/detect/rolling_median.h"

#include <algorithm>
#include <cmath>

namespace ganglion::edge {

void RollingMedian::add(double x) {
  if (capacity_ == 0) return;
  if (ring_.size() < capacity_) {
    ring_.push_back(x);
  } else {
    const double old = ring_[next_];
    ring_[next_] = x;
    next_ = (next_ + 1) % capacity_;
    sorted_.erase(std::lower_bound(sorted_.begin(), sorted_.end(), old));
  }
  sorted_.insert(std::upper_bound(sorted_.begin(), sorted_.end(), x), x);
}

double RollingMedian::median() const {
  const size_t n = sorted_.size();
  return n % 2 ? sorted_[n / 2] : (sorted_[n / 2 - 1] + sorted_[n / 2]) / 2;
}

double RollingMedian::mad(double m) const {
  // The distances |s[i] - m| grow walking left from the split and walking right from it: merge
  // the two runs and stop at the middle one(s).
  const size_t n = sorted_.size();
  const size_t split =
      static_cast<size_t>(std::lower_bound(sorted_.begin(), sorted_.end(), m) - sorted_.begin());
  size_t left = split, right = split;  // next candidates: sorted_[left - 1], sorted_[right]
  const size_t k_high = n / 2;
  const size_t k_low = n % 2 ? k_high : k_high - 1;
  double low_value = 0, value = 0;
  for (size_t k = 0; k <= k_high; ++k) {
    const bool take_left = left > 0 && (right >= n || (m - sorted_[left - 1]) <= (sorted_[right] - m));
    value = take_left ? m - sorted_[--left] : sorted_[right++] - m;
    if (k == k_low) low_value = value;
  }
  return (low_value + value) / 2;
}

double RollingMedian::meanAbsoluteDeviation(double m) const {
  double sum = 0;
  for (double v : sorted_) sum += std::fabs(v - m);
  return sum / static_cast<double>(sorted_.size());
}

std::vector<double> RollingMedian::inOrder() const {
  if (ring_.size() < capacity_) return ring_;
  std::vector<double> out;
  out.reserve(ring_.size());
  for (size_t i = 0; i < ring_.size(); ++i) out.push_back(ring_[(next_ + i) % ring_.size()]);
  return out;
}

}  // namespace ganglion::edge
