// An MQTT connector: a client of one broker (3.1.1 or 5, plain or TLS with a client
// certificate) that subscribes to its `subscribe` filters and hands each message's readings to
// the pipelines that read the connector. It speaks MQTT itself over the worker's event loop
// (docs/design/edge.md, "MQTT client over Asio"): a QoS 1 or 2 message is acknowledged (PUBACK,
// PUBREC) only once its readings are taken, so the broker redelivers what a crash interrupted.
// When the pipelines have too many readings waiting, the connector stops reading the socket:
// MQTT 5's Receive Maximum, or TCP with 3.1.1, holds the broker back.
//
// Threads: constructed and status() read on the main thread; everything else runs on the
// connector's worker (start, stop and the connection's coroutines).
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/log.h"
#include "edge/edge_config.h"
#include "loop/worker.h"

namespace ganglion::edge {

class EdgeRuntime;
struct IncomingReadings;

/// Counters of one MQTT connector, kept by name across reloads. Written on its worker, read
/// by the main thread.
struct MqttStats {
  std::atomic<bool> connected{false};
  std::atomic<bool> session_present{false};
  std::atomic<uint64_t> connects{0};         ///< CONNACKs accepted
  std::atomic<uint64_t> failed_attempts{0};  ///< attempts that did not reach an accepted CONNACK
  std::atomic<uint64_t> disconnects{0};      ///< connections lost after CONNACK
  std::atomic<uint64_t> messages{0};         ///< PUBLISH packets received
  std::atomic<uint64_t> unmatched{0};        ///< messages no subscription matches (acknowledged, dropped)
  /// Copies of a message sent for a later overlapping subscription (acknowledged, dropped).
  std::atomic<uint64_t> extra_copies{0};
  std::atomic<uint64_t> redelivered{0};            ///< QoS 2 messages the broker sent again before PUBREL
  std::atomic<uint64_t> paused_ms{0};              ///< time spent not reading because pipelines were full
  std::atomic<uint64_t> refused_subscriptions{0};  ///< in the broker's SUBACKs to the last subscribe
  std::atomic<uint64_t> published{0};              ///< messages sent (QoS 0) or acknowledged (QoS 1, 2)
  std::atomic<uint64_t> publish_dropped{0};        ///< outgoing messages dropped: too many waiting
  std::atomic<uint64_t> publish_refused{0};        ///< outgoing messages the broker refused (MQTT 5 reason)
  std::atomic<uint64_t> publish_waiting{0};        ///< outgoing messages not yet acknowledged
  mutable std::mutex error_mutex;
  std::string last_error;      ///< why the connection failed or ended (cleared by the next CONNACK)
  std::string last_rejection;  ///< why the last refused message was
};

class MqttConnector : public std::enable_shared_from_this<MqttConnector> {
 public:
  /// `stats`: the previous instance's of the same name, or fresh ones.
  MqttConnector(EdgeRuntime& runtime, loop::Worker& worker, ConnectorConfig config,
                std::shared_ptr<MqttStats> stats);
  ~MqttConnector();

  const ConnectorConfig& config() const { return config_; }
  const std::string& fingerprint() const { return fingerprint_; }
  const std::shared_ptr<MqttStats>& stats() const { return stats_; }
  loop::Worker& worker() const { return worker_; }

  /// Connects and keeps connecting until stop(). `previous`, of the same name, hands over its
  /// session state (QoS 2 ids awaiting PUBREL) and is stopped. The worker's thread.
  void start(std::shared_ptr<MqttConnector> previous);
  /// Sends DISCONNECT (the broker keeps the session) and closes. The worker's thread.
  void stop();
  /// Takes no more messages (shutdown: the pipelines are closing) while the connection stays
  /// up to publish what the outboxes and sinks still hold; messages that arrive are neither
  /// taken nor acknowledged (the broker keeps QoS 1 and 2 ones for the next session). The
  /// worker's thread.
  void closeIntake();
  /// After stop(): its last connection is closed (the broker read the DISCONNECT and closed
  /// its end, or a second passed). Any thread.
  bool ended() const { return ended_.load(); }
  /// Stopped (true) through the admin API: says DISCONNECT (the broker keeps the session and
  /// queues QoS 1 and 2 messages for it) and stays away until suspend(false) connects again.
  /// Messages published meanwhile wait, as while the broker is away. Before start() on the
  /// main thread, then on the worker's thread.
  void suspend(bool suspended);

