// One accepted HTTP/1.1 client connection: reads and validates requests (keep-alive and
// pipelining), hands each to the RequestHandler, and writes responses with the framing the
// client needs. Lives on the worker that accepted it, inside one coroutine.
#pragma once

#include <array>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/buffer.h"
#include "http/headers.h"
#include "http/http1_parser.h"
#include "loop/deadline.h"
#include "loop/worker.h"
#include "net/byte_budget.h"
#include "net/ip_connection_limit.h"
#include "net/stream.h"
#include "net/tls.h"

namespace ganglion::telemetry {
struct WorkerStats;
}

namespace ganglion::http {

template <typename T>
using Task = boost::asio::awaitable<T>;

struct ListenerLimits {
  ParseLimits parse;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds send_timeout{60'000};  ///< per response write: the client must take it
  uint64_t body_min_rate = 1024;        ///< bytes/s a body must average after body_timeout; 0: none
  bool underscores_in_headers = false;  ///< keep fields whose name has '_' (dropped by default)
  bool normalize_path = true;           ///< match and forward paths in normal form (http/path.h)
  bool answer_options_star = true;      ///< `OPTIONS *` answered here; false: the handler gets it
  std::shared_ptr<net::IpConnectionLimit> per_ip;  ///< set: the per-address connection cap
  std::shared_ptr<net::ByteBudget> body_budget;    ///< set: the cap on body bytes held in memory
  std::shared_ptr<net::TlsServerContext> tls;      ///< set: the connection starts with a TLS handshake
};

class ServerConnection;

/// The terminal seam of a connection: the proxy (and later the LLM router) implements it.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  /// Handles one request on the connection's worker thread. Must answer exactly once through
  /// `conn` (writeResponse or sendError) unless the connection fails.
  virtual Task<void> handle(ServerConnection& conn) = 0;
};

/// Sees every response head just before it is written (filters' response hooks), and, when
/// it asks, the whole body before any of it is sent.
class ResponseHook {
 public:
  /// Worker thread; may edit the head's status line and headers, not its framing.
  virtual void onResponseHead(ResponseHead& head) = 0;
  /// Asked once per response, with its head as the handler wrote it, before onResponseHead,
  /// when the response has a body (not HEAD, 1xx, 204, 304). 0 (the default): the body streams
  /// as written. N: the connection holds the head and the whole body, at most N bytes, and
  /// calls onResponseBody before sending anything. Worker thread.
  virtual uint64_t responseBodyLimit(const ResponseHead& /*head*/) { return 0; }
  /// How much of a held response the connection could keep.
  enum class Held {
    kWhole,       ///< the whole body
    kTooLarge,    ///< more than the limit came: `body` is its first part
    kOverloaded,  ///< the listener holds too many body bytes already (max_buffered_body_bytes)
  };
  /// The held response. May replace `head` and `body` (a refusal; it must, unless `held` is
  /// kWhole). The connection then sends them with a Content-Length, after onResponseHead, and
  /// discards whatever the handler still writes of this response (the handler goes on as if
  /// it were sent: an LLM call completes and is accounted, an upstream connection is drained
  /// and pooled). Worker thread.
  virtual void onResponseBody(ResponseHead& /*head*/, std::string& /*body*/, Held /*held*/) {}

 protected:
  ~ResponseHook() = default;
};

/// What a body read returned: data (valid until the next call) and whether the body ended.
struct BodyRead {
  std::span<const std::string_view> data;
  bool done = false;
  int error_status = 0;  ///< non-zero: the client sent a bad body, timed out or hung up
};

class ServerConnection {
 public:
  ServerConnection(loop::Worker& worker, net::TcpSocket socket, const ListenerLimits& limits,
                   RequestHandler& handler, telemetry::WorkerStats& stats, const bool& draining);
  ~ServerConnection();

  /// Serves requests until the client leaves, an error, or drain. Worker thread.
  Task<void> run();

