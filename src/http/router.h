// Route matching, compiled once per config snapshot. Priority (docs/configuration.md):
// exact host > longest wildcard host > any host; then exact path > path template > longest
// prefix; then routes with more method/header conditions; then config order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "http/headers.h"

namespace ganglion::http {

/// Where a route's requests go once its filters let them through: a row of the connection
/// manager's terminal-handler table (server/handler_table.h) and that handler's own index
/// for the route (the proxy: the upstream).
struct RouteAction {
  uint8_t handler = 0;
  uint32_t target = 0;
};

struct CompiledRoute {
  enum class HostKind { kExact, kWildcard, kAny };
  enum class PathKind { kExact, kTemplate, kPrefix };

  const config::RouteConfig* config = nullptr;
  size_t index = 0;    ///< position in the config file
  RouteAction action;  ///< the terminal handler that serves it
  HostKind host_kind = HostKind::kAny;
  std::string host;  ///< lower case; for wildcards the ".suffix" part
  PathKind path_kind = PathKind::kPrefix;
  std::string path;                   ///< exact path or prefix
  std::vector<std::string> segments;  ///< template segments; "{x}" captures one segment
  size_t literal_segments = 0;
};

/// Immutable after build(); shared by all workers through the snapshot. Thread-safe to read.
///
/// Matching does not scan the routes: they are indexed by host (exact names in a hash map,
/// wildcard suffixes by length, then the routes without a host) and, within a host, by path
/// (exact paths in a hash map, templates in a segment trie, prefixes by length), so a request
/// costs a few hash lookups however many routes there are. Among the routes an index returns,
/// the first in priority order whose method and header conditions hold wins.
class Router {
 public:
  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;

  /// Builds the table; `action` says which terminal handler serves each route (none: all
  /// zero). Main thread only.
  void build(const std::vector<config::RouteConfig>& routes,
             const std::function<RouteAction(const config::RouteConfig&)>& action = {});
  /// Returns the matching route or nullptr. Called on worker threads for every request.
  const CompiledRoute* match(const RequestHead& request) const;
  const std::vector<CompiledRoute>& routes() const { return routes_; }

 private:
  struct Index;
  std::vector<CompiledRoute> routes_;  ///< in priority order
  std::unique_ptr<Index> written_;     ///< the routes of the config file
  std::unique_ptr<Index> implicit_;    ///< routes the gateway adds, tried after every written one
};

/// "Host: Example.COM:8080" → "example.com" (lower case, port removed, IPv6 brackets kept).
std::string normaliseHost(std::string_view host);

/// `method` is in a route's `methods` (upper case); GET also admits HEAD, as nginx's does, so a
/// HEAD cannot fall past a GET route (and its filters) to a broader one.
bool methodListed(std::span<const std::string> methods, std::string_view method);

/// The request target after `route`'s rewrite (docs/configuration.md "Rewrite"), with the
/// query kept; the target itself when the route has none. Worker thread.
std::string rewriteTarget(const RequestHead& req, const CompiledRoute& route);

}  // namespace ganglion::http
