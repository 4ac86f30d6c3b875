#include "proxy/proxy_handler.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/container/small_vector.hpp>
#include <charconv>

#include "base/log.h"
#include "proxy/request_head.h"

namespace ganglion::proxy {

namespace asio = boost::asio;
using http::ParseEvent;
using http::ServerConnection;
using http::Task;
using Clock = std::chrono::steady_clock;
using upstream::BalancerState;
using upstream::HeadOutcome;
using upstream::kNoTarget;
using upstream::readMore;
using upstream::readResponseHead;
using upstream::ReadStatus;
using upstream::TargetLoad;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

struct ProxyHandler::Exchange {
  Exchange(std::string& head_scratch, http::HandlerReport& out) : head(head_scratch), report(out) {}
  /// Tells the access log what happened, however the exchange ended.
  ~Exchange() {
    report.upstream = upstream->def->config->name;
    report.upstream_addr = target;
    report.upstream_status = upstream_status;
    report.attempts = attempts;
    report.error = error_type;
  }
  const http::CompiledRoute* route = nullptr;
  UpstreamRuntime* upstream = nullptr;
  std::string& head;  ///< serialised upstream request head (the connection's scratch)
  http::HandlerReport& report;
  std::string_view target;  ///< the chosen target ("host:port"), owned by the snapshot
  int attempts = 0;
  int upstream_status = 0;
  std::string_view error_type;
  std::chrono::steady_clock::time_point deadline =
      std::chrono::steady_clock::time_point::max();  ///< route timeout

  /// `limit`, cut to what is left of the route's timeout (at least 1 ms).
  std::chrono::milliseconds remaining(std::chrono::milliseconds limit) const {
    if (deadline == std::chrono::steady_clock::time_point::max()) return limit;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return std::max(std::chrono::milliseconds(1), std::min(limit, left));
  }
};

ProxyHandler::ProxyHandler(loop::Worker& worker, std::span<UpstreamRuntime> upstreams)
    : worker_(worker), upstreams_(upstreams) {}

namespace {

bool isIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE" || method == "TRACE";
}

/// Copies the upstream's response head into `out` for the client: hop-by-hop fields dropped,
/// the route's response header operations applied.
void prepareResponseHead(const http::ResponseHead& in, http::ResponseHead& out,
                         const config::HeaderOps& ops) {
  out.clear();
  out.status = in.status;
  out.reason = in.reason;
  out.has_content_length = in.has_content_length;
  out.content_length = in.content_length;
  out.chunked = in.chunked;
  std::string_view connection = in.headers.get("connection");
  for (const auto& h : in.headers) {
    if (http::isHopByHop(h.name) || iequals(h.name, "content-length")) continue;
    if (!connection.empty() && headerListContains(connection, h.name)) continue;
    out.headers.add(h.name, h.value);
  }
  out.headers.applyOps(ops.remove, ops.add);
}

}  // namespace

// Not a coroutine: forward's frame is the only one this handler adds to the request's.
Task<void> ProxyHandler::serve(http::RoutedRequest& routed) { return forward(routed); }

