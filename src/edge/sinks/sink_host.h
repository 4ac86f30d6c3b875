// A sink as it runs: its queue (memory or durable), and the loop on its worker that takes
// batches from it and delivers them (http, influxdb, mqtt through a connector, tsdb into a
// local store), retrying with a backoff. An mqtt connector's rules' outbox is one too
// (kind "outbox"): the messages of rules' `publish` and `summarize`, each with its own topic,
// QoS and retain flag, sent at once (docs/edge.md "Rules' outbox").
//
// Threads: constructed on the main thread; start(), enqueue() and delivery on the sink's
// worker; the counters are atomics the main thread reads.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edge/edge_config.h"
#include "edge/queue/log_syncer.h"
#include "edge/queue/record_queue.h"
#include "edge/record.h"

namespace ganglion::edge {

class EdgeHost;
class MqttConnector;
struct RuleStats;
class TsdbStore;
struct LineProtocolBatch;

/// Which records a full queue gives up first: raw readings, then windows, then events and
/// summaries (alarms are what the uplink most needs).
uint8_t dropClass(RecordKind k);
/// A sink's settings as JSON, its header values (tokens) included: equal means unchanged.
std::string sinkFingerprint(const SinkConfig& s);
/// The N of InfluxDB 1.x's "partial write: ... dropped=N", if the message has one.
std::optional<uint32_t> droppedOf(std::string_view message);
/// What a receiver's refusal says: InfluxDB's `error` (1.x) or `message` (2.x, 3.x) when the
/// body is JSON, else its text; one line, at most 300 characters.
std::string refusalMessage(std::string_view body);

/// One sink, or one connector's rules' outbox. Its queue, timers and delivery belong to its
/// worker; the counters below are atomics the main thread reads (GET /edge, metrics).
class SinkHost : public std::enable_shared_from_this<SinkHost> {
 public:
  using RuleStatsList = std::vector<std::pair<std::string, std::shared_ptr<RuleStats>>>;

  /// Main thread. `queue_dir`: where a durable queue lives; `tsdb_path`: a tsdb sink's file.
  SinkHost(EdgeHost& host, SinkConfig config, size_t worker, std::string queue_dir, std::string tsdb_path);
  ~SinkHost();

  /// The kind of an mqtt connector's rules' outbox (named after its connector).
  static constexpr std::string_view kOutbox = "outbox";
  /// The settings of connector `c`'s outbox: sent at once, in batches of up to half of what
  /// the connector keeps, failures retried from 100 ms up to 2 s.
  static SinkConfig outboxConfig(const ConnectorConfig& c);
  /// One message for an outbox: its topic, QoS and retain flag, the payload as a JSON string,
  /// and, when `rule` is given, the rule's name and the reading's arrival (steady clock, this
  /// process: `run`) to time the hand-off to the connector.
  static std::string outboxRecord(std::string_view topic, std::string_view payload, uint32_t qos, bool retain,
                                  std::string_view rule, int64_t arrived_ns);
  /// This process's token in outbox records: a record queued by an earlier run is not timed.
  static uint64_t runToken();

  /// The rules' counters by name, to time an outbox's messages. On the sink's worker.
  void setRuleStats(std::shared_ptr<const RuleStatsList> s) { rule_stats_ = std::move(s); }

  const SinkConfig& config() const { return config_; }
  const std::string& fingerprint() const { return fingerprint_; }
  size_t worker() const { return worker_; }
  const std::string& queueDir() const { return queue_dir_; }
  const std::string& tsdbPath() const { return tsdb_path_; }
  /// "sink 'name'", or "connector 'name' outbox": how log lines and errors name it.
  const std::string& label() const { return label_; }

  /// Starts delivering; `previous` (same name, settings changed) hands over its queue. On the
  /// sink's worker (opening a durable queue reads its files once).
  void start(std::shared_ptr<SinkHost> previous);

