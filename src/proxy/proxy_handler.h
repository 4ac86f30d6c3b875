// The reverse proxy: the RequestHandler that matches a route and forwards the request to an
// upstream target over a pooled keep-alive connection, streaming bodies both ways.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "control/snapshot.h"
#include "http/server_connection.h"
#include "http/upstream_connection.h"
#include "llm/llm_handler.h"
#include "telemetry/metrics.h"
#include "upstream/balancer.h"
#include "upstream/upstream_client.h"

namespace ganglion::telemetry {
class AccessLog;
}

namespace ganglion::proxy {

using upstream::UpstreamRuntime;

/// What one worker runs on for one config version. Requests hold it (shared_ptr) until done,
/// so a reload never pulls state from under an in-flight request. Worker thread only.
struct WorkerView {
  std::shared_ptr<const control::Snapshot> snapshot;
  std::vector<UpstreamRuntime> upstreams;
  std::vector<telemetry::RequestStats*> route_stats;  ///< by route config index
};

class ProxyHandler final : public http::RequestHandler {
 public:
  ProxyHandler(loop::Worker& worker, telemetry::WorkerStats& stats, telemetry::AccessLog* log,
               llm::KeyLedger& ledger, llm::ResponseCache& cache);
  /// Switches to a new snapshot; in-flight requests finish on the old one. Worker thread.
  void install(std::shared_ptr<const control::Snapshot> snapshot);
  const WorkerView* view() const { return view_.get(); }
  /// Handles one request. Worker thread.
  http::Task<void> handle(http::ServerConnection& conn) override;

 private:
  struct Exchange;
  /// Sends the request to a target of the route's upstream and relays its answer: target
  /// choice, connection, retries (stale pooled connections, 5xx of replayable requests, the
  /// retry budget), error mapping. Worker thread.
  http::Task<void> forward(http::ServerConnection& conn, Exchange& ex);
  enum class Sent { kSent, kUpstreamFailed, kClientFailed };
  /// Writes the request head and body to `uc`. `early` is the body that came with the head:
  /// it goes out with the head in one write, and when it is the whole body the request can be
  /// written again on another connection. The rest is read from the client as it arrives
  /// (re-chunked for chunked requests), which sets `body_consumed`. kClientFailed: the
  /// client's body was bad and it was answered.
  http::Task<Sent> sendRequest(http::ServerConnection& conn, Exchange& ex, http::UpstreamConnection& uc,
                               const std::optional<http::BodyRead>& early, bool& body_consumed);
  /// Streams the upstream's response (its head parsed in `uc`) to the client, tunnels after a
  /// 101, and pools the connection when the exchange ended cleanly.
  http::Task<void> relayResponse(http::ServerConnection& conn, Exchange& ex,
                                 std::unique_ptr<http::UpstreamConnection> uc, uint32_t target_index,
                                 std::chrono::steady_clock::time_point started);
  /// Ends the exchange with an error: a JSON error when nothing was sent yet, else an abort.
  http::Task<void> failExchange(http::ServerConnection& conn, Exchange& ex, int status, std::string_view type,
                                std::string message);
  /// Answers a bad client body (its status from BodyRead::error_status) unless a response
  /// already started.
  http::Task<void> answerBodyError(http::ServerConnection& conn, Exchange& ex, int status);
  /// A `welcome: {}` route: the snapshot's page for GET and HEAD, 405 otherwise. Worker thread.
  http::Task<void> serveWelcome(http::ServerConnection& conn, std::string_view page);
  /// After a 101: relays bytes both ways until either side closes or goes idle.
  http::Task<void> tunnel(http::ServerConnection& conn, Exchange& ex,
                          std::unique_ptr<http::UpstreamConnection> uc);
  void expireIdle();

  loop::Worker& worker_;
  telemetry::WorkerStats& stats_;
  telemetry::AccessLog* log_;
  std::shared_ptr<WorkerView> view_;
  std::map<std::string, std::shared_ptr<http::ConnectionPool>> pools_;
  telemetry::RequestStats* unmatched_stats_;
  llm::LlmHandler llm_;
};

}  // namespace ganglion::proxy
