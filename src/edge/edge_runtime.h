// The running edge: pipelines on their workers, sinks delivering on theirs, and the hand-off
// from connectors. One per gateway process, kept across reloads: install() keeps every
// pipeline and sink whose settings did not change (open windows, detector histories and
// queued records survive), builds the new ones and retires the rest.
//
// Threads: install(), status() and metrics run on the main thread; deliver() on any worker
// (an ingest request's); a pipeline's batches, ticks and output on its worker; a sink's queue
// and deliveries on its worker. They meet only through Worker::post and atomics.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "edge/connectors/payload.h"
#include "edge/edge_config.h"
#include "edge/stopped_parts.h"
#include "loop/worker.h"
#include "telemetry/metrics.h"
#include "upstream/upstream_client.h"

namespace ganglion::edge {

/// A model's answer to a question the edge asked (rules' `summarize`).
struct ModelAnswer {
  std::string text;
  std::string provider;
  std::string model;
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
};

/// What the composition lends the edge: its workers, their upstream connections and the
/// gateway's LLM router.
class EdgeHost {
 public:
  virtual ~EdgeHost() = default;
  virtual size_t workerCount() const = 0;
  /// Worker `index` (0..workerCount()-1). Any thread.
  virtual loop::Worker& worker(size_t index) = 0;
  /// The current config version's runtime of upstream `name` ("sink:<name>") on worker `index`,
  /// kept alive while held; null when the current version has none. That worker's thread.
  virtual std::shared_ptr<upstream::UpstreamRuntime> upstream(size_t index, std::string_view name) = 0;
  /// Asks `model` of the current config (its targets, fallback and retries) with one system
  /// and one user message, on worker `index`. An error says why there is no answer. That
  /// worker's thread.
  /// (References, not values: a coroutine's caller must not make temporaries in a co_await.)
  virtual boost::asio::awaitable<Result<ModelAnswer>> complete(size_t index, const std::string& model,
                                                               const std::string& system,
                                                               const std::string& user, uint32_t max_tokens,
                                                               std::chrono::milliseconds timeout) = 0;
};

/// Readings a connector decoded, before any pipeline interned them: names and attributes in
/// one text arena. Shared, read-only, by the pipelines that read the connector.
struct IncomingReadings {
  struct Item {
    uint32_t device_at, device_len, metric_at, metric_len, attrs_at, attrs_len;
    int64_t ts;
    double value;
    Quality quality;
  };
  std::string connector;
  uint64_t first_seq = 0;  ///< item i's record id is `<connector>-<first_seq + i>`
  int64_t arrived_ns = 0;  ///< steady clock when handed to deliver() (0: replayed from a log)
  std::string text;
  std::vector<Item> items;

  void add(const DecodedReading& r);
  std::string_view view(uint32_t at, uint32_t len) const { return std::string_view(text).substr(at, len); }
};

/// Waits for readings handed to pipelines with an ingest log to reach the disk in every one
/// of them (the connector acknowledges its sender after that). Any thread.
class DeliveryTicket {
 public:
  explicit DeliveryTicket(int parts) : remaining_(parts) {}
  /// One pipeline's part is on disk (ok) or could not be written (not ok).
  void complete(bool ok);
  /// Calls `done(ok)` once every part completed: at once on this thread when they have, else
  /// on the thread completing the last part.
  void onDone(std::function<void(bool)> done);
  /// Waits in a coroutine; resumes on the coroutine's executor.
  boost::asio::awaitable<bool> wait();

 private:
  std::mutex mutex_;
  int remaining_;
  bool ok_ = true;
  std::function<void(bool)> done_;
};

class CoapConnector;
class ModbusPoller;
class MqttConnector;
class RuleRunner;
struct RuleStats;
class PipelineHost;
class SinkHost;
struct Routing;
struct WorkerPipelines;

class EdgeRuntime final : public telemetry::MetricsSource {
 public:
  explicit EdgeRuntime(EdgeHost& host);
  ~EdgeRuntime() override;
  EdgeRuntime(const EdgeRuntime&) = delete;
  EdgeRuntime& operator=(const EdgeRuntime&) = delete;