  /// Publishes a message to the broker (rules' `publish`). QoS 1 and 2 messages are kept until
  /// the broker acknowledges them and sent again (DUP) on a resumed session; while the broker
  /// is away they wait, at most kMaxOutgoing of them (the oldest not yet sent is dropped past
  /// that, counted). The worker's thread.
  /// `done`, when given, is called once on this worker when the message's fate is known: with
  /// 0 once sent (QoS 0) or acknowledged, the broker's reason code (0x80 and up) when it refused
  /// it, or kDropped when it was given up (too many waiting, the connector stopped or gone).
  /// MQTT sinks wait on it; rules' alarms pass none.
  using PublishDone = std::function<void(int reason)>;
  static constexpr int kDropped = -1;
  /// The broker closed the connection kMaxLosses times in a row while the message was the
  /// oldest it had not acknowledged: it will not take it (dropped, like a refusal for good).
  static constexpr int kLostTooOften = -2;
  static constexpr uint32_t kMaxLosses = 5;
  /// A PublishDone reason in words (kDropped, or an MQTT 5 reason code). Any thread.
  static std::string publishReasonText(int reason);
  void publish(std::string topic, std::string payload, uint8_t qos, bool retain, PublishDone done = nullptr);
  static constexpr size_t kMaxOutgoing = 1000;
  static constexpr size_t kMaxOutgoingBytes = 8u << 20;

  /// The MQTT-specific part of GET /edge's connector entry. Main thread.
  void describe(boost::json::object& out) const;

 private:
  struct Link;
  struct Inbound;
  struct PendingAcks;
  /// Writes the acknowledgements at the head of `link->pending` whose readings are on disk,
  /// in order; a batch the ingest log refused closes the connection (the broker sends it and
  /// what came after again). The worker's thread.
  void flushAcks(const std::shared_ptr<Link>& link);
  /// suspend()'s goodbye: waits (up to kAckWaitAtSuspendMs) for the acknowledgements still
  /// waiting on the ingest log, then sends DISCONNECT. The worker's thread.
  static boost::asio::awaitable<void> disconnectWhenAcked(std::shared_ptr<MqttConnector> self,
                                                          std::shared_ptr<Link> link);
  static constexpr int64_t kAckWaitAtSuspendMs = 2000;
  /// Batches of acknowledgements that may wait on the ingest log before reading pauses.
  static constexpr size_t kMaxPendingAcks = 64;
  static boost::asio::awaitable<void> run(std::shared_ptr<MqttConnector> self);
  /// One connection from connect to loss: how long it held after an accepted CONNACK (ms), or
  /// -1 when it reached none.
  boost::asio::awaitable<int64_t> session();
  /// Waits until the writes pending drop under kMaxPendingWrite; false when the connection or
  /// the connector ended meanwhile.
  boost::asio::awaitable<bool> waitForWrites(const std::shared_ptr<Link>& link);
  static constexpr size_t kMaxPendingWrite = 256 * 1024;
  boost::asio::awaitable<bool> handshake(const std::shared_ptr<Link>& link);
  /// Hands a read's readings to the pipelines (waiting while they are full), then queues the
  /// acknowledgements behind those waiting for the disk (flushAcks writes them). False when
  /// the connection or the connector ended meanwhile.
  boost::asio::awaitable<bool> settle(const std::shared_ptr<Link>& link, Inbound& in);
  static boost::asio::awaitable<void> keepAlive(std::shared_ptr<MqttConnector> self,
                                                std::shared_ptr<Link> link);
  static boost::asio::awaitable<void> writeLoop(std::shared_ptr<Link> link);
  void send(const std::shared_ptr<Link>& link);
  void onPublish(const mqtt::Publish& p, Link& link, Inbound& in);
  struct Outgoing {
    enum class State : uint8_t { kWaiting, kSent, kReleased, kDone };
    std::string topic;
    std::string payload;
    uint8_t qos = 0;
    bool retain = false;
    uint16_t packet_id = 0;
    State state = State::kWaiting;
    int reason = 0;       ///< when kDone: 0 delivered, else the broker's refusal
    uint32_t losses = 0;  ///< connections lost while it was the oldest sent and not acknowledged
    /// The publisher's PublishDone, called once: with `reason` when the message is done, or
    /// kDropped when it is given up or destroyed unanswered (moves leave none behind).
    struct Done {
      PublishDone fn;
      Done() = default;
      explicit Done(PublishDone f) : fn(std::move(f)) {}
      Done(Done&& o) noexcept : fn(std::exchange(o.fn, nullptr)) {}
      Done& operator=(Done&& o) noexcept {
        fire(kDropped);
        fn = std::exchange(o.fn, nullptr);
        return *this;
      }
      ~Done() { fire(kDropped); }
      void fire(int code) {
        if (fn) std::exchange(fn, nullptr)(code);
      }
    } done;
  };
  /// Appends `o` as a PUBLISH (marked DUP when sent again).
  void encodeOutgoing(const Outgoing& o, bool dup, std::string& out) const;
  /// Sends waiting messages while the broker's Receive Maximum allows. The worker's thread.
  void pumpOutgoing();
  /// After CONNACK: resends what the resumed session still owes, or starts over on a new one.
  void resumeOutgoing(bool session_present);
  /// PUBACK, PUBREC, PUBCOMP for a message this client published.
  void onOutgoingAck(const mqtt::Ack& ack, std::string& out);
  void dropOutgoingDone();
  void onOversized(const mqtt::Oversized& o, Inbound& in);
  /// Owes PUBACK (QoS 1) or PUBREC (QoS 2) for a message once its batch is handed over.
  void ack(uint8_t qos, uint16_t packet_id, Inbound& in);
  void noteError(std::string what);
  void noteRejection(std::string what);
  uint16_t nextPacketId();

