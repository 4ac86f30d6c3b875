// Per-worker counters and histograms. Each has exactly one writer (its worker thread), so an
// update is a relaxed load and store, not a locked read-modify-write; the admin thread reads
// them at scrape time and sums across workers.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ganglion::telemetry {

class Counter {
 public:
  void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void sub(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

/// The bucket of `value` among upper `bounds` (bounds.size(): past the last, +Inf).
inline size_t bucketFor(std::span<const uint64_t> bounds, uint64_t value) {
  size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  return i;
}

/// Latency histogram with fixed bucket bounds in microseconds.
class Histogram {
 public:
  static constexpr std::array<uint64_t, 14> kBoundsUs = {
      250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};
  void observe(uint64_t us) {
    buckets_[bucketFor(kBoundsUs, us)].add();
    sum_us_.add(us);
  }
  uint64_t bucket(size_t i) const { return buckets_[i].get(); }
  uint64_t sumUs() const { return sum_us_.get(); }

 private:
  std::array<Counter, kBoundsUs.size() + 1> buckets_;
  Counter sum_us_;
};

/// Status class index: 1xx → 0 ... 5xx → 4.
inline size_t statusClass(int status) {
  int c = status / 100 - 1;
  return c < 0 ? 0 : c > 4 ? 4 : static_cast<size_t>(c);
}

struct RequestStats {
  std::array<Counter, 5> by_class;
  Histogram latency;
};

struct UpstreamStats {
  std::array<Counter, 5> by_class;
  Histogram latency;  ///< until the response head
  Counter connect_failures;
  Counter timeouts;
  Counter protocol_errors;
  Counter retries;
  Counter connections_opened;
  Counter stale_connections;  ///< pooled connections found closed by the peer, never used
};

/// One per worker. Named stats objects are created on the worker (under `mutex`) and never
/// destroyed, so their addresses stay valid across config reloads. Modules with families of
/// their own keep their per-worker counters themselves and render them as a MetricsSource.
struct WorkerStats {
  Counter connections_total;
  Counter connections_active;
  Counter requests_total;
  Counter bad_requests;      ///< 4xx the gateway answered for protocol violations
  Counter request_timeouts;  ///< header/body timeouts
  Counter local_replies;
  Counter tls_handshake_failures;
  Counter connections_refused_per_ip;  ///< accepted and closed at once: the address was at its cap
  Counter headers_dropped;             ///< request fields dropped for an '_' in their name
  std::array<Counter, 6> client_errors_by_status;  ///< 400,408,413,414,431,other

  std::mutex mutex;  ///< guards the maps' structure, not the counters
  std::map<std::string, std::unique_ptr<RequestStats>> routes;
  std::map<std::string, std::unique_ptr<UpstreamStats>> upstreams;

  RequestStats* route(const std::string& name);
  UpstreamStats* upstream(const std::string& name);
};

/// Global (process) values rendered with the per-worker sums.
struct ProcessInfo {
  uint64_t config_version = 0;
  uint64_t reloads_ok = 0;
  uint64_t reloads_failed = 0;
  double start_time_seconds = 0;
};

/// A module's metric families (their # HELP and # TYPE lines and samples), appended to the
/// core families at every scrape. The composition registers each source at start; render()
/// runs on the main thread and reads counters that workers write (relaxed atomics, one writer
/// each), taking only the locks that guard their maps' structure.
class MetricsSource {
 public:
  virtual ~MetricsSource() = default;
  virtual void render(std::string& out) const = 0;
};

/// `s` as a Prometheus label value: backslash, double quote and line feed escaped.
std::string labelValue(std::string_view s);

/// A family's `# HELP` and `# TYPE` lines, which go before its samples (every family has
/// both). `type`: counter, gauge or histogram. Any thread.
void appendFamilyHead(std::string& out, std::string_view name, std::string_view type, std::string_view help);

/// A histogram's samples: `<name>_bucket{<labels>,le="..."}` (cumulative; `le` in seconds,
/// from `bounds_us`), `_sum` (`sum_seconds`) and `_count`. `bucket(i)` counts bucket i, for i
/// in [0, bounds_us.size()] (the last is +Inf). `labels` without braces. Any thread.
void appendHistogramSamples(std::string& out, std::string_view name, std::string_view labels,
                            std::span<const uint64_t> bounds_us,
                            const std::function<uint64_t(size_t)>& bucket, double sum_seconds);

/// Renders Prometheus text exposition format. Admin thread.
std::string renderPrometheus(const std::vector<WorkerStats*>& workers, const ProcessInfo& info);

}  // namespace ganglion::telemetry
