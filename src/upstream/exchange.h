// One buffered HTTP exchange with target 0 of an upstream over the worker's pooled
// connections: writes a request held whole in memory, waits for the response head, and hands
// the connection back with the body unread. A pooled connection the peer had closed is
// replaced transparently (the request is in memory, so it can be sent again). The LLM router
// calls providers through it; the edge's HTTP sinks post batches through it.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "upstream/buffered_request.h"
#include "upstream/upstream_client.h"

namespace ganglion::upstream {

struct Exchange {
  std::unique_ptr<http::UpstreamConnection> conn;  ///< set when a response head arrived
  UpstreamFailure failure;                         ///< set otherwise
  int status() const { return conn ? conn->parser.response().status : 0; }
};

/// Sends `req` to the upstream's first target (Host: `host`) and reads the response head
/// within `first_byte`. Worker thread.
http::Task<Exchange> exchange(loop::Worker& worker, UpstreamRuntime& up, std::string_view host,
                              const BufferedRequest& req, Millis first_byte);

/// Reads the rest of the response body into `out`, failing past `limit` bytes. Returns false
/// when the body could not be read whole. Worker thread.
http::Task<bool> readWholeBody(http::UpstreamConnection& uc, std::string& out, size_t limit, Millis idle);

/// What a request whose answer body does not matter got back.
struct Answered {
  int status = 0;  ///< 0: no answer (`failure` says why)
  std::string failure;
  std::string refusal;  ///< a non-2xx answer's body, its first kRefusalBytes (what the peer said)
  static constexpr size_t kRefusalBytes = 1024;
};
/// exchange() within `timeout`, then the answer's body read and dropped (at most `limit`
/// bytes); the connection goes back to the pool when the body was read whole and it may be
/// kept alive. The edge's HTTP sinks and rules' webhooks post through it. Worker thread.
http::Task<Answered> exchangeIgnoringBody(loop::Worker& worker, UpstreamRuntime& up, std::string_view host,
                                          const BufferedRequest& req, Millis timeout,
                                          size_t limit = 64 * 1024);

}  // namespace ganglion::upstream