Task<void> ProxyHandler::forward(http::RoutedRequest& routed) {
  auto& conn = routed.conn;
  auto& req = conn.request();
  Exchange ex(conn.scratchText(), routed.report);
  ex.route = &routed.route;
  const auto& rc = *ex.route->config;
  ex.upstream = &upstreams_[ex.route->action.target];
  auto& up = *ex.upstream;
  conn.setMaxBodyBytes(rc.max_body_bytes);
  if (req.has_content_length && req.content_length > rc.max_body_bytes) {
    co_return co_await conn.sendError(413, "body_too_large",
                                      fmt::format("request body of {} bytes exceeds the limit of {}",
                                                  req.content_length, rc.max_body_bytes));
  }
  if (!buildUpstreamHead(ex.head, req, *ex.route, conn.clientIp(), up.def->targets.front().host_header)) {
    ex.error_type = "path_not_allowed";
    co_return co_await conn.sendError(400, "path_not_allowed",
                                      "the path cannot be rewritten: it would leave the route's new prefix");
  }
  auto* ustats = up.stats;
  const bool replayable = !req.hasBody();
  const auto started = Clock::now();
  if (rc.timeout.count() > 0) ex.deadline = started + rc.timeout;
  // A failure on the current target: the client's message names the upstream, the log line
  // also the address (clients never learn internal addresses).
  auto failure = [&](std::string_view what) {
    logLine(fmt::format("upstream '{}' target {}: {}", up.def->config->name, ex.target, what));
    return fmt::format("upstream '{}' {}", up.def->config->name, what);
  };

  std::unique_ptr<http::UpstreamConnection> uc;
  const uint32_t max_attempts = 1 + rc.retries;
  const bool retry_5xx_safe = isIdempotent(req.method) && replayable;
  constexpr int kMaxStaleRetries = 4;
  int stale_retries = 0;
  bool fresh_connection = false;  // after a dead pooled connection, open a new one
  bool body_consumed = false;     // client body bytes were read: the request cannot be re-sent
  // A small body usually arrives with the head: it goes out with the head, in one write.
  std::optional<http::BodyRead> early;
  if (req.hasBody()) early = conn.bufferedBody();
  if (early && early->error_status) co_return co_await answerBodyError(conn, ex, early->error_status);
  uint64_t tried = 0;
  uint32_t target_index = 0;
  auto& bal = up.balancer;
  ++bal.inflight;
  bool counted_retry = false;
  struct Leave {
    BalancerState& b;
    bool& retry;
    ~Leave() {
      --b.inflight;
      if (retry) --b.retries_inflight;
    }
  } leave{bal, counted_retry};
  // Envoy-style retry budget: retries in flight stay under a share of requests in flight, so
  // a struggling upstream is not hit with a retry storm.
  auto budgetAllows = [&] {
    uint32_t cap = std::max<uint32_t>(up.def->config->retry_budget.min,
                                      bal.inflight * up.def->config->retry_budget.percent / 100);
    return counted_retry || bal.retries_inflight < cap;
  };
  auto canRetry = [&] {
    return static_cast<uint32_t>(ex.attempts) < max_attempts && Clock::now() < ex.deadline && budgetAllows();
  };
  for (;;) {
    if (ex.attempts > 0) {
      ustats->retries.add();
      if (!counted_retry) {
        counted_retry = true;
        ++bal.retries_inflight;
      }
    }
    ++ex.attempts;
    target_index = pickTarget(*up.def, bal, req, conn.clientIp(), tried);
    if (target_index == kNoTarget) {
      co_return co_await failExchange(
          conn, ex, 503, "no_healthy_upstream",
          fmt::format("no healthy target in upstream '{}'", up.def->config->name));
    }
    if (target_index < 64) tried |= 1ull << target_index;
    const auto& target = up.def->targets[target_index];
    ex.target = target.key;
    auto& load = bal.loads[target_index];
    ++load.inflight;
    struct LoadGuard {
      TargetLoad& l;
      ~LoadGuard() { --l.inflight; }
    } load_guard{load};

    // 1. A connection: the most recently used idle one, or a new one.
    auto acquired = co_await acquire(worker_, up, target_index, ex.remaining(up.def->config->connect_timeout),
                                     fresh_connection);
    if (acquired.failure) {
      if (canRetry()) continue;  // nothing was sent: safe for any method
      logLine(fmt::format("upstream '{}': {}", up.def->config->name, acquired.failure.detail));
      co_return co_await failExchange(
          conn, ex, acquired.failure.status, acquired.failure.code,
          fmt::format("upstream '{}': {}", up.def->config->name, acquired.failure.message));
    }
    uc = std::move(acquired.conn);
    uc->timed_out = false;
    uc->parser.reset();
    if (req.method == "HEAD") uc->parser.expectNoBody();

    // 2. The request head, then the body.
    uc->deadline.arm(ex.remaining(rc.idle_timeout));
    const Sent sent = co_await sendRequest(conn, ex, *uc, early, body_consumed);
    if (sent == Sent::kClientFailed) {
      uc->stream.socket().close();
      co_return;
    }
    if (sent == Sent::kUpstreamFailed) {
      // A pooled connection the peer had closed, found dead before any body byte was taken
      // from the client: the request can be sent again whatever its method, on a new
      // connection, within a small bound.
      bool retry = uc->reused && (replayable || !body_consumed) && ++stale_retries <= kMaxStaleRetries;
      if (uc->reused) ustats->stale_connections.add();
      uc.reset();
      if (retry) {
        fresh_connection = true;
        continue;
      }
      co_return co_await failExchange(conn, ex, 502, "upstream_send_failed",
                                      failure("failed while the request was being sent"));
    }

    // 3. The response head.
    auto head = co_await readResponseHead(*uc, ex.remaining(rc.first_byte_timeout), req.method == "HEAD");
    if (head.outcome == HeadOutcome::kHead) {
      const int status = uc->parser.response().status;
      recordResponse(up, target_index, status,
                     std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started));
      // An overloaded or broken target answered 502/503/504 to a request that is safe to
      // repeat: try another target before the client sees the failure.
      if ((status == 502 || status == 503 || status == 504) && retry_5xx_safe && canRetry()) {
        uc.reset();
        continue;
      }
      break;
    }
    if (head.outcome == HeadOutcome::kTimeout) {
      ustats->timeouts.add();
      markFailure(*up.def, target_index);
      co_return co_await failExchange(conn, ex, 504, "upstream_timeout", failure("sent no response in time"));
    }
    if (head.outcome == HeadOutcome::kProtocolError) {
      ustats->protocol_errors.add();
      markFailure(*up.def, target_index);
      co_return co_await failExchange(
          conn, ex, 502, "upstream_protocol_error",
          failure(fmt::format("sent an invalid response: {}", uc->parser.errorReason())));
    }
    // Closed before any response byte: on a pooled connection that is usually the keep-alive
    // race, but the upstream may also have read and applied the request before closing, so
    // only an idempotent request is sent again (RFC 9110 9.2.2: a proxy must not retry
    // others); a POST gets the 502.
    bool retry = uc->reused && !head.received_any && replayable && isIdempotent(req.method) &&
                 ++stale_retries <= kMaxStaleRetries;
    if (uc->reused && !head.received_any) ustats->stale_connections.add();
    uc.reset();
    if (retry) {
      fresh_connection = true;
      continue;
    }
    ustats->protocol_errors.add();
    markFailure(*up.def, target_index);
    co_return co_await failExchange(conn, ex, 502, "upstream_closed",
                                    failure("closed the connection without a response"));
  }

  co_await relayResponse(conn, ex, std::move(uc), target_index);
}

