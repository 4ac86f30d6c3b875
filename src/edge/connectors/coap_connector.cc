#include "edge/connectors/coap_connector.h"

#include <coap3/coap.h>
#include <fmt/format.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "base/log.h"
#include "base/time.h"
#include "edge/connectors/coap_blocks.h"
#include "edge/edge_runtime.h"

namespace ganglion::edge {

namespace json = boost::json;

/// The answer to a request: what onRequest writes into libcoap's response and remembers for
/// a repeat of the message.
struct CoapAnswer {
  coap_pdu_code_t code = COAP_RESPONSE_CODE_CHANGED;
  std::string text;
  bool json = false;
  std::optional<unsigned> block1;  ///< the Block1 option (RFC 7959 2.3: the block it answers)
  std::optional<unsigned> size1;   ///< 4.13: the largest body taken (RFC 7959 4)
};

/// Who a DTLS peer is: a pre-shared key's identity, or a certificate's common name.
struct CoapPeer {
  std::string identity;
  const CoapPsk* psk = nullptr;
  /// Whether it may send readings of `device`: its key's `devices`, or its name alone.
  bool allows(std::string_view device) const { return psk ? psk->allows(device) : device == identity; }
  /// A request naming no device is the peer's own.
  bool ownsUnnamed() const { return !psk || psk->devices.empty(); }
};

namespace {

// Content-Format numbers (RFC 7252 12.3, RFC 8428).
constexpr unsigned kTextPlain = 0;
constexpr unsigned kOctetStream = 42;
constexpr unsigned kJson = 50;
constexpr unsigned kSenmlJson = 110;

void startLibcoap() {
  static std::once_flag once;
  std::call_once(once, [] {
    coap_startup();
    coap_set_log_level(LOG_WARNING);
    coap_set_log_handler([](coap_log_t level, const char* message) {
      if (level > LOG_WARNING) return;
      // What a peer can make libcoap say (a half-open DTLS handshake timing out, an alert)
      // is at most kCoapLogLinesPerMinute lines a minute, then how many were left out.
      static std::mutex mutex;
      static int64_t minute = 0;
      static unsigned lines = 0, left_out = 0;
      std::string_view m(message);
      while (!m.empty() && (m.back() == '\n' || m.back() == '\r')) m.remove_suffix(1);
      std::lock_guard lock(mutex);
      const int64_t now = wallMillis() / 60'000;
      if (now != minute) {
        if (left_out) logLine(fmt::format("edge: coap: {} more lines from libcoap left out", left_out));
        minute = now;
        lines = left_out = 0;
      }
      if (++lines > kCoapLogLinesPerMinute) return void(++left_out);
      logLine(fmt::format("edge: coap: {}", m));
    });
  });
}

/// The address of host:port (a name is resolved once, here), or why not.
Result<coap_address_t> resolve(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0 || !found)
    return Error(fmt::format("'{}' does not resolve: {}", host, gai_strerror(rc)));
  coap_address_t a;
  coap_address_init(&a);
  std::memcpy(&a.addr, found->ai_addr, found->ai_addrlen);
  a.size = found->ai_addrlen;
  freeaddrinfo(found);
  return a;
}

/// Calls `fn(fd)` for each file descriptor this process has open.
template <class Fn>
void forEachOwnFd(Fn&& fn) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    const std::string name = entry.path().filename().string();
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec == std::errc{} && fd >= 0) fn(fd);
  }
}

/// libcoap binds its endpoint with SO_REUSEADDR, with which another socket that asks the
/// same may bind the same address and take its datagrams. The endpoint's socket (found by
/// its address among this process's) stops sharing once bound: Linux checks both sockets'
/// flag at the later bind. libcoap 4.3.1 has no call that gives the endpoint's socket.
void stopSharing(const coap_address_t& bound) {
  forEachOwnFd([&](int fd) {
    int type = 0, reuse = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_DGRAM) return;
    len = sizeof reuse;
    if (::getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, &len) != 0 || !reuse) return;
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 || local_len != bound.size ||
        std::memcmp(&local, &bound.addr, bound.size) != 0)
      return;
    const int off = 0;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &off, sizeof off);
  });
}

/// The values of option `number` in order (Uri-Path segments, Uri-Query entries).
std::vector<std::string_view> optionValues(const coap_pdu_t* pdu, coap_option_num_t number) {
  std::vector<std::string_view> out;
  coap_opt_filter_t filter;
  coap_option_filter_clear(&filter);
  coap_option_filter_set(&filter, number);
  coap_opt_iterator_t it;
  coap_option_iterator_init(pdu, &it, &filter);
  while (coap_opt_t* opt = coap_option_next(&it))
    out.emplace_back(reinterpret_cast<const char*>(coap_opt_value(opt)), coap_opt_length(opt));
  return out;
}

bool hasOption(const coap_pdu_t* pdu, coap_option_num_t number) {
  coap_opt_iterator_t it;
  return coap_check_option(pdu, number, &it) != nullptr;
}

std::optional<unsigned> uintOption(const coap_pdu_t* pdu, coap_option_num_t number) {
  coap_opt_iterator_t it;
  const coap_opt_t* opt = coap_check_option(pdu, number, &it);
  if (!opt) return std::nullopt;
  return coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
}

