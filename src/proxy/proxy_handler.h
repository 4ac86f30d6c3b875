// The reverse proxy: the terminal handler that forwards a routed request to a target of the
// route's upstream over a pooled keep-alive connection, streaming bodies both ways.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "http/server_connection.h"
#include "http/terminal_handler.h"
#include "http/upstream_connection.h"
#include "upstream/balancer.h"
#include "upstream/upstream_client.h"

namespace ganglion::proxy {

using upstream::UpstreamRuntime;

/// The proxy as a terminal handler for one config version on one worker: a route's requests
/// go to its upstream (RouteAction::target indexes `upstreams`).
class ProxyHandler final : public http::TerminalHandler {
 public:
  /// `upstreams`: this worker's runtimes for the version, indexed like Snapshot::upstreams;
  /// they outlive the handler.
  ProxyHandler(loop::Worker& worker, std::span<UpstreamRuntime> upstreams);
  /// Forwards one request. Called by the connection manager on the worker thread.
  http::Task<void> serve(http::RoutedRequest& routed) override;

 private:
  struct Exchange;
  /// Sends the request to a target of the route's upstream and relays its answer: the body
  /// limit, the upstream head, target choice, connection, retries (stale pooled connections,
  /// 5xx of replayable requests, the retry budget), error mapping; fills routed.report.
  /// Worker thread.
  http::Task<void> forward(http::RoutedRequest& routed);
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
                                 std::unique_ptr<http::UpstreamConnection> uc, uint32_t target_index);
  /// Ends the exchange with an error: a JSON error when nothing was sent yet, else an abort.
  http::Task<void> failExchange(http::ServerConnection& conn, Exchange& ex, int status, std::string_view type,
                                std::string message);
  /// Answers a bad client body (its status from BodyRead::error_status) unless a response
  /// already started.
  http::Task<void> answerBodyError(http::ServerConnection& conn, Exchange& ex, int status);
  /// After a 101: relays bytes both ways until either side closes or goes idle.
  http::Task<void> tunnel(http::ServerConnection& conn, Exchange& ex,
                          std::unique_ptr<http::UpstreamConnection> uc);

  loop::Worker& worker_;
  std::span<UpstreamRuntime> upstreams_;
};

}  // namespace ganglion::proxy
