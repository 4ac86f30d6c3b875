#include "admin/admin_server.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/json_text.h"
#include "base/strings.h"
#include "http/static_files.h"
#include "loop/pools.h"
#include "net/host_address.h"

namespace ganglion::admin {

namespace asio = boost::asio;
namespace json = boost::json;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
/// The largest request body the admin API reads.
constexpr uint64_t kMaxAdminBodyBytes = 1 << 20;
/// Admin connections open at once; more are closed as they are accepted.
constexpr size_t kMaxAdminConnections = 256;

AdminServer::AdminServer(loop::Worker& loop, AdminApi api)
    : loop_(loop), api_(std::move(api)), acceptor_(loop.io()) {
  limits_.parse = {16 * 1024, 2048, 64};
  limits_.header_timeout = std::chrono::seconds(10);
  limits_.body_timeout = std::chrono::seconds(30);
  limits_.idle_timeout = std::chrono::seconds(60);
  limits_.answer_options_star = false;  // OPTIONS * needs the token like everything else
  addEndpoints();
}

AdminServer::~AdminServer() = default;

void AdminServer::addEndpoints() {
  router_.add(
      "GET", "/healthz",
      [](Request&) -> asio::awaitable<Reply> {
        co_return Reply{200, "text/plain", "ok\n"};
      },
      /*open=*/true);
  router_.add("GET", "/ready", [this](Request&) -> asio::awaitable<Reply> {
    const bool ready = api_.ready();
    co_return Reply{ready ? 200 : 503, "application/json",
                    fmt::format("{{\"ready\":{},\"pid\":{}}}\n", ready ? "true" : "false", ::getpid())};
  });
  router_.add("GET", "/metrics", [this](Request&) -> asio::awaitable<Reply> {
    co_return Reply{200, "text/plain; version=0.0.4", api_.metrics()};
  });
  router_.add("GET", "/config", [this](Request&) -> asio::awaitable<Reply> {
    co_return Reply{200, "application/json", api_.config_json() + "\n"};
  });
  if (api_.edge_status)
    router_.add("GET", "/edge", [this](Request&) -> asio::awaitable<Reply> {
      co_return Reply{200, "application/json", jsonText(api_.edge_status()) + "\n"};
    });
  if (api_.edge_records)
    router_.add("GET", "/edge/sinks/{name}/records", [this](Request& r) -> asio::awaitable<Reply> {
      Result<std::string> body =
          co_await api_.edge_records(std::string(r.param("name")), std::string(r.query));
      if (!body) co_return errorReply(body.error());
      co_return Reply{200, "application/json", std::move(*body)};
    });
  if (api_.edge_stop)
    for (const char* part : {"pipelines", "connectors", "sinks"})
      for (const bool stop : {true, false})
        router_.add("POST", fmt::format("/edge/{}/{{name}}/{}", part, stop ? "stop" : "start"),
                    [this, part, stop](Request& r) -> asio::awaitable<Reply> {
                      auto done = api_.edge_stop(part, r.param("name"), stop);
                      if (!done) co_return errorReply(done.error());
                      co_return jsonReply(*done);
                    });
  router_.add("POST", "/reload", [this](Request&) -> asio::awaitable<Reply> {
    auto [status, body] = co_await api_.reload();
    co_return Reply{status, "application/json", std::move(body)};
  });
  if (api_.check_config.json && api_.check_config.yaml)
    router_.add("POST", "/config/check", [this](Request& r) -> asio::awaitable<Reply> {
      const auto format = configFormatOf(r.media_type);
      if (!format)
        co_return errorReply(415, "unsupported_media_type",
                             "send the config with Content-Type: application/json or application/yaml");
      // The caller stays suspended while the pool reads the body (loop::runOn).
      auto [status, body] = co_await loop::runBlocking(
          [&r, f = *format, this] { return checkConfigBody(r.body, f, api_.check_config); });
      co_return Reply{status, "application/json", std::move(body)};
    });
  if (!api_.llm_keys) return;
  router_.add("GET", "/llm/keys", [this](Request& r) -> asio::awaitable<Reply> {
    auto want = readPage(r);
    if (!want) co_return errorReply(want.error());
    // Awaited in a statement of its own: g++ 12 mishandles temporaries of a co_await that sits
    // inside a call's arguments or a range-for's range (it destroys them twice).
    boost::json::array keys = co_await api_.llm_keys();
    co_return jsonReply(page(std::move(keys), "keys", "name", *want));
  });
  router_.add("GET", "/llm/keys/{name}", [this](Request& r) -> asio::awaitable<Reply> {
    boost::json::array keys = co_await api_.llm_keys();
    for (auto& key : keys)
      if (key.as_object().at("name").as_string() == r.param("name")) co_return jsonReply(key);
    co_return errorReply(404, "key_not_found",
                         fmt::format("no key named '{}' has LLM limits", r.param("name")));
  });
}

Result<void> AdminServer::start(const config::HostPort& address, std::string token, int inherited_fd) {
  token_ = std::move(token);
  auto addr = net::bindAddressOf(address.host);
  if (!addr) return Error(fmt::format("admin address '{}' is not an IP address", address.host));
  asio::ip::tcp::endpoint endpoint(*addr, address.port);
  boost::system::error_code ec;
  if (inherited_fd >= 0) {
    acceptor_.assign(endpoint.protocol(), inherited_fd, ec);
    if (ec)
      return Error(
          fmt::format("admin listener {}: cannot adopt inherited socket: {}", address.text(), ec.message()));
    asio::co_spawn(loop_.io(), acceptLoop(), asio::detached);
    return {};
  }
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) return Error(fmt::format("admin listener {}: {}", address.text(), ec.message()));
  asio::co_spawn(loop_.io(), acceptLoop(), asio::detached);
  return {};
}