Task<ProxyHandler::Sent> ProxyHandler::sendRequest(ServerConnection& conn, Exchange& ex,
                                                   http::UpstreamConnection& uc,
                                                   const std::optional<http::BodyRead>& early,
                                                   bool& body_consumed) {
  auto& req = conn.request();
  const auto& rc = *ex.route->config;
  // Buffers of one write: the head (first time), body pieces, and for chunked requests their
  // size lines; no allocation for the usual few pieces.
  boost::container::small_vector<asio::const_buffer, 16> iov;
  boost::container::small_vector<std::array<char, 20>, 8> size_lines;
  auto addBody = [&](const http::BodyRead& body) {
    size_lines.reserve(size_lines.size() + body.data.size());  // no reallocation below: iov points into it
    for (auto piece : body.data) {
      if (piece.empty()) continue;
      if (req.chunked) {
        auto& line = size_lines.emplace_back();
        auto end = fmt::format_to_n(line.data(), line.size(), "{:x}\r\n", piece.size()).out;
        iov.emplace_back(line.data(), static_cast<size_t>(end - line.data()));
      }
      iov.emplace_back(piece.data(), piece.size());
      if (req.chunked) iov.emplace_back("\r\n", 2);
    }
    if (body.done && req.chunked) iov.emplace_back("0\r\n\r\n", 5);
  };
  auto write = [&]() -> Task<bool> {
    if (iov.empty()) co_return true;
    const std::span<const asio::const_buffer> buffers(iov.data(), iov.size());  // cheap for the op to copy
    auto [ec, n] = co_await asio::async_write(uc.stream, buffers, kNoThrow);
    iov.clear();
    size_lines.clear();
    co_return !ec;
  };
  iov.emplace_back(asio::buffer(ex.head));
  if (early) addBody(*early);
  if (!co_await write()) co_return Sent::kUpstreamFailed;
  if (!req.hasBody() || (early && early->done)) co_return Sent::kSent;
  body_consumed = body_consumed || early.has_value();
  for (;;) {
    http::BodyRead body = co_await conn.readBody();
    body_consumed = true;
    if (body.error_status) {
      co_await answerBodyError(conn, ex, body.error_status);
      co_return Sent::kClientFailed;
    }
    addBody(body);
    if (!iov.empty()) uc.deadline.arm(ex.remaining(rc.idle_timeout));
    if (!co_await write()) co_return Sent::kUpstreamFailed;
    if (body.done) co_return Sent::kSent;
  }
}

