#include "edge/connectors/mqtt_connector.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <deque>
#include <random>

#include "base/log.h"
#include "base/strings.h"
#include "base/time.h"
#include "edge/edge_runtime.h"
#include "net/stream.h"

namespace ganglion::edge {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

/// Readings gathered from one read before they are handed over (a read may hold thousands of
/// small messages: one hand-off and one write of acknowledgements for all of them).
constexpr size_t kReadingsPerHandOff = 4096;

/// Why a broker refused a connection or ended one: MQTT 5 reason codes, and 3.1.1's CONNACK
/// return codes (1-5).
std::string reasonText(mqtt::Version v, uint8_t code) {
  if (v == mqtt::Version::k311) {
    switch (code) {
      case 1:
        return "unacceptable protocol version (the broker does not speak MQTT 3.1.1)";
      case 2:
        return "client identifier rejected";
      case 3:
        return "server unavailable";
      case 4:
        return "bad user name or password";
      case 5:
        return "not authorized";
      default:
        return fmt::format("return code {}", code);
    }
  }
  switch (code) {
    case 0x80:
      return "unspecified error";
    case 0x81:
      return "malformed packet";
    case 0x82:
      return "protocol error";
    case 0x83:
      return "implementation specific error";
    case 0x84:
      return "unsupported protocol version (try protocol: 3.1.1)";
    case 0x85:
      return "client identifier not valid";
    case 0x86:
      return "bad user name or password";
    case 0x87:
      return "not authorized";
    case 0x88:
      return "server unavailable";
    case 0x89:
      return "server busy";
    case 0x8A:
      return "banned";
    case 0x8B:
      return "server shutting down";
    case 0x8D:
      return "keep alive timeout";
    case 0x8E:
      return "session taken over (another client connected with this client_id)";
    case 0x93:
      return "receive maximum exceeded";
    case 0x95:
      return "packet too large";
    case 0x97:
      return "quota exceeded";
    case 0x9C:
      return "use another server";
    case 0x9D:
      return "server moved";
    case 0x9F:
      return "connection rate exceeded";
    default:
      return fmt::format("reason code 0x{:02x}", code);
  }
}

}  // namespace

/// One connection: its stream, what waits to be written, and its timers. Shared by the
/// connection's coroutines (reader, writer, keep-alive); close() ends them all.
struct MqttConnector::Link {
  explicit Link(asio::io_context& io) : stream(io), resolver(io), guard(io), tick(io) {}
  net::Stream stream;
  asio::ip::tcp::resolver resolver;
  asio::steady_timer guard;  // the connect phase's limit
  asio::steady_timer tick;   // keep-alive
  std::string out;           // bytes waiting to be written
  bool writing = false;
  bool open = true;
  bool close_after_write = false;
  bool timed_out = false;
  bool paused = false;  // not reading: the pipelines are full
  /// Acknowledgements waiting, in the order the messages came, for their readings to be on
  /// disk (the ingest log's fsync); reading goes on meanwhile.
  std::deque<std::shared_ptr<PendingAcks>> pending;
  /// QoS 2 packet ids taken on this connection whose PUBREC is not out yet (then they are in
  /// awaiting_release_): the same id again before PUBREL is the same message, DUP or not
  /// (MQTT 5 4.3.3). Forgotten with the connection: a broker sends again what we did not
  /// acknowledge, and that is taken.
  std::unordered_set<uint16_t> receiving;
  int64_t last_sent_ms = 0;
  int64_t last_received_ms = 0;

  void close() {
    if (!open) return;
    open = false;
    boost::system::error_code ignored;
    resolver.cancel();
    guard.cancel();
    tick.cancel();
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
  }
};