  // --- for the RequestHandler, during handle() ---
  RequestHead& request() { return parser_.request(); }
  const RequestHead& request() const { return parser_.request(); }
  const std::string& clientIp() const { return client_ip_; }
  std::chrono::steady_clock::time_point requestStart() const { return request_start_; }
  void setMaxBodyBytes(uint64_t max) { max_body_bytes_ = max; }
  bool requestBodyComplete() const { return request_complete_; }
  /// Next piece of the request body (de-chunked). Sends "100 Continue" first if asked for.
  Task<BodyRead> readBody();
  /// What readBody() would return from the bytes already buffered (a small body usually comes
  /// in the head's read), without reading the socket or sending 100 Continue; nullopt when
  /// nothing is buffered. Lets a handler send a body that came with the head together with
  /// its own head, in one write. Its pieces stay valid until the next readBody() or
  /// bufferedBody(). Worker thread.
  std::optional<BodyRead> bufferedBody();
  /// Reads the whole request body, at most `max` bytes, for the filters that look at whole
  /// bodies and for handlers that parse it whole (wholeBody(), valid until the request ends);
  /// readBody() and bufferedBody() then hand it out as one piece, and a second call returns
  /// at once (the body is read and counted once). Returns 0, or the status of the failure: 413 over `max`
  /// (refused from Content-Length before reading when it says so), 408 too slow, 400 bad framing or gone, 503
  /// when the listener holds too many body bytes already (holdBodyBytes). Worker thread, during handle().
  Task<int> readWholeBody(uint64_t max);
  /// The body readWholeBody() read; empty before it.
  std::string_view wholeBody() const { return whole_body_; }
  /// Writes the response head (if `head`), body pieces and, with `last`, the end. The first
  /// call decides the framing from `head`. Returns false when the client is gone. When the
  /// response hook asks (ResponseHook::responseBodyLimit), head and body are held until
  /// `last` and sent as one whole response then.
  Task<bool> writeResponse(ResponseHead* head, std::span<const std::string_view> body, bool last);
  /// Counts this request as holding `total` bytes in memory (its body read whole, a response
  /// held for a filter, a handler's buffer), against the listener's cap
  /// (max_buffered_body_bytes): what is not counted yet is taken. False, taking nothing, when
  /// it does not fit. Released when the request ends. Worker thread.
  bool holdBodyBytes(uint64_t total);
  /// Whether the body of the response whose head writeResponse() just wrote (with a
  /// Content-Length, `last` false) may go out with sendFileBody(): plain TCP, nothing holds
  /// the response, the request is not HEAD. Worker thread.
  bool canSendFile() {
    return !stream_.isTls() && hold_ == Hold::kNone && response_started_ && !response_chunked_ &&
           !response_no_body_;
  }
  /// Sends `length` bytes of the file `fd` from `offset` as the rest of that body with
  /// sendfile(2), no copy through user space, waiting for the socket as writes do (the send
  /// timeout applies to each wait). The pages should be in the page cache: sendfile reads a
  /// missing page from the disk on this thread. Returns false, the connection aborted, when
  /// the client is gone or the file ends early. Worker thread.
  Task<bool> sendFileBody(int fd, uint64_t offset, uint64_t length);
  /// A gateway-generated JSON error: {"error":{"code":..,"type":..,"message":..}}.
  Task<void> sendError(int status, std::string_view type, std::string_view message,
                       const HeaderList* extra_headers = nullptr);
  /// Scratch the handler reuses from request to request, keeping its capacity: the
  /// upstream request head and the response head it relays.
  std::string& scratchText() { return scratch_text_; }
  ResponseHead& scratchResponseHead() { return scratch_head_; }
  /// Installs the hook for this request's response head (reset for every request).
  void setResponseHook(ResponseHook* hook) { hook_ = hook; }
  /// Marks the connection to close once this response is done.
  void closeAfterResponse() { keep_alive_ = false; }
  bool responseStarted() const { return response_started_; }
  /// The client closed or reset the connection while its body was being read.
  bool clientGone() const { return client_gone_; }
  /// A request is being handled (false while the connection waits for, or reads, a head).
  bool handling() const { return handling_; }
  int responseStatus() const { return response_status_; }
  uint64_t responseBytes() const { return response_bytes_; }
  /// Abandons the connection (e.g. upstream failed mid-response): closes the socket.
  void abort();
  /// For a protocol upgrade: the bytes the client sent after the request head, handed over to
  /// the tunnel (and consumed here). The connection serves no more HTTP requests afterwards.
  std::string takeBufferedForTunnel();
  /// Completes when the client closes its side while the handler is still working on its
  /// request (so the answer can never be read); never completes otherwise, until cancelled.
  /// Bytes the client sends meanwhile (pipelined requests, TLS records) are left unread; over
  /// TLS the client's FIN behind them is looked for every 200 ms. Worker thread.
  Task<void> closedByClient();
  net::Stream& stream() { return stream_; }
  bool isOpen() { return stream_.socket().is_open(); }

