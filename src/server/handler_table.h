// The terminal-handler table: the one place that says which handler serves a route (the
// proxy, the LLM API, the welcome page, static files; the admin API, the console and device ingest join it
// here), and what each worker builds of them for each config version.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.h"
#include "edge/edge_runtime.h"
#include "http/connection_manager.h"
#include "llm/llm_handler.h"
#include "server/gateway_config.h"
#include "store/redis_clients.h"
#include "upstream/worker_pools.h"

namespace ganglion::telemetry {
class AccessLog;
}

namespace ganglion::server {

struct Snapshot;

/// The table's rows (RouteAction::handler).
enum HandlerRow : uint8_t { kProxyRow, kLlmRow, kWelcomeRow, kStaticRow, kIngestRow, kHandlerRows };

/// The row that serves `route` and its target there: the proxy with the index of the route's
/// upstream in `cfg.upstreams`, device ingest with the index of its connector, the LLM API,
/// static files or the welcome page. Main thread, at snapshot build.
http::RouteAction routeAction(const config::RouteConfig& route, const Config& cfg);

/// One worker's request handling across config versions: the connection manager, the
/// connection pools and the LLM handler live as long as the worker; each installed version
/// gets its upstream runtimes and its row of handlers. Worker thread (made on the main thread
/// before the worker starts).
class WorkerRequests {
 public:
  WorkerRequests(loop::Worker& worker, telemetry::WorkerStats& stats, telemetry::AccessLog* log,
                 llm::KeyLedger& ledger, llm::ResponseCache& cache);
  ~WorkerRequests();
  http::ConnectionManager& manager() { return manager_; }
  llm::LlmWorkerMetrics& llmMetrics() { return llm_.metrics(); }
  /// Switches to `snapshot`; requests in flight finish on their version. Worker thread.
  void install(std::shared_ptr<const Snapshot> snapshot);
  /// The process's edge runtime, for ingest routes (set before the first install). Main thread.
  void setEdge(edge::EdgeRuntime* edge) { edge_ = edge; }
  /// The current version's runtime of upstream `name` on this worker, kept alive while held;
  /// null when it has none. Worker thread.
  std::shared_ptr<upstream::UpstreamRuntime> upstreamRuntime(std::string_view name) const;
  /// A chat completion from a model of the current version (the edge's `summarize`), which
  /// stays alive for the call. Worker thread.
  http::Task<Result<edge::ModelAnswer>> complete(std::string model, std::string system, std::string user,
                                                 uint32_t max_tokens, std::chrono::milliseconds timeout);

 private:
  struct Version;
  loop::Worker& worker_;
  telemetry::WorkerStats& stats_;
  store::RedisClients redis_;
  http::ConnectionManager manager_;
  upstream::WorkerPools pools_;
  llm::LlmHandler llm_;
  edge::EdgeRuntime* edge_ = nullptr;
  std::shared_ptr<Version> current_;
};

}  // namespace ganglion::server
