#include "http/server_connection.h"

#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstring>

#include "http/path.h"
#include "telemetry/metrics.h"

namespace ganglion::http {

namespace asio = boost::asio;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr auto kDrainGrace = std::chrono::seconds(1);
constexpr size_t kKeptWholeBodyBytes =
    64 * 1024;  ///< a whole body read for filters keeps at most this capacity

ServerConnection::ServerConnection(loop::Worker& worker, net::TcpSocket socket, const ListenerLimits& limits,
                                   RequestHandler& handler, telemetry::WorkerStats& stats,
                                   const bool& draining)
    : worker_(worker),
      stream_(std::move(socket)),
      limits_(limits),
      handler_(handler),
      stats_(stats),
      draining_(draining),
      deadline_([this] {
        timed_out_ = true;
        boost::system::error_code ec;
        stream_.socket().cancel(ec);
      }),
      in_(worker.buffers()),
      parser_(Http1Parser::Kind::kRequest, limits.parse) {
  worker_.deadlines().push_back(deadline_);
  boost::system::error_code ec;
  auto endpoint = stream_.socket().remote_endpoint(ec);
  if (!ec) client_ip_ = endpoint.address().to_string();
  stream_.socket().set_option(asio::ip::tcp::no_delay(true), ec);
  if (limits_.tls) stream_.startTls(limits_.tls->context());
  stats_.connections_total.add();
  stats_.connections_active.add();
}

ServerConnection::~ServerConnection() {
  releaseBodyBytes();
  stats_.connections_active.sub();
}

bool ServerConnection::peerClosed() {
  char byte;
  const ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void ServerConnection::abort() {
  keep_alive_ = false;
  boost::system::error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  stream_.socket().close(ec);
}

Task<void> ServerConnection::closedByClient() {
  namespace asio = boost::asio;
  auto& socket = stream_.socket();
  for (;;) {
    auto [ec] =
        co_await socket.async_wait(asio::ip::tcp::socket::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;  // the socket failed: as good as gone
    char byte;
    ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) co_return;  // orderly close
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) co_return;
    if (n > 0) break;  // data: the client is still there (and may pipeline); stop looking
  }
  if (stream_.isTls()) {
    // Over TLS a leaving client sends close_notify (encrypted bytes, indistinguishable from a
    // pipelined request) and then its FIN: watch for the FIN, which the kernel reports as
    // POLLRDHUP even with the bytes still unread.
    asio::steady_timer tick(socket.get_executor());
    for (;;) {
      pollfd p{socket.native_handle(), POLLRDHUP, 0};
      if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) co_return;
      tick.expires_after(std::chrono::milliseconds(200));
      auto [ec] = co_await tick.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;  // cancelled: the race is over
    }
  }
  // Wait to be cancelled: a timer far in the future.
  asio::steady_timer forever(socket.get_executor(), std::chrono::hours(24 * 365));
  co_await forever.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::string ServerConnection::takeBufferedForTunnel() {
  keep_alive_ = false;
  std::string out(in_.readable());
  in_.consume(in_.size());
  return out;
}

void ServerConnection::countClientError(int status) {
  size_t i = status == 400   ? 0
             : status == 408 ? 1
             : status == 413 ? 2
             : status == 414 ? 3
             : status == 431 ? 4
                             : 5;
  stats_.client_errors_by_status[i].add();
}

Task<bool> ServerConnection::readMore(loop::Clock::time_point deadline) {
  deadline_.armAt(deadline);
  if (in_.empty()) {
    // Waiting for a request: read into the connection's small inline buffer, so an idle
    // client holds no pool block (10k idle clients cost little). A plain read is also
    // cheaper than a readiness wait, which makes Asio re-arm epoll every time.
    in_.release();
    auto [ec, n] = co_await stream_.async_read_some(asio::buffer(idle_buf_), kNoThrow);
    if (ec || n == 0) co_return false;
    std::memcpy(in_.writePtr(), idle_buf_.data(), n);
    in_.commit(n);
    co_return true;
  }
  if (in_.full()) co_return false;  // cannot happen for heads: the parser copies as it goes
  auto [ec, n] = co_await stream_.async_read_some(asio::buffer(in_.writePtr(), in_.writable()), kNoThrow);
  if (ec || n == 0) co_return false;
  in_.commit(n);
  co_return true;
}

Task<ServerConnection::HeadResult> ServerConnection::readHead() {
  bool first_byte = true;
  for (;;) {
    if (!in_.empty()) {
      first_byte = false;
      auto step = parser_.feed(in_.readable());
      in_.consume(step.consumed);
      if (step.event == ParseEvent::kHead) co_return HeadResult::kRequest;
      if (step.event == ParseEvent::kError) {
        co_await rejectRequest(parser_.errorStatus(), parser_.errorReason());
        co_return HeadResult::kReplied;
      }
      continue;  // kNeedMore: the parser copied everything it consumed
    }
    bool waiting_for_new_request = !parser_.midMessage();
    // A connection that has not sent its first request yet was accepted moments ago: during
    // a drain it gets a short grace to send it rather than a reset (binary upgrade, SIGTERM).
    const bool fresh = requests_served_ == 0;
    deadline_.setIdle(!waiting_for_new_request ? loop::Deadline::Idle::kBusy
                      : fresh                  ? loop::Deadline::Idle::kFresh
                                               : loop::Deadline::Idle::kIdle);
    if (waiting_for_new_request && draining_ && !fresh) co_return HeadResult::kClosed;
    timed_out_ = false;
    // The whole head must arrive within header_timeout of its first byte: a client that
    // trickles a byte at a time (slowloris) is cut off all the same.
    auto deadline = waiting_for_new_request && first_byte ? loop::Clock::now() + limits_.idle_timeout
                                                          : request_start_ + limits_.header_timeout;
    if (waiting_for_new_request && draining_) deadline = std::min(deadline, loop::Clock::now() + kDrainGrace);
    bool ok = co_await readMore(deadline);
    deadline_.setIdle(loop::Deadline::Idle::kBusy);
    if (!ok) {
      if (timed_out_ && parser_.midMessage()) {
        stats_.request_timeouts.add();
        co_await rejectRequest(408, "timed out reading the request head");
        co_return HeadResult::kReplied;
      }
      co_return HeadResult::kClosed;
    }
    if (first_byte) {
      request_start_ = std::chrono::steady_clock::now();
      first_byte = false;
    }
  }
}

namespace {

bool isDigit(char c) { return c >= '0' && c <= '9'; }

/// RFC 9112 3.2 / RFC 3986 3.2.2: `host [":" port]` and nothing else (no path, no userinfo,
/// no list of hosts, not empty).
bool validHostField(std::string_view v) {
  if (v.empty()) return false;
  std::string_view port;
  if (v.front() == '[') {  // IP-literal
    auto close = v.find(']');
    if (close == std::string_view::npos || close < 3) return false;
    for (char c : v.substr(1, close - 1))
      if (!(isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
        return false;
    std::string_view rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
  } else {
    auto colon = v.find(':');
    std::string_view name = v.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = v.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (name.empty()) return false;
    for (char c : name)  // reg-name / IPv4 (sub-delims such as ',' are not for hosts here)
      if (!(isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '.' ||
            c == '_' || c == '~' || c == '%'))
        return false;
  }
  if (port.size() > 5) return false;
  for (char c : port)
    if (!isDigit(c)) return false;
  return port.empty() || parseUint(port).value_or(65536) <= 65535;
}

}  // namespace

bool ServerConnection::validateHead() {
  auto& req = parser_.request();
  if (req.method == "CONNECT") {
    local_reason_ = "CONNECT is not supported";
    return false;
  }
  // HTTP/1.1 needs exactly one Host (RFC 9112 3.2); several Hosts smell of smuggling.
  size_t hosts = 0;
  for (const auto& h : req.headers)
    if (iequals(h.name, "host")) ++hosts;
  if (hosts > 1) {
    local_reason_ = "more than one Host header";
    return false;
  }
  if (req.version_major == 1 && req.version_minor == 1 && hosts == 0) {
    local_reason_ = "HTTP/1.1 request without a Host header";
    return false;
  }
  if (req.target.find('#') != std::string::npos) {  // RFC 9112 3.2: a fragment is never sent
    local_reason_ = "request target must not contain a fragment ('#')";
    return false;
  }
  // The request target's four forms (RFC 9112 3.2): origin-form "/p?q"; asterisk-form "*"
  // (OPTIONS only); absolute-form "http://h/p?q", whose authority replaces Host and which
  // is routed and forwarded as origin-form; authority-form is CONNECT's, refused above.
  if (req.target == "*") {
    if (req.method != "OPTIONS") {
      local_reason_ = "only OPTIONS may have the request target '*'";
      return false;
    }
  } else if (req.target.empty() || req.target[0] != '/') {
    std::string_view t = req.target;
    size_t scheme_end = t.find("://");
    std::string_view scheme = t.substr(0, scheme_end);
    if (scheme_end == std::string_view::npos || !(iequals(scheme, "http") || iequals(scheme, "https"))) {
      local_reason_ = "request target must be an absolute path or an http(s) URL";
      return false;
    }
    std::string_view rest = t.substr(scheme_end + 3);
    size_t path_at = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, path_at);
    if (authority.find('@') != std::string_view::npos || !validHostField(authority)) {
      local_reason_ = "the request target's authority is not a valid host";
      return false;
    }
    std::string origin = path_at == std::string_view::npos ? std::string("/")
                         : rest[path_at] == '?'            ? "/" + std::string(rest.substr(path_at))
                                                           : std::string(rest.substr(path_at));
    req.headers.set("Host", authority);
    req.target = std::move(origin);
    hosts = 1;
  }
  if (limits_.normalize_path && req.target != "*") normalisePath(req.target);
  if (hosts == 1 && !validHostField(req.host())) {
    local_reason_ = "invalid Host header: it must be a host name or address with an optional port";
    return false;
  }
  // Field names with '_' are read as their '-' twins by some frameworks (CGI, WSGI, Rails), so
  // `Content_Length` could override what the gateway checked: dropped unless allowed (as nginx).
  if (!limits_.underscores_in_headers) {
    for (size_t i = 0; i < req.headers.size();) {
      const std::string& name = (req.headers.begin() + i)->name;
      if (name.find('_') == std::string::npos) {
        ++i;
        continue;
      }
      stats_.headers_dropped.add();
      req.headers.remove(std::string(name));
    }
  }
  return true;
}

Task<bool> ServerConnection::handshake() {
  deadline_.arm(limits_.header_timeout);
  auto [ec] = co_await stream_.tls().async_handshake(asio::ssl::stream_base::server, kNoThrow);
  deadline_.disarm();
  if (ec) {
    stats_.tls_handshake_failures.add();
    co_return false;
  }
  co_return true;
}

Task<void> ServerConnection::run() {
  if (stream_.isTls() && !co_await handshake()) {
    abort();
    co_return;
  }
  while (true) {
    parser_.reset();
    request_complete_ = false;
    continue_sent_ = false;
    response_started_ = false;
    response_chunked_ = response_no_body_ = false;
    response_status_ = 0;
    response_bytes_ = 0;
    body_bytes_ = 0;
    pending_consume_ = 0;
    max_body_bytes_ = UINT64_MAX;
    whole_pending_ = false;
    releaseBodyBytes();
    // A large body read whole is not kept: its memory goes back before the next request.
    if (whole_body_.capacity() > kKeptWholeBodyBytes) std::string().swap(whole_body_);
    whole_body_.clear();
    if (!in_.empty()) request_start_ = std::chrono::steady_clock::now();

    HeadResult head = co_await readHead();
    if (head != HeadResult::kRequest) break;
    deadline_.disarm();
    body_start_ = loop::Clock::now();
    body_mark_bytes_ = 0;
    stats_.requests_total.add();
    auto& req = parser_.request();
    keep_alive_ = req.keep_alive;
    if (!validateHead()) {
      co_await rejectRequest(400, local_reason_);
      break;
    }
    if (!req.hasBody()) request_complete_ = true;
    hook_ = nullptr;
    hold_ = Hold::kNone;
    handling_ = true;
    if (req.target == "*" && limits_.answer_options_star)
      co_await answerServerOptions();  // OPTIONS *: about the server itself
    else
      co_await handler_.handle(*this);
    handling_ = false;
    ++requests_served_;

    if (!stream_.socket().is_open()) break;
    if (!request_complete_) keep_alive_ = false;  // unread body: the next request is unfindable
    if (!keep_alive_ || draining_) break;
    in_.consume(pending_consume_);
    pending_consume_ = 0;
    in_.releaseIfEmpty();
  }
  deadline_.disarm();
  boost::system::error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  stream_.socket().close(ec);
}

std::optional<BodyRead> ServerConnection::bufferedBody() {
  in_.consume(pending_consume_);
  pending_consume_ = 0;
  if (whole_pending_) {
    whole_pending_ = false;
    whole_piece_ = whole_body_;
    return BodyRead{{&whole_piece_, 1}, true, 0};
  }
  if (request_complete_) return BodyRead{{}, true, 0};
  if (in_.empty()) return std::nullopt;
  auto step = parser_.feed(in_.readable());
  if (step.event == ParseEvent::kError) {
    countClientError(parser_.errorStatus());
    keep_alive_ = false;
    return BodyRead{{}, false, parser_.errorStatus()};
  }
  for (auto piece : parser_.body()) body_bytes_ += piece.size();
  if (body_bytes_ > max_body_bytes_) {
    countClientError(413);
    keep_alive_ = false;
    return BodyRead{{}, false, 413};
  }
  pending_consume_ = step.consumed;
  if (step.event == ParseEvent::kComplete) request_complete_ = true;
  return BodyRead{parser_.body(), request_complete_, 0};
}

Task<BodyRead> ServerConnection::readBody() {
  if (whole_pending_) co_return *bufferedBody();
  in_.consume(pending_consume_);
  pending_consume_ = 0;
  if (request_complete_) co_return BodyRead{{}, true, 0};
  auto& req = parser_.request();
  if (!continue_sent_ && iequals(req.headers.get("expect"), "100-continue") && in_.empty()) {
    continue_sent_ = true;
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(kContinue), kNoThrow);
    if (ec) co_return BodyRead{{}, false, 400};
  }
  for (;;) {
    if (auto buffered = bufferedBody()) {
      if (buffered->done || buffered->error_status || !buffered->data.empty()) co_return *buffered;
      continue;  // framing bytes only (a chunk header): parsed, nothing to hand out yet
    }
    timed_out_ = false;
    // Each read within body_timeout, and on average at least body_min_rate bytes a second
    // after the first body_timeout: a byte every few seconds cannot hold the connection. The
    // average is over a window that starts again once it is body_timeout old and met the
    // rate, so time earned by a burst expires: a client that sends most of a body at once and
    // then a byte now and then is cut off within about two body_timeouts.
    const auto now = loop::Clock::now();
    auto deadline = now + limits_.body_timeout;
    if (limits_.body_min_rate) {
      const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - body_start_);
      const uint64_t in_window = body_bytes_ - body_mark_bytes_;
      if (age >= limits_.body_timeout &&
          in_window * 1000 >= limits_.body_min_rate * static_cast<uint64_t>(age.count())) {
        body_start_ = now;
        body_mark_bytes_ = body_bytes_;
      }
      auto earned =
          std::chrono::milliseconds((body_bytes_ - body_mark_bytes_) * 1000 / limits_.body_min_rate);
      deadline = std::min(deadline, body_start_ + limits_.body_timeout + earned);
    }
    if (!co_await readMore(deadline)) {
      keep_alive_ = false;
      if (timed_out_) {
        stats_.request_timeouts.add();
        countClientError(408);
        co_return BodyRead{{}, false, 408};
      }
      client_gone_ = true;  // closed or reset mid-body: nobody to answer
      co_return BodyRead{{}, false, 400};
    }
    deadline_.disarm();
  }
}