void AdminServer::stop() {
  draining_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (auto* conn : live_) conn->abort();
}

asio::awaitable<void> AdminServer::acceptLoop() {
  asio::steady_timer backoff(loop_.io());
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
    if (ec) {
      if (!acceptor_.is_open() || ec == asio::error::operation_aborted) co_return;
      // Out of descriptors: pause accepting briefly instead of spinning the main thread.
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kNoThrow);
      continue;
    }
    if (live_.size() >= kMaxAdminConnections) {
      // Full: the oldest connection that is idle or still sending its head makes room, so
      // idle connections can neither spin the main thread nor lock the API out. When every
      // one is handling a request, the new one is closed.
      auto idle =
          std::find_if(live_.begin(), live_.end(), [](auto* c) { return !c->handling() && c->isOpen(); });
      if (idle == live_.end()) {
        boost::system::error_code close_ec;
        socket.close(close_ec);
        continue;
      }
      (*idle)->abort();
    }
    asio::co_spawn(loop_.io(), serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> AdminServer::serve(asio::ip::tcp::socket socket) {
  try {
    http::ServerConnection conn(loop_, std::move(socket), limits_, *this, stats_, draining_);
    struct Live {
      std::vector<http::ServerConnection*>& list;
      http::ServerConnection* conn;
      ~Live() { std::erase(list, conn); }
    } live{live_, &conn};
    live_.push_back(&conn);
    co_await conn.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ganglion: admin connection failed: %s\n", e.what());
  }
}

bool AdminServer::authorised(const http::HeaderList& headers) const {
  // Exactly one Authorization field: with two, which one counts would depend on who reads.
  std::string_view authorization;
  int fields = 0;
  for (const auto& h : headers)
    if (iequals(h.name, "authorization")) {
      authorization = h.value;
      ++fields;
    }
  constexpr std::string_view kBearer = "Bearer ";
  return fields == 1 && !token_.empty() && authorization.size() == kBearer.size() + token_.size() &&
         authorization.substr(0, kBearer.size()) == kBearer &&
         CRYPTO_memcmp(authorization.data() + kBearer.size(), token_.data(), token_.size()) == 0;
}

http::Task<void> AdminServer::handle(http::ServerConnection& conn) {
  const auto& head = conn.request();
  Request request;
  request.method = head.method;
  request.path = head.path();
  if (size_t q = head.target.find('?'); q != std::string::npos)
    request.query = std::string_view(head.target).substr(q + 1);
  // The console's files need no token: the page asks for it before it calls the API.
  if (console_ && (request.path == "/console" || request.path.starts_with("/console/"))) {
    if (request.path == "/console") {
      http::HeaderList location;
      location.add("Location", request.query.empty() ? std::string("/console/")
                                                     : "/console/?" + std::string(request.query));
      co_return co_await conn.sendError(301, "moved", "the console is at /console/", &location);
    }
    if (console_streams_ >= kMaxConsoleStreams) {
      http::HeaderList retry;
      retry.add("Retry-After", "1");
      co_return co_await conn.sendError(503, "overloaded", "too many console files are being sent", &retry);
    }
    // The site outlives the request even if a reload replaces it meanwhile.
    const std::shared_ptr<const http::StaticSite> console = console_;
    ++console_streams_;
    struct Release {
      size_t& streams;
      ~Release() { --streams; }
    } release{console_streams_};
    co_await http::serveStaticFile(conn, *console, request.path.substr(8), nullptr);
    co_return;
  }
  const Router::Match m = router_.match(request.method, request.path, request.params);
  // Without the token nothing but the open endpoints answers, not even which paths exist.
  if (!m.open && !authorised(head.headers)) {
    http::HeaderList extra;
    extra.add("WWW-Authenticate", "Bearer");
    co_return co_await conn.sendError(401, "unauthorized",
                                      "a valid 'Authorization: Bearer <token>' is required", &extra);
  }
  if (!m.endpoint) {
    if (m.allow.empty())
      co_return co_await conn.sendError(404, "not_found", fmt::format("no admin endpoint {}", request.path));
    http::HeaderList extra;
    extra.add("Allow", m.allow);
    co_return co_await conn.sendError(405, "method_not_allowed",
                                      fmt::format("{} takes {}", request.path, m.allow), &extra);
  }
  if (head.has_content_length && head.content_length > kMaxAdminBodyBytes)  // before any 100 Continue
    co_return co_await conn.sendError(413, "body_too_large",
                                      "admin request bodies are limited to 1048576 bytes");
  if (const int failed = co_await conn.readWholeBody(kMaxAdminBodyBytes)) {
    if (!conn.isOpen()) co_return;
    // Not a ?: of strings inside the co_await: GCC 12 frees such a temporary twice.
    std::string message = "the request body could not be read";
    std::string_view type = "bad_request";
    if (failed == 413) {
      message = fmt::format("admin request bodies are limited to {} bytes", kMaxAdminBodyBytes);
      type = "body_too_large";
    }
    co_return co_await conn.sendError(failed, type, message);
  }
  request.body = conn.wholeBody();
  if (const auto* type = head.headers.find("content-type")) {
    std::string_view media = type->value;
    request.media_type = toLower(trim(media.substr(0, media.find(';'))));
  }
  Reply reply = co_await (*m.endpoint)(request);
  co_await send(conn, reply);
}

http::Task<void> AdminServer::send(http::ServerConnection& conn, const Reply& reply) {
  http::ResponseHead head;
  head.status = reply.status;
  head.headers.add("Content-Type", reply.content_type);
  head.has_content_length = true;
  head.content_length = reply.body.size();
  std::string_view piece = reply.body;
  co_await conn.writeResponse(&head, std::span(&piece, 1), true);
}

}  // namespace ganglion::admin