/// The payload format a Content-Format names: its media type read as HTTP reads a
/// Content-Type (none or octet-stream: `fallback`; nullopt: one the connector cannot read).
std::optional<PayloadFormat> formatOf(std::optional<unsigned> content_format, PayloadFormat fallback) {
  if (!content_format) return fallback;
  switch (*content_format) {
    case kTextPlain:
      return formatOfContentType("text/plain", fallback);
    case kOctetStream:
      return formatOfContentType("application/octet-stream", fallback);
    case kJson:
      return formatOfContentType("application/json", fallback);
    case kSenmlJson:
      return formatOfContentType("application/senml+json", fallback);
    default:
      return std::nullopt;
  }
}

/// A message's payload (empty when it has none).
std::string_view payloadOf(const coap_pdu_t* pdu) {
  size_t len = 0;
  const uint8_t* data = nullptr;
  if (!coap_get_data(pdu, &len, &data) || !data) return {};
  return {reinterpret_cast<const char*>(data), len};
}

void writeAnswer(coap_pdu_t* response, const CoapAnswer& a) {
  coap_pdu_set_code(response, a.code);
  uint8_t buf[4];
  // Options in ascending number: Content-Format (12), Block1 (27), Size1 (60).
  if (!a.text.empty())
    coap_add_option(response, COAP_OPTION_CONTENT_FORMAT,
                    coap_encode_var_safe(buf, sizeof buf, a.json ? kJson : kTextPlain), buf);
  if (a.block1)
    coap_add_option(response, COAP_OPTION_BLOCK1, coap_encode_var_safe(buf, sizeof buf, *a.block1), buf);
  if (a.size1)
    coap_add_option(response, COAP_OPTION_SIZE1, coap_encode_var_safe(buf, sizeof buf, *a.size1), buf);
  if (!a.text.empty())
    coap_add_data(response, a.text.size(), reinterpret_cast<const uint8_t*>(a.text.data()));
}

/// The common name of a DTLS peer's certificate; empty when it showed none.
std::string certificateName(coap_session_t* session) {
  coap_tls_library_t library;
  auto* ssl = static_cast<SSL*>(coap_session_get_tls(session, &library));
  if (!ssl || library != COAP_TLS_LIBRARY_OPENSSL) return {};
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return {};
  char cn[256] = {};
  const int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  return n > 0 ? std::string(cn, static_cast<size_t>(n)) : std::string();
}

/// The peer's address without its port, as bytes; empty when libcoap has none.
std::string peerAddress(coap_session_t* session) {
  const coap_address_t* peer = coap_session_get_addr_remote(session);
  if (!peer) return {};
  if (peer->addr.sa.sa_family == AF_INET)
    return std::string(reinterpret_cast<const char*>(&peer->addr.sin.sin_addr),
                       sizeof peer->addr.sin.sin_addr);
  if (peer->addr.sa.sa_family == AF_INET6)
    return std::string(reinterpret_cast<const char*>(&peer->addr.sin6.sin6_addr),
                       sizeof peer->addr.sin6.sin6_addr);
  return {};
}

/// The peer's address and port as bytes (a key part); empty when libcoap has none.
std::string peerKey(coap_session_t* session) {
  const coap_address_t* peer = coap_session_get_addr_remote(session);
  if (!peer) return {};
  return std::string(reinterpret_cast<const char*>(&peer->addr), peer->size);
}

/// Waits (on the connector's thread) for a ticket: true once the readings are on disk, false
/// when they could not be written or kCoapStoreWaitMs passed.
bool waitStored(const std::shared_ptr<DeliveryTicket>& ticket) {
  if (!ticket) return true;
  struct Wait {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false, ok = false;
  };
  auto w = std::make_shared<Wait>();
  ticket->onDone([w](bool ok) {
    std::lock_guard lock(w->mutex);
    w->done = true;
    w->ok = ok;
    w->cv.notify_all();
  });
  std::unique_lock lock(w->mutex);
  w->cv.wait_for(lock, std::chrono::milliseconds(kCoapStoreWaitMs), [&] { return w->done; });
  return w->done && w->ok;
}

}  // namespace

/// One resource observed: its registration's session and token, and when to register again.
struct CoapConnector::Observed {
  const CoapObserve* config = nullptr;
  CoapStats::Observation* stats = nullptr;
  coap_session_t* session = nullptr;
  std::vector<uint8_t> token;
  int64_t heard_ms = 0;  ///< the last answer (wall ms)
  int64_t max_age_ms = 60'000;
  int64_t next_try_ms = 0;  ///< when to (re-)register
  uint32_t failures = 0;    ///< in a row: the backoff before the next try
  bool pending = false;     ///< a registration is on its way (libcoap retransmits it until answered)
  int64_t last_seq = -1;    ///< the last notification's Observe number (-1: none yet)
  int64_t last_seq_ms = 0;  ///< when it came
};

/// The answers of the exchanges of the last kCoapExchangeLifetimeMs (at most
/// kCoapRememberedExchanges), by peer address and message id, oldest first. Kept across a
/// reload that changes the connector: a message sent before it and again after it is
/// answered the same and taken once.
struct CoapExchangeMemory {
  struct Exchange {
    int64_t at_ms = 0;
    CoapAnswer answer;
  };
  std::unordered_map<std::string, Exchange> exchanges;
  std::deque<std::pair<int64_t, std::string>> order;
};