bool ServerConnection::holdBodyBytes(uint64_t total) {
  if (!limits_.body_budget || total <= held_body_bytes_) return true;
  if (!limits_.body_budget->take(total - held_body_bytes_)) return false;
  held_body_bytes_ = total;
  return true;
}

void ServerConnection::releaseBodyBytes() {
  if (held_body_bytes_) limits_.body_budget->give(held_body_bytes_);
  held_body_bytes_ = 0;
}

Task<int> ServerConnection::readWholeBody(uint64_t max) {
  if (whole_pending_) co_return 0;  // read whole already (for the route's filters)
  whole_body_.clear();
  const auto& req = parser_.request();
  if (req.has_content_length && req.content_length > max) {
    countClientError(413);
    keep_alive_ = false;
    co_return 413;
  }
  if (req.has_content_length) whole_body_.reserve(req.content_length);
  const uint64_t handler_max = max_body_bytes_;
  max_body_bytes_ = std::min(max_body_bytes_, max);
  int status = 0;
  for (;;) {
    BodyRead got = co_await readBody();
    if (got.error_status) {
      status = got.error_status;
      break;
    }
    uint64_t got_bytes = 0;
    for (auto piece : got.data) got_bytes += piece.size();
    if (!holdBodyBytes(whole_body_.size() + got_bytes)) {
      keep_alive_ = false;
      status = 503;
      break;
    }
    for (auto piece : got.data) whole_body_.append(piece);
    if (got.done) {
      whole_pending_ = true;
      break;
    }
  }
  max_body_bytes_ = handler_max;
  co_return status;
}