  /// Installs a config version's edge sections; durable queues live under `data_dir`
  /// (edge.data_dir resolved). Parts the admin API stopped stay stopped. Main thread.
  void install(std::shared_ptr<const EdgeConfig> cfg, const std::filesystem::path& data_dir);
  /// POST /edge/{part}/{name}/{stop|start}, `part` one of pipelines, connectors, sinks: stops
  /// (`stop`) or starts one part of the installed config, kept so across reloads and
  /// restarts (StoppedParts). A stopped pipeline holds the readings it is handed (then
  /// backpressure) and runs none; a stopped connector lets go of its devices or broker (MQTT
  /// says DISCONNECT and keeps its session; Modbus polls no more; a CoAP endpoint closes; HTTP
  /// ingest answers 503); a stopped sink queues and delivers nothing. The answer's body, or
  /// a 404 error (no such part). Main thread.
  Result<boost::json::object> setStopped(std::string_view part, std::string_view name, bool stop);
  /// Refuses a config with a CoAP endpoint on an address that no running connector holds and
  /// another socket does. A reload asks before it installs anything: moving an endpoint to
  /// a taken port would close the working one for one that cannot bind. The error starts
  /// with the connector's line ("12: connector 'field': ..."). Main thread.
  Result<void> checkEndpoints(const EdgeConfig& next) const;
  /// Hands readings of `connector` to every pipeline that reads it, numbering them (ids).
  /// Returns the number of pipelines they went to, -1 when one of them has too many
  /// readings waiting already (the caller answers 503: backpressure reaches the sender), or
  /// kStopped when the admin API stopped the connector.
  /// When a pipeline keeps an ingest log (it feeds a durable sink) and `ticket` is given,
  /// *ticket is set to what to wait on before acknowledging the sender (null: nothing).
  /// Any thread.
  int deliver(std::string_view connector, std::shared_ptr<IncomingReadings> readings,
              std::shared_ptr<DeliveryTicket>* ticket = nullptr);
  /// Whether the admin API stopped `connector`. Any thread.
  bool connectorStopped(std::string_view connector) const;
  /// Whether a config was installed: not yet in a binary upgrade's successor while the old
  /// process still holds edge.data_dir (HTTP ingest answers 503 meanwhile). Any thread.
  bool running() const { return running_.load(std::memory_order_acquire); }
  /// Counts a connector's payloads (`payloads` of them, `refused` of those refused whole)
  /// and readings. Any thread.
  void countIngest(std::string_view connector, size_t readings, size_t rejected, size_t refused,
                   size_t payloads = 1);
  /// GET /edge: pipelines, sinks and connectors with their counters. Main thread.
  boost::json::object status() const;
  /// GET /edge/sinks/<sink>/records: what a tsdb sink stores, filtered by `query` (the
  /// request's query string, undecoded): the response body, or a 404 (no such tsdb sink) or
  /// 400 (a bad parameter) error. Main thread; the query runs on the blocking pool.
  boost::asio::awaitable<Result<std::string>> sinkRecords(std::string sink, std::string query);
  /// Closes every open window and gives sinks up to `limit` to deliver what waits. Main thread,
  /// at shutdown (the workers still run).
  void drain(std::chrono::milliseconds limit);
  /// Prometheus families ganglion_edge_*. Main thread.
  void render(std::string& out) const override;

  /// Readings one pipeline may have waiting on its worker before deliver() refuses more.
  /// (About 16 MB of decoded readings.)
  static constexpr uint64_t kMaxWaitingReadings = 200'000;
  /// deliver(): the connector is stopped.
  static constexpr int kStopped = -2;

 private:
  void installConnectors(const EdgeConfig& cfg, size_t workers);
  void installRules(const EdgeConfig& cfg);

  /// A rule as one pipeline runs it (main thread's view, to keep its state across reloads).
  struct RuleEntry {
    std::shared_ptr<PipelineHost> pipeline;
    std::shared_ptr<RuleRunner> runner;
    /// Webhook calls and summaries under way for this rule on this pipeline: carried to the
    /// rule's next version (a reload must not open a fresh allowance while calls still hang).
    std::shared_ptr<std::atomic<size_t>> webhooks_in_flight, summaries_in_flight;
  };

  EdgeHost& host_;
  std::shared_ptr<const EdgeConfig> installed_;  // the version install() last had
  std::atomic<bool> running_{false};             // install() ran
  std::filesystem::path data_dir_;
  StoppedParts stopped_;
  std::vector<std::shared_ptr<PipelineHost>> pipelines_;  // main thread's view
  std::vector<std::shared_ptr<SinkHost>> sinks_;
  std::vector<std::shared_ptr<SinkHost>> outboxes_;    // rules' outboxes, one per mqtt connector they use
  std::vector<std::shared_ptr<MqttConnector>> mqtt_;   // main thread's view
  std::vector<std::shared_ptr<ModbusPoller>> modbus_;  // shared: rules writing through one hold it
  std::vector<std::shared_ptr<ModbusPoller>> retired_modbus_;  // stopped, joined at the next install
  std::vector<std::shared_ptr<CoapConnector>> coap_;           // main thread's view
  std::vector<RuleEntry> rules_;
  std::vector<std::pair<std::string, std::shared_ptr<RuleStats>>> rule_stats_;  // in config order
  std::atomic<std::shared_ptr<const Routing>> routing_;
  std::vector<std::unique_ptr<WorkerPipelines>> per_worker_;  // [i]: touched only on worker i
  std::atomic<uint64_t> next_seq_;
};

}  // namespace ganglion::edge