  /// Stops delivering (retired, or replaced). A retired sink's queue closes here: a durable
  /// one releases its directory (a sink of that name added later opens it again). On the
  /// sink's worker.
  void stop();

  /// An mqtt sink's connector in this config version (a changed connector is a new object).
  /// After start(), on the sink's worker.
  void bindConnector(std::shared_ptr<MqttConnector> connector) {
    connector_ = std::move(connector);
    if (wake_ && waiting_for_records_) wake_->cancel();  // a batch may wait for it
  }

  /// Stops (true) or starts again (false) delivering, through the admin API: records go on
  /// queueing (a full queue drops by its overflow policy) and a batch already on its way
  /// finishes. Main thread before start() is posted, then on the sink's worker.
  void setPaused(bool paused) {
    paused_ = paused;
    if (!paused && wake_ && waiting_for_records_) wake_->cancel();
  }

  /// Appends records (in order). On the sink's worker.
  void enqueue(std::vector<QueuedRecord> records);

  /// Calls `done` on the sink's worker once every record enqueued so far is on disk (at once
  /// for a queue in memory: there is nothing to wait for). On the sink's worker.
  void whenSynced(std::function<void()> done);

  // Counters, read by the main thread.
  std::atomic<uint64_t> queued_records{0}, queued_bytes{0}, delivered{0}, batches{0}, failures{0}, dropped{0};
  std::atomic<uint64_t> corrupt_bytes{0}, write_failures{0};
  std::atomic<uint64_t> joined{0};          ///< an outbox's messages that joined a batch in flight
  std::atomic<uint64_t> held_in_memory{0};  ///< a durable queue's records the disk refused, waiting in memory
  std::atomic<uint64_t> expired{0};         ///< a tsdb sink's records deleted past its retention
  std::atomic<uint64_t> evicted{0};         ///< a tsdb sink's records deleted past its max_bytes
  /// Records the receiver refused for good (413 alone, influxdb's 400 and 422) or that line
  /// protocol cannot carry: dropped, never retried.
  std::atomic<uint64_t> rejected{0};
  std::atomic<int64_t> oldest_enqueued_ms{0};
  /// How long its oldest record has waited as of `now` (wall ms; 0: none waits). Any thread.
  int64_t oldestAgeMs(int64_t now) const {
    const int64_t oldest = oldest_enqueued_ms.load(std::memory_order_relaxed);
    return oldest ? std::max<int64_t>(0, now - oldest) : 0;
  }
  std::atomic<bool> durable{false};
  std::atomic<bool> started{false};  ///< start() ran (its queue is open)
  /// Batches of records posted to its worker by another (a pipeline's, a rule's) and not yet
  /// enqueued: queued_records does not count them yet, and shutdown must wait for them.
  std::atomic<uint32_t> in_transit{0};
  mutable std::mutex error_mutex;
  std::string last_error;
  std::string queue_error;  ///< why the durable queue is not used, or refused records (not a delivery's)
  std::string corruption;   ///< the last damage a durable queue skipped

  /// One message of an mqtt batch.
  struct Message {
    std::string topic, payload;
    uint8_t qos = 1;
    bool retain = false;
    std::shared_ptr<RuleStats> timed;  ///< an outbox's alarm: its rule's latency counts
    int64_t arrived_ns = 0;
  };

  /// An outbox record (outboxRecord()) as a message, timed in its rule's `stats` when this
  /// process queued it; false with `why` when it is not one. Any thread.
  static bool outboxMessage(const boost::json::object& record, const RuleStatsList* stats, Message& m,
                            std::string& why);

 private:
  void openQueue();

  void push(std::vector<QueuedRecord>& records);

  void noteQueueError(std::string what) {
    std::lock_guard lock(error_mutex);
    queue_error = std::move(what);
  }

  /// Group commit: one fsync in flight at a time; what is appended meanwhile waits for the next.
  void requestSync();

  void synced(uint64_t target, bool ok);