/// The libcoap side: its context and the observations.
struct CoapConnector::Context {
  coap_context_t* ctx = nullptr;
  std::vector<Observed> observed;
  int64_t next_bind_ms = 0;   ///< while not listening: when to try binding again
  CoapBlockAssembler blocks;  ///< bodies arriving in blocks
  /// The keys of the config's `psk`, in order, as libcoap takes them.
  std::vector<coap_bin_const_t> psk_keys;
  /// Handed out for an identity that is not listed, so that its handshake fails as a wrong
  /// key's does (at the end, not at once): timing does not tell which identities exist.
  uint8_t decoy[32] = {};
  coap_bin_const_t decoy_key{sizeof decoy, decoy};

  ~Context() {
    for (auto& o : observed)
      if (o.session) coap_session_release(o.session);
    if (ctx) coap_free_context(ctx);
  }
};

namespace {

/// The inodes of this process's sockets, sorted.
std::vector<uint64_t> ownSocketInodes() {
  std::vector<uint64_t> out;
  forEachOwnFd([&](int fd) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) out.push_back(st.st_ino);  // /proc/net/udp's inode
  });
  std::sort(out.begin(), out.end());
  return out;
}

/// Whether every UDP socket bound to `port` (any address, IPv4 or IPv6) is this process's.
bool onlyOursOnPort(uint16_t port) {
  const std::vector<uint64_t> own = ownSocketInodes();
  bool any = false;
  for (const char* table : {"/proc/net/udp", "/proc/net/udp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      // "sl: local rem st tx:rx tr:when retrnsmt uid timeout inode ...", addresses as HEX:PORT.
      std::istringstream fields(line);
      std::string sl, local, remote, st, queues, timer, retransmits, uid, timeout;
      uint64_t inode = 0;
      fields >> sl >> local >> remote >> st >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      const size_t colon = local.rfind(':');
      unsigned bound = 0;
      if (!fields || colon == std::string::npos ||
          std::from_chars(local.data() + colon + 1, local.data() + local.size(), bound, 16).ec !=
              std::errc{} ||
          bound != port)
        continue;
      any = true;
      if (!std::binary_search(own.begin(), own.end(), inode)) return false;
    }
  }
  return any;
}

}  // namespace

Result<void> probeUdpListen(const config::HostPort& address) {
  auto addr = resolve(address.host, address.port);
  if (!addr) return Error(addr.error().message);
  const int fd = ::socket(addr->addr.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(fmt::format("socket(): {}", std::strerror(errno)));
  // No SO_REUSEADDR: any socket on the address, libcoap's included, refuses the probe.
  const int rc = ::bind(fd, &addr->addr.sa, addr->size);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err == EADDRINUSE && onlyOursOnPort(address.port)) return {};
  if (rc != 0)
    return Error(fmt::format("cannot listen on {}:{} (UDP): {}", address.host, address.port,
                             err == EADDRINUSE ? "the address is already in use" : std::strerror(err)));
  return {};
}

CoapConnector::CoapConnector(EdgeRuntime& runtime, ConnectorConfig config, std::shared_ptr<CoapStats> stats,
                             std::shared_ptr<CoapExchangeMemory> exchanges)
    : runtime_(runtime),
      config_(std::move(config)),
      fingerprint_(connectorFingerprint(config_)),
      exchanges_(exchanges ? std::move(exchanges) : std::make_shared<CoapExchangeMemory>()) {
  // Counters carry over while the observations stay the same (by position).
  if (stats && stats->observations.size() == config_.observe.size()) {
    stats_ = std::move(stats);
  } else {
    stats_ = std::make_shared<CoapStats>();
    stats_->observations.resize(config_.observe.size());
  }
}

CoapConnector::~CoapConnector() { stop(); }

namespace {

CoapConnector* connectorOf(coap_session_t* session) {
  return static_cast<CoapConnector*>(coap_get_app_data(coap_session_get_context(session)));
}

}  // namespace

