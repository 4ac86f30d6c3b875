// A cap on the connections one client address may hold open on a listener, shared by every
// worker of the process (a flood from one address is refused at accept, before it costs a
// coroutine or a buffer).
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

namespace ganglion::net {

/// Counts open connections per client address in a fixed table of 65,536 atomic slots
/// (addresses hashed; two addresses that share a slot share its cap, which errs on the side
/// of refusing). Any thread; lock-free.
class IpConnectionLimit {
 public:
  explicit IpConnectionLimit(uint32_t max_per_ip) : max_(max_per_ip) {}

  /// Holds one slot for an accepted connection until destroyed (or released if empty).
  class Hold {
   public:
    Hold() = default;
    Hold(std::shared_ptr<IpConnectionLimit> owner, size_t slot) : owner_(std::move(owner)), slot_(slot) {}
    Hold(Hold&& o) noexcept : owner_(std::move(o.owner_)), slot_(o.slot_) {}
    Hold& operator=(Hold&& o) noexcept {
      std::swap(owner_, o.owner_);
      std::swap(slot_, o.slot_);
      return *this;
    }
    ~Hold() {
      if (owner_) owner_->slots_[slot_].fetch_sub(1, std::memory_order_relaxed);
    }

   private:
    std::shared_ptr<IpConnectionLimit> owner_;
    size_t slot_ = 0;
  };

  /// Worker thread, right after accept: a hold, or nothing when `address` is at its cap.
  static std::optional<Hold> admit(const std::shared_ptr<IpConnectionLimit>& self,
                                   const boost::asio::ip::address& address) {
    const size_t slot = slotOf(address);
    uint32_t now = self->slots_[slot].fetch_add(1, std::memory_order_relaxed) + 1;
    if (now > self->max_) {
      self->slots_[slot].fetch_sub(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    return Hold(self, slot);
  }

 private:
  static size_t slotOf(const boost::asio::ip::address& address) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the address bytes
    auto mix = [&](const auto& bytes) {
      for (unsigned char b : bytes) h = (h ^ b) * 1099511628211ull;
    };
    if (address.is_v4())
      mix(address.to_v4().to_bytes());
    else
      mix(address.to_v6().to_bytes());
    return static_cast<size_t>(h % kSlots);
  }

  static constexpr size_t kSlots = 65'536;
  uint32_t max_;
  std::array<std::atomic<uint32_t>, kSlots> slots_{};
};

}  // namespace ganglion::net
