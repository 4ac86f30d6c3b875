#include "edge/device_limit.h"

#include <algorithm>

namespace ganglion::edge {

namespace {
constexpr int64_t kRecentMs = 60'000;
constexpr size_t kMaxRecent = 1024;
}  // namespace

DeviceLimiter::DeviceLimiter(uint64_t rate, uint64_t burst)
    : rate_per_ms_(static_cast<double>(rate) / 1000.0), burst_(static_cast<double>(burst ? burst : rate)) {}

bool DeviceLimiter::admit(std::string_view source, std::string_view device, int64_t now_ms) {
  // A payload's readings mostly share one device: the bucket of the last one is at hand.
  const bool same = last_ && key_.size() == source.size() + 1 + device.size() &&
                    key_.compare(0, source.size(), source) == 0 && key_[source.size()] == '\0' &&
                    key_.compare(source.size() + 1, device.size(), device) == 0;
  if (!same) {
    key_.assign(source).push_back('\0');
    key_.append(device);
    auto it = buckets_.find(key_);
    if (it == buckets_.end()) {
      if (buckets_.size() >= kMaxDevices) forgetIdle(now_ms);
      if (buckets_.size() >= kMaxDevices) {
        ++untracked_;
        last_ = nullptr;  // key_ names a device without a bucket
        return true;
      }
      it = buckets_.emplace(key_, Bucket{burst_, now_ms}).first;
    }
    last_ = &it->second;  // elements of an unordered_map stay put until erased
  }
  Bucket& b = *last_;
  if (now_ms > b.last_ms) {  // a wall clock that steps back refills nothing
    b.tokens = std::min(burst_, b.tokens + static_cast<double>(now_ms - b.last_ms) * rate_per_ms_);
    b.last_ms = now_ms;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  ++limited_;
  auto r = recent_.find(key_);
  if (r == recent_.end()) {
    if (recent_.size() >= kMaxRecent)
      std::erase_if(recent_, [&](const auto& e) { return now_ms - e.second.last_ms > kRecentMs; });
    if (recent_.size() >= kMaxRecent) return false;  // counted, not listed
    r = recent_.emplace(key_, Recent{}).first;
  }
  ++r->second.dropped;
  r->second.last_ms = now_ms;
  return false;
}

void DeviceLimiter::forgetIdle(int64_t now_ms) {
  last_ = nullptr;
  // A bucket that has refilled says nothing a fresh one would not.
  std::erase_if(buckets_, [&](const auto& e) {
    const Bucket& b = e.second;
    return b.tokens + static_cast<double>(now_ms - b.last_ms) * rate_per_ms_ >= burst_;
  });
}

std::vector<DeviceLimiter::Limited> DeviceLimiter::limitedLately(int64_t now_ms) {
  std::erase_if(recent_, [&](const auto& e) { return now_ms - e.second.last_ms > kRecentMs; });
  std::vector<Limited> out;
  out.reserve(recent_.size());
  for (const auto& [key, r] : recent_) {
    const size_t cut = key.find('\0');
    out.push_back({key.substr(0, cut), key.substr(cut + 1), r.dropped});
  }
  std::sort(out.begin(), out.end(), [](const Limited& a, const Limited& b) {
    return a.dropped != b.dropped ? a.dropped > b.dropped : a.device < b.device;
  });
  if (out.size() > kMaxListed) out.resize(kMaxListed);
  return out;
}

}  // namespace ganglion::edge
