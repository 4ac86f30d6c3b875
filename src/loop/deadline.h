// Coarse per-connection deadlines checked by a sweep on the owning worker, so arming or moving
// a deadline on the request path is a store, not a timer syscall (as nginx and HAProxy do).
#pragma once

#include <boost/intrusive/list.hpp>
#include <chrono>
#include <functional>

namespace ganglion::loop {

using Clock = std::chrono::steady_clock;

/// Owned by a connection; linked into its worker's DeadlineList for its whole life.
/// All methods run on the owning worker's thread.
class Deadline
    : public boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
 public:
  explicit Deadline(std::function<void()> on_expire) : on_expire_(std::move(on_expire)) {}
  void arm(std::chrono::milliseconds after) { expires_ = Clock::now() + after; }
  void armAt(Clock::time_point when) { expires_ = when; }
  void disarm() { expires_ = Clock::time_point::max(); }
  bool armed() const { return expires_ != Clock::time_point::max(); }
  /// What a drain may do with the owner while it waits for input.
  enum class Idle {
    kBusy,   ///< mid-request: let it finish
    kIdle,   ///< between keep-alive requests: close at once
    kFresh,  ///< accepted, first request not yet read: give it a moment to arrive
  };
  void setIdle(Idle idle) { idle_ = idle; }
  Idle idle() const { return idle_; }
  /// Fires now if armed (used by drain for idle owners).
  void expireNow() {
    if (armed()) check(Clock::time_point::max());
  }
  /// Brings the deadline forward to `at` if it is later (used by drain for fresh owners).
  void shortenTo(Clock::time_point at) {
    if (armed() && expires_ > at) expires_ = at;
  }
  /// Called by the sweep; fires at most once per arm().
  void check(Clock::time_point now) {
    if (now >= expires_) {
      expires_ = Clock::time_point::max();
      on_expire_();
    }
  }

 private:
  std::function<void()> on_expire_;
  Clock::time_point expires_ = Clock::time_point::max();
  Idle idle_ = Idle::kBusy;
};

using DeadlineList = boost::intrusive::list<Deadline, boost::intrusive::constant_time_size<false>>;

}  // namespace ganglion::loop
