#include "server/handler_table.h"

#include <optional>

#include "edge/connectors/http_ingest.h"
#include "http/static_files.h"
#include "http/static_page.h"
#include "llm/internal_call.h"
#include "loop/worker.h"
#include "proxy/proxy_handler.h"
#include "server/snapshot.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section
using namespace ganglion::upstream;
using namespace ganglion::llm;

http::RouteAction routeAction(const RouteConfig& route, const Config& cfg) {
  if (route.welcome) return {kWelcomeRow, 0};
  if (route.static_files) return {kStaticRow, 0};
  if (route.llm) return {kLlmRow, 0};
  if (!route.ingest.empty()) {
    const auto& connectors = cfg.edge.connectors;
    for (size_t c = 0; c < connectors.size(); ++c)
      if (connectors[c].name == route.ingest) return {kIngestRow, static_cast<uint32_t>(c)};
    return {kIngestRow, 0};  // validation guarantees the connector exists
  }
  const auto& upstreams = cfg.upstreams;
  for (size_t u = 0; u < upstreams.size(); ++u)
    if (upstreams[u].name == route.upstream) return {kProxyRow, static_cast<uint32_t>(u)};
  return {kProxyRow, 0};  // validation guarantees the upstream exists
}

/// Everything one worker runs one config version on.
struct WorkerRequests::Version {
  Version(loop::Worker& worker, std::shared_ptr<const Snapshot> snap,
          std::vector<upstream::UpstreamRuntime> ups, llm::LlmHandler& llm_handler, edge::EdgeRuntime* edge)
      : snapshot(std::move(snap)),
        upstreams(std::move(ups)),
        proxy(worker, upstreams),
        welcome(snapshot->welcome_page, "text/plain; charset=utf-8") {
    if (snapshot->llm) llm.emplace(llm_handler, *snapshot->llm, upstreams);
    if (edge) ingest.emplace(snapshot->config.edge, *edge);
  }
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<upstream::UpstreamRuntime> upstreams;  ///< indexed like Snapshot::upstreams
  proxy::ProxyHandler proxy;
  std::optional<llm::LlmRoutes> llm;  ///< with providers (an llm route requires them)
  http::StaticPage welcome;
  http::StaticFiles static_files;
  std::optional<edge::HttpIngest> ingest;  ///< with an edge runtime
};

WorkerRequests::WorkerRequests(loop::Worker& worker, telemetry::WorkerStats& stats, telemetry::AccessLog* log,
                               llm::KeyLedger& ledger, llm::ResponseCache& cache)
    : worker_(worker),
      stats_(stats),
      redis_(worker.io()),
      manager_(worker.index(), stats, log, &redis_),
      llm_(worker, ledger, cache) {
  worker_.onTick([this] {
    if (current_) upstream::WorkerPools::expireIdle(current_->upstreams);
  });
}

WorkerRequests::~WorkerRequests() = default;

void WorkerRequests::install(std::shared_ptr<const Snapshot> snapshot) {
  auto version = std::make_shared<Version>(worker_, snapshot, pools_.runtimesFor(snapshot->upstreams, stats_),
                                           llm_, edge_);
  auto routes = std::make_shared<http::WorkerRoutes>();
  routes->router = std::shared_ptr<const http::Router>(snapshot, &snapshot->router);
  routes->handlers.resize(kHandlerRows);
  routes->handlers[kProxyRow] = &version->proxy;
  routes->handlers[kLlmRow] = version->llm ? &*version->llm : nullptr;
  routes->handlers[kWelcomeRow] = &version->welcome;
  routes->handlers[kStaticRow] = &version->static_files;
  routes->handlers[kIngestRow] = version->ingest ? &*version->ingest : nullptr;
  routes->handler_owner = version;
  manager_.install(std::move(routes));
  current_ = std::move(version);
}

std::shared_ptr<upstream::UpstreamRuntime> WorkerRequests::upstreamRuntime(std::string_view name) const {
  if (!current_) return nullptr;
  for (auto& u : current_->upstreams)
    if (u.def && u.def->config && u.def->config->name == name)
      return std::shared_ptr<upstream::UpstreamRuntime>(current_, &u);
  return nullptr;
}

http::Task<Result<edge::ModelAnswer>> WorkerRequests::complete(std::string model, std::string system,
                                                               std::string user, uint32_t max_tokens,
                                                               std::chrono::milliseconds timeout) {
  auto version = current_;
  if (!version || !version->snapshot->llm) co_return Error("the config has no providers", "no_providers");
  auto answer = co_await llm::completeChat(worker_, *version->snapshot->llm, version->upstreams, model,
                                           system, user, max_tokens, timeout);
  if (!answer) co_return answer.error();
  edge::ModelAnswer out;
  out.text = std::move(answer->text);
  out.provider = std::move(answer->provider);
  out.model = std::move(answer->model);
  out.prompt_tokens = answer->usage.prompt;
  out.completion_tokens = answer->usage.completion;
  co_return out;
}

}  // namespace ganglion::server