namespace {

/// Sends the TCP acknowledgement of what was read now, and of the next segments at once,
/// rather than up to 40 ms later (delayed ACK). A broker that leaves Nagle's algorithm on
/// (mosquitto does, unless `set_tcp_nodelay`) holds each packet back until its previous one
/// is acknowledged; when this side had nothing to send back (the PUBACK of an alarm), the
/// next reading waited for the delayed ACK: 20-40 ms per alarm at QoS 1 (docs/design/edge.md
/// "Delayed ACKs"). Linux falls back to delayed ACKs on its own, so this is asked per read.
void quickAck(asio::ip::tcp::socket& socket) {
  const int on = 1;
  ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

}  // namespace

/// What one read brought: readings for the pipelines and the acknowledgements owed once they
/// are taken.
struct MqttConnector::PendingAcks {
  std::shared_ptr<DeliveryTicket> ticket;  // null: nothing to wait for (queued behind others)
  std::string acks;
  std::vector<uint16_t> released;
  bool done = false;
  bool ok = true;
};

struct MqttConnector::Inbound {
  std::shared_ptr<IncomingReadings> readings;
  std::string acks;  // PUBACK and PUBREC, written after the hand-off
  uint64_t payloads = 0, accepted = 0, rejected = 0, refused = 0;
  std::vector<uint16_t> released;  // QoS 2 ids to remember once PUBREC goes out
};

MqttConnector::MqttConnector(EdgeRuntime& runtime, loop::Worker& worker, ConnectorConfig config,
                             std::shared_ptr<MqttStats> stats)
    : runtime_(runtime),
      worker_(worker),
      config_(std::move(config)),
      fingerprint_(connectorFingerprint(config_)),
      stats_(stats ? std::move(stats) : std::make_shared<MqttStats>()),
      version_(config_.protocol) {}

MqttConnector::~MqttConnector() = default;

std::string MqttConnector::publishReasonText(int reason) {
  if (reason == kDropped) return "given up: too many messages waiting, or the connector stopped";
  if (reason == kLostTooOften)
    return fmt::format("given up: the broker closed the connection {} times in a row before acknowledging it",
                       kMaxLosses);
  return reasonText(mqtt::Version::k5, static_cast<uint8_t>(reason));
}

void MqttConnector::start(std::shared_ptr<MqttConnector> previous) {
  retry_timer_ = std::make_unique<asio::steady_timer>(worker_.io());
  if (previous) {
    awaiting_release_ = std::move(previous->awaiting_release_);
    outgoing_ = std::move(previous->outgoing_);  // resent on the resumed session, or sent anew
    outgoing_bytes_ = previous->outgoing_bytes_;
    previous->outgoing_bytes_ = 0;
    // Same client id: the broker's session still holds the old subscriptions.
    for (const auto& old : previous->config_.subscribe) {
      const bool kept = std::any_of(config_.subscribe.begin(), config_.subscribe.end(),
                                    [&](const MqttSubscription& s) { return s.topic == old.topic; });
      if (!kept && previous->config_.client_id == config_.client_id) unsubscribe_.push_back(old.topic);
    }
    previous->stop();
  }
  asio::co_spawn(worker_.io(), run(shared_from_this()), asio::detached);
}

void MqttConnector::closeIntake() { intake_closed_ = true; }

void MqttConnector::suspend(bool suspended) {
  if (suspended == suspended_) return;
  suspended_ = suspended;
  if (!retry_timer_) return;  // not started: run() sees it first
  retry_timer_->cancel();     // a backoff, or the wait of a suspended connector, ends now
  if (!suspended) return;
  auto link = link_;
  if (!link || !link->open) return;
  ended_on_purpose_ = true;
  if (!stats_->connected.load()) return link->close();  // still connecting
  asio::co_spawn(worker_.io(), disconnectWhenAcked(shared_from_this(), link), asio::detached);
}

awaitable<void> MqttConnector::disconnectWhenAcked(std::shared_ptr<MqttConnector> self,
                                                   std::shared_ptr<Link> link) {
  // Messages that arrive from now on are neither taken nor acknowledged (onPublish): the
  // broker keeps them for the session. Those taken already are acknowledged first, once the
  // ingest log has them; else the broker would send them again and they would run twice.
  asio::steady_timer wait(self->worker_.io());
  const int64_t until = steadyMillis() + kAckWaitAtSuspendMs;
  while (link->open && !link->pending.empty() && steadyMillis() < until) {
    wait.expires_after(std::chrono::milliseconds(2));
    co_await wait.async_wait(kNoThrow);
  }
  if (!link->open) co_return;
  // A normal DISCONNECT: the broker keeps the session and queues what comes meanwhile. Also
  // when started again meanwhile: what it left unacknowledged comes again on a new connection.
  mqtt::encodeDisconnect(self->version_, link->out);
  link->close_after_write = true;
  self->send(link);
}

void MqttConnector::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (retry_timer_) retry_timer_->cancel();
  if (auto link = link_; link && link->open) {
    if (stats_->connected.load()) {
      // A normal DISCONNECT: the broker keeps the session (and, with MQTT 5, does not send
      // the will), so messages that come meanwhile wait for the next connection.
      mqtt::encodeDisconnect(version_, link->out);
      link->close_after_write = true;
      send(link);
    } else {
      link->close();
    }
  }
  stats_->connected.store(false);
  // A removed connector sends nothing more: whoever waits on a message hears so now (a
  // replaced one's messages moved to its successor before this).
  for (auto& o : outgoing_) o.done.fire(kDropped);
}

uint16_t MqttConnector::nextPacketId() {
  // Not one an outgoing message still holds (at most kMaxOutgoing of 65,535 are in use).
  for (;;) {
    const uint16_t id = next_packet_id_++;
    if (next_packet_id_ == 0) next_packet_id_ = 1;
    const bool used = std::any_of(outgoing_.begin(), outgoing_.end(), [id](const Outgoing& o) {
      return o.packet_id == id && o.state != Outgoing::State::kWaiting;
    });
    if (!used) return id;
  }
}

void MqttConnector::publish(std::string topic, std::string payload, uint8_t qos, bool retain,
                            PublishDone done) {
  if (stopped_) {
    if (done) done(kDropped);
    return;
  }
  outgoing_bytes_ += topic.size() + payload.size();
  outgoing_.push_back(Outgoing{std::move(topic), std::move(payload), qos, retain, 0,
                               Outgoing::State::kWaiting, 0, 0, Outgoing::Done(std::move(done))});
  // Too many waiting (a broker away for long): the oldest not yet sent goes first.
  while (outgoing_.size() > kMaxOutgoing || outgoing_bytes_ > kMaxOutgoingBytes) {
    auto it = std::find_if(outgoing_.begin(), outgoing_.end(),
                           [](const Outgoing& o) { return o.state == Outgoing::State::kWaiting; });
    if (it == outgoing_.end()) break;  // all in flight: the broker's Receive Maximum bounds them
    outgoing_bytes_ -= it->topic.size() + it->payload.size();
    it->done.fire(kDropped);
    outgoing_.erase(it);
    stats_->publish_dropped.fetch_add(1, std::memory_order_relaxed);
  }
  pumpOutgoing();
}

