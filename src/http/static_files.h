// Serving files from a StaticSite: the `static:` routes' terminal handler, and the function
// the admin API serves its console assets with. GET and HEAD; conditional requests (ETag,
// Last-Modified → 304; If-Match, If-Unmodified-Since → 412), one byte range (206, or 416),
// a redirect to the slash form of a directory, JSON errors. Opens and reads that would wait on
// the disk run on the blocking pool (cached ones on the caller's thread), so a slow disk never
// stalls a worker; bodies go out with sendfile when cached, else in 64 KiB pieces.
#pragma once

#include <string_view>

#include "config/config.h"
#include "http/static_site.h"
#include "http/terminal_handler.h"

namespace ganglion::http {

/// Answers the current request of `conn` with the file `url_path` (percent-encoded, no query:
/// the part of the request path under the site) names under `site`, applying `ops` (the
/// route's response_headers; may be null) to the head. Answers exactly once unless the client
/// leaves. Called on the connection's thread (a worker, or the main thread for the admin API).
Task<void> serveStaticFile(ServerConnection& conn, const StaticSite& site, std::string_view url_path,
                           const config::HeaderOps* ops);

/// The `static:` routes' handler: maps the request path onto the route's site (the route's
/// rewrite, if any, applies first) and serves it. One per worker and config version.
class StaticFiles final : public TerminalHandler {
 public:
  /// Called by the connection manager on the worker thread.
  Task<void> serve(RoutedRequest& routed) override;
};

}  // namespace ganglion::http