  void publish();

  void noteError(std::string what, bool delivery = true);

  /// Waits up to `ms`, or until stop() (or, `for_records`, enqueue()) wakes it.
  boost::asio::awaitable<void> sleep(int64_t ms, bool for_records);

  static boost::asio::awaitable<void> run(std::shared_ptr<SinkHost> self) { co_await self->deliverLoop(); }

  /// How one attempt at a batch ended: delivered (the receiver took it), refused (gone for
  /// good: counted as rejected, not retried), split (too large: the same records again at
  /// once, in smaller batches), or failed (the same records again after the backoff).
  /// `delivered` and `rejected` count the batch's records once it is gone.
  struct Attempt {
    enum class End : uint8_t { kDelivered, kRefused, kSplit, kFailed };
    End end = End::kFailed;
    uint32_t delivered = 0, rejected = 0;
  };
  using End = Attempt::End;

  /// A tsdb sink's batch into its store, in one transaction (records stored already, sent
  /// again after a crash, are skipped); then, at most once a minute, the records past the
  /// retention go. Failed when the store could not be written (the batch is kept).
  boost::asio::awaitable<Attempt> writeLocal(std::string_view records);

  /// What the receiver's refusal says, with the values of the sink's headers (tokens) taken
  /// out: a receiver or proxy that echoes the request would put them in GET /edge.
  std::string said(std::string_view refusal) const;

  /// MQTT 5 refusals that the same message will always get: topic name invalid, packet too
  /// large, payload format invalid; and a message the broker closed the connection on again
  /// and again (MQTT 3.1.1). Others (not authorized, quota exceeded) may pass later.
  static bool refusedForGood(int reason);

  /// Publishes each record of `records` (as RecordQueue::take handed them) through the
  /// connector and waits until the broker has acknowledged or refused every one. Records
  /// without a valid topic, and refusals that cannot change, are rejected; any other refusal,
  /// or a message given up, fails the batch (sent again whole). An mqtt sink waits for its
  /// connector to be connected (backoff); an outbox hands its batch over at once, and the
  /// connector keeps it until its broker is back (CONNACK), so alarms wait on no backoff.
  boost::asio::awaitable<Attempt> publishBatch(std::string_view records, uint32_t in_batch);

  /// Posts an http or influxdb batch (`lines`: the influxdb conversion of its records, null
  /// for http). 2xx delivers; 413 splits (one record alone: refused); influxdb's 400 and 422
  /// refuse it for good, the lines InfluxDB says it stored all the same counted delivered;
  /// anything else fails.
  boost::asio::awaitable<Attempt> postBatch(const std::string& body, uint32_t in_batch,
                                            const LineProtocolBatch* lines);

  boost::asio::awaitable<void> deliverLoop();

