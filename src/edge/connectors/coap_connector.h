// A CoAP connector (`kind: coap`, RFC 7252, through libcoap 3): an endpoint devices POST (or
// PUT) readings to, `coap://<listen>/<path>/<device>?metric=<metric>`, and observations
// (RFC 7641) of resources on devices, whose notifications become readings. Payloads are the
// formats every connector shares; the Content-Format option chooses (50 json, 110 senml+json,
// 0 text/plain: line protocol), else the connector's `format`. A body larger than one
// datagram comes in blocks (RFC 7959 Block1), put together by CoapBlockAssembler.
//
// With `psk` or `dtls` the endpoint speaks only DTLS (coaps): a device presents an identity
// (a pre-shared key's, or a certificate's common name), the handshake proves it, and it
// sends readings only of the devices that identity may.
// A coaps:// observation presents the identity and key its entry names.
//
// Acknowledged means kept: a request to pipelines with an ingest log is answered (2.04
// Changed, piggybacked on the ACK of a confirmable request) only once its readings are on
// disk, and a confirmable notification is acknowledged only then too, so a device or server
// that hears nothing sends it again. libcoap answers from the handler, so the connector's
// thread waits for the disk there (milliseconds; at most kCoapStoreWaitMs, then 5.03).
//
// libcoap is not thread-safe: each connector owns one libcoap context and runs it on a
// thread of its own (as a Modbus poller does); nothing else touches it.
//
// Threads: constructed, started, stopped and joined on the main thread; requests,
// notifications and observation upkeep on its thread; stats are atomics.
#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/result.h"
#include "edge/edge_config.h"

struct coap_pdu_t;
struct coap_session_t;

namespace ganglion::edge {

class EdgeRuntime;
struct CoapAnswer;
struct CoapPeer;

/// Counters of one CoAP connector, kept by name across reloads.
struct CoapStats {
  struct Observation {
    std::atomic<bool> established{false};
    std::atomic<uint64_t> registrations{0}, notifications{0}, failures{0};
  };
  std::atomic<bool> listening{false};            ///< the endpoint is bound
  std::atomic<uint64_t> requests{0};             ///< requests to the endpoint
  std::atomic<uint64_t> refused_requests{0};     ///< answered 4.xx/5.xx
  std::atomic<uint64_t> not_found{0};            ///< to a path that is not the connector's
  std::atomic<uint64_t> duplicates{0};           ///< a message again (same peer, same message id)
  std::atomic<uint64_t> stale_notifications{0};  ///< older than one taken already (RFC 7641 3.4)
  std::atomic<uint64_t> unknown_identities{0};   ///< DTLS handshakes naming no configured identity
  std::atomic<uint64_t> dtls_failures{0};     ///< DTLS sessions that failed (a wrong key, a bad certificate)
  std::atomic<uint64_t> bodies_in_blocks{0};  ///< bodies put together from blocks (RFC 7959)
  std::deque<Observation> observations;       ///< parallel to the config's `observe`
  mutable std::mutex error_mutex;
  std::string last_error;
};

/// How long a request or notification waits for its readings to reach the ingest log before
/// it is answered 5.03 (CoAP's first retransmission comes after 2 to 3 s).
inline constexpr int kCoapStoreWaitMs = 1500;
/// Peers (address and port) the endpoint keeps a session for at most, and how long an idle
/// one is kept (seconds).
inline constexpr unsigned kCoapMaxIdleSessions = 1024;
inline constexpr unsigned kCoapSessionTimeoutS = 120;
/// Exchanges the endpoint remembers its answer to (a message that comes again, the same peer
/// and message id, gets the same answer and is not taken twice), and for how long (RFC 7252's
/// EXCHANGE_LIFETIME).
inline constexpr size_t kCoapRememberedExchanges = 32'768;
inline constexpr int64_t kCoapExchangeLifetimeMs = 247'000;
/// libcoap's warnings logged a minute at most (a peer can provoke them).
inline constexpr unsigned kCoapLogLinesPerMinute = 20;
/// How often an endpoint that could not be bound tries again.
inline constexpr int64_t kCoapBindRetryMs = 1000;
/// An observation silent this long past its last notification's Max-Age is registered again
/// (RFC 7641 3.3.1: the server may have forgotten it).
inline constexpr int64_t kCoapObserveGraceMs = 10'000;

/// Whether a UDP socket can be bound at `address` now (bound and closed at once), or why
/// not. A port only this process's sockets hold counts as free: a reload releases its
/// endpoints before (the same connector) or soon after (another, which retries the bind)
/// their successors bind, and a stranger's socket on it is told apart by its inode. Main
/// thread.
Result<void> probeUdpListen(const config::HostPort& address);

/// The answers a connector gave lately, for a message sent again (coap_connector.cc).
struct CoapExchangeMemory;

class CoapConnector {
 public:
  /// `stats` and `exchanges`: a predecessor's (a reload that changed the connector), carried
  /// over; nullptr: new ones. The predecessor is stopped before this one starts, so one
  /// thread at a time uses them.
  CoapConnector(EdgeRuntime& runtime, ConnectorConfig config, std::shared_ptr<CoapStats> stats,
                std::shared_ptr<CoapExchangeMemory> exchanges = nullptr);
  ~CoapConnector();
  CoapConnector(const CoapConnector&) = delete;
  CoapConnector& operator=(const CoapConnector&) = delete;