Result<void> CoapConnector::start() {
  startLibcoap();
  auto c = std::make_unique<Context>();
  c->ctx = coap_new_context(nullptr);
  if (!c->ctx) return Error(fmt::format("connector '{}': libcoap could not make a context", config_.name));
  coap_set_app_data(c->ctx, this);
  // A session per peer (address and port): a flood of senders, or one sender changing its
  // port, must not grow them without bound. The least recently used idle one goes first.
  coap_context_set_max_idle_sessions(c->ctx, kCoapMaxIdleSessions);
  coap_context_set_session_timeout(c->ctx, kCoapSessionTimeoutS);
  const bool wants_dtls = config_.speaksDtls() || std::any_of(config_.observe.begin(), config_.observe.end(),
                                                              [](const CoapObserve& o) { return o.secure; });
  if (wants_dtls && !coap_dtls_is_supported())
    return Error(fmt::format("connector '{}': this libcoap has no DTLS (install libcoap3's OpenSSL build)",
                             config_.name));
  if (!config_.psk.empty()) {
    for (const auto& p : config_.psk)
      c->psk_keys.push_back({p.key.size(), reinterpret_cast<const uint8_t*>(p.key.data())});
    RAND_bytes(c->decoy, sizeof c->decoy);
    // The handshake names an identity; its key is the config's, and the session remembers
    // which entry it was (the devices it may send).
    coap_dtls_spsk_t spsk{};
    spsk.version = COAP_DTLS_SPSK_SETUP_VERSION;
    spsk.validate_id_call_back = [](coap_bin_const_t* identity, coap_session_t* session,
                                    void* arg) -> const coap_bin_const_t* {
      auto* self = static_cast<CoapConnector*>(arg);
      const std::string_view id(reinterpret_cast<const char*>(identity->s), identity->length);
      const auto& psk = self->config_.psk;
      for (size_t i = 0; i < psk.size(); ++i)
        if (psk[i].identity == id) {
          coap_session_set_app_data(session, const_cast<CoapPsk*>(&psk[i]));
          return &self->context_->psk_keys[i];
        }
      ++self->stats_->unknown_identities;
      return &self->context_->decoy_key;  // the handshake fails at its end
    };
    spsk.id_call_back_arg = this;
    if (!coap_context_set_psk2(c->ctx, &spsk))
      return Error(fmt::format("connector '{}': libcoap did not take the pre-shared keys", config_.name));
  }
  if (!config_.dtls.empty()) {
    // A device shows a certificate that chains to `ca` (no self-signed, no expired one); its
    // common name is its identity, read per request from the session.
    coap_dtls_pki_t pki{};
    pki.version = COAP_DTLS_PKI_SETUP_VERSION;
    pki.verify_peer_cert = 1;
    pki.check_common_ca = 1;
    pki.cert_chain_validation = 1;
    pki.cert_chain_verify_depth = 4;
    pki.pki_key.key_type = COAP_PKI_KEY_PEM;
    pki.pki_key.key.pem.public_cert = config_.dtls.cert.c_str();
    pki.pki_key.key.pem.private_key = config_.dtls.key.c_str();
    pki.pki_key.key.pem.ca_file = config_.dtls.ca.c_str();
    if (!coap_context_set_pki(c->ctx, &pki))
      return Error(fmt::format("connector '{}': libcoap could not load the dtls certificates", config_.name));
  }
  if (config_.listens) {
    auto on_request = [](coap_resource_t*, coap_session_t* session, const coap_pdu_t* request,
                         const coap_string_t*, coap_pdu_t* response) {
      connectorOf(session)->onRequest(session, request, response);
    };
    coap_resource_t* any = coap_resource_unknown_init2(on_request, 0);
    // Every method comes to the handler: one that does not post readings is answered 4.05
    // there (libcoap's own answer to a DELETE of an unknown resource is 2.02 Deleted).
    for (coap_request_t method : {COAP_REQUEST_POST, COAP_REQUEST_GET, COAP_REQUEST_DELETE,
                                  COAP_REQUEST_FETCH, COAP_REQUEST_PATCH, COAP_REQUEST_IPATCH})
      coap_register_request_handler(any, method, on_request);
    coap_add_resource(c->ctx, any);
  }
  coap_register_response_handler(
      c->ctx,
      [](coap_session_t* session, const coap_pdu_t*, const coap_pdu_t* received,
         const coap_mid_t) -> coap_response_t {
        return static_cast<coap_response_t>(connectorOf(session)->onResponse(session, received));
      });
  // A DTLS handshake or record that failed on the endpoint: a wrong key, a certificate from
  // elsewhere, garbage (counted; libcoap closes the session).
  coap_register_event_handler(c->ctx, [](coap_session_t* session, const coap_event_t event) -> int {
    if (coap_session_get_type(session) != COAP_SESSION_TYPE_SERVER) return 0;
    // A handshake abandoned half-way (a wrong key: DTLS drops what it cannot decrypt, so the
    // server sees no error) is counted when libcoap clears it, 30 s on.
    const bool abandoned = event == COAP_EVENT_SERVER_SESSION_DEL &&
                           coap_session_get_proto(session) == COAP_PROTO_DTLS &&
                           coap_session_get_state(session) == COAP_SESSION_STATE_HANDSHAKE;
    if (event == COAP_EVENT_DTLS_ERROR || abandoned) ++connectorOf(session)->stats_->dtls_failures;
    return 0;
  });
  coap_register_nack_handler(c->ctx,
                             [](coap_session_t* session, const coap_pdu_t* sent, const coap_nack_reason_t,
                                const coap_mid_t) { connectorOf(session)->onNack(session, sent); });
  for (size_t i = 0; i < config_.observe.size(); ++i) {
    Observed o;
    o.config = &config_.observe[i];
    o.stats = &stats_->observations[i];
    c->observed.push_back(std::move(o));
  }
  context_ = std::move(c);
  // Bound here once, so that a port in use is in the log at once; the thread tries again.
  Result<void> bound;
  if (config_.listens && !bind()) {
    std::lock_guard lock(stats_->error_mutex);
    bound = Error(fmt::format("connector '{}': {}", config_.name, stats_->last_error));
  }
  thread_ = std::thread([this] { run(); });
  return bound;
}

bool CoapConnector::bind() {
  Context& c = *context_;
  c.next_bind_ms = wallMillis() + kCoapBindRetryMs;
  auto addr = resolve(config_.listen.host, config_.listen.port);
  if (!addr) {
    noteError(fmt::format("listen: {}; trying again every second", addr.error().message));
    return false;
  }
  // libcoap binds with SO_REUSEADDR, which a socket another program bound the same way (while
  // this connector was stopped, or before it could bind) would share: the datagrams would go
  // to either. A bind without it, first, refuses any socket on the address.
  if (auto free = probeUdpListen(config_.listen); !free) {
    noteError(free.error().message + "; trying again every second");
    return false;
  }
  if (!coap_new_endpoint(c.ctx, &*addr, config_.speaksDtls() ? COAP_PROTO_DTLS : COAP_PROTO_UDP)) {
    noteError(
        fmt::format("cannot listen on {}:{} (UDP): in use or not an address here; trying again every second",
                    config_.listen.host, config_.listen.port));
    return false;
  }
  stopSharing(*addr);
  stats_->listening = true;
  noteError({});  // bound: what failed before is over
  return true;
}