Task<bool> ServerConnection::holdResponse(ResponseHead* head, std::span<const std::string_view> body,
                                          bool last) {
  if (hold_ == Hold::kDiscarding) co_return false;  // the refusal is sent; the connection closes
  if (head) {  // the first head, or the handler starting over (an error after a failed upstream)
    held_head_ = *head;
    held_body_.clear();
  } else if (!last && peerClosed()) {
    client_gone_ = true;  // nothing to write tells: a held answer must not run on for nobody
    co_return false;
  }
  auto held = ResponseHook::Held::kWhole;
  for (auto piece : body) {
    if (piece.size() > hold_limit_ - held_body_.size()) {
      held = ResponseHook::Held::kTooLarge;
      break;
    }
    // Held bytes count against the listener's budget with the request body's.
    if (!holdBodyBytes(whole_body_.size() + held_body_.size() + piece.size())) {
      held = ResponseHook::Held::kOverloaded;
      break;
    }
    held_body_.append(piece);
  }
  const bool cut = held != ResponseHook::Held::kWhole;
  if (!last && !cut) co_return true;
  // A response refused part-way is not read on: the connection closes after the refusal and
  // the handler stops as if the client had left (the rest is never transferred).
  if (cut) keep_alive_ = false;
  hold_ = cut && !last ? Hold::kDiscarding : Hold::kNone;
  ResponseHead out = std::move(held_head_);
  std::string whole = std::move(held_body_);
  held_body_ = {};
  if (hook_) hook_->onResponseBody(out, whole, held);
  out.chunked = false;
  out.has_content_length = true;
  out.content_length = whole.size();
  std::string_view piece = whole;
  co_return co_await sendResponse(&out, std::span(&piece, 1), true);
}

