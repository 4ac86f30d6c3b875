// Token buckets keyed by a string (client IP, key name, header value), shared by all workers.
// Sharded by key hash so workers rarely contend; each shard is bounded and evicts buckets
// that have refilled completely (they carry no information).
#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/string_map.h"

namespace ganglion::filters {

class TokenBuckets {
 public:
  using Clock = std::chrono::steady_clock;
  /// `rate` tokens per second, up to `burst` tokens.
  TokenBuckets(double rate, double burst) : rate_(rate), burst_(burst) {}

  struct Decision {
    bool allowed;
    double remaining;    ///< tokens left after this request
    double retry_after;  ///< seconds until one token is available (when refused)
  };

  /// Takes one token for `key`. Any worker thread.
  Decision take(std::string_view key, Clock::time_point now = Clock::now()) {
    size_t h = std::hash<std::string_view>{}(key);
    Shard& shard = shards_[h % kShards];
    std::lock_guard lock(shard.mutex);
    auto it = shard.buckets.find(key);
    if (it == shard.buckets.end()) {
      if (shard.buckets.size() >= kMaxPerShard) evictFull(shard, now);
      it = shard.buckets.emplace(std::string(key), Bucket{burst_, now}).first;
    }
    Bucket& b = it->second;
    double elapsed = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.last = now;
    if (b.tokens >= 1.0) {
      b.tokens -= 1.0;
      return {true, b.tokens, 0};
    }
    return {false, b.tokens, (1.0 - b.tokens) / rate_};
  }

  size_t size() {
    size_t n = 0;
    for (auto& s : shards_) {
      std::lock_guard lock(s.mutex);
      n += s.buckets.size();
    }
    return n;
  }

 private:
  static constexpr size_t kShards = 32;
  static constexpr size_t kMaxPerShard = 16384;
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };
  struct Shard {
    std::mutex mutex;
    StringMap<Bucket> buckets;
  };
  void evictFull(Shard& shard, Clock::time_point now) {
    for (auto it = shard.buckets.begin(); it != shard.buckets.end();) {
      double elapsed = std::chrono::duration<double>(now - it->second.last).count();
      if (it->second.tokens + elapsed * rate_ >= burst_)
        it = shard.buckets.erase(it);
      else
        ++it;
    }
    // Still crowded with active clients: drop arbitrary ones down to 3/4 so the next scan is
    // thousands of inserts away (amortised O(1), and memory stays bounded).
    while (shard.buckets.size() > kMaxPerShard * 3 / 4) shard.buckets.erase(shard.buckets.begin());
  }

  double rate_;
  double burst_;
  std::array<Shard, kShards> shards_;
};

}  // namespace ganglion::filters
