#include "control/admin_server.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "base/strings.h"
#include "http/http1_parser.h"

namespace ganglion::control {

namespace asio = boost::asio;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

AdminServer::AdminServer(asio::io_context& io, AdminApi api) : io_(io), api_(std::move(api)), acceptor_(io) {}

std::string AdminServer::start(const HostPort& address, std::string token, int inherited_fd) {
  token_ = std::move(token);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(address.host == "localhost" ? "127.0.0.1" : address.host, ec);
  if (ec) return fmt::format("admin address '{}' is not an IP address", address.host);
  asio::ip::tcp::endpoint endpoint(addr, address.port);
  if (inherited_fd >= 0) {
    acceptor_.assign(endpoint.protocol(), inherited_fd, ec);
    if (ec)
      return fmt::format("admin listener {}: cannot adopt inherited socket: {}", address.text(),
                         ec.message());
    asio::co_spawn(io_, acceptLoop(), asio::detached);
    return {};
  }
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) return fmt::format("admin listener {}: {}", address.text(), ec.message());
  asio::co_spawn(io_, acceptLoop(), asio::detached);
  return {};
}

void AdminServer::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

asio::awaitable<void> AdminServer::acceptLoop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
    if (ec) {
      if (!acceptor_.is_open()) co_return;
      continue;
    }
    asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
  }
}

using http::jsonErrorBody;

asio::awaitable<AdminServer::Reply> AdminServer::dispatch(std::string_view method, std::string_view path,
                                                          std::string_view authorization) {
  if (path == "/healthz") co_return Reply{200, "text/plain", "ok\n"};
  constexpr std::string_view kBearer = "Bearer ";
  bool authorised = authorization.size() == kBearer.size() + token_.size() &&
                    authorization.substr(0, kBearer.size()) == kBearer && !token_.empty() &&
                    CRYPTO_memcmp(authorization.data() + kBearer.size(), token_.data(), token_.size()) == 0;
  if (!authorised)
    co_return Reply{
        401, "application/json",
        jsonErrorBody(401, "unauthorized", "a valid 'Authorization: Bearer <token>' is required")};
  if (path == "/ready") {
    bool ready = api_.ready();
    co_return Reply{ready ? 200 : 503, "application/json",
                    fmt::format("{{\"ready\":{},\"pid\":{}}}\n", ready ? "true" : "false", ::getpid())};
  }
  if (path == "/metrics") co_return Reply{200, "text/plain; version=0.0.4", api_.metrics()};
  if (path == "/config") co_return Reply{200, "application/json", api_.config_json() + "\n"};
  if (path == "/llm/keys" && api_.llm_keys) co_return Reply{200, "application/json", api_.llm_keys() + "\n"};
  if (path == "/reload") {
    if (method != "POST")
      co_return Reply{405, "application/json", jsonErrorBody(405, "method_not_allowed", "use POST /reload")};
    auto [status, body] = co_await api_.reload();
    co_return Reply{status, "application/json", std::move(body)};
  }
  co_return Reply{404, "application/json",
                  jsonErrorBody(404, "not_found", fmt::format("no admin endpoint {}", path))};
}

asio::awaitable<void> AdminServer::serve(asio::ip::tcp::socket socket) {
  http::Http1Parser parser(http::Http1Parser::Kind::kRequest, {16 * 1024, 2048, 64});
  Buffer in(buffers_);
  asio::steady_timer timer(io_);
  bool timed_out = false;
  for (;;) {
    parser.reset();
    bool have_head = false, complete = false, failed = false;
    timer.expires_after(std::chrono::seconds(30));
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      timed_out = true;
      boost::system::error_code ignored;
      socket.cancel(ignored);
    });
    while (!complete && !failed) {
      if (!in.empty()) {
        auto step = parser.feed(in.readable());
        in.consume(step.consumed);
        if (step.event == http::ParseEvent::kError) failed = true;
        if (step.event == http::ParseEvent::kHead) {
          have_head = true;
          if (!parser.request().hasBody()) complete = true;
          if (parser.request().has_content_length && parser.request().content_length > 64 * 1024)
            failed = true;
        }
        if (step.event == http::ParseEvent::kComplete) complete = true;
        continue;
      }
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(in.writePtr(), in.writable()), kNoThrow);
      if (ec || n == 0) co_return;
      in.commit(n);
    }
    timer.cancel();
    (void)have_head;
    // Not a ?: around the co_await: GCC 12 miscompiles a co_await inside a conditional
    // expression of class type (a double free at the first reload).
    Reply reply;
    if (failed)
      reply = Reply{400, "application/json",
                    jsonErrorBody(400, "bad_request",
                                  parser.errorReason().empty() ? "malformed request"
                                                               : std::string(parser.errorReason()))};
    else
      reply = co_await dispatch(parser.request().method, parser.request().path(),
                                parser.request().headers.get("authorization"));
    bool keep = !failed && parser.request().keep_alive;
    std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
                                  reply.status, http::reasonPhrase(reply.status), reply.content_type,
                                  reply.body.size(), keep ? "" : "Connection: close\r\n");
    if (failed || parser.request().method != "HEAD") out += reply.body;  // HEAD: the length, no body
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(out), kNoThrow);
    if (ec || !keep || timed_out) break;
  }
  boost::system::error_code ec;
  socket.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
}

}  // namespace ganglion::control
