#include "llm/llm_metrics.h"

#include <fmt/format.h>

namespace ganglion::llm {

ModelCallStats* LlmWorkerMetrics::model(std::string_view alias, std::string_view provider,
                                        std::string_view provider_model) {
  std::string key;
  key.reserve(alias.size() + provider.size() + provider_model.size() + 2);
  key.append(alias).push_back('\x1f');
  key.append(provider).push_back('\x1f');
  key.append(provider_model);
  std::lock_guard lock(mutex_);
  auto& slot = by_key_[key];
  if (!slot) slot = std::make_unique<ModelCallStats>();
  return slot.get();
}

void LlmMetrics::render(std::string& out) const {
  std::map<std::string, std::vector<const ModelCallStats*>> by_key;
  for (auto* w : workers_) {
    std::lock_guard lock(w->mutex_);
    for (auto& [key, s] : w->by_key_) by_key[key].push_back(s.get());
  }
  std::string calls, tokens, cost, estimated, hits;
  for (const auto& [key, list] : by_key) {
    const size_t a = key.find('\x1f'), b = key.find('\x1f', a + 1);
    const std::string labels = fmt::format(
        "model=\"{}\",provider=\"{}\",provider_model=\"{}\"", telemetry::labelValue(key.substr(0, a)),
        telemetry::labelValue(key.substr(a + 1, b - a - 1)), telemetry::labelValue(key.substr(b + 1)));
    uint64_t ok = 0, failed = 0, prompt = 0, completion = 0, cached = 0, est = 0, pico = 0, hit = 0;
    for (auto* s : list) {
      ok += s->calls_ok.get();
      failed += s->calls_failed.get();
      prompt += s->prompt_tokens.get();
      completion += s->completion_tokens.get();
      cached += s->cached_tokens.get();
      est += s->estimated_calls.get();
      pico += s->cost_picodollars.get();
      hit += s->cache_hits.get();
    }
    calls += fmt::format("ganglion_llm_calls_total{{{},outcome=\"ok\"}} {}\n", labels, ok);
    calls += fmt::format("ganglion_llm_calls_total{{{},outcome=\"error\"}} {}\n", labels, failed);
    tokens += fmt::format("ganglion_llm_tokens_total{{{},kind=\"prompt\"}} {}\n", labels, prompt);
    tokens += fmt::format("ganglion_llm_tokens_total{{{},kind=\"completion\"}} {}\n", labels, completion);
    tokens += fmt::format("ganglion_llm_tokens_total{{{},kind=\"cached\"}} {}\n", labels, cached);
    cost += fmt::format("ganglion_llm_cost_usd_total{{{}}} {}.{:012}\n", labels, pico / 1'000'000'000'000ull,
                        pico % 1'000'000'000'000ull);
    estimated += fmt::format("ganglion_llm_usage_estimated_total{{{}}} {}\n", labels, est);
    hits += fmt::format("ganglion_llm_cache_hits_total{{{}}} {}\n", labels, hit);
  }
  telemetry::appendFamilyHead(out, "ganglion_llm_calls_total", "counter", "LLM calls by outcome.");
  out += calls;
  telemetry::appendFamilyHead(out, "ganglion_llm_tokens_total", "counter",
                              "Tokens as the provider reported them (or as estimated), by kind.");
  out += tokens;
  telemetry::appendFamilyHead(out, "ganglion_llm_cost_usd_total", "counter",
                              "Spend at the configured or built-in prices (exact decimal).");
  out += cost;
  telemetry::appendFamilyHead(out, "ganglion_llm_usage_estimated_total", "counter",
                              "Calls whose usage the gateway estimated (client hung up, stream broke).");
  out += estimated;
  telemetry::appendFamilyHead(out, "ganglion_llm_cache_hits_total", "counter",
                              "Answers served from the response cache.");
  out += hits;
}

}  // namespace ganglion::llm
