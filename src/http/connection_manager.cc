#include "http/connection_manager.h"

#include <fmt/format.h>

#include <optional>

#include "http/unless_client_leaves.h"
#include "telemetry/access_log.h"

namespace ganglion::http {

using Clock = std::chrono::steady_clock;

namespace {

/// Runs the response hooks of the filters that saw the request, last first, then adds the
/// headers filters asked every response to carry. For the handler's response (not a local
/// reply), the body hooks of the filters that ask see the whole body first.
class FilterChainHook final : public ResponseHook {
 public:
  FilterChainHook(const std::vector<std::shared_ptr<const Filter>>& filters, FilterContext& ctx,
                  const ServerConnection& conn)
      : filters_(filters), ctx_(ctx), conn_(conn) {}
  void onResponseHead(ResponseHead& head) override {
    for (size_t i = ran; i-- > 0;) filters_[i]->onResponse(ctx_, head);
    for (const auto& h : ctx_.response_add) head.headers.set(h.name, h.value);
  }
  uint64_t responseBodyLimit(const ResponseHead&) override {
    if (!handler) return 0;
    uint64_t limit = 0;  // the smallest non-zero limit of the chain
    for (size_t i = 0; i < ran; ++i)
      if (uint64_t n = filters_[i]->wholeResponseBodyLimit()) limit = limit ? std::min(limit, n) : n;
    return limit;
  }
  void onResponseBody(ResponseHead& head, std::string& body, Held held) override {
    FilterStatus status = FilterStatus::kContinue;
    if (held == Held::kTooLarge) {
      ctx_.reply = {
          502,
          "response_too_large",
          fmt::format("the response exceeds the {} bytes this route's filters read", responseBodyLimit(head)),
          {}};
      status = FilterStatus::kReply;
    } else if (held == Held::kOverloaded) {
      ctx_.reply = {503, "overloaded", "the gateway holds too many bodies in memory; retry shortly", {}};
      ctx_.reply.headers.set("Retry-After", "1");
      status = FilterStatus::kReply;
    }
    for (size_t i = ran; status == FilterStatus::kContinue && i-- > 0;)
      if (filters_[i]->wholeResponseBodyLimit()) status = filters_[i]->onResponseBody(ctx_, head, body);
    if (status != FilterStatus::kReply) return;
    ctx_.response_replaced = ctx_.reply.type;
    ResponseHead replaced;
    handler->renderLocalReply(conn_, ctx_.reply, replaced, body);
    head = std::move(replaced);
  }
  size_t ran = 0;
  TerminalHandler* handler = nullptr;  ///< set while the handler serves: its responses may be held

