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
class Deadline : public boost::intrusive::list_base_hook<
                     boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
 public:
  explicit Deadline(std::function<void()> on_expire) : on_expire_(std::move(on_expire)) {}
  void arm(std::chrono::milliseconds after) {
    expires_ = Clock::now() + after;
    fired_ = false;
  }
  void armAt(Clock::time_point when) {
    expires_ = when;
    fired_ = false;
  }
  void disarm() { expires_ = Clock::time_point::max(); }
  bool fired() const { return fired_; }
  bool armed() const { return expires_ != Clock::time_point::max(); }
  /// The owner is between requests: a drain may close it at once.
  void setIdle(bool idle) { idle_ = idle; }
  bool idle() const { return idle_; }
  /// Fires now if armed (used by drain for idle owners).
  void expireNow() {
    if (armed()) check(Clock::time_point::max());
  }
  /// Called by the sweep; fires at most once per arm().
  void check(Clock::time_point now) {
    if (now >= expires_) {
      expires_ = Clock::time_point::max();
      fired_ = true;
      on_expire_();
    }
  }

 private:
  std::function<void()> on_expire_;
  Clock::time_point expires_ = Clock::time_point::max();
  bool fired_ = false;
  bool idle_ = false;
};

using DeadlineList =
    boost::intrusive::list<Deadline, boost::intrusive::constant_time_size<false>>;

}  // namespace ganglion::loop
