#include "upstream/exchange.h"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace ganglion::upstream {

namespace asio = boost::asio;

http::Task<Exchange> exchange(loop::Worker& worker, UpstreamRuntime& up, std::string_view host,
                              const BufferedRequest& req, Millis first_byte) {
  Exchange call;
  if (up.def->targets.empty()) {
    call.failure =
        UpstreamFailure(502, "upstream_unresolved", "the target's address is not known", "no address", true);
    co_return call;
  }
  std::string head = fmt::format("{} {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
                                 req.method, req.path, host, req.content_type, req.body.size());
  for (const auto& [name, value] : req.headers)
    fmt::format_to(std::back_inserter(head), "{}: {}\r\n", name, value);
  head += "User-Agent: ganglion/" GANGLION_VERSION "\r\n\r\n";
  const auto started = std::chrono::steady_clock::now();
  for (int stale = 0;; ++stale) {
    // After a dead pooled connection the retry opens a new one: the pool's others are as old.
    auto acquired = co_await acquire(worker, up, 0, up.def->config->connect_timeout, stale > 0);
    if (acquired.failure) {
      call.failure = std::move(acquired.failure);
      co_return call;
    }
    auto uc = std::move(acquired.conn);
    uc->parser.reset();
    uc->timed_out = false;
    uc->deadline.arm(first_byte);
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head), asio::buffer(req.body)};
    auto [ec, n] = co_await asio::async_write(uc->stream, bufs, asio::as_tuple(asio::use_awaitable));
    uc->deadline.disarm();
    HeadRead got;
    if (!ec) got = co_await readResponseHead(*uc, first_byte, req.method == "HEAD");
    if (!ec && got.outcome == HeadOutcome::kHead) {
      recordResponse(
          up, 0, uc->parser.response().status,
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started));
      call.conn = std::move(uc);
      co_return call;
    }
    // The keep-alive race: a pooled connection closed by the provider before it saw anything.
    // The whole request is in memory, so it can be sent again on a new connection.
    if (uc->reused && (ec || (got.outcome == HeadOutcome::kClosed && !got.received_any))) {
      up.stats->stale_connections.add();
      if (stale < 3) continue;
    }
    const auto& key = up.def->targets[0].key;
    markFailure(*up.def, 0);
    auto failed = [&](int status, std::string_view type, std::string what) {
      call.failure = UpstreamFailure(status, type, what, fmt::format("{}: {}", key, what), false);
    };
    if (ec) {
      failed(502, "upstream_send_failed", "sending the request failed");
    } else if (got.outcome == HeadOutcome::kTimeout) {
      up.stats->timeouts.add();
      failed(504, "upstream_timeout", "sent no response in time");
    } else if (got.outcome == HeadOutcome::kProtocolError) {
      up.stats->protocol_errors.add();
      failed(502, "upstream_protocol_error",
             fmt::format("sent an invalid response: {}", uc->parser.errorReason()));
    } else {
      up.stats->protocol_errors.add();
      failed(502, "upstream_closed", "closed the connection without a response");
    }
    co_return call;
  }
}

http::Task<bool> readWholeBody(http::UpstreamConnection& uc, std::string& out, size_t limit, Millis idle) {
  for (;;) {
    auto status = co_await readBodySome(uc, out, idle);
    if (out.size() > limit) co_return false;
    if (status == BodyStatus::kComplete) co_return true;
    if (status != BodyStatus::kData) co_return false;
  }
}

http::Task<Answered> exchangeIgnoringBody(loop::Worker& worker, UpstreamRuntime& up, std::string_view host,
                                          const BufferedRequest& req, Millis timeout, size_t limit) {
  auto ex = co_await exchange(worker, up, host, req, timeout);
  if (!ex.conn) co_return Answered{0, ex.failure.message, {}};
  const int status = ex.status();
  std::string body;
  const bool whole = co_await readWholeBody(*ex.conn, body, limit, timeout);
  if (whole && ex.conn->parser.response().keep_alive) release(up, 0, std::move(ex.conn));
  Answered answered{status, {}, {}};
  if (status < 200 || status >= 300) answered.refusal = body.substr(0, Answered::kRefusalBytes);
  co_return answered;
}

}  // namespace ganglion::upstream