void CoapConnector::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  context_.reset();
}

void CoapConnector::run() {
  while (!stopping_.load(std::memory_order_relaxed)) {
    const int64_t now = wallMillis();
    if (config_.listens && !stats_->listening && now >= context_->next_bind_ms) bind();
    for (auto& o : context_->observed) {
      if (o.pending) continue;  // libcoap retransmits it, then answers or gives up (onNack)
      const bool silent = o.stats->established && now - o.heard_ms > o.max_age_ms + kCoapObserveGraceMs;
      if ((!o.stats->established || silent) && now >= o.next_try_ms) observe(o, now);
    }
    coap_io_process(context_->ctx, 100);
  }
  cancelObservations();
  stats_->listening = false;
}

void CoapConnector::cancelObservations() {
  bool sent = false;
  for (auto& o : context_->observed) {
    if (!o.session || !o.stats->established || o.token.empty()) continue;
    if (coap_pdu_t* pdu = observeRequest(o, COAP_MESSAGE_NON, COAP_OBSERVE_CANCEL))
      sent = coap_send(o.session, pdu) != COAP_INVALID_MID || sent;
    o.stats->established = false;
  }
  if (sent) coap_io_process(context_->ctx, COAP_IO_NO_WAIT);
}

coap_pdu_t* CoapConnector::observeRequest(const Observed& o, int type, unsigned observe) {
  coap_pdu_t* pdu = coap_pdu_init(static_cast<coap_pdu_type_t>(type), COAP_REQUEST_CODE_GET,
                                  coap_new_message_id(o.session), coap_session_max_pdu_size(o.session));
  if (!pdu) return nullptr;
  coap_add_token(pdu, o.token.size(), o.token.data());
  uint8_t buf[4];
  coap_add_option(pdu, COAP_OPTION_OBSERVE, coap_encode_var_safe(buf, sizeof buf, observe), buf);
  for (const auto& segment : o.config->path)
    coap_add_option(pdu, COAP_OPTION_URI_PATH, segment.size(),
                    reinterpret_cast<const uint8_t*>(segment.data()));
  for (const auto& q : o.config->query)
    coap_add_option(pdu, COAP_OPTION_URI_QUERY, q.size(), reinterpret_cast<const uint8_t*>(q.data()));
  return pdu;
}

void CoapConnector::onRequest(coap_session_t* session, const coap_pdu_t* request, coap_pdu_t* response) {
  ++stats_->requests;
  // A message again (its ACK was lost, the device resends): the same answer, taken once
  // (RFC 7252 4.5). The key is the peer's address and port and the message id.
  CoapExchangeMemory& c = *exchanges_;
  const int64_t now = wallMillis();
  while (!c.order.empty() && (now - c.order.front().first > kCoapExchangeLifetimeMs ||
                              c.order.size() > kCoapRememberedExchanges)) {
    c.exchanges.erase(c.order.front().second);
    c.order.pop_front();
  }
  std::string key = peerKey(session);
  if (!key.empty()) {
    const coap_mid_t mid = coap_pdu_get_mid(request);
    key.append(reinterpret_cast<const char*>(&mid), sizeof mid);
    if (auto it = c.exchanges.find(key); it != c.exchanges.end()) {
      ++stats_->duplicates;
      writeAnswer(response, it->second.answer);
      return;
    }
  }
  CoapAnswer a = answerRequest(session, request);
  if (COAP_RESPONSE_CLASS(a.code) != 2) ++stats_->refused_requests;
  writeAnswer(response, a);
  if (key.empty()) return;
  c.order.emplace_back(now, key);
  c.exchanges.emplace(std::move(key), CoapExchangeMemory::Exchange{now, std::move(a)});
}

