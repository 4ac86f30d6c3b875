// The running gateway: workers, their listeners and handlers, the admin API, signals,
// reload and drain. Owned by main(); every method runs on the main thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "admin/admin_server.h"
#include "edge/data_dir_lock.h"
#include "llm/ledger.h"
#include "llm/llm_metrics.h"
#include "llm/response_cache.h"
#include "llm/spend_store.h"
#include "loop/worker.h"
#include "server/health_checker.h"
#include "server/snapshot.h"
#include "upstream/target_health_metrics.h"

namespace ganglion::telemetry {
class AccessLog;
}

namespace ganglion::edge {
class EdgeRuntime;
}

namespace ganglion::server {

struct WorkerContext;
class GatewayEdge;

class Gateway {
 public:
  /// The main loop's index, apart from the workers' 0..n-1.
  static constexpr unsigned kMainLoopIndex = 1u << 16;
  /// `argv` is how this process was started; a binary upgrade runs it again.
  Gateway(std::string config_path, std::vector<std::string> argv);
  ~Gateway();
  /// Loads the config, binds everything and runs until SIGTERM/SIGINT. Returns the exit code.
  int run();

 private:
  /// Reloads from the config file: reading, parsing and DNS on the blocking pool, so the main
  /// thread goes on answering the admin API meanwhile; compiling and installing on it. One at
  /// a time: another asked for meanwhile answers 409 (admin API) or runs after (SIGHUP).
  /// Returns {HTTP status, JSON body}. Main thread.
  boost::asio::awaitable<std::pair<int, std::string>> reload();
  void reloadOnSignal();
  /// Hands a new snapshot to the health checker and every worker.
  void install(std::shared_ptr<const Snapshot> snapshot);
  /// Re-resolves upstream host names; a change installs a new snapshot version.
  void scheduleDnsRefresh();
  /// Starts an asynchronous DNS refresh when some target has no address yet (providers).
  void resolvePending();
  void refreshDns();
  /// Every key with LLM limits: limits and spend in the current period, sorted by name.
  /// GET /llm/keys for `snapshot`'s keys. Reads Redis (blocking, up to its timeout) when
  /// budgets are shared: then called on the blocking pool, never on the main thread.
  boost::json::array llmKeys(const Snapshot& snapshot);
  /// Opens the `state.sqlite` spend store and loads it into the ledger. Main thread, at start.
  Result<void> openSpendStore(const Config& cfg);
  /// edge.data_dir, relative paths from the config file's directory.
  std::filesystem::path edgeDataDir(const Config& cfg) const;
  /// Writes settled spend to the store every second, on the blocking pool (the main thread
  /// never waits on SQLite for it: a locked or slow disk holds no admin request).
  void scheduleSpendFlush();
  void flushSpend();
  /// Runs `fn` (SpendStore work) on the store's strand of the blocking pool and waits for it:
  /// at reload and shutdown only, after any flush in flight. Main thread.
  template <class Fn>
  auto onSpendStrand(Fn fn) -> decltype(fn());
  /// Logs a change in the flush's outcome (a broken disk logs once). Main thread.
  void noteSpendFlush(const std::string& error);
  Result<void> installListeners(const Config& cfg);
  void drainAndStop();
  /// SIGUSR2: starts the successor with our sockets; drains once it is ready.
  void upgradeBinary();
  std::string metricsText();
  bool ready() const;
  void log(std::string_view message);
  /// Takes edge.data_dir's lock when `cfg`'s edge sections have connectors, pipelines or
  /// sinks and it is not held yet (or data_dir moved), waiting up to `wait` for a gateway
  /// that holds it to let go (src/edge/data_dir_lock.h). Main thread.
  Result<void> lockEdgeDataDir(const Config& cfg, std::chrono::milliseconds wait);
  /// A binary upgrade's successor: takes edge.data_dir once the old process has let go of it
  /// (it drains first, then exits), then installs the edge; tries every 50 ms. Main thread.
  void takeEdgeOnceReleased();

  std::string config_path_;
  std::vector<std::string> argv_;
  bool upgrading_ = false;
  /// The main thread's loop (admin API, reloads, health checks, signals); run by run().
  loop::Worker main_loop_{kMainLoopIndex};
  boost::asio::io_context& io_ = main_loop_.io();
  boost::asio::signal_set signals_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<telemetry::AccessLog> access_log_;
  /// edge.data_dir's lock, held while the edge sections have parts; declared before edge_
  /// and workers_, so that it is let go only after they (and the queues' own locks) are gone.
  edge::DataDirLock data_dir_lock_;
  /// takeEdgeOnceReleased()'s tries (a successor whose edge is not installed yet: while it
  /// waits, edge_->running() is false and reloads leave the edge to it).
  std::unique_ptr<boost::asio::steady_timer> edge_lock_timer_;
  /// The edge (pipelines, sinks): its ticks and deliveries run on the workers; the destructor
  /// drops it after the worker threads stop and before their loops go.
  std::unique_ptr<GatewayEdge> edge_host_;
  std::unique_ptr<edge::EdgeRuntime> edge_;
  std::vector<std::unique_ptr<WorkerContext>> workers_;
  HealthRegistry health_;
  llm::KeyLedger ledger_;         ///< per-key rates and spend, shared by the workers, kept across reloads
  llm::ResponseCache llm_cache_;  ///< LLM answers, shared by the workers, kept across reloads
  llm::LlmMetrics llm_metrics_;   ///< the workers' ganglion_llm_* counters
  upstream::TargetHealthMetrics target_health_metrics_;  ///< the current snapshot's targets
  /// Modules' metric families, rendered after the core ones at every scrape (main thread);
  /// the access log adds itself when it is made.
  std::vector<const telemetry::MetricsSource*> metric_sources_{&llm_metrics_, &target_health_metrics_};
  /// state.sqlite; null: spend kept in memory only. After start, used only on spend_strand_.
  std::shared_ptr<llm::SpendStore> spend_store_;
  std::optional<boost::asio::strand<boost::asio::thread_pool::executor_type>> spend_strand_;
  bool spend_flushing_ = false;  ///< a flush is on the pool (main thread)
  std::unique_ptr<boost::asio::steady_timer> spend_timer_;
  std::string spend_error_;  ///< the last flush failure logged, so a broken disk logs once
  std::unique_ptr<HealthChecker> checker_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::set<std::string> bound_;                         ///< listener addresses the workers accept on
  std::map<std::string, std::vector<int>> listen_fds_;  ///< every listening socket, by address
  std::map<std::string, std::vector<int>> inherited_;   ///< handed down by a parent, not yet adopted
  uint64_t version_ = 0;
  uint64_t reloads_ok_ = 0;
  uint64_t reloads_failed_ = 0;
  bool reloading_ = false;     ///< a reload is between its first and last step
  bool reload_again_ = false;  ///< SIGHUP came during one: run another when it ends
  double start_time_ = 0;
  bool draining_ = false;
  std::unique_ptr<boost::asio::steady_timer> dns_timer_;
  bool dns_in_flight_ = false;
  bool running_ = false;
};

}  // namespace ganglion::server
