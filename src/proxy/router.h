// Route matching, compiled once per config snapshot. Priority (docs/configuration.md):
// exact host > longest wildcard host > any host; then exact path > path template > longest
// prefix; then routes with more method/header conditions; then config order.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "control/config.h"
#include "http/headers.h"

namespace ganglion::proxy {

struct CompiledRoute {
  enum class HostKind { kExact, kWildcard, kAny };
  enum class PathKind { kExact, kTemplate, kPrefix };

  const control::RouteConfig* config = nullptr;
  size_t index = 0;           ///< position in the config file
  size_t upstream_index = 0;  ///< into Snapshot::upstreams
  HostKind host_kind = HostKind::kAny;
  std::string host;  ///< lower case; for wildcards the ".suffix" part
  PathKind path_kind = PathKind::kPrefix;
  std::string path;                   ///< exact path or prefix
  std::vector<std::string> segments;  ///< template segments; "{x}" captures one segment
  size_t literal_segments = 0;
};

/// Immutable after build(); shared by all workers through the snapshot. Thread-safe to read.
class Router {
 public:
  /// Builds the table; `upstream_index_of` maps upstream names to indices. Main thread only.
  void build(const std::vector<control::RouteConfig>& routes,
             const std::vector<control::UpstreamConfig>& upstreams);
  /// Returns the matching route or nullptr. Called on worker threads for every request.
  const CompiledRoute* match(const http::RequestHead& request) const;
  const std::vector<CompiledRoute>& routes() const { return routes_; }

 private:
  std::vector<CompiledRoute> routes_;  ///< in priority order
};

/// "Host: Example.COM:8080" → "example.com" (lower case, port removed, IPv6 brackets kept).
std::string normaliseHost(std::string_view host);

}  // namespace ganglion::proxy
