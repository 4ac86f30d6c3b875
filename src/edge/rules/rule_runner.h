// One rule as one pipeline runs it (docs/edge.md "Rules"): its condition, hold-off and
// hysteresis state per key, and the topic and payload its actions send. The runtime binds
// the actions to connectors and sinks; this file decides only whether a record fires.
//
// Threads: built on the main thread, then used only on its pipeline's worker; RuleStats are
// atomics the main thread reads.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "edge/edge_config.h"
#include "telemetry/metrics.h"

namespace ganglion::edge {

/// Counters of one rule, summed over the pipelines it reads and kept by name across reloads.
struct RuleStats {
  std::atomic<uint64_t> matched{0};     ///< records for which `when` held
  std::atomic<uint64_t> fired{0};       ///< matches that ran the actions
  std::atomic<uint64_t> suppressed{0};  ///< matches held back by hold_off or a raised state
  std::atomic<uint64_t> cleared{0};     ///< raised keys that `clear_when` lowered
  std::atomic<uint64_t> failed_actions{0};
  std::atomic<uint64_t> untracked{0};  ///< matches of keys past kMaxKeys (fired without state)
  std::atomic<uint64_t> summaries{0};  ///< summaries a model answered and that were sent on
  std::atomic<uint64_t> webhooks{0};   ///< webhook calls answered 2xx
  std::atomic<uint64_t> writes{0};     ///< Modbus writes the device took
  /// From a reading's hand-off by its connector to its alarm's hand-off to the MQTT
  /// connector that publishes it (a histogram: counts at or under each bound, in seconds).
  /// Bounds in microseconds. Atomic adds, not telemetry::Histogram's single-writer counters:
  /// every worker that runs the rule, and every connector's, may write.
  static constexpr std::array<uint64_t, 9> kLatencyBoundsUs{100,  250,   500,    1000,   2500,
                                                            5000, 10000, 100000, 1000000};
  std::array<std::atomic<uint64_t>, kLatencyBoundsUs.size() + 1> publish_latency{};  ///< last: +Inf
  std::atomic<uint64_t> publish_latency_ns_sum{0};
  void notePublishLatency(int64_t ns) {
    const uint64_t n = static_cast<uint64_t>(std::max<int64_t>(0, ns));
    // Rounded up to whole microseconds: a bucket holds what is at or under its bound.
    publish_latency[telemetry::bucketFor(kLatencyBoundsUs, (n + 999) / 1000)].fetch_add(
        1, std::memory_order_relaxed);
    publish_latency_ns_sum.fetch_add(n, std::memory_order_relaxed);
  }
  mutable std::mutex error_mutex;
  std::string last_error;  ///< the last failed action's reason
  void fail(std::string why) {
    failed_actions.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(error_mutex);
    last_error = std::move(why);
  }
};

class RuleRunner {
 public:
  /// Keys whose state a runner keeps at most (a flood of invented device names cannot grow it
  /// without bound). When full, keys whose hold-off is over and that are not raised are
  /// forgotten; if none is, a match of a new key fires as if the rule had no state (untracked).
  static constexpr size_t kMaxKeys = 100'000;

  RuleRunner(std::shared_ptr<const RuleConfig> config, std::shared_ptr<RuleStats> stats)
      : config_(std::move(config)), stats_(std::move(stats)) {}

  const RuleConfig& config() const { return *config_; }
  RuleStats& stats() const { return *stats_; }
  const std::shared_ptr<RuleStats>& statsPtr() const { return stats_; }

  /// Whether record `r` fires the rule now (and updates the key's state). Pipeline's worker.
  bool fires(expr::Evaluator& ev, const Record& r, const Batch& batch, const Pipeline& pipeline);

  /// The topic of a publish action for `r`; empty when the filled-in topic is not a valid
  /// topic name (a '+' or '#' in a device name).
  std::string topic(const TopicTemplate& t, const Record& r, const Batch& batch,
                    const Pipeline& pipeline) const;

  /// The record as JSON with `"rule"` added and its id made `<id>/<rule>`: what actions send.
  std::string payload(const Record& r, const Batch& batch, const Pipeline& pipeline) const;

  size_t keys() const { return states_.size(); }

  /// What the rule's state means (its name, `per`, `when` and `clear_when`): state saved
  /// under another key is not restored. Any thread.
  std::string stateKey() const;
  /// Whether the rule keeps state (hold_off or clear_when).
  bool stateful() const { return config_->clear_program || config_->hold_off.count() > 0; }
  /// Its keys that are raised or within a hold-off, appended to `out`. Pipeline's worker.
  void saveState(std::string& out) const;
  /// Restores what saveState() wrote into a runner that holds no state yet (a runner that
  /// does keeps its own). Returns the keys restored; false when `in` does not parse (nothing
  /// restored). Pipeline's worker.
  bool restoreState(std::string_view in, size_t& restored);
  /// Firings and clearings so far (a changed state is saved). Pipeline's worker.
  uint64_t changes() const { return changes_; }

 private:
  struct State {
    bool raised = false;
    bool fired_once = false;
    int64_t last_fired_ts = 0;
  };
  std::string keyOf(const Record& r, const Pipeline& pipeline) const;
  /// Drops the state of keys not raised whose hold-off ended by `now_ts` (record time).
  void forgetExpired(int64_t now_ts);

  std::shared_ptr<const RuleConfig> config_;
  std::shared_ptr<RuleStats> stats_;
  std::unordered_map<std::string, State> states_;
  std::string key_;         // scratch
  size_t sweep_pause_ = 0;  // matches to let pass before the next forgetExpired walk
  uint64_t changes_ = 0;
};

}  // namespace ganglion::edge