// Not a coroutine: the write that is not held costs no frame of its own.
Task<bool> ServerConnection::writeResponse(ResponseHead* head, std::span<const std::string_view> body,
                                           bool last) {
  if (hold_ != Hold::kNone) return holdResponse(head, body, last);
  if (head && hook_ && !response_started_) {  // the response's first head: held or not
    const auto& req = parser_.request();
    const bool has_body =
        req.method != "HEAD" && head->status >= 200 && head->status != 204 && head->status != 304;
    if (has_body) {
      if (uint64_t limit = hook_->responseBodyLimit(*head)) {
        hold_ = Hold::kHolding;
        hold_limit_ = limit;
        held_body_.clear();
        return holdResponse(head, body, last);
      }
    }
  }
  return sendResponse(head, body, last);
}

Task<bool> ServerConnection::sendResponse(ResponseHead* head, std::span<const std::string_view> body,
                                          bool last) {
  iov_.clear();
  out_.clear();
  if (head) {
    if (hook_) hook_->onResponseHead(*head);
    response_started_ = true;
    response_status_ = head->status;
    const auto& req = parser_.request();
    response_no_body_ =
        req.method == "HEAD" || head->status == 204 || head->status == 304 || head->status < 200;
    bool http11 = !(req.version_major == 1 && req.version_minor == 0);
    if (draining_) keep_alive_ = false;
    // A whole answer to a request whose body was not read (a refusal before it): the
    // connection closes after it, and the head says so.
    if (last && !request_complete_) keep_alive_ = false;
    if (!response_no_body_ && !head->has_content_length) {
      if (http11) {
        response_chunked_ = true;
      } else {
        keep_alive_ = false;  // HTTP/1.0 client: the body ends when the connection closes
      }
    }
    out_ += http11 ? "HTTP/1.1 " : "HTTP/1.0 ";
    char status[8];
    auto r = std::to_chars(status, status + sizeof status, head->status);
    out_.append(status, r.ptr);
    out_ += ' ';
    out_ += head->reason.empty() ? reasonPhrase(head->status) : std::string_view(head->reason);
    out_ += "\r\n";
    for (const auto& h : head->headers) {
      out_ += h.name;
      out_ += ": ";
      out_ += h.value;
      out_ += "\r\n";
    }
    if (head->has_content_length && head->status != 204 && head->status >= 200) {
      char length[24];
      auto r2 = std::to_chars(length, length + sizeof length, head->content_length);
      out_ += "Content-Length: ";
      out_.append(length, r2.ptr);
      out_ += "\r\n";
    } else if (response_chunked_) {
      out_ += "Transfer-Encoding: chunked\r\n";
    }
    if (head->status == 101) {
      keep_alive_ = false;  // the connection becomes a tunnel: the head carries Connection: Upgrade
    } else if (!keep_alive_) {
      out_ += "Connection: close\r\n";
    } else if (!http11) {
      out_ += "Connection: keep-alive\r\n";
    }
    out_ += "\r\n";
    iov_.emplace_back(out_.data(), out_.size());
  }
  if (!response_no_body_) {
    if (response_chunked_) {
      chunk_lines_.resize(std::max(chunk_lines_.size(), body.size()));
      size_t i = 0;
      for (auto piece : body) {
        if (piece.empty()) continue;
        auto& line = chunk_lines_[i++];
        auto r = std::to_chars(line.data(), line.data() + 16, piece.size(), 16);
        *r.ptr++ = '\r';
        *r.ptr++ = '\n';
        iov_.emplace_back(line.data(), static_cast<size_t>(r.ptr - line.data()));
        iov_.emplace_back(piece.data(), piece.size());
        iov_.emplace_back("\r\n", 2);
      }
      if (last) iov_.emplace_back("0\r\n\r\n", 5);
    } else {
      for (auto piece : body)
        if (!piece.empty()) iov_.emplace_back(piece.data(), piece.size());
    }
  }
  if (iov_.empty()) co_return true;
  deadline_.arm(limits_.send_timeout);  // fires: the socket closes and the write fails
  auto [ec, n] = co_await asio::async_write(stream_, iov_, kNoThrow);
  deadline_.disarm();
  if (ec) {
    abort();
    co_return false;
  }
  response_bytes_ += n;
  co_return true;
}