void MqttConnector::dropOutgoingDone() {
  for (auto it = outgoing_.begin(); it != outgoing_.end();) {
    if (it->state == Outgoing::State::kDone) {
      outgoing_bytes_ -= it->topic.size() + it->payload.size();
      it->done.fire(it->reason);
      it = outgoing_.erase(it);
    } else {
      ++it;
    }
  }
  stats_->publish_waiting.store(outgoing_.size(), std::memory_order_relaxed);
}

void MqttConnector::encodeOutgoing(const Outgoing& o, bool dup, std::string& out) const {
  mqtt::Publish p;
  p.topic = o.topic;
  p.payload = o.payload;
  p.qos = o.qos;
  p.retain = o.retain;
  p.packet_id = o.packet_id;
  p.dup = dup;
  mqtt::encodePublish(version_, p, out);
}

void MqttConnector::pumpOutgoing() {
  auto link = link_;
  if (!link || !link->open || !stats_->connected.load(std::memory_order_relaxed)) {
    stats_->publish_waiting.store(outgoing_.size(), std::memory_order_relaxed);
    return;
  }
  bool wrote = false;
  for (auto& o : outgoing_) {
    if (o.state != Outgoing::State::kWaiting) continue;
    o.qos = std::min(o.qos, peer_max_qos_);
    if (o.qos > 0 && inflight_ >= peer_receive_max_) break;
    scratch_.clear();
    encodeOutgoing(o, false, scratch_);  // packet id 0 and 2 bytes alike: the size is the same
    if (scratch_.size() > peer_max_packet_) {
      // The broker said it takes nothing this large: refused for good, as it would (0x95).
      o.state = Outgoing::State::kDone;
      o.reason = 0x95;
      stats_->publish_refused.fetch_add(1, std::memory_order_relaxed);
      noteError(fmt::format(
          "a message of {} bytes to '{}' was not sent: over the broker's Maximum Packet Size ({})",
          scratch_.size(), o.topic, peer_max_packet_));
      continue;
    }
    if (o.qos > 0) {
      o.packet_id = nextPacketId();
      o.state = Outgoing::State::kSent;
      ++inflight_;
    } else {
      o.state = Outgoing::State::kDone;
      stats_->published.fetch_add(1, std::memory_order_relaxed);
    }
    encodeOutgoing(o, false, link->out);
    wrote = true;
  }
  dropOutgoingDone();
  if (wrote) send(link);
}