  const ConnectorConfig& config() const { return config_; }
  const std::string& fingerprint() const { return fingerprint_; }
  const std::shared_ptr<CoapStats>& stats() const { return stats_; }
  const std::shared_ptr<CoapExchangeMemory>& exchanges() const { return exchanges_; }

  /// Starts its thread, which binds its endpoint (an error here when it cannot at once: the
  /// thread tries again every second) and registers its observations. Main thread.
  Result<void> start();
  /// Asks the thread to end (within about 100 ms; observations are cancelled) and waits for
  /// it. Main thread.
  void stop();
  /// Started and not stopped since. Main thread.
  bool running() const { return thread_.joinable(); }

  /// The CoAP part of GET /edge's connector entry. Main thread.
  void describe(boost::json::object& out) const;

 private:
  struct Context;
  struct Observed;
  /// What ingesting one payload came to: accepted readings, or the answer's code and why.
  struct Ingested {
    size_t accepted = 0, rejected = 0;
    std::string first_rejection;
    uint8_t code = 0;   ///< a coap_pdu_code_t when refused
    std::string error;  ///< empty: accepted
  };
  void run();
  /// Binds the endpoint; false (the reason in last_error) when it cannot. Its thread, or the
  /// main thread before the thread starts.
  bool bind();
  /// The handlers libcoap calls on the connector's thread.
  void onRequest(coap_session_t* session, const coap_pdu_t* request, coap_pdu_t* response);
  /// What to answer `request` (onRequest remembers it for a repeat of the message).
  CoapAnswer answerRequest(coap_session_t* session, const coap_pdu_t* request);
  int onResponse(coap_session_t* session, const coap_pdu_t* received);
  void onNack(coap_session_t* session, const coap_pdu_t* sent);
  /// Decodes `payload` and hands the readings on (over DTLS only of devices `peer` may
  /// send); waits for the ingest log. Its thread.
  Ingested ingest(PayloadFormat format, std::string_view payload, const std::string& device,
                  const std::string& metric, const CoapPeer* peer);
  /// Sends (again) the registration of `o`. Its thread.
  void observe(Observed& o, int64_t now);
  /// Tells the server of each established observation that it is no longer wanted. Its thread, at the end.
  void cancelObservations();
  /// A GET of `o`'s resource with its token and Observe `observe` (0 registers, 1 cancels),
  /// of coap_pdu_type_t `type`; nullptr when libcoap could not make one. Its thread.
  coap_pdu_t* observeRequest(const Observed& o, int type, unsigned observe);
  void retryLater(Observed& o, int64_t now, std::string why);
  Observed* observationOf(coap_session_t* session, const coap_pdu_t* pdu);
  void noteError(std::string what);

  EdgeRuntime& runtime_;
  ConnectorConfig config_;
  std::string fingerprint_;
  std::shared_ptr<CoapStats> stats_;
  std::shared_ptr<CoapExchangeMemory> exchanges_;  // the connector's thread
  std::unique_ptr<Context> context_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace ganglion::edge
