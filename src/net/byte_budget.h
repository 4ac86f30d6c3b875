// A cap on the bytes of request bodies a listener holds in memory at once (bodies read whole
// for filters and the LLM API), shared by every worker of the process, so that many slow
// clients each sending most of a large body cannot pin the machine's memory.
#pragma once

#include <atomic>
#include <cstdint>

namespace ganglion::net {

/// Any thread; lock-free.
class ByteBudget {
 public:
  explicit ByteBudget(uint64_t max) : max_(max) {}
  /// Takes `n` bytes if they fit under the cap.
  bool take(uint64_t n) {
    uint64_t used = used_.load(std::memory_order_relaxed);
    do {
      if (n > max_ - used) return false;
    } while (!used_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
    return true;
  }
  void give(uint64_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t max() const { return max_; }

 private:
  const uint64_t max_;
  std::atomic<uint64_t> used_{0};
};

}  // namespace ganglion::net
