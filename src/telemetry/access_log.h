// Structured access log: one JSON line per request, written by a background thread so a
// worker never blocks on disk. Workers append to their own shard; when a shard's backlog
// passes its cap, records are dropped and counted rather than stalling traffic.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "telemetry/metrics.h"

namespace ganglion::telemetry {

/// A field a module adds to access records (the LLM API's model, tokens and cost): a name
/// and a text, integer or boolean value. Views point at strings that outlive the write.
struct AccessAttribute {
  enum class Kind : uint8_t { kText, kInteger, kBool };
  std::string_view name;
  Kind kind = Kind::kText;
  std::string_view text;
  uint64_t integer = 0;  ///< kInteger; kBool: 0 or 1
};

struct AccessRecord {
  std::string_view method;
  std::string_view target;
  std::string_view host;
  std::string_view client_ip;
  int status = 0;
  uint64_t bytes_sent = 0;
  uint64_t duration_us = 0;
  std::string_view route;
  std::string_view upstream;
  std::string_view upstream_addr;
  int upstream_status = 0;
  int attempts = 0;
  std::string_view error;
  std::string_view principal;  ///< authenticated key name, if any
  /// The terminal handler's own fields, written in this order after `key` (the log needs no
  /// edit when a module adds some).
  std::span<const AccessAttribute> attributes;
  unsigned worker = 0;
};

/// Also the source of ganglion_access_log_dropped_total.
class AccessLog final : public MetricsSource {
 public:
  /// `path` is "stdout", "stderr" or a file appended to. Main thread.
  AccessLog(std::string path, unsigned workers);
  ~AccessLog();
  bool enabled() const { return enabled_.load(std::memory_order_relaxed); }
  void setEnabled(bool on) { enabled_.store(on, std::memory_order_relaxed); }
  /// Formats and queues one record. Worker thread `rec.worker`; never blocks on I/O.
  void write(const AccessRecord& rec);
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  void render(std::string& out) const override;
  /// Writes out everything queued and stops the writer thread. Main thread.
  void stop();

 private:
  struct Shard {
    std::mutex mutex;
    std::string pending;
    int64_t cached_second = -1;
    char cached_time[32] = {};
  };
  void run();

  static constexpr size_t kMaxPending = 8 << 20;
  int fd_ = -1;
  bool owns_fd_ = false;
  std::atomic<bool> enabled_{true};
  std::atomic<uint64_t> dropped_{0};
  std::vector<std::unique_ptr<Shard>> shards_;
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ganglion::telemetry
