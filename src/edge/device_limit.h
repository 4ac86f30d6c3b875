// A pipeline's per-device flood limit (`device_limit: { rate, burst }`, docs/edge.md
// "Flood limits"): a token bucket per source and device, refilled at `rate` readings per
// second of wall time up to `burst`. Readings over it are dropped and counted, and the
// devices limited lately are listed, so that one flooding device cannot fill the sinks'
// queues (whose caps would then drop the other devices' readings).
//
// Threads: one pipeline's worker; limitedLately() copies are handed to the main thread by
// the caller.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ganglion::edge {

class DeviceLimiter {
 public:
  /// Devices whose buckets it keeps at most. When full, devices whose bucket has refilled
  /// (idle for `burst / rate` seconds) are forgotten; if none has, a new device is let
  /// through without a bucket (counted as untracked).
  static constexpr size_t kMaxDevices = 100'000;
  /// Devices listed by limitedLately(): limited within the last minute, most dropped first.
  static constexpr size_t kMaxListed = 20;

  /// `rate` readings per second (> 0), `burst` the bucket's size (0: one second of `rate`).
  DeviceLimiter(uint64_t rate, uint64_t burst);

  /// Whether a reading of `device` (of `source`) passes at `now_ms` (wall clock); takes a token.
  bool admit(std::string_view source, std::string_view device, int64_t now_ms);

  uint64_t limited() const { return limited_; }      ///< readings dropped so far
  uint64_t untracked() const { return untracked_; }  ///< let through without a bucket (table full)
  size_t devices() const { return buckets_.size(); }

  struct Limited {
    std::string source, device;
    uint64_t dropped = 0;  ///< within the last minute's entries (since it was first limited in it)
  };
  /// The devices limited within the last minute (as of `now_ms`), most dropped first, at most
  /// kMaxListed.
  std::vector<Limited> limitedLately(int64_t now_ms);

 private:
  struct Bucket {
    double tokens = 0;
    int64_t last_ms = 0;
  };
  struct Recent {
    uint64_t dropped = 0;
    int64_t last_ms = 0;
  };
  void forgetIdle(int64_t now_ms);

  double rate_per_ms_;
  double burst_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::unordered_map<std::string, Recent> recent_;  // devices limited lately (at most 1,024)
  std::string key_;                                 // the last reading's source '\0' device
  Bucket* last_ = nullptr;                          // its bucket (null: look it up)
  uint64_t limited_ = 0, untracked_ = 0;
};

}  // namespace ganglion::edge