Task<void> ProxyHandler::failExchange(ServerConnection& conn, Exchange& ex, int status, std::string_view type,
                                      std::string message) {
  ex.error_type = type;
  if (conn.responseStarted()) {
    conn.abort();
    co_return;
  }
  co_await conn.sendError(status, type, message);
}

Task<void> ProxyHandler::answerBodyError(ServerConnection& conn, Exchange& ex, int status) {
  ex.error_type = "client_body_error";
  if (conn.responseStarted() || !conn.isOpen()) co_return;
  co_await conn.sendError(status,
                          status == 413   ? "body_too_large"
                          : status == 408 ? "request_timeout"
                                          : "bad_request",
                          status == 413   ? "request body exceeds the route's limit"
                          : status == 408 ? "timed out reading the request body"
                                          : "malformed request body");
}

Task<void> ProxyHandler::relayResponse(ServerConnection& conn, Exchange& ex,
                                       std::unique_ptr<http::UpstreamConnection> uc, uint32_t target_index) {
  const auto& rc = *ex.route->config;
  auto& up = *ex.upstream;
  auto& req = conn.request();
  auto* ustats = up.stats;
  // The response, streamed to the client as it arrives.
  auto& resp = uc->parser.response();
  ex.upstream_status = resp.status;  // counted in the upstream's metrics by recordResponse
  if (resp.status == 101) {
    if (!req.upgrade) {
      uc.reset();
      ustats->protocol_errors.add();
      co_return co_await failExchange(
          conn, ex, 502, "upstream_protocol_error",
          fmt::format("upstream '{}' switched protocols without being asked", up.def->config->name));
    }
    co_return co_await tunnel(conn, ex, std::move(uc));
  }
  http::ResponseHead& out = conn.scratchResponseHead();
  prepareResponseHead(resp, out, rc.response_headers);
  const bool no_body = req.method == "HEAD" || resp.status == 204 || resp.status == 304 ||
                       (resp.has_content_length && resp.content_length == 0);
  const bool until_close = !no_body && !resp.has_content_length && !resp.chunked;
  bool complete = no_body;
  http::ResponseHead* head_to_send = &out;
  for (;;) {
    std::span<const std::string_view> pieces;
    size_t consumed = 0;
    if (!complete && !uc->in.empty()) {
      auto step = uc->parser.feed(uc->in.readable());
      if (step.event == ParseEvent::kError) {
        ustats->protocol_errors.add();
        // Cut short: an abort once bytes went out; a 502 when the response is still held.
        co_return co_await failExchange(conn, ex, 502, "upstream_protocol_error",
                                        "the upstream sent an invalid response body");
      }
      pieces = uc->parser.body();
      consumed = step.consumed;
      complete = step.event == ParseEvent::kComplete;
    }
    if (head_to_send || !pieces.empty() || complete) {
      bool ok = co_await conn.writeResponse(head_to_send, pieces, complete);
      head_to_send = nullptr;
      if (!ok) {
        ex.error_type = "client_closed";
        co_return;  // client gone: the upstream connection is dropped with `uc`
      }
    }
    uc->in.consume(consumed);
    if (complete) break;
    if (!uc->in.empty()) continue;
    uc->timed_out = false;
    auto got = co_await readMore(*uc, ex.remaining(rc.idle_timeout));
    if (got != ReadStatus::kData) {
      if (until_close && got == ReadStatus::kEof) {
        complete = true;
        co_await conn.writeResponse(nullptr, {}, true);
        uc.reset();
        co_return;
      }
      if (uc->timed_out)
        ustats->timeouts.add();
      else
        ustats->protocol_errors.add();
      // The response is cut short: the client must see it as incomplete (an abort), or, while
      // it is still held (nothing sent), get a clean error.
      co_return co_await failExchange(
          conn, ex, uc->timed_out ? 504 : 502, uc->timed_out ? "upstream_timeout" : "upstream_closed",
          uc->timed_out ? "the upstream stopped sending the response" : "the upstream closed mid-response");
    }
  }
  if (resp.keep_alive && !until_close && uc->in.empty()) release(up, target_index, std::move(uc));
}

