// Choosing and calling a model's targets: the strategy's order (config order, weighted,
// lowest time-to-first-token, lowest cost, least busy), open circuits last, targets too small
// for the prompt skipped; per target, retries with backoff that honour Retry-After; failover
// on 429/5xx/timeouts/connection failures and, for streams, when no first event arrives in
// time. Worker thread.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>

#include "llm/catalog.h"
#include "llm/llm_handler.h"
#include "llm/provider_call.h"

namespace ganglion::llm {

/// Builds the request for one target, or refuses it (the next target is tried).
using Encoder = std::function<ApiResult(const CatalogProvider&, const CatalogTarget&, ProviderRequest&)>;

struct DispatchOptions {
  bool stream = false;         ///< wait for the first stream event (first_token_timeout)
  uint64_t prompt_tokens = 0;  ///< for the context-window check
  /// Set while a target holds the request (sent, no answer yet), so a call the client
  /// abandons meanwhile is charged to it; nullptr once it answered with an error.
  const CatalogTarget** in_flight = nullptr;
};

/// Keeps a target counted as busy while its answer is relayed.
class Busy {
 public:
  Busy() = default;
  explicit Busy(TargetState* s) : s_(s) { s_->inflight.fetch_add(1, std::memory_order_relaxed); }
  Busy(Busy&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Busy& operator=(Busy&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Busy() {
    if (s_) s_->inflight.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  TargetState* s_ = nullptr;
};

/// The outcome of trying a model's targets.
struct Attempted {
  ProviderCall call;  ///< conn set: a 2xx head arrived from `provider`
  const CatalogProvider* provider = nullptr;
  const CatalogTarget* target = nullptr;
  std::string prefetched;  ///< body bytes already read (streams: up to the first event)
  upstream::BodyStatus prefetch_status = upstream::BodyStatus::kData;
  std::optional<ApiError> error;  ///< set: every target failed; this is the last failure
  Busy busy;
};

http::Task<Attempted> dispatch(loop::Worker& worker, const Catalog& catalog,
                               std::span<upstream::UpstreamRuntime> upstreams,
                               const config::RouteConfig& route, const CatalogModel& model, CallRecord& rec,
                               const Encoder& encode, DispatchOptions options);

/// The order in which targets are tried for one call (strategy first, open circuits last,
/// too-small context windows left out). Exposed for tests.
std::vector<const CatalogTarget*> attemptOrder(const CatalogModel& model, uint64_t prompt_tokens,
                                               int64_t now_ms);

}  // namespace ganglion::llm
