// The running gateway: workers, their listeners and handlers, the admin API, signals,
// reload and drain. Owned by main(); every method runs on the main thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control/admin_server.h"
#include "control/health_checker.h"
#include "control/snapshot.h"

namespace ganglion::telemetry {
class AccessLog;
}

namespace ganglion::control {

struct WorkerContext;

class Gateway {
 public:
  explicit Gateway(std::string config_path);
  ~Gateway();
  /// Loads the config, binds everything and runs until SIGTERM/SIGINT. Returns the exit code.
  int run();

 private:
  std::pair<bool, std::string> reload();
  std::string installListeners(const Config& cfg);
  void drainAndStop();
  std::string metricsText();
  bool ready() const;
  void log(std::string_view message);

  std::string config_path_;
  boost::asio::io_context io_{1};
  boost::asio::signal_set signals_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<telemetry::AccessLog> access_log_;
  std::vector<std::unique_ptr<WorkerContext>> workers_;
  HealthRegistry health_;
  std::unique_ptr<HealthChecker> checker_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::set<std::string> bound_;  ///< listener addresses the workers accept on
  uint64_t version_ = 0;
  uint64_t reloads_ok_ = 0;
  uint64_t reloads_failed_ = 0;
  double start_time_ = 0;
  bool draining_ = false;
  bool running_ = false;
};

}  // namespace ganglion::control
