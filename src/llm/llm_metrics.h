// The LLM API's metric families (ganglion_llm_*): calls, tokens, cost, estimated usage and
// cache hits by model alias, provider and provider model. Each worker's LlmHandler counts into
// its own LlmWorkerMetrics (one writer per counter); LlmMetrics sums them at scrape time.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "telemetry/metrics.h"

namespace ganglion::llm {

/// Calls of one model alias served by one provider model.
struct ModelCallStats {
  telemetry::Counter calls_ok;
  telemetry::Counter calls_failed;
  telemetry::Counter prompt_tokens;
  telemetry::Counter completion_tokens;
  telemetry::Counter cached_tokens;
  telemetry::Counter estimated_calls;  ///< usage counted by the gateway, not reported by the provider
  telemetry::Counter cost_picodollars;
  telemetry::Counter cache_hits;
};

/// One worker's LLM counters. Entries are made on the worker (under `mutex`) and never
/// destroyed, so their addresses stay valid across config reloads.
class LlmWorkerMetrics {
 public:
  /// The counters of (alias, provider, provider model). Worker thread.
  ModelCallStats* model(std::string_view alias, std::string_view provider, std::string_view provider_model);

 private:
  friend class LlmMetrics;
  std::mutex mutex_;  ///< guards the map's structure, not the counters
  std::map<std::string, std::unique_ptr<ModelCallStats>> by_key_;  ///< alias \x1f provider \x1f model
};

/// The ganglion_llm_* families for /metrics, summed over the workers. Registered by the
/// composition; render() runs on the main thread at scrape time.
class LlmMetrics final : public telemetry::MetricsSource {
 public:
  void add(LlmWorkerMetrics& worker) { workers_.push_back(&worker); }
  void render(std::string& out) const override;

 private:
  std::vector<LlmWorkerMetrics*> workers_;
};

}  // namespace ganglion::llm