CoapAnswer CoapConnector::answerRequest(coap_session_t* session, const coap_pdu_t* request) {
  auto refuse = [](coap_pdu_code_t code, std::string why) {
    CoapAnswer a;
    a.code = code;
    a.text = std::move(why);
    return a;
  };
  // A payload refused whole counts as a refused payload of the connector too.
  auto refusePayload = [&](coap_pdu_code_t code, std::string why) {
    runtime_.countIngest(config_.name, 0, 0, true);
    return refuse(code, std::move(why));
  };
  // 4.13 says the largest body taken (Size1, RFC 7959 4).
  auto tooLarge = [&](std::string why) {
    CoapAnswer a = refusePayload(COAP_RESPONSE_CODE_REQUEST_TOO_LARGE, std::move(why));
    a.size1 = static_cast<unsigned>(std::min<uint64_t>(config_.max_body, UINT32_MAX));
    return a;
  };
  const coap_pdu_code_t method = coap_pdu_get_code(request);
  if (method != COAP_REQUEST_CODE_POST && method != COAP_REQUEST_CODE_PUT)
    return refuse(COAP_RESPONSE_CODE_NOT_ALLOWED, "");
  // /<path>/<device>: the path's segments, then one for the device (or ?device=).
  const auto segments = optionValues(request, COAP_OPTION_URI_PATH);
  const auto& prefix = config_.path_segments;
  if (segments.size() < prefix.size() || segments.size() > prefix.size() + 1 ||
      !std::equal(prefix.begin(), prefix.end(), segments.begin())) {
    ++stats_->not_found;
    // No reason in the answer: a 4.04 is what a scan or a forged sender mostly gets, and a
    // short answer reflects nothing worth forging (RFC 7252 11.3).
    return refuse(COAP_RESPONSE_CODE_NOT_FOUND, "");
  }
  std::string device = segments.size() > prefix.size() ? std::string(segments.back()) : std::string();
  std::string metric;
  bool device_query = false, metric_query = false;
  for (std::string_view q : optionValues(request, COAP_OPTION_URI_QUERY)) {
    if (q.starts_with("device=")) {
      if (device_query || !device.empty())
        return refuse(COAP_RESPONSE_CODE_BAD_REQUEST, device_query
                                                          ? "?device= is given twice"
                                                          : "the device is named twice (path and ?device=)");
      device_query = true;
      device = q.substr(7);
    } else if (q.starts_with("metric=")) {
      if (metric_query) return refuse(COAP_RESPONSE_CODE_BAD_REQUEST, "metric is given twice");
      metric_query = true;
      metric = q.substr(7);
    }
  }
  if (metric.empty()) metric = config_.metric;
  // Over DTLS the device is known by its identity (its key's or its certificate's): it
  // names no other device than it may.
  std::optional<CoapPeer> peer;
  if (config_.speaksDtls()) {
    peer.emplace();
    if ((peer->psk = static_cast<const CoapPsk*>(coap_session_get_app_data(session))))
      peer->identity = peer->psk->identity;
    else
      peer->identity = certificateName(session);
    if (peer->identity.empty())
      return refuse(COAP_RESPONSE_CODE_UNAUTHORIZED,
                    "the session has no identity (no key, no certificate name)");
    if (device.empty() && peer->ownsUnnamed()) device = peer->identity;
    if (!device.empty() && !peer->allows(device))
      return refuse(
          COAP_RESPONSE_CODE_FORBIDDEN,
          fmt::format("identity '{}' may not send readings of device '{}'", peer->identity, device));
  }
  if (optionValues(request, COAP_OPTION_CONTENT_FORMAT).size() > 1)
    return refusePayload(COAP_RESPONSE_CODE_BAD_OPTION, "Content-Format is given twice");
  const auto content_format = uintOption(request, COAP_OPTION_CONTENT_FORMAT);
  const auto format = formatOf(content_format, config_.format);
  if (!format)
    return refusePayload(COAP_RESPONSE_CODE_UNSUPPORTED_CONTENT_FORMAT,
                         "send Content-Format 50 (json), 110 (senml+json) or 0 (text/plain: line protocol)");
  std::string_view payload = payloadOf(request);
  // A body in blocks (RFC 7959 Block1): each block is kept and answered 2.31 Continue; the
  // last one brings the whole body to the decoder.
  std::string whole;
  std::optional<unsigned> block1;
  if (const auto blocks = optionValues(request, COAP_OPTION_BLOCK1); !blocks.empty()) {
    if (blocks.size() > 1) return refusePayload(COAP_RESPONSE_CODE_BAD_OPTION, "Block1 is given twice");
    if (blocks.front().size() > 3)
      return refusePayload(COAP_RESPONSE_CODE_BAD_OPTION, "Block1 is 0 to 3 bytes");
    const unsigned value = *uintOption(request, COAP_OPTION_BLOCK1);
    CoapBlockAssembler::Block b;
    b.num = value >> 4;
    b.more = (value & 0x8) != 0;
    b.szx = value & 0x7;
    b.piece = payload;
    b.content_format = content_format.value_or(kOctetStream);
    if (auto size1 = uintOption(request, COAP_OPTION_SIZE1)) b.size1 = *size1;
    if (b.szx == 7)
      return refusePayload(COAP_RESPONSE_CODE_BAD_REQUEST, "Block1 size 7 (BERT) is for CoAP over TCP");
    const size_t block_size = size_t{16} << b.szx;
    if (b.more ? payload.size() != block_size : payload.size() > block_size)
      return refusePayload(COAP_RESPONSE_CODE_BAD_REQUEST,
                           fmt::format("block {} of {} bytes carries {} bytes (each but the last is full)",
                                       b.num, block_size, payload.size()));
    // The body is the sender's, its Request-Tag's (RFC 9175), and the target's.
    const std::string sender = peerAddress(session);
    std::string key = peerKey(session);
    for (std::string_view part : optionValues(request, COAP_OPTION_RTAG)) (key += '\x1f') += part;
    ((key += '\x1e') += device) += '\x1f';
    key += metric;
    auto got = context_->blocks.add(sender, key, b, config_.max_body, wallMillis());
    using Outcome = CoapBlockAssembler::Outcome;
    switch (got.outcome) {
      case Outcome::kContinue: {
        CoapAnswer a;
        a.code = COAP_RESPONSE_CODE_CONTINUE;
        a.block1 = value;
        return a;
      }
      case Outcome::kTooLarge:
        return tooLarge(std::move(got.why));
      case Outcome::kIncomplete:
        return refusePayload(COAP_RESPONSE_CODE_INCOMPLETE, std::move(got.why));
      case Outcome::kBusy:
        return refuse(COAP_RESPONSE_CODE_SERVICE_UNAVAILABLE, std::move(got.why));
      case Outcome::kComplete:
        if (b.num > 0) ++stats_->bodies_in_blocks;
        whole = std::move(got.body);
        payload = whole;
        block1 = value;
        break;
    }
  }
  if (payload.size() > config_.max_body)
    return tooLarge(fmt::format("the payload is larger than {} bytes", config_.max_body));
  const Ingested got = ingest(*format, payload, device, metric, peer ? &*peer : nullptr);
  if (!got.error.empty()) return refuse(static_cast<coap_pdu_code_t>(got.code), got.error);
  json::object body;
  body["accepted"] = got.accepted;
  body["rejected"] = got.rejected;
  if (!got.first_rejection.empty()) body["first_rejection"] = got.first_rejection;
  CoapAnswer a;
  a.text = json::serialize(body);
  a.json = true;
  a.block1 = block1;
  return a;
}

