// One HTTP exchange with a provider over the worker's pooled connections to it: writes the
// request, waits for the response head, and hands the connection back with the body unread.
#pragma once

#include <memory>
#include <string>

#include "llm/provider.h"
#include "upstream/upstream_client.h"

namespace ganglion::llm {

struct ProviderCall {
  std::unique_ptr<http::UpstreamConnection> conn;  ///< set when a response head arrived
  upstream::UpstreamFailure failure;               ///< set otherwise
  int status() const { return conn ? conn->parser.response().status : 0; }
};

/// Sends `req` to the provider reached through `up` (Host: `host`) and reads the response
/// head within `first_byte`. A pooled connection the provider had closed is replaced
/// transparently. Worker thread.
http::Task<ProviderCall> callProvider(loop::Worker& worker, upstream::UpstreamRuntime& up,
                                      std::string_view host, const ProviderRequest& req,
                                      upstream::Millis first_byte);

/// Reads the rest of the response body into `out`, failing past `limit` bytes. Returns false
/// when the body could not be read whole. Worker thread.
http::Task<bool> readWholeBody(http::UpstreamConnection& uc, std::string& out, size_t limit,
                               upstream::Millis idle);

}  // namespace ganglion::llm