 private:
  enum class HeadResult { kRequest, kClosed, kReplied };
  Task<HeadResult> readHead();
  Task<bool> handshake();
  Task<bool> readMore(loop::Clock::time_point deadline);
  Task<void> rejectRequest(int status, std::string_view reason);
  Task<void> answerServerOptions();
  bool validateHead();
  void countClientError(int status);
  void releaseBodyBytes();

  loop::Worker& worker_;
  net::Stream stream_;
  ListenerLimits limits_;
  RequestHandler& handler_;
  telemetry::WorkerStats& stats_;
  const bool& draining_;
  loop::Deadline deadline_;
  Buffer in_;
  std::array<char, 512> idle_buf_;  ///< first read of each request lands here (see readMore)
  Http1Parser parser_;
  std::string client_ip_;
  std::string out_;  ///< serialised response head, reused
  std::string scratch_text_;
  ResponseHead scratch_head_;
  std::vector<boost::asio::const_buffer> iov_;
  std::vector<std::array<char, 24>> chunk_lines_;
  std::string local_reason_;
  ResponseHook* hook_ = nullptr;
  /// A response held for the hook's body check (responseBodyLimit): its head, its body so
  /// far, and the most bytes it may hold; after an overflow or a replacement is sent, the rest
  /// of the handler's writes are discarded.
  enum class Hold { kNone, kHolding, kDiscarding } hold_ = Hold::kNone;
  ResponseHead held_head_;
  std::string held_body_;
  uint64_t hold_limit_ = 0;
  Task<bool> holdResponse(ResponseHead* head, std::span<const std::string_view> body, bool last);
  /// writeResponse's writing, past the hold: frames and sends what it is given.
  Task<bool> sendResponse(ResponseHead* head, std::span<const std::string_view> body, bool last);
  /// Whether the client has closed its side (a peek that finds the end), without reading.
  bool peerClosed();
  std::string whole_body_;        ///< readWholeBody()'s body, reused from request to request
  std::string_view whole_piece_;  ///< whole_body_, as the one piece readBody() hands out
  bool whole_pending_ = false;    ///< readBody()/bufferedBody() still owe whole_body_
  uint64_t held_body_bytes_ = 0;  ///< counted against limits_.body_budget until the request ends

  std::chrono::steady_clock::time_point request_start_;
  /// The body's rate is measured from here: the end of the head, then the start of the last
  /// window of body_timeout that met body_min_rate (so credit earned in a burst expires).
  loop::Clock::time_point body_start_;
  uint64_t body_mark_bytes_ = 0;  ///< body_bytes_ at body_start_
  uint64_t max_body_bytes_ = 0;
  uint64_t body_bytes_ = 0;
  size_t pending_consume_ = 0;
  bool request_complete_ = false;
  bool keep_alive_ = true;
  bool continue_sent_ = false;
  bool response_started_ = false;
  bool response_chunked_ = false;
  bool response_no_body_ = false;
  int response_status_ = 0;
  uint64_t response_bytes_ = 0;
  bool timed_out_ = false;
  bool handling_ = false;
  bool client_gone_ = false;
  uint64_t requests_served_ = 0;
};

}  // namespace ganglion::http