  EdgeRuntime& runtime_;
  loop::Worker& worker_;
  ConnectorConfig config_;
  std::string fingerprint_;
  std::shared_ptr<MqttStats> stats_;
  // Worker-owned:
  bool stopped_ = false;
  bool suspended_ = false;          ///< suspend(): not connected, on purpose
  std::atomic<bool> ended_{false};  ///< run() returned
  bool ended_on_purpose_ = false;   ///< suspend() is closing the connection (run() does not back off)
  bool intake_closed_ = false;      ///< closeIntake(): messages are left to the next session
  bool subscribed_ = false;         ///< this instance subscribed once (later sessions may be resumed)
  mqtt::Version version_;
  std::shared_ptr<Link> link_;
  std::unique_ptr<boost::asio::steady_timer> retry_timer_;
  std::vector<std::string> unsubscribe_;  ///< the predecessor's filters this one dropped
  // noteError()'s log lines: the same text again within a minute is counted, not logged (a
  // broker down and a short reconnect.initial made 10 to 20 lines a second). Its worker.
  RepeatLimiter error_log_;
  std::unordered_set<uint16_t> awaiting_release_;  ///< QoS 2 ids PUBREC'd, PUBREL not yet seen
  uint16_t next_packet_id_ = 1;
  /// SUBSCRIBEs awaiting their SUBACK: packet id, and the subscriptions (config_.subscribe
  /// indexes first to first + count - 1) it carries.
  struct PendingSubscribe {
    uint16_t packet_id;
    size_t first, count;
  };
  std::vector<PendingSubscribe> pending_subscribes_;
  /// The subscriptions carry Subscription Identifiers (their index + 1), so that a message
  /// sent once per overlapping subscription is taken once (onPublish).
  bool tagged_subscriptions_ = false;
  /// By config_.subscribe index: the broker refused it (its SUBACK). A refused filter gets no
  /// copies, so the copy of a later one is the one to take.
  std::vector<bool> refused_filters_;
  int64_t keep_alive_ms_ = 0;  ///< this connection's (the broker's Server Keep Alive wins)
  std::deque<Outgoing> outgoing_;
  size_t outgoing_bytes_ = 0;
  size_t inflight_ = 0;                ///< outgoing QoS 1/2 messages sent, not yet completed
  uint16_t peer_receive_max_ = 65535;  ///< the broker's Receive Maximum (MQTT 5)
  uint8_t peer_max_qos_ = 2;           ///< the broker's Maximum QoS (MQTT 5)
  /// The broker's Maximum Packet Size (MQTT 5; unset: the protocol's 256 MB): a larger
  /// PUBLISH would make it close the connection, so it is refused here (0x95) and never sent.
  uint32_t peer_max_packet_ = 268'435'460;
  std::string scratch_;  // a PUBLISH encoded, to check its size
};

}  // namespace ganglion::edge
