// HTTP ingest: the terminal handler of routes whose target is `ingest: <connector>`. A POST's
// body (JSON, SenML or line protocol) becomes readings for the pipelines that read the
// connector; the route's filters (key_auth, rate_limit, ip_filter) run first, as on any route.
#pragma once

#include "edge/edge_config.h"
#include "edge/edge_runtime.h"
#include "http/terminal_handler.h"

namespace ganglion::edge {

class HttpIngest final : public http::TerminalHandler {
 public:
  /// `config`: the config version's edge sections (a route's action target indexes its
  /// connectors); `runtime`: the process's edge. One per worker per config version.
  HttpIngest(const EdgeConfig& config, EdgeRuntime& runtime) : config_(config), runtime_(runtime) {}
  http::Task<void> serve(http::RoutedRequest& req) override;

 private:
  /// Refuses a payload whole: counted in `connector`'s `refused` (its `rejected` readings
  /// too), answered `status` with an error body, and a Retry-After when `retry_after` is given.
  http::Task<void> refuse(http::ServerConnection& conn, std::string_view connector, int status,
                          std::string_view type, std::string_view message, std::string_view retry_after = {},
                          size_t rejected = 0);
  /// 503 connector_stopped with Retry-After: 30.
  http::Task<void> refuseStopped(http::ServerConnection& conn, std::string_view connector);

  const EdgeConfig& config_;
  EdgeRuntime& runtime_;
};

}  // namespace ganglion::edge
