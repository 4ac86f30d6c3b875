// Serialises the request head sent upstream: hop-by-hop fields dropped, route header
// operations and path rewrite applied, X-Forwarded-* added, body framing restated.
#pragma once

#include <string>

#include "http/headers.h"
#include "http/router.h"

namespace ganglion::proxy {

using http::CompiledRoute;

/// Fills `out` (reusing its capacity). Returns false, and the request must be refused, when
/// the route's rewrite would send a path with a dot segment: a prefix that ends within a
/// segment (`/api` matching `/api../admin`) joined to the new prefix gives `/v1/../admin`,
/// which the upstream resolves outside the rewritten prefix. Worker thread, once per request.
bool buildUpstreamHead(std::string& out, const http::RequestHead& req, const CompiledRoute& route,
                       const std::string& client_ip, std::string_view default_host);

}  // namespace ganglion::proxy