void MqttConnector::resumeOutgoing(bool session_present) {
  inflight_ = 0;
  auto link = link_;
  // The oldest message sent and not acknowledged when a connection was lost is the likely
  // reason the broker closed it (an MQTT 3.1.1 broker cannot say why: a packet over its size
  // limit, a topic it will not take). Past kMaxLosses in a row it is given up, so that it
  // cannot hold back every message behind it.
  for (auto& o : outgoing_) {
    if (o.state != Outgoing::State::kSent) continue;
    if (++o.losses >= kMaxLosses) {
      o.state = Outgoing::State::kDone;
      o.reason = kLostTooOften;
      stats_->publish_refused.fetch_add(1, std::memory_order_relaxed);
      noteRejection(fmt::format(
          "a message on '{}' ({} bytes) was given up: the broker closed the connection {} times in a row "
          "before acknowledging it (too large for it, or a topic it does not take?)",
          o.topic, o.payload.size(), o.losses));
    }
    break;
  }
  for (auto& o : outgoing_) {
    if (o.state == Outgoing::State::kSent) {
      if (!session_present) {
        o.state = Outgoing::State::kWaiting;  // a new session knows nothing of it: send it anew
        o.packet_id = 0;
        continue;
      }
      encodeOutgoing(o, true, link->out);
      ++inflight_;
    } else if (o.state == Outgoing::State::kReleased) {
      if (!session_present) {
        // The broker had it (PUBREC came) and forgot the session: it was delivered.
        o.state = Outgoing::State::kDone;
        stats_->published.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      mqtt::encodeAck(version_, mqtt::PacketType::kPubrel, o.packet_id, 0, link->out);
      ++inflight_;
    }
  }
  dropOutgoingDone();
  send(link);
  pumpOutgoing();
}

void MqttConnector::onOutgoingAck(const mqtt::Ack& ack, std::string& out) {
  using State = Outgoing::State;
  for (auto& o : outgoing_) {
    if (o.packet_id != ack.packet_id || o.state == State::kWaiting || o.state == State::kDone) continue;
    if (ack.type == mqtt::PacketType::kPuback && o.state == State::kSent && o.qos == 1) {
      o.state = State::kDone;
    } else if (ack.type == mqtt::PacketType::kPubrec && o.state == State::kSent && o.qos == 2) {
      if (ack.code < 0x80) {
        o.state = State::kReleased;
        mqtt::encodeAck(version_, mqtt::PacketType::kPubrel, o.packet_id, 0, out);
        break;
      }
      o.state = State::kDone;  // refused: counted below
    } else if (ack.type == mqtt::PacketType::kPubcomp && o.state == State::kReleased) {
      o.state = State::kDone;
    } else {
      break;  // not the answer this message waits for: ignored
    }
    if (ack.code >= 0x80) {
      o.reason = ack.code;
      stats_->publish_refused.fetch_add(1, std::memory_order_relaxed);
      noteError(
          fmt::format("the broker refused a message to '{}' ({})", o.topic, reasonText(version_, ack.code)));
    } else {
      stats_->published.fetch_add(1, std::memory_order_relaxed);
    }
    --inflight_;
    break;
  }
  dropOutgoingDone();
  pumpOutgoing();
}

void MqttConnector::noteError(std::string what) {
  if (ended_on_purpose_ || suspended_) return;  // a connection it closed itself: nothing went wrong
  // Broker text (reason strings, topics) is in it: no control characters, bounded.
  what = printableText(what, 512);
  error_log_.log(fmt::format("edge: mqtt connector '{}': {}", config_.name, what));
  std::lock_guard lock(stats_->error_mutex);
  stats_->last_error = std::move(what);
}

void MqttConnector::noteRejection(std::string what) {
  std::lock_guard lock(stats_->error_mutex);
  stats_->last_rejection = printableText(what, 512);
}

awaitable<void> MqttConnector::run(std::shared_ptr<MqttConnector> self) {
  std::minstd_rand jitter(static_cast<unsigned>(reinterpret_cast<uintptr_t>(self.get()) ^ steadyMillis()));
  uint32_t failures = 0;
  while (!self->stopped_) {
    if (self->suspended_) {  // stopped through the admin API: suspend(false) ends the wait
      failures = 0;
      self->retry_timer_->expires_after(std::chrono::hours(24));
      co_await self->retry_timer_->async_wait(kNoThrow);
      continue;
    }
    const int64_t lasted = co_await self->session();
    if (self->stopped_) break;
    if (std::exchange(self->ended_on_purpose_, false)) {  // suspended (and maybe started again)
      failures = 0;
      continue;
    }
    // A connection that held for reconnect.max starts the pauses again from `initial`; one that
    // the broker ends soon after CONNACK (a client id taken over, an ACL) keeps backing off.
    failures = lasted >= self->config_.reconnect.max.count() ? 1 : failures + 1;
    if (lasted < 0) self->stats_->failed_attempts.fetch_add(1, std::memory_order_relaxed);
    int64_t pause = doublingBackoffMs(self->config_.reconnect.initial.count(),
                                      self->config_.reconnect.max.count(), failures);
    // Up to a fifth less, so that gateways that lost one broker together do not come back together.
    pause -= static_cast<int64_t>(jitter() % static_cast<uint64_t>(pause / 5 + 1));
    self->retry_timer_->expires_after(std::chrono::milliseconds(pause));
    co_await self->retry_timer_->async_wait(kNoThrow);
  }
  self->ended_.store(true);  // its last connection is closed
}

awaitable<bool> MqttConnector::handshake(const std::shared_ptr<Link>& link) {
  const std::string port = std::to_string(config_.port);
  auto [rec, results] = co_await link->resolver.async_resolve(config_.host, port, kNoThrow);
  if (rec || results.empty()) {
    noteError(link->timed_out ? fmt::format("resolving {} timed out", config_.host)
                              : fmt::format("cannot resolve {}: {}", config_.host,
                                            rec ? rec.message() : std::string("no address")));
    co_return false;
  }
  auto [ec, endpoint] = co_await asio::async_connect(link->stream.socket(), results, kNoThrow);
  if (ec) {
    noteError(link->timed_out
                  ? fmt::format("connecting to {}:{} timed out", config_.host, config_.port)
                  : fmt::format("cannot connect to {}:{}: {}", config_.host, config_.port, ec.message()));
    co_return false;
  }
  boost::system::error_code ignored;
  link->stream.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
  quickAck(link->stream.socket());
  if (config_.secure) {
    const auto& settings = config_.tls->settings();
    const std::string& name = settings.server_name.empty() ? config_.host : settings.server_name;
    link->stream.startTls(config_.tls->context());
    SSL_set_tlsext_host_name(link->stream.tls().native_handle(), name.c_str());
    if (settings.verify) link->stream.tls().set_verify_callback(asio::ssl::host_name_verification(name));
    auto [hec] = co_await link->stream.tls().async_handshake(asio::ssl::stream_base::client, kNoThrow);
    if (hec) {
      noteError(link->timed_out ? std::string("the TLS handshake timed out")
                                : fmt::format("the TLS handshake failed: {}", hec.message()));
      co_return false;
    }
  }
  co_return true;
}

awaitable<int64_t> MqttConnector::session() {
  auto link = std::make_shared<Link>(worker_.io());
  link_ = link;
  link->guard.expires_after(config_.connect_timeout);
  link->guard.async_wait([link](boost::system::error_code ec) {
    if (ec || !link->open) return;
    link->timed_out = true;
    link->close();
  });
  if (!co_await handshake(link)) {
    link->close();
    co_return -1;
  }
  mqtt::Connect connect;
  connect.version = version_;
  connect.client_id = config_.client_id;
  connect.clean_start = config_.clean_start;
  connect.keep_alive_s = static_cast<uint16_t>(config_.keep_alive.count() / 1000);
  if (!config_.username.empty()) connect.username = config_.username;
  if (!config_.password.empty()) connect.password = config_.password;
  if (version_ == mqtt::Version::k5) {
    connect.properties.session_expiry =
        config_.clean_start ? 0u : static_cast<uint32_t>(config_.session_expiry.count() / 1000);
    connect.properties.receive_maximum = static_cast<uint16_t>(config_.receive_maximum);
    connect.properties.maximum_packet_size = static_cast<uint32_t>(config_.max_body);
  }
  mqtt::encodeConnect(connect, link->out);
  send(link);

  mqtt::Decoder decoder(version_, config_.max_body);
  std::vector<char> buffer(16 * 1024);
  bool accepted = false;
  bool ids_available = true;  // the broker takes Subscription Identifiers (MQTT 5)
  // Up to CONNACK, under the connect guard.
  while (!accepted) {
    auto [ec, n] = co_await link->stream.async_read_some(asio::buffer(buffer), kNoThrow);
    if (ec || n == 0) {
      noteError(link->timed_out ? std::string("no CONNACK in time")
                                : fmt::format("the broker closed the connection before CONNACK ({})",
                                              ec ? ec.message() : std::string("end of stream")));
      link->close();
      co_return -1;
    }
    decoder.feed(std::string_view(buffer.data(), n));
    auto packet = decoder.next();
    if (!packet) {
      noteError(fmt::format("the broker's answer to CONNECT: {}", packet.error().message));
      link->close();
      co_return -1;
    }
    if (!*packet) continue;
    const auto* connack = std::get_if<mqtt::Connack>(&**packet);
    if (!connack) {
      noteError("the broker sent another packet before CONNACK");
      link->close();
      co_return -1;
    }
    if (connack->code != 0) {
      std::string why = reasonText(version_, connack->code);
      if (!connack->properties.reason_string.empty()) why += ": " + connack->properties.reason_string;
      noteError(fmt::format("the broker refused the connection: {}", why));
      link->close();
      co_return -1;
    }
    accepted = true;
    stats_->session_present.store(connack->session_present);
    if (!connack->session_present) awaiting_release_.clear();  // a new session: no QoS 2 state
    peer_receive_max_ = connack->properties.receive_maximum.value_or(65535);
    if (peer_receive_max_ == 0) peer_receive_max_ = 65535;
    peer_max_qos_ = connack->properties.maximum_qos.value_or(2);
    ids_available = connack->properties.subscription_ids_available.value_or(1) != 0;
    peer_max_packet_ = connack->properties.maximum_packet_size.value_or(268'435'460);
    // The broker's Server Keep Alive holds for this connection only; 0 turns keep-alive off.
    keep_alive_ms_ = config_.keep_alive.count();
    if (connack->properties.server_keep_alive)
      keep_alive_ms_ = *connack->properties.server_keep_alive * 1000LL;
  }
  link->guard.cancel();
  if (stopped_ || suspended_ || !link->open) {
    link->close();
    co_return 0;
  }
  const int64_t connected_at = steadyMillis();
  {
    std::lock_guard lock(stats_->error_mutex);
    stats_->last_error.clear();  // connected: what failed before is over
  }
  stats_->connected.store(true);
  stats_->connects.fetch_add(1, std::memory_order_relaxed);
  link->last_received_ms = link->last_sent_ms = steadyMillis();
  // Subscribe on a new session, and once per instance (a changed `subscribe` must take
  // effect on a resumed session). MQTT 5 asks for retained messages only when a subscription
  // is new; 3.1.1 brokers send them at every SUBSCRIBE.
  const bool present = stats_->session_present.load();
  if ((!present || !subscribed_) && !config_.subscribe.empty()) {  // none: it only publishes
    // Overlapping filters (a device's topic and a catch-all) make an MQTT 5 broker send a
    // message once per subscription it matches. Then each filter is subscribed alone, with its
    // index + 1 as Subscription Identifier, and onPublish takes only the copy sent for the
    // first filter that matches.
    const auto& all = config_.subscribe;
    bool overlap = false;
    for (size_t i = 0; i < all.size() && !overlap; ++i)
      for (size_t j = i + 1; j < all.size() && !overlap; ++j)
        overlap = mqtt::filtersOverlap(mqtt::matchFilter(all[i].topic), mqtt::matchFilter(all[j].topic));
    tagged_subscriptions_ = overlap && version_ == mqtt::Version::k5 && ids_available;
    pending_subscribes_.clear();
    refused_filters_.assign(all.size(), false);
    stats_->refused_subscriptions.store(0);
    const size_t per_packet = tagged_subscriptions_ ? 1 : all.size();
    for (size_t first = 0; first < all.size(); first += per_packet) {
      std::vector<mqtt::Subscription> subs;
      for (size_t k = first; k < first + per_packet; ++k)
        subs.push_back({all[k].topic, static_cast<uint8_t>(all[k].qos), 1});
      const uint16_t packet_id = nextPacketId();
      pending_subscribes_.push_back({packet_id, first, per_packet});
      mqtt::encodeSubscribe(version_, packet_id, subs, link->out,
                            tagged_subscriptions_ ? static_cast<uint32_t>(first + 1) : 0);
    }
    send(link);
  }
  if (present && !unsubscribe_.empty()) {
    mqtt::encodeUnsubscribe(version_, nextPacketId(), unsubscribe_, link->out);
    send(link);
  }
  if (!unsubscribe_.empty()) unsubscribe_.clear();  // a new session holds none of them
  resumeOutgoing(present);
  asio::co_spawn(worker_.io(), keepAlive(shared_from_this(), link), asio::detached);

  // Drains whole packets first (acknowledging in batches), then reads more.
  while (link->open) {
    Inbound in;
    in.readings = std::make_shared<IncomingReadings>();
    in.readings->connector = config_.name;
    bool more = true;
    while (in.readings->items.size() < kReadingsPerHandOff) {
      auto packet = decoder.next();
      if (!packet) {
        noteError(fmt::format("closing the connection: {}", packet.error().message));
        link->close();
        break;
      }
      if (!*packet) {
        more = false;
        break;
      }
      auto& incoming = **packet;
      if (auto* p = std::get_if<mqtt::Publish>(&incoming)) {
        onPublish(*p, *link, in);
      } else if (auto* o = std::get_if<mqtt::Oversized>(&incoming)) {
        onOversized(*o, in);
      } else if (auto* ack = std::get_if<mqtt::Ack>(&incoming)) {
        if (ack->type == mqtt::PacketType::kPubrel) {
          awaiting_release_.erase(ack->packet_id);
          mqtt::encodeAck(version_, mqtt::PacketType::kPubcomp, ack->packet_id, 0, in.acks);
        } else {
          onOutgoingAck(*ack, in.acks);  // PUBACK, PUBREC, PUBCOMP of what this client published
        }
      } else if (auto* suback = std::get_if<mqtt::Suback>(&incoming)) {
        const auto pending = std::find_if(pending_subscribes_.begin(), pending_subscribes_.end(),
                                          [&](const auto& p) { return p.packet_id == suback->packet_id; });
        if (pending == pending_subscribes_.end()) {
          noteError(fmt::format("the broker sent a SUBACK for packet {}, not for a SUBSCRIBE ({})",
                                suback->packet_id,
                                pending_subscribes_.empty() ? 0 : pending_subscribes_.front().packet_id));
          continue;
        }
        const PendingSubscribe answered = *pending;
        pending_subscribes_.erase(pending);
        if (pending_subscribes_.empty()) subscribed_ = true;
        if (suback->codes.size() != answered.count)
          noteError(fmt::format("the broker answered {} of {} subscriptions", suback->codes.size(),
                                answered.count));
        for (size_t i = 0; i < suback->codes.size() && i < answered.count; ++i) {
          if (suback->codes[i] < 0x80) continue;
          stats_->refused_subscriptions.fetch_add(1, std::memory_order_relaxed);
          if (answered.first + i < refused_filters_.size()) refused_filters_[answered.first + i] = true;
          noteError(fmt::format("the broker refused the subscription to '{}' ({})",
                                config_.subscribe[answered.first + i].topic,
                                reasonText(mqtt::Version::k5, suback->codes[i])));
        }
      } else if (auto* d = std::get_if<mqtt::Disconnect>(&incoming)) {
        std::string why = reasonText(version_, d->code);
        if (!d->properties.reason_string.empty()) why += ": " + d->properties.reason_string;
        noteError(fmt::format("the broker disconnected: {}", why));
        link->close();
        break;
      } else if (std::holds_alternative<mqtt::Connack>(incoming) ||
                 std::holds_alternative<mqtt::Auth>(incoming)) {
        noteError("closing the connection: the broker sent CONNACK or AUTH mid-session");
        link->close();
        break;
      }
      // PINGRESP: the read itself counts as a sign of life.
    }
    if (!co_await settle(link, in)) break;
    if (more || !link->open) continue;
    // A broker that does not read what this client writes (acknowledgements pile up): stop
    // reading until it does; the keep-alive ends the connection if it never does.
    if (link->out.size() > kMaxPendingWrite && !co_await waitForWrites(link)) break;
    // Nothing goes back now for what was read (QoS 0 messages, the broker's acknowledgements
    // of our publishes, PUBACKs waiting for the ingest log): its TCP acknowledgement goes at
    // once, not 40 ms later. When acknowledgements are being written, they carry it.
    if (link->out.empty() && !link->writing) quickAck(link->stream.socket());
    auto [ec, n] = co_await link->stream.async_read_some(asio::buffer(buffer), kNoThrow);
    if (ec || n == 0) {
      if (link->open && !stopped_)
        noteError(
            fmt::format("the connection was lost: {}", ec ? ec.message() : std::string("end of stream")));
      link->close();
      break;
    }
    link->last_received_ms = steadyMillis();
    decoder.feed(std::string_view(buffer.data(), n));
  }
  link->close();
  if (!stopped_) {
    stats_->connected.store(false);
    stats_->disconnects.fetch_add(1, std::memory_order_relaxed);
  }
  co_return steadyMillis() - connected_at;
}

void MqttConnector::onPublish(const mqtt::Publish& p, Link& link, Inbound& in) {
  stats_->messages.fetch_add(1, std::memory_order_relaxed);
  // Shutting down or suspended: neither taken nor acknowledged, so the broker sends QoS 1 and 2
  // messages again to the next session (QoS 0 ones are lost, as they would be a moment later).
  if (intake_closed_ || suspended_ || ended_on_purpose_) return;
  auto ack = [&] { this->ack(p.qos, p.packet_id, in); };
  if (p.qos == 2 && (awaiting_release_.count(p.packet_id) || link.receiving.count(p.packet_id))) {
    // Sent again before PUBREL (our PUBREC out or not yet): its readings were taken already.
    stats_->redelivered.fetch_add(1, std::memory_order_relaxed);
    return ack();
  }
  if (p.qos == 2) link.receiving.insert(p.packet_id);  // every path below acknowledges it
  const MqttSubscription* sub = nullptr;
  for (const auto& s : config_.subscribe) {
    if (mqtt::topicMatches(mqtt::matchFilter(s.topic), p.topic)) {
      sub = &s;
      break;
    }
  }
  if (!sub) {
    stats_->unmatched.fetch_add(1, std::memory_order_relaxed);
    return ack();
  }
  // A copy the broker sent for a later overlapping subscription: the copy of the first one the
  // broker granted is (or was) taken. Only once every SUBACK is in: before, a copy may carry a
  // predecessor's ids.
  if (const auto& ids = p.properties.subscription_ids;
      tagged_subscriptions_ && pending_subscribes_.empty() && !ids.empty()) {
    uint32_t taker = 0;  // the first granted filter that matches, index + 1
    for (size_t i = 0; i < config_.subscribe.size() && !taker; ++i)
      if (!(i < refused_filters_.size() && refused_filters_[i]) &&
          mqtt::topicMatches(mqtt::matchFilter(config_.subscribe[i].topic), p.topic))
        taker = static_cast<uint32_t>(i + 1);
    if (taker && std::find(ids.begin(), ids.end(), taker) == ids.end()) {
      stats_->extra_copies.fetch_add(1, std::memory_order_relaxed);
      return ack();
    }
  }
  std::string_view device = mqtt::plusLevel(mqtt::matchFilter(sub->topic), p.topic);
  const PayloadContext ctx = config_.payloadContext(
      device.empty() ? std::string_view(sub->device) : device,
      sub->metric.empty() ? std::string_view(config_.metric) : std::string_view(sub->metric));
  DecodeReport report;
  IncomingReadings& readings = *in.readings;
  const size_t before = readings.items.size();
  auto decoded = decodePayload(
      sub->format.value_or(config_.format), p.payload, ctx, [&](const DecodedReading& r) { readings.add(r); },
      report);
  ++in.payloads;
  in.rejected += report.rejected;
  if (!decoded.ok() || readings.items.size() == before) {
    // A bad payload is counted and acknowledged: redelivering it would fail the same way forever.
    ++in.refused;
    noteRejection(decoded.ok()
                      ? fmt::format("a message on '{}' held no reading: {}", p.topic,
                                    report.first_reason.empty() ? "empty" : report.first_reason)
                      : fmt::format("a message on '{}' was refused: {}", p.topic, decoded.error().message));
  } else {
    in.accepted += readings.items.size() - before;
  }
  ack();
}

void MqttConnector::onOversized(const mqtt::Oversized& o, Inbound& in) {
  // Acknowledged and counted: closing the connection instead would have the broker send the
  // same message again at every reconnection.
  stats_->messages.fetch_add(1, std::memory_order_relaxed);
  ++in.payloads;
  ++in.refused;
  ack(o.qos, o.packet_id, in);
  noteRejection(fmt::format("a message on '{}' of {} bytes was dropped: larger than max_body ({})", o.topic,
                            o.size, config_.max_body));
}

void MqttConnector::ack(uint8_t qos, uint16_t packet_id, Inbound& in) {
  if (qos == 1) mqtt::encodeAck(version_, mqtt::PacketType::kPuback, packet_id, 0, in.acks);
  if (qos == 2) {
    mqtt::encodeAck(version_, mqtt::PacketType::kPubrec, packet_id, 0, in.acks);
    in.released.push_back(packet_id);
  }
}

awaitable<bool> MqttConnector::waitForWrites(const std::shared_ptr<Link>& link) {
  asio::steady_timer wait(worker_.io());
  while (link->open && !stopped_ && link->out.size() > kMaxPendingWrite) {
    wait.expires_after(std::chrono::milliseconds(10));
    co_await wait.async_wait(kNoThrow);
  }
  co_return link->open && !stopped_;
}

awaitable<bool> MqttConnector::settle(const std::shared_ptr<Link>& link, Inbound& in) {
  if (!in.readings->items.empty()) {
    int64_t counted_until = steadyMillis();  // paused_ms grows while the pause lasts, not at its end
    asio::steady_timer wait(worker_.io());
    std::shared_ptr<DeliveryTicket> ticket;
    while (runtime_.deliver(config_.name, in.readings, &ticket) < 0) {
      // The pipelines are full: stop reading (nothing is acknowledged meanwhile, so the broker
      // holds back), and try again shortly. The keep-alive does not count this silence.
      link->paused = true;
      wait.expires_after(std::chrono::milliseconds(20));
      co_await wait.async_wait(kNoThrow);
      const int64_t now = steadyMillis();
      stats_->paused_ms.fetch_add(static_cast<uint64_t>(now - counted_until), std::memory_order_relaxed);
      counted_until = now;
      if (stopped_ || !link->open) {
        link->paused = false;
        co_return false;  // not acknowledged: the broker sends them again
      }
    }
    if (link->paused) {
      link->paused = false;
      link->last_received_ms = steadyMillis();
    }
    // Pipelines with an ingest log: acknowledged once the readings are on disk, in order,
    // while reading goes on (the next messages' appends share the coming fsyncs). Not
    // written: nothing more is acknowledged and the connection closes, so the broker sends
    // them again.
    if (ticket && (!in.acks.empty() || !in.released.empty())) {
      auto entry = std::make_shared<PendingAcks>();
      entry->ticket = std::move(ticket);
      entry->acks = std::move(in.acks);
      entry->released = std::move(in.released);
      link->pending.push_back(entry);
      entry->ticket->onDone([self = shared_from_this(), link, entry](bool ok) {
        asio::post(self->worker_.io(), [self, link, entry, ok] {
          entry->done = true;
          entry->ok = ok;
          self->flushAcks(link);
        });
      });
    }
  }
  if (in.payloads) runtime_.countIngest(config_.name, in.accepted, in.rejected, in.refused, in.payloads);
  if (!in.acks.empty() || !in.released.empty()) {
    // Nothing to wait for, but acknowledgements keep the order the messages came in.
    auto entry = std::make_shared<PendingAcks>();
    entry->acks = std::move(in.acks);
    entry->released = std::move(in.released);
    entry->done = true;
    link->pending.push_back(std::move(entry));
  }
  flushAcks(link);
  // Bounded: past kMaxPendingAcks batches waiting on the disk, reading waits too.
  asio::steady_timer wait(worker_.io());
  while (link->open && !stopped_ && link->pending.size() > kMaxPendingAcks) {
    wait.expires_after(std::chrono::milliseconds(2));
    co_await wait.async_wait(kNoThrow);
  }
  co_return link->open;
}

void MqttConnector::flushAcks(const std::shared_ptr<Link>& link) {
  bool wrote = false;
  while (link->open && !link->pending.empty() && link->pending.front()->done) {
    PendingAcks& head = *link->pending.front();
    if (!head.ok) {
      noteError("the readings could not be written to the ingest log: reconnecting for redelivery");
      link->pending.clear();
      link->close();
      return;
    }
    for (uint16_t id : head.released) {
      awaiting_release_.insert(id);
      link->receiving.erase(id);
    }
    link->out += head.acks;
    wrote = true;
    link->pending.pop_front();
  }
  if (wrote) send(link);
}

void MqttConnector::send(const std::shared_ptr<Link>& link) {
  if (link->writing || !link->open || link->out.empty()) return;
  link->writing = true;
  asio::co_spawn(worker_.io(), writeLoop(link), asio::detached);
}

awaitable<void> MqttConnector::writeLoop(std::shared_ptr<Link> link) {
  std::string chunk;
  while (link->open && !link->out.empty()) {
    chunk.clear();
    chunk.swap(link->out);
    auto [ec, n] = co_await asio::async_write(link->stream, asio::buffer(chunk), kNoThrow);
    if (ec) {
      link->close();
      break;
    }
    link->last_sent_ms = steadyMillis();
  }
  link->writing = false;
  if (link->close_after_write && link->open) {
    // A half-close: the broker reads what was written (acknowledgements, DISCONNECT) before it
    // sees the end. Closing with its messages unread here would reset the connection, and a
    // reset can throw away what the broker had not read yet: then it sends those messages
    // again. The read loop closes at the broker's end of stream, or the guard after a second.
    boost::system::error_code ignored;
    link->stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    link->guard.expires_after(std::chrono::seconds(1));
    link->guard.async_wait([link](boost::system::error_code ec) {
      if (!ec) link->close();
    });
  }
}

awaitable<void> MqttConnector::keepAlive(std::shared_ptr<MqttConnector> self, std::shared_ptr<Link> link) {
  const int64_t keep_alive = self->keep_alive_ms_;
  if (keep_alive <= 0) co_return;  // the broker turned keep-alive off
  const int64_t step = std::clamp<int64_t>(keep_alive / 4, 50, 1000);
  while (link->open && !self->stopped_) {
    link->tick.expires_after(std::chrono::milliseconds(step));
    co_await link->tick.async_wait(kNoThrow);
    if (!link->open || self->stopped_) break;
    const int64_t now = steadyMillis();
    if (link->paused) {
      link->last_received_ms = now;
    } else if (now - link->last_received_ms > keep_alive * 3 / 2) {
      self->noteError(fmt::format("the broker was silent for {} ms (keep_alive {} ms): reconnecting",
                                  now - link->last_received_ms, keep_alive));
      link->close();
      break;
    }
    if (now - link->last_sent_ms >= keep_alive) {
      mqtt::encodePingreq(link->out);
      link->last_sent_ms = now;  // not twice while the write is pending
      self->send(link);
    }
  }
}

void MqttConnector::describe(json::object& out) const {
  const MqttStats& s = *stats_;
  out["url"] = config_.url;
  out["client_id"] = config_.client_id;
  out["connected"] = s.connected.load();
  out["session_present"] = s.session_present.load();
  out["connects"] = s.connects.load();
  out["failed_attempts"] = s.failed_attempts.load();
  out["disconnects"] = s.disconnects.load();
  out["messages"] = s.messages.load();
  out["unmatched"] = s.unmatched.load();
  out["extra_copies"] = s.extra_copies.load();
  out["redelivered"] = s.redelivered.load();
  out["refused_subscriptions"] = s.refused_subscriptions.load();
  out["paused_ms"] = s.paused_ms.load();
  out["published"] = s.published.load();
  out["publish_waiting"] = s.publish_waiting.load();
  out["publish_dropped"] = s.publish_dropped.load();
  out["publish_refused"] = s.publish_refused.load();
  std::lock_guard lock(s.error_mutex);
  if (!s.last_error.empty()) out["last_error"] = s.last_error;
  if (!s.last_rejection.empty()) out["last_rejection"] = s.last_rejection;
}

}  // namespace ganglion::edge
