// A Modbus connector (`modbus_tcp`, `modbus_rtu`): polls its registers through libmodbus every
// `poll` and hands the readings to the pipelines that read the connector. libmodbus is
// blocking, so each connector polls on a thread of its own (docs/design/edge.md "Modbus"): a
// device that stops answering delays only its own polls, never a worker or another device.
// While the pipelines are full the next poll waits (backpressure slows the polls).
//
// Threads: constructed, started, stopped and joined on the main thread; the poll loop on its
// own thread; stats are atomics the main thread reads.
#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/log.h"
#include "edge/edge_config.h"

namespace ganglion::edge {

class EdgeRuntime;

/// Counters of one Modbus connector, kept by name across reloads while its registers stay.
struct ModbusStats {
  struct Register {
    std::atomic<uint64_t> reads{0}, timeouts{0}, exceptions{0}, refused{0};
    std::atomic<uint64_t> bad_answers{0};  ///< answers that did not fit the request (transaction, length)
    std::atomic<uint64_t> writes{0}, write_failures{0};  ///< rules' `write` actions
    std::atomic<int> last_exception{0};                  ///< the Modbus exception code of the last one
  };
  std::atomic<bool> connected{false};
  std::atomic<uint64_t> polls{0}, skipped_polls{0}, connect_failures{0}, backpressure_ms{0};
  std::deque<Register> registers;  ///< parallel to the config's registers
  mutable std::mutex error_mutex;
  std::string last_error;
};

class ModbusPoller {
 public:
  ModbusPoller(EdgeRuntime& runtime, ConnectorConfig config, std::shared_ptr<ModbusStats> stats);
  ~ModbusPoller();
  ModbusPoller(const ModbusPoller&) = delete;
  ModbusPoller& operator=(const ModbusPoller&) = delete;

  const ConnectorConfig& config() const { return config_; }
  const std::string& fingerprint() const { return fingerprint_; }
  const std::shared_ptr<ModbusStats>& stats() const { return stats_; }

  /// Starts its thread. Main thread.
  void start();
  /// Asks the thread to end; a read in progress over TCP ends at once (its socket is shut
  /// down), over a serial line within `timeout`. Any thread.
  void stop();
  /// Waits for the thread to end. Main thread, after stop().
  void join();
  /// Started (stop() may have been asked since). Main thread.
  bool started() const { return thread_.joinable(); }
  /// Its thread has ended, or never started: join() does not wait. Main thread.
  bool exited() const { return !thread_.joinable() || exited_.load(std::memory_order_acquire); }

  /// The Modbus part of GET /edge's connector entry. Main thread.
  void describe(boost::json::object& out) const;

  /// Queues a write of `value` (in the readings' units: the register's scale and offset are
  /// undone, integers rounded) to register `index` (one the config marks writable); the poll
  /// thread makes it before its next poll and calls `done` there with "" or what went wrong.
  /// When kMaxPendingWrites wait already, the oldest gives way (its `done` says so): the
  /// newest value counts. False when the connector is stopping. Any thread.
  bool write(size_t index, double value, std::function<void(std::string)> done);
  static constexpr size_t kMaxPendingWrites = 64;

 private:
  struct Context;
  struct PendingWrite {
    size_t index;
    double value;
    std::function<void(std::string)> done;
  };
  void run();
  /// Closes the connection (the poll thread), so that stop() no longer shuts it down.
  void closeLink(Context& c);
  /// Connects to the TCP device and hands the socket to libmodbus (whose own connect cannot be
  /// cut short: a host that drops SYNs would hold a stop for the whole timeout). stop() shuts
  /// the socket down while it connects. Poll thread; false with errno set when it failed.
  bool connectTcp(Context& c);
  std::atomic<bool> exited_{false};  // set by its thread as run() returns
  /// Makes the queued writes; false when the link fell out of step (reconnect). Poll thread.
  bool applyWrites(Context& c, bool connected, const std::string& where);
  /// Waits until `deadline` or stop(); false when stopped.
  bool sleepUntil(std::chrono::steady_clock::time_point deadline);
  void noteError(std::string what);

  EdgeRuntime& runtime_;
  ConnectorConfig config_;
  std::string fingerprint_;
  std::shared_ptr<ModbusStats> stats_;
  /// noteError()'s lines: several registers failing at every poll log each error once a
  /// minute, not once a poll. Under stats_->error_mutex.
  RepeatLimiter error_log_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::deque<PendingWrite> writes_;  // guarded by mutex_
  int socket_ = -1;                  // guarded by mutex_: the TCP connection's, while open
};

}  // namespace ganglion::edge
