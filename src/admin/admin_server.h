// The admin API listener, served by the same HTTP/1.1 code as the gateway's listeners
// (http::ServerConnection: keep-alive, pipelining, timeouts, body limits, HEAD, exact status
// lines) on the main thread's loop, apart from the workers, so it answers while they are
// saturated. Endpoints come from one table (admin::Router); every one but /healthz needs the
// bearer token. Endpoints and replies: docs/admin-api.md.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/array.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "admin/config_check.h"
#include "admin/reply.h"
#include "admin/router.h"
#include "config/config.h"
#include "http/server_connection.h"
#include "http/static_site.h"
#include "loop/worker.h"
#include "telemetry/metrics.h"

namespace ganglion::admin {

/// What the admin API can ask of the gateway. All called on the main thread.
struct AdminApi {
  std::function<bool()> ready;
  std::function<std::string()> metrics;
  std::function<std::string()> config_json;
  /// Reloads from the config file; returns {HTTP status, JSON body}. The admin API goes on
  /// answering other connections while it runs.
  std::function<boost::asio::awaitable<std::pair<int, std::string>>()> reload;
  /// Every key with LLM limits, its limits and its spend in the current period, as objects
  /// sorted by "name". May suspend (shared budgets are read from Redis off the main thread);
  /// the admin API goes on answering other connections meanwhile.
  std::function<boost::asio::awaitable<boost::json::array>()> llm_keys;
  /// GET /edge: pipelines, sinks and connectors with their counters (absent: no endpoint).
  std::function<boost::json::object()> edge_status;
  /// POST /edge/{part}/{name}/stop and .../start, `part` one of pipelines, connectors, sinks:
  /// the answer's body, or an Error with its status (absent: no endpoints).
  std::function<Result<boost::json::object>(std::string_view part, std::string_view name, bool stop)>
      edge_stop;
  /// GET /edge/sinks/{name}/records: a tsdb sink's records for the request's query string
  /// (undecoded); the body, or an Error with its status (absent: no endpoint).
  std::function<boost::asio::awaitable<Result<std::string>>(std::string sink, std::string query)>
      edge_records;
  /// POST /config/check (absent: no such endpoint).
  ConfigCheckers check_config;
};

class AdminServer final : public http::RequestHandler {
 public:
  /// `loop`: the main thread's loop, which the admin connections run on.
  AdminServer(loop::Worker& loop, AdminApi api);
  ~AdminServer() override;
  /// Binds and starts accepting. Main thread.
  /// `inherited_fd` ≥ 0: a listening socket handed down by a binary upgrade, adopted as is.
  Result<void> start(const config::HostPort& address, std::string token, int inherited_fd = -1);
  /// The listening socket, to hand down in a binary upgrade.
  int nativeHandle() { return acceptor_.is_open() ? acceptor_.native_handle() : -1; }
  void setToken(std::string token) { token_ = std::move(token); }
  /// The console's files (admin.console), or null for none; set at start and each reload.
  /// Main thread.
  void setConsole(std::shared_ptr<const http::StaticSite> console) { console_ = std::move(console); }
  /// Stops accepting and closes the open admin connections (each ends on the loop's next
  /// turns). Main thread.
  void stop();
  /// Admin connections still open. Main thread.
  size_t connections() const { return live_.size(); }

  /// One admin request: token, table, endpoint, reply. Called by ServerConnection on the
  /// main thread.
  http::Task<void> handle(http::ServerConnection& conn) override;

 private:
  void addEndpoints();
  boost::asio::awaitable<void> acceptLoop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);
  bool authorised(const http::HeaderList& headers) const;
  static http::Task<void> send(http::ServerConnection& conn, const Reply& reply);

  loop::Worker& loop_;
  AdminApi api_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::string token_;
  std::shared_ptr<const http::StaticSite> console_;
  /// Console responses being sent: capped below the connection cap, so that clients that
  /// stop reading console files (no token needed) cannot hold every admin connection.
  size_t console_streams_ = 0;
  static constexpr size_t kMaxConsoleStreams = 64;
  Router router_;
  http::ListenerLimits limits_;
  telemetry::WorkerStats stats_;  ///< the admin connections' own counters (not in /metrics)
  bool draining_ = false;
  std::vector<http::ServerConnection*> live_;  ///< open admin connections
};

}  // namespace ganglion::admin
