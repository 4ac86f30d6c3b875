// The request pipeline every listener runs: route match → the route's filter chain → the
// terminal handler the route names (http/terminal_handler.h) → metrics and the access record.
// One per worker; the composition installs each config version's routes and handlers.
#pragma once

#include <memory>
#include <vector>

#include "http/router.h"
#include "http/server_connection.h"
#include "http/terminal_handler.h"
#include "telemetry/metrics.h"

namespace ganglion::telemetry {
class AccessLog;
}

namespace ganglion::http {

/// One worker's routes and terminal handlers for one config version. A request holds it
/// until it ends, so a reload never pulls state from under an in-flight request.
struct WorkerRoutes {
  std::shared_ptr<const Router> router;               ///< shares ownership of the snapshot it lives in
  std::vector<TerminalHandler*> handlers;             ///< the table: by RouteAction::handler
  std::shared_ptr<const void> handler_owner;          ///< keeps the handlers alive
  std::vector<telemetry::RequestStats*> route_stats;  ///< by route index; filled by install()
};

class ConnectionManager final : public RequestHandler {
 public:
  /// `redis`: the worker's Redis connections, lent to filters (null in tests without them).
  ConnectionManager(unsigned worker_index, telemetry::WorkerStats& stats, telemetry::AccessLog* log,
                    store::RedisClients* redis);
  /// Switches to a new config version; in-flight requests finish on the one they started
  /// with. Worker thread.
  void install(std::shared_ptr<WorkerRoutes> routes);
  /// Handles one request. Called by ServerConnection on the worker thread.
  Task<void> handle(ServerConnection& conn) override;

 private:
  /// Awaits the work a hook paused on (ctx.resume) unless the client leaves first, and puts
  /// its result in `status`. False (the connection aborted) when the client left.
  static Task<bool> settle(ServerConnection& conn, FilterContext& fctx, FilterStatus& status);
  /// The reply to a body the filters could not read whole (readWholeBody's status).
  static LocalReply bodyFailure(int status, uint64_t max);
  /// The reply to an Upgrade request on a route whose filter `filter` reads bodies.
  static LocalReply upgradeRefused(const config::RouteConfig& route, std::string_view filter);
  /// Counts the request in its route's metrics and writes its access record. `report`: what
  /// the terminal handler reported, null when none ran.
  void record(ServerConnection& conn, const WorkerRoutes& routes, const CompiledRoute* route,
              const HandlerReport* report, std::string_view error, std::string_view principal);

  unsigned worker_index_;
  telemetry::WorkerStats& stats_;
  telemetry::AccessLog* log_;
  store::RedisClients* redis_;
  std::shared_ptr<WorkerRoutes> routes_;
  telemetry::RequestStats* unmatched_stats_;
};

}  // namespace ganglion::http
