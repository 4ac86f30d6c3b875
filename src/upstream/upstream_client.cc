#include "upstream/upstream_client.h"

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "net/tls.h"

namespace ganglion::upstream {

namespace asio = boost::asio;
using http::ParseEvent;
using http::Task;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

void markFailure(const ResolvedUpstream& up, uint32_t index) {
  auto& health = *up.targets[index].health;
  if (!health.recordFailure(up.config->outlier)) return;
  const int64_t now_ms = steadyMillis();
  size_t ejected = 0;
  for (const auto& t : up.targets) ejected += t.health->ejected(now_ms) ? 1 : 0;
  if ((ejected + 1) * 100 <= up.targets.size() * up.config->outlier.max_ejected_percent)
    health.eject(up.config->outlier);
}

void recordResponse(UpstreamRuntime& up, uint32_t index, int status, std::chrono::microseconds elapsed) {
  up.stats->by_class[telemetry::statusClass(status)].add();
  up.stats->latency.observe(static_cast<uint64_t>(elapsed.count()));
  const auto now = std::chrono::steady_clock::now();
  recordLatency(up.balancer.loads[index],
                std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count(),
                static_cast<double>(elapsed.count()));
  if (status >= 500)
    markFailure(*up.def, index);
  else
    up.def->targets[index].health->recordSuccess();
}

void release(UpstreamRuntime& up, uint32_t index, std::unique_ptr<http::UpstreamConnection> uc) {
  uc->reused = false;
  up.pools[index]->give(std::move(uc));
}

Task<Acquired> acquire(loop::Worker& worker, UpstreamRuntime& up, uint32_t index, Millis timeout,
                       bool fresh) {
  Acquired out;
  if (!fresh) {
    uint64_t stale = 0;
    out.conn = up.pools[index]->take(&stale);
    if (stale) up.stats->stale_connections.add(stale);
    if (out.conn) co_return out;
  }
  const auto& target = up.def->targets[index];
  auto uc = std::make_unique<http::UpstreamConnection>(worker.io(), worker.buffers(), worker.deadlines());
  auto fail = [&](int status, std::string_view type, std::string message, std::string detail) {
    up.stats->connect_failures.add();
    markFailure(*up.def, index);
    out.failure = UpstreamFailure(status, type, std::move(message), std::move(detail), true);
    return std::move(out);
  };
  uc->deadline.arm(timeout);
  std::vector<asio::ip::tcp::endpoint> looked_up;
  if (target.endpoints.empty()) {
    // A provider name the DNS refresh has not resolved yet: look it up for this call.
    asio::ip::tcp::resolver resolver(worker.io());
    auto port = std::to_string(up.def->config->targets[index].address.port);
    auto [rec, results] = co_await resolver.async_resolve(target.host, port, kNoThrow);
    if (rec || results.empty()) {
      uc->deadline.disarm();
      co_return fail(502, "upstream_unresolved", "cannot resolve the target's host name",
                     fmt::format("cannot resolve {}: {}", target.host, rec ? rec.message() : "no address"));
    }
    for (const auto& r : results) looked_up.push_back(r.endpoint());
  }
  auto [ec, endpoint] = co_await asio::async_connect(
      uc->stream.socket(), target.endpoints.empty() ? looked_up : target.endpoints, kNoThrow);
  if (ec) {
    uc->deadline.disarm();
    if (uc->timed_out) {
      up.stats->timeouts.add();
      co_return fail(504, "upstream_connect_timeout", "connecting timed out",
                     fmt::format("connecting to {} timed out", target.key));
    }
    co_return fail(502, "upstream_connect_failed", "cannot connect",
                   fmt::format("cannot connect to {}: {}", target.key, ec.message()));
  }
  boost::system::error_code ignored;
  uc->stream.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
  if (up.def->config->tls) {
    auto& tls = *up.def->config->tls;
    const std::string& name = tls.settings().server_name.empty() ? target.host : tls.settings().server_name;
    uc->stream.startTls(tls.context());
    SSL_set_tlsext_host_name(uc->stream.tls().native_handle(), name.c_str());
    if (tls.settings().verify) uc->stream.tls().set_verify_callback(asio::ssl::host_name_verification(name));
    auto [hec] = co_await uc->stream.tls().async_handshake(asio::ssl::stream_base::client, kNoThrow);
    if (hec) {
      uc->deadline.disarm();
      co_return fail(502, "upstream_tls_failed",
                     uc->timed_out ? "the TLS handshake timed out" : "the TLS handshake failed",
                     uc->timed_out
                         ? fmt::format("TLS handshake with {} timed out", target.key)
                         : fmt::format("TLS handshake with {} failed: {}", target.key, hec.message()));
    }
  }
  uc->deadline.disarm();
  up.stats->connections_opened.add();
  out.conn = std::move(uc);
  co_return out;
}

Task<ReadStatus> readMore(http::UpstreamConnection& uc, Millis timeout) {
  if (uc.in.full()) co_return ReadStatus::kFailed;
  uc.deadline.arm(timeout);
  auto [ec, n] =
      co_await uc.stream.async_read_some(asio::buffer(uc.in.writePtr(), uc.in.writable()), kNoThrow);
  uc.deadline.disarm();
  if (uc.timed_out) co_return ReadStatus::kFailed;
  if (ec == asio::error::eof || (!ec && n == 0)) co_return ReadStatus::kEof;
  if (ec) co_return ReadStatus::kFailed;
  uc.in.commit(n);
  co_return ReadStatus::kData;
}

Task<HeadRead> readResponseHead(http::UpstreamConnection& uc, Millis timeout, bool head_request) {
  HeadRead out;
  uc.timed_out = false;
  uc.deadline.arm(timeout);
  for (;;) {
    if (!uc.in.empty()) {
      out.received_any = true;
      auto step = uc.parser.feed(uc.in.readable());
      uc.in.consume(step.consumed);
      if (step.event == ParseEvent::kHead) {
        int status = uc.parser.response().status;
        if (status >= 100 && status < 200 && status != 101) {
          uc.parser.reset();  // interim response (100, 103): wait for the final one
          if (head_request) uc.parser.expectNoBody();
          continue;
        }
        out.outcome = HeadOutcome::kHead;
        break;
      }
      if (step.event == ParseEvent::kError) {
        out.outcome = HeadOutcome::kProtocolError;
        break;
      }
      continue;
    }
    if (uc.in.full()) {
      out.outcome = HeadOutcome::kProtocolError;
      break;
    }
    auto [ec, n] =
        co_await uc.stream.async_read_some(asio::buffer(uc.in.writePtr(), uc.in.writable()), kNoThrow);
    if (ec || n == 0) {
      out.outcome = uc.timed_out ? HeadOutcome::kTimeout : HeadOutcome::kClosed;
      break;
    }
    uc.in.commit(n);
  }
  uc.deadline.disarm();
  co_return out;
}

Task<BodyStatus> readBodySome(http::UpstreamConnection& uc, std::string& out, Millis timeout) {
  const auto& resp = uc.parser.response();
  if (uc.parser.completePending()) {  // bodiless (204, 304, 1xx, HEAD): waiting would hang until the timeout
    uc.parser.feed({});
    co_return BodyStatus::kComplete;
  }
  const bool until_close = !resp.has_content_length && !resp.chunked;
  if (resp.has_content_length && resp.content_length == 0) co_return BodyStatus::kComplete;
  const size_t had = out.size();
  for (bool read_once = false;;) {
    if (!uc.in.empty()) {
      auto step = uc.parser.feed(uc.in.readable());
      if (step.event == ParseEvent::kError) co_return BodyStatus::kBroken;
      for (auto piece : uc.parser.body()) out.append(piece);
      uc.in.consume(step.consumed);
      if (step.event == ParseEvent::kComplete) co_return BodyStatus::kComplete;
      if (!uc.in.empty()) continue;
    }
    if (read_once || out.size() > had) co_return BodyStatus::kData;  // a failure can wait for the next call
    uc.timed_out = false;
    auto got = co_await readMore(uc, timeout);
    if (got == ReadStatus::kEof && until_close) co_return BodyStatus::kComplete;
    if (got != ReadStatus::kData) co_return uc.timed_out ? BodyStatus::kTimeout : BodyStatus::kBroken;
    read_once = true;
  }
}

}  // namespace ganglion::upstream