CoapConnector::Ingested CoapConnector::ingest(PayloadFormat format, std::string_view payload,
                                              const std::string& device, const std::string& metric,
                                              const CoapPeer* peer) {
  Ingested out;
  const PayloadContext ctx = config_.payloadContext(device, metric);
  auto readings = std::make_shared<IncomingReadings>();
  readings->connector = config_.name;
  DecodeReport report;
  auto decoded = decodePayload(
      format, payload, ctx,
      [&](const DecodedReading& r) {
        // A payload names its devices too (SenML base names, line-protocol device tags):
        // over DTLS, only those its identity may send.
        if (peer && !peer->allows(r.device))
          return report.reject(
              fmt::format("identity '{}' may not send readings of device '{}'", peer->identity, r.device));
        readings->add(r);
      },
      report);
  if (!decoded.ok()) {
    runtime_.countIngest(config_.name, 0, 0, true);
    out.code = COAP_RESPONSE_CODE_BAD_REQUEST;
    out.error = payloadRefusal(format, decoded.error());
    return out;
  }
  if (readings->items.empty()) {
    runtime_.countIngest(config_.name, 0, report.rejected, true);
    out.code = COAP_RESPONSE_CODE_UNPROCESSABLE;
    out.error = noReadingsRefusal(report);
    return out;
  }
  const size_t accepted = readings->items.size();
  std::shared_ptr<DeliveryTicket> ticket;
  if (runtime_.deliver(config_.name, std::move(readings), &ticket) < 0) {
    out.code = COAP_RESPONSE_CODE_SERVICE_UNAVAILABLE;
    out.error = "the pipelines have too many readings waiting; try again";
    return out;
  }
  if (!waitStored(ticket)) {
    out.code = COAP_RESPONSE_CODE_SERVICE_UNAVAILABLE;
    out.error = "the readings could not be written to the ingest log in time; try again";
    noteError(
        "readings were not kept: the ingest log could not be written within 1.5 s (a full or failing "
        "disk?); the sender was answered 5.03");
    return out;
  }
  runtime_.countIngest(config_.name, accepted, report.rejected, false);
  out.accepted = accepted;
  out.rejected = report.rejected;
  out.first_rejection = report.first_reason;
  return out;
}

void CoapConnector::observe(Observed& o, int64_t now) {
  const CoapObserve& cfg = *o.config;
  o.stats->established = false;
  auto retry = [&](std::string why) { retryLater(o, now, std::move(why)); };
  if (!o.session) {
    auto addr = resolve(cfg.host, cfg.port);
    if (!addr) return retry(addr.error().message);
    if (cfg.secure) {
      coap_dtls_cpsk_t cpsk{};
      cpsk.version = COAP_DTLS_CPSK_SETUP_VERSION;
      cpsk.psk_info.identity = {cfg.identity.size(), reinterpret_cast<const uint8_t*>(cfg.identity.data())};
      cpsk.psk_info.key = {cfg.key.size(), reinterpret_cast<const uint8_t*>(cfg.key.data())};
      o.session = coap_new_client_session_psk2(context_->ctx, nullptr, &*addr, COAP_PROTO_DTLS, &cpsk);
    } else {
      o.session = coap_new_client_session(context_->ctx, nullptr, &*addr, COAP_PROTO_UDP);
    }
    if (!o.session) return retry("libcoap could not open a session");
  }
  // A registration again keeps its token (RFC 7641 3.3.1): the server replaces the old entry
  // rather than keeping two observers.
  if (o.token.empty()) {
    uint8_t token[8];
    size_t token_len = 0;
    coap_session_new_token(o.session, &token_len, token);
    o.token.assign(token, token + token_len);
  }
  coap_pdu_t* pdu = observeRequest(o, COAP_MESSAGE_CON, COAP_OBSERVE_ESTABLISH);
  if (!pdu) return retry("libcoap could not make a request");
  if (coap_send(o.session, pdu) == COAP_INVALID_MID) return retry("the request could not be sent");
  ++o.stats->registrations;
  o.pending = true;  // until an answer, or libcoap gives up on it (onNack)
  o.heard_ms = now;
  o.next_try_ms = now + config_.reconnect.initial.count();  // never more often than this
}

CoapConnector::Observed* CoapConnector::observationOf(coap_session_t* session, const coap_pdu_t* pdu) {
  const coap_bin_const_t token = coap_pdu_get_token(pdu);
  for (auto& o : context_->observed)
    if (o.session == session && o.token.size() == token.length &&
        std::equal(o.token.begin(), o.token.end(), token.s))
      return &o;
  return nullptr;
}