  EdgeHost& host_;
  SinkConfig config_;
  size_t worker_;
  std::string fingerprint_;
  std::string host_header_;
  std::string queue_dir_;
  std::string tsdb_path_;
  std::string upstream_name_;  // http and influxdb: "sink:<name>"
  std::string label_;
  std::shared_ptr<const RuleStatsList> rule_stats_;  // an outbox's: its alarms are timed in them
  // Worker-owned:
  std::unique_ptr<TsdbStore> tsdb_;  // a tsdb sink's store, opened at its first batch
  int64_t pruned_ms_ = 0;            // steady clock: the last retention check
  std::unique_ptr<RecordQueue> queue_;
  DurableQueue* durable_ = nullptr;  // queue_, when it is on disk
  GroupCommit<std::function<void()>> commit_;
  /// whenSynced() callers while the durable queue holds records the disk refused: released
  /// (through commit_) once none is left in memory (written, or delivered).
  std::vector<std::function<void()>> held_waiters_;
  /// whenSynced() callers of a sink configured durable whose queue is in memory (its directory
  /// unusable), with the records queued before them: released once that many are delivered,
  /// rejected or dropped, so that the pipelines keep in their ingest logs what only memory
  /// holds (a crash would lose acknowledged readings otherwise).
  std::deque<std::pair<uint64_t, std::function<void()>>> memory_waiters_;
  uint64_t queued_total_ = 0;  ///< records pushed to this host's queue (and any it took over)
  uint64_t doneTotal() const {
    return delivered.load(std::memory_order_relaxed) + rejected.load(std::memory_order_relaxed) +
           dropped.load(std::memory_order_relaxed);
  }
  size_t told_damage_notes_ = 0;  ///< of the durable queue's damageNotes(), the ones logged
  bool stopped_ = false;
  bool waiting_for_records_ = false;
  bool paused_ = false;                ///< setPaused(): nothing is delivered
  bool overflowing_ = false;           // dropping since the queue last held under half of max_bytes
  uint32_t batch_limit_ = UINT32_MAX;  // halved at each 413; an outbox's: 1 after a refusal
  /// An outbox drops a message the broker refused this many times in a row (not for good:
  /// not authorized, quota exceeded), 100 ms to 2 s apart.
  static constexpr uint32_t kMaxRefusals = 5;
  uint32_t refusals_in_row_ = 0;
  int64_t told_overflow_ms_ = INT64_MIN / 2, told_refused_ms_ = INT64_MIN / 2;  // steady clock
  /// queue_error says the disk refused records: cleared once none waits in memory any more.
  bool queue_error_is_refusal_ = false;
  std::unique_ptr<boost::asio::steady_timer> wake_;
  std::unique_ptr<boost::asio::steady_timer> acks_;  // an mqtt batch waits on it for its acknowledgements
  std::shared_ptr<MqttConnector> connector_;         // mqtt sinks
  std::weak_ptr<SinkHost> successor_;
  /// An mqtt batch handed to the connector: what the broker said of its messages so far.
  struct PublishAcks {
    size_t waiting = 0;
    uint32_t delivered = 0, refused = 0, failed = 0;
    uint32_t given_up = 0;           ///< of `failed`: dropped by the connector, not refused by the broker
    int reason = 0;                  ///< the first failure's
    std::weak_ptr<SinkHost> waiter;  ///< woken when none waits (a successor, once replaced)
  };
  /// Waits until no acknowledgement of `acks` is outstanding, or stop(), or (while
  /// extending_) records were queued.
  boost::asio::awaitable<void> waitFor(const PublishAcks& acks);
  /// Messages of comma-separated `records`, appended to `out`; `why` gets the first reason
  /// one could not be (when it was empty). Returns their topic and payload bytes.
  size_t toMessages(std::string_view records, std::vector<Message>& out, std::string& why);
  /// Hands `messages` to the connector (on its worker), each acknowledgement counted in `acks`.
  void handOver(const std::shared_ptr<MqttConnector>& connector, const std::shared_ptr<PublishAcks>& acks,
                bool first_try, std::vector<Message> messages);
  bool extending_ = false;                      ///< records queued now may join the batch in flight
  bool records_came_ = false;                   ///< records were queued while extending_
  std::shared_ptr<PublishAcks> inflight_acks_;  ///< the batch with the connector now
  std::shared_ptr<PublishAcks> inherited_;      ///< a replaced predecessor's batch in flight
  bool inherited_queue_ = false;                ///< its queue came over as it was
  uint32_t failed_in_row_ = 0;                  ///< attempts failed since the last batch went
  uint32_t isolate_left_ = 0;  ///< an outbox's refused batch, sent one message at a time: records left
  /// Topics an outbox dropped a message to after kMaxRefusals (steady ms): a message to one
  /// of them within a minute is dropped at its first refusal. At most 256.
  std::deque<std::pair<std::string, int64_t>> denied_topics_;
  bool deniedLately(const std::string& topic);
  void noteDenied(const std::string& topic);
};

}  // namespace ganglion::edge