Task<bool> ServerConnection::sendFileBody(int fd, uint64_t offset, uint64_t length) {
  auto& socket = stream_.socket();
  boost::system::error_code ec;
  socket.native_non_blocking(true, ec);
  auto position = static_cast<off_t>(offset);
  while (length > 0 && !ec) {
    const ssize_t n = ::sendfile(socket.native_handle(), fd, &position,
                                 static_cast<size_t>(std::min<uint64_t>(length, 1u << 30)));
    if (n > 0) {
      length -= static_cast<uint64_t>(n);
      response_bytes_ += static_cast<uint64_t>(n);
      continue;
    }
    if (n == 0) break;  // the file is shorter than the head said
    if (errno == EINTR) continue;
    if (errno != EAGAIN) break;
    deadline_.arm(limits_.send_timeout);  // fires: the socket closes and the wait fails
    std::tie(ec) = co_await socket.async_wait(asio::ip::tcp::socket::wait_write, kNoThrow);
    deadline_.disarm();
  }
  if (length > 0) {
    abort();
    co_return false;
  }
  co_return true;
}

Task<void> ServerConnection::sendError(int status, std::string_view type, std::string_view message,
                                       const HeaderList* extra_headers) {
  stats_.local_replies.add();
  std::string body = jsonErrorBody(status, type, message);
  ResponseHead head;
  head.status = status;
  head.headers.add("Content-Type", "application/json");
  if (extra_headers)
    for (const auto& h : *extra_headers) head.headers.set(h.name, h.value);
  head.has_content_length = true;
  head.content_length = body.size();
  if (!request_complete_) keep_alive_ = false;
  std::string_view piece = body;
  co_await writeResponse(&head, std::span(&piece, 1), true);
}

Task<void> ServerConnection::answerServerOptions() {
  ResponseHead head;
  head.status = 200;
  head.headers.add("Allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
  head.has_content_length = true;
  head.content_length = 0;
  co_await writeResponse(&head, {}, true);
}

Task<void> ServerConnection::rejectRequest(int status, std::string_view reason) {
  stats_.bad_requests.add();
  countClientError(status);
  keep_alive_ = false;
  request_complete_ = false;
  std::string message(reason);
  std::string_view type = status == 408   ? "request_timeout"
                          : status == 413 ? "body_too_large"
                          : status == 414 ? "uri_too_long"
                          : status == 431 ? "headers_too_large"
                          : status == 505 ? "version_not_supported"
                          : status == 501 ? "not_implemented"
                                          : "bad_request";
  co_await sendError(status, type, message);
}

}  // namespace ganglion::http