namespace {

/// Copies bytes one way until EOF or error, then half-closes the other side. Each chunk moves
/// the tunnel's idle deadline.
Task<void> pump(net::Stream& from, net::Stream& to, loop::Deadline& idle,
                std::chrono::milliseconds idle_timeout, uint64_t& bytes) {
  std::array<char, 8192> buf;
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf), kNoThrow);
    if (ec || n == 0) break;
    idle.arm(idle_timeout);
    auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf.data(), n), kNoThrow);
    if (wec) break;
    bytes += n;
  }
  boost::system::error_code ignored;
  to.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

}  // namespace

Task<void> ProxyHandler::tunnel(ServerConnection& conn, Exchange& ex,
                                std::unique_ptr<http::UpstreamConnection> uc) {
  using namespace asio::experimental::awaitable_operators;
  const auto& rc = *ex.route->config;
  auto& resp = uc->parser.response();
  http::ResponseHead out;
  prepareResponseHead(resp, out, rc.response_headers);
  out.has_content_length = false;
  out.headers.set("Connection", "Upgrade");
  if (auto proto = resp.headers.get("upgrade"); !proto.empty()) out.headers.set("Upgrade", proto);
  ex.upstream_status = 101;
  // Bytes that arrived with the 101 head belong to the new protocol.
  if (!co_await conn.writeResponse(&out, {}, false)) co_return;
  if (!uc->in.empty()) {
    auto [ec, n] = co_await asio::async_write(conn.stream(), asio::buffer(uc->in.readable()), kNoThrow);
    if (ec) co_return;
    uc->in.consume(uc->in.size());
  }
  std::string early_up = conn.takeBufferedForTunnel();
  if (!early_up.empty()) {
    auto [ec, n] = co_await asio::async_write(uc->stream, asio::buffer(early_up), kNoThrow);
    if (ec) co_return;
  }
  uint64_t up_bytes = 0, down_bytes = 0;
  uc->deadline.arm(rc.idle_timeout);  // both directions quiet this long ends the tunnel
  // When either side closes, the tunnel ends (the other direction is cancelled): WebSocket
  // and similar protocols close both ways together.
  co_await (pump(conn.stream(), uc->stream, uc->deadline, rc.idle_timeout, up_bytes) ||
            pump(uc->stream, conn.stream(), uc->deadline, rc.idle_timeout, down_bytes));
  uc->deadline.disarm();
  conn.abort();
}

}  // namespace ganglion::proxy
