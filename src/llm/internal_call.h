// Chat completions the gateway asks for itself (the edge rules' `summarize`): no client, no
// key, no stream; the model's targets in their strategy's order, with retries, failover and
// circuit breakers as for any call. The composition calls it for the edge through
// server::WorkerRequests. Worker thread.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "http/server_connection.h"
#include "llm/usage.h"
#include "upstream/upstream_client.h"

namespace ganglion::llm {

class Catalog;

struct InternalAnswer {
  std::string text;      ///< the first choice's message content
  std::string provider;  ///< the provider that answered
  std::string model;     ///< its model
  Usage usage;
};

/// One system and one user message to `model` (a name in `catalog`), at most `max_tokens`
/// out. An error says which step failed (unknown model, every target failed, an answer of an
/// unexpected shape). `timeout`: for the answer's head and between its reads.
http::Task<Result<InternalAnswer>> completeChat(loop::Worker& worker, const Catalog& catalog,
                                                std::span<upstream::UpstreamRuntime> upstreams,
                                                std::string_view model, std::string_view system,
                                                std::string_view user, uint32_t max_tokens,
                                                upstream::Millis timeout);

}  // namespace ganglion::llm
