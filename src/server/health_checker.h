// Active HTTP health checks. Runs on the main thread's event loop (never on a worker) and
// publishes each target's state through its shared TargetHealth, which workers read on
// every pick.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "server/snapshot.h"

namespace ganglion::server {

class HealthChecker {
 public:
  using Logger = std::function<void(std::string_view)>;
  HealthChecker(boost::asio::io_context& io, Logger log) : io_(io), log_(std::move(log)) {}
  /// Probes the targets of `snapshot` that have a health_check; probes started for an older
  /// snapshot stop at their next turn. Main thread.
  void apply(const std::shared_ptr<const Snapshot>& snapshot);
  /// Stops every probe loop at its next turn. Main thread.
  void stop() { ++generation_; }

 private:
  boost::asio::awaitable<void> probeLoop(std::shared_ptr<const Snapshot> snapshot, size_t upstream,
                                         size_t target, uint64_t generation);
  boost::asio::awaitable<bool> probeOnce(const ResolvedTarget& target, const upstream::HealthCheckConfig& hc);

  boost::asio::io_context& io_;
  Logger log_;
  uint64_t generation_ = 0;
};

}  // namespace ganglion::server
