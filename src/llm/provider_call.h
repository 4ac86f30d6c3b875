// One HTTP exchange with a provider: the upstream module's buffered exchange (upstream/
// exchange.h) under the names the LLM router uses.
#pragma once

#include "llm/provider.h"
#include "upstream/exchange.h"

namespace ganglion::llm {

using ProviderCall = upstream::Exchange;

/// Sends `req` to the provider reached through `up` (Host: `host`) and reads the response
/// head within `first_byte`. Worker thread.
inline http::Task<ProviderCall> callProvider(loop::Worker& worker, upstream::UpstreamRuntime& up,
                                             std::string_view host, const ProviderRequest& req,
                                             upstream::Millis first_byte) {
  return upstream::exchange(worker, up, host, req, first_byte);
}

using upstream::readWholeBody;

}  // namespace ganglion::llm