 private:
  const std::vector<std::shared_ptr<const Filter>>& filters_;
  FilterContext& ctx_;
  const ServerConnection& conn_;
};

}  // namespace

ConnectionManager::ConnectionManager(unsigned worker_index, telemetry::WorkerStats& stats,
                                     telemetry::AccessLog* log, store::RedisClients* redis)
    : worker_index_(worker_index),
      stats_(stats),
      log_(log),
      redis_(redis),
      unmatched_stats_(stats.route("")) {}

void ConnectionManager::install(std::shared_ptr<WorkerRoutes> routes) {
  const auto& compiled = routes->router->routes();
  routes->route_stats.assign(compiled.size(), nullptr);
  for (const auto& r : compiled) routes->route_stats[r.index] = stats_.route(r.config->name);
  routes_ = std::move(routes);
}

Task<void> ConnectionManager::handle(ServerConnection& conn) {
  std::shared_ptr<const WorkerRoutes> routes = routes_;
  auto& req = conn.request();
  const CompiledRoute* route = routes->router->match(req);
  FilterContext fctx{req, conn.clientIp(), {}, {}, {}, {}, redis_, {}};
  std::optional<FilterChainHook> hook;
  bool replied = false;
  if (route && !route->config->filters.empty()) {
    const auto& filters = route->config->filters;
    hook.emplace(filters, fctx, conn);
    conn.setResponseHook(&*hook);
    uint64_t body_limit = 0;  // the smallest non-zero wholeRequestBodyLimit() of the chain
    for (const auto& filter : filters) {
      ++hook->ran;
      FilterStatus status = filter->onRequest(fctx);
      if (status == FilterStatus::kPause && !co_await settle(conn, fctx, status)) {
        record(conn, *routes, route, nullptr, "client_closed", fctx.principal);
        co_return;
      }
      if (status == FilterStatus::kReply) {
        replied = true;
        break;
      }
      if (uint64_t n = filter->wholeRequestBodyLimit()) body_limit = body_limit ? std::min(body_limit, n) : n;
    }
    if (!replied && req.upgrade) {
      // A tunnel's bytes would pass a filter that reads bodies unseen: such routes take no
      // protocol upgrade (the route without those filters may).
      for (const auto& filter : filters)
        if (filter->wholeRequestBodyLimit() || filter->wholeResponseBodyLimit()) {
          fctx.reply = upgradeRefused(*route->config, filter->kind());
          replied = true;
          break;
        }
    }
    if (!replied && body_limit) {
      // The body phase: the whole body, read once, for the filters that look at it.
      const uint64_t max = std::min(body_limit, route->config->max_body_bytes);
      int failed = req.hasBody() ? co_await conn.readWholeBody(max) : 0;
      if (failed && conn.clientGone()) {  // no answer to count: as when it leaves mid-pause
        conn.abort();
        record(conn, *routes, route, nullptr, "client_closed", fctx.principal);
        co_return;
      }
      if (failed) {
        fctx.reply = bodyFailure(failed, max);
        replied = true;
      }
      for (size_t i = 0; !replied && i < filters.size(); ++i) {
        if (!filters[i]->wholeRequestBodyLimit()) continue;
        FilterStatus status = filters[i]->onRequestBody(fctx, conn.wholeBody());
        if (status == FilterStatus::kPause && !co_await settle(conn, fctx, status)) {
          record(conn, *routes, route, nullptr, "client_closed", fctx.principal);
          co_return;
        }
        replied = status == FilterStatus::kReply;
      }
    }
  }
  if (replied) {
    if (conn.isOpen()) co_await routes->handlers[route->action.handler]->sendLocalReply(conn, fctx.reply);
    record(conn, *routes, route, nullptr, fctx.reply.type, fctx.principal);
  } else if (!route) {
    co_await conn.sendError(404, "route_not_found",
                            fmt::format("no route matches {} {}", req.method, req.path()));
    record(conn, *routes, nullptr, nullptr, {}, {});
  } else {
    RoutedRequest routed{conn, *route, fctx, {}};
    TerminalHandler* handler = routes->handlers[route->action.handler];
    if (hook) hook->handler = handler;
    co_await handler->serve(routed);
    if (hook) hook->handler = nullptr;
    std::string_view error = fctx.response_replaced.empty() ? routed.report.error : fctx.response_replaced;
    record(conn, *routes, route, &routed.report, error,
           routed.report.principal.empty() ? std::string_view(fctx.principal) : routed.report.principal);
  }
}

Task<bool> ConnectionManager::settle(ServerConnection& conn, FilterContext& fctx, FilterStatus& status) {
  auto waited = co_await unlessClientLeaves(conn, std::move(*fctx.resume));
  fctx.resume.reset();
  if (!waited) {  // the client left: nobody to answer
    conn.abort();
    co_return false;
  }
  status = *waited;
  co_return true;
}

LocalReply ConnectionManager::upgradeRefused(const config::RouteConfig& route, std::string_view filter) {
  LocalReply reply;
  reply.status = 400;
  reply.type = "upgrade_refused";
  reply.message = fmt::format(
      "route '{}' reads bodies ({}), which a protocol upgrade would carry past it unseen: send the "
      "request without Upgrade",
      route.name, filter);
  reply.headers.set("Connection", "close");
  return reply;
}

LocalReply ConnectionManager::bodyFailure(int status, uint64_t max) {
  LocalReply reply;
  reply.status = status;
  if (status == 413) {
    reply.type = "body_too_large";
    reply.message = fmt::format("the request body exceeds the {} bytes this route reads", max);
  } else if (status == 503) {
    reply.type = "overloaded";
    reply.message = "the gateway holds too many request bodies in memory; retry shortly";
    reply.headers.set("Retry-After", "1");
  } else if (status == 408) {
    reply.type = "request_timeout";
    reply.message = "timed out reading the request body";
  } else {
    reply.type = "bad_request";
    reply.message = "malformed request body";
  }
  return reply;
}

void ConnectionManager::record(ServerConnection& conn, const WorkerRoutes& routes, const CompiledRoute* route,
                               const HandlerReport* report, std::string_view error,
                               std::string_view principal) {
  auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - conn.requestStart());
  auto* rs = route ? routes.route_stats[route->index] : unmatched_stats_;
  if (conn.responseStatus() > 0) rs->by_class[telemetry::statusClass(conn.responseStatus())].add();
  rs->latency.observe(static_cast<uint64_t>(elapsed.count()));
  if (!log_ || !log_->enabled()) return;
  static const HandlerReport kNone;
  const HandlerReport& r = report ? *report : kNone;
  const auto& req = conn.request();
  telemetry::AccessRecord rec{
      .method = req.method,
      .target = req.target,
      .host = req.host(),
      .client_ip = conn.clientIp(),
      .status = conn.responseStatus(),
      .bytes_sent = conn.responseBytes(),
      .duration_us = static_cast<uint64_t>(elapsed.count()),
      .route = route ? std::string_view(route->config->name) : std::string_view(),
      .upstream = r.upstream,
      .upstream_addr = r.upstream_addr,
      .upstream_status = r.upstream_status,
      .attempts = r.attempts,
      .error = error,
      .principal = principal,
      .attributes = r.attributes(),
      .worker = worker_index_,
  };
  log_->write(rec);
}

}  // namespace ganglion::http