int CoapConnector::onResponse(coap_session_t* session, const coap_pdu_t* received) {
  Observed* o = observationOf(session, received);
  if (!o) return COAP_RESPONSE_FAIL;  // not ours (an old registration): libcoap answers RST
  const int64_t now = wallMillis();
  o->pending = false;
  const coap_pdu_code_t code = coap_pdu_get_code(received);
  if (COAP_RESPONSE_CLASS(code) != 2) {
    retryLater(*o, now, fmt::format("the server answered {}.{:02d}", COAP_RESPONSE_CLASS(code), code & 0x1f));
    return COAP_RESPONSE_OK;
  }
  const bool observing = hasOption(received, COAP_OPTION_OBSERVE);
  o->stats->established = observing;
  o->heard_ms = now;
  o->failures = 0;
  if (auto max_age = uintOption(received, COAP_OPTION_MAXAGE))
    o->max_age_ms = int64_t{*max_age} * 1000;
  else
    o->max_age_ms = 60'000;
  // A server that does not take observers answered once: ask again after its Max-Age.
  if (!observing) o->next_try_ms = now + std::max<int64_t>(o->max_age_ms, 1000);
  if (observing) {
    // Only a fresher notification than the last one counts (RFC 7641 3.4: numbers wrap at
    // 2^24; after 128 s any is fresh). A stale one is acknowledged and left out. The answer
    // to a registration (an ACK) starts afresh: a restarted server counts from anywhere.
    const int64_t v2 = *uintOption(received, COAP_OPTION_OBSERVE) & 0xFFFFFF;
    const int64_t v1 = o->last_seq;
    const bool fresh = v1 < 0 || coap_pdu_get_type(received) == COAP_MESSAGE_ACK ||
                       (v1 < v2 && v2 - v1 < (1 << 23)) || (v1 > v2 && v1 - v2 > (1 << 23)) ||
                       now > o->last_seq_ms + 128'000;
    if (!fresh) {
      ++stats_->stale_notifications;
      return COAP_RESPONSE_OK;
    }
    o->last_seq = v2;
    o->last_seq_ms = now;
  }
  ++o->stats->notifications;
  const auto format =
      formatOf(uintOption(received, COAP_OPTION_CONTENT_FORMAT), o->config->format.value_or(config_.format));
  if (!format) {
    runtime_.countIngest(config_.name, 0, 0, true);
    noteError(fmt::format("observe {}: a notification in a Content-Format the connector cannot read",
                          o->config->uri));
    return COAP_RESPONSE_OK;
  }
  if (hasOption(received, COAP_OPTION_BLOCK2)) {
    runtime_.countIngest(config_.name, 0, 0, true);
    noteError(fmt::format("observe {}: a notification larger than one datagram (Block2) is not taken",
                          o->config->uri));
    return COAP_RESPONSE_OK;
  }
  const std::string_view payload = payloadOf(received);
  const std::string& metric = o->config->metric.empty() ? config_.metric : o->config->metric;
  const Ingested got = ingest(*format, payload, o->config->device, metric, nullptr);
  if (!got.error.empty()) {
    noteError(fmt::format("observe {}: {}", o->config->uri, got.error));
    // Not kept for now (backpressure, the disk): leave a confirmable notification
    // unacknowledged, so the server sends it again.
    if (got.code == COAP_RESPONSE_CODE_SERVICE_UNAVAILABLE && coap_pdu_get_type(received) == COAP_MESSAGE_CON)
      return COAP_RESPONSE_FAIL;
  }
  return COAP_RESPONSE_OK;
}

void CoapConnector::onNack(coap_session_t* session, const coap_pdu_t* sent) {
  Observed* o = observationOf(session, sent);
  if (!o || coap_pdu_get_code(sent) != COAP_REQUEST_CODE_GET) return;
  o->pending = false;
  retryLater(*o, wallMillis(), "the server did not answer the registration");
}

void CoapConnector::retryLater(Observed& o, int64_t now, std::string why) {
  o.stats->established = false;
  ++o.stats->failures;
  noteError(fmt::format("observe {}: {}", o.config->uri, why));
  o.next_try_ms =
      now + doublingBackoffMs(config_.reconnect.initial.count(), config_.reconnect.max.count(), ++o.failures);
}

void CoapConnector::noteError(std::string what) {
  std::lock_guard lock(stats_->error_mutex);
  stats_->last_error = std::move(what);
}

void CoapConnector::describe(json::object& out) const {
  if (config_.listens) {
    out["listen"] = fmt::format("{}:{}", config_.listen.host, config_.listen.port);
    out["listening"] = stats_->listening.load();
  }
  out["duplicates"] = stats_->duplicates.load();
  if (!config_.psk.empty()) out["unknown_identities"] = stats_->unknown_identities.load();
  if (config_.speaksDtls()) out["dtls_failures"] = stats_->dtls_failures.load();
  out["bodies_in_blocks"] = stats_->bodies_in_blocks.load();
  out["stale_notifications"] = stats_->stale_notifications.load();
  out["requests"] = stats_->requests.load();
  out["refused_requests"] = stats_->refused_requests.load();
  out["not_found"] = stats_->not_found.load();
  json::array observations;
  for (size_t i = 0; i < config_.observe.size(); ++i) {
    const auto& s = stats_->observations[i];
    json::object o;
    o["uri"] = config_.observe[i].uri;
    o["established"] = s.established.load();
    o["registrations"] = s.registrations.load();
    o["notifications"] = s.notifications.load();
    o["failures"] = s.failures.load();
    observations.push_back(std::move(o));
  }
  out["observations"] = std::move(observations);
  std::lock_guard lock(stats_->error_mutex);
  if (!stats_->last_error.empty()) out["last_error"] = stats_->last_error;
}

}  // namespace ganglion::edge
