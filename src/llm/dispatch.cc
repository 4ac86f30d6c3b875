#include "llm/dispatch.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>

#include "base/log.h"
#include "base/strings.h"
#include "base/time.h"

namespace ganglion::llm {

namespace asio = boost::asio;
using http::Task;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kMaxErrorBytes = 1u << 20;

/// Provider answers worth trying again or elsewhere: rate limits, overload, server errors.
bool failoverStatus(int status) { return status == 408 || status == 409 || status == 429 || status >= 500; }

void recordFailure(const CatalogTarget& t, const llm::ModelConfig& m) {
  auto& s = *t.state;
  uint32_t n = s.failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (m.breaker.failures && n >= m.breaker.failures) {
    s.open_until_ms.store(steadyMillis() + m.breaker.cooldown.count(), std::memory_order_relaxed);
    s.failures.store(0, std::memory_order_relaxed);
  }
}

void recordSuccess(const CatalogTarget& t, std::chrono::microseconds ttft) {
  auto& s = *t.state;
  if (s.failures.load(std::memory_order_relaxed)) s.failures.store(0, std::memory_order_relaxed);
  if (s.open_until_ms.load(std::memory_order_relaxed)) s.open_until_ms.store(0, std::memory_order_relaxed);
  int64_t old = s.ttft_ewma_us.load(std::memory_order_relaxed);
  int64_t sample = std::max<int64_t>(1, ttft.count());
  s.ttft_ewma_us.store(old == 0 ? sample : (old * 7 + sample * 3) / 10, std::memory_order_relaxed);
}

Task<void> sleepFor(loop::Worker& worker, std::chrono::milliseconds d) {
  asio::steady_timer timer(worker.io(), d);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

/// Reads a streamed answer until its first event (a "data:" line) or `deadline`.
Task<bool> awaitFirstEvent(http::UpstreamConnection& uc, std::string& buf, upstream::BodyStatus& status,
                           Clock::time_point deadline) {
  while (buf.find("data:") == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) co_return false;
    status = co_await upstream::readBodySome(uc, buf, left);
    if (status == upstream::BodyStatus::kTimeout) co_return false;
    if (status != upstream::BodyStatus::kData) co_return true;  // ended or broke: the relay reports it
  }
  co_return true;
}

}  // namespace

std::vector<const CatalogTarget*> attemptOrder(const CatalogModel& model, uint64_t prompt_tokens,
                                               int64_t now_ms) {
  std::vector<const CatalogTarget*> order;
  for (const auto& t : model.targets)
    if (!t.context_window || prompt_tokens <= t.context_window) order.push_back(&t);
  using llm::ModelStrategy;
  switch (model.config->strategy) {
    case ModelStrategy::kWeighted:
      if (order.size() > 1) {
        thread_local std::mt19937_64 rng{std::random_device{}()};
        uint64_t total = 0;
        for (auto* t : order) total += t->weight;
        uint64_t pick = rng() % total;
        size_t first = 0;
        for (; first + 1 < order.size(); ++first) {
          if (pick < order[first]->weight) break;
          pick -= order[first]->weight;
        }
        std::rotate(order.begin(), order.begin() + static_cast<long>(first),
                    order.begin() + static_cast<long>(first) + 1);
      }
      break;
    case ModelStrategy::kLatency:  // no sample yet sorts first, so every target gets measured
      std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
        return a->state->ttft_ewma_us.load(std::memory_order_relaxed) <
               b->state->ttft_ewma_us.load(std::memory_order_relaxed);
      });
      break;
    case ModelStrategy::kCost:  // by the price of a typical call; unknown prices last
      std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
        auto key = [](const CatalogTarget* t) {
          return t->price ? std::make_pair(0, t->price->input * 3 + t->price->output)
                          : std::make_pair(1, uint64_t{0});
        };
        return key(a) < key(b);
      });
      break;
    case ModelStrategy::kLeastBusy:
      std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
        return a->state->inflight.load(std::memory_order_relaxed) <
               b->state->inflight.load(std::memory_order_relaxed);
      });
      break;
    case ModelStrategy::kSingle:
    case ModelStrategy::kFallback:
      break;
  }
  // Open circuits go last (soonest to close first): tried only when nothing else is left.
  std::stable_sort(order.begin(), order.end(), [now_ms](auto* a, auto* b) {
    auto open = [now_ms](const CatalogTarget* t) {
      int64_t until = t->state->open_until_ms.load(std::memory_order_relaxed);
      return until > now_ms ? until : 0;
    };
    return open(a) < open(b);
  });
  return order;
}

Task<Attempted> dispatch(loop::Worker& worker, const Catalog& catalog,
                         std::span<upstream::UpstreamRuntime> upstreams, const config::RouteConfig& route,
                         const CatalogModel& model, CallRecord& rec, const Encoder& encode,
                         DispatchOptions options) {
  Attempted out;
  const auto& mc = *model.config;
  auto order = attemptOrder(model, options.prompt_tokens, steadyMillis());
  if (order.empty()) {
    out.error =
        ApiError{400, "invalid_request_error",
                 fmt::format("The prompt (about {} tokens) is longer than the context window of every target "
                             "of model '{}'.",
                             options.prompt_tokens, mc.name),
                 "messages", "context_length_exceeded"};
    co_return out;
  }
  for (size_t i = 0; i < order.size(); ++i) {
    const CatalogTarget& target = *order[i];
    const CatalogProvider& provider = catalog.providers()[target.provider];
    const bool last = i + 1 == order.size();
    auto& up = upstreams[provider.upstream];
    if (!provider.codec) {
      ++rec.attempts;
      rec.provider = provider.config->name;
      rec.model = target.model;
      out.error = ApiError{501, "api_error",
                           fmt::format("provider '{}' is of kind '{}', which this build cannot call yet",
                                       provider.config->name, provider.config->kind),
                           "", "provider_kind_unsupported"};
      continue;
    }
    ProviderRequest preq;
    auto refused = encode(provider, target, preq);
    if (!refused.ok()) {
      out.error = std::move(refused.error());
      continue;
    }
    bool next_target = false;
    for (uint32_t retry = 0; !next_target; ++retry) {
      ++rec.attempts;
      rec.provider = provider.config->name;
      rec.model = target.model;
      rec.target = up.def->targets.empty() ? std::string_view() : std::string_view(up.def->targets[0].key);
      Busy busy(target.state.get());
      const auto started = Clock::now();
      if (options.in_flight) *options.in_flight = &target;
      auto call = co_await callProvider(worker, up, provider.host_header, preq, route.first_byte_timeout);
      int64_t retry_after_s = 0;
      // An error answer, or a request that never left: the target did no work.
      if (options.in_flight && (call.failure ? call.failure.retryable : call.status() >= 300))
        *options.in_flight = nullptr;
      if (call.failure) {
        rec.upstream_status = 0;
        logLine(fmt::format("llm: provider '{}': {}", provider.config->name, call.failure.detail));
        out.error = ApiError{call.failure.status, "api_error",
                             fmt::format("provider '{}': {}", provider.config->name, call.failure.message),
                             "", call.failure.code};
        recordFailure(target, mc);
      } else {
        const int status = call.status();
        rec.upstream_status = status;
        up.stats->by_class[telemetry::statusClass(status)].add();
        if (status >= 200 && status < 300) {
          bool first_event = true;
          if (options.stream && mc.first_token_timeout.count() > 0) {
            first_event = co_await awaitFirstEvent(*call.conn, out.prefetched, out.prefetch_status,
                                                   started + mc.first_token_timeout);
          }
          if (first_event) {
            recordSuccess(target,
                          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started));
            out.call = std::move(call);
            out.provider = &provider;
            out.target = &target;
            out.busy = std::move(busy);
            out.error.reset();
            rec.priced = target.price.has_value();
            co_return out;
          }
          // No first token in time: nothing reached the client yet, so another target may answer.
          out.prefetched.clear();
          out.prefetch_status = upstream::BodyStatus::kData;
          recordFailure(target, mc);
          out.error = ApiError{504, "api_error",
                               fmt::format("provider '{}' sent no first token within {} ms",
                                           provider.config->name, mc.first_token_timeout.count()),
                               "", "first_token_timeout"};
          next_target = true;
          continue;
        }
        std::string body;
        auto ra = parseUint(trim(call.conn->parser.response().headers.get("retry-after")));
        bool whole = co_await readWholeBody(*call.conn, body, kMaxErrorBytes, route.idle_timeout);
        // The operator sees the provider's words, but never a credential the provider echoed.
        std::string logged(std::string_view(body).substr(0, 2048));
        for (std::string_view secret : provider.config->secrets())
          if (secret.size() >= 8)
            for (size_t at = logged.find(secret); at != std::string::npos; at = logged.find(secret, at))
              logged.replace(at, secret.size(), "[redacted]");
        logLine(fmt::format("llm: provider '{}' answered {}: {}", provider.config->name, status, logged));
        ApiError said;
        try {
          said = provider.codec->error(status, body);
        } catch (const std::exception&) {  // an error body of an unexpected shape: its status still counts
          said = ApiError{status, std::string(openaiTypeForStatus(status)), providerStatusMessage(status, {}),
                          "", ""};
        }
        out.error =
            clientSafeProviderError(provider.config->name, std::move(said), provider.config->secrets());
        if (ra && *ra > 0 && *ra < 86400 * 7) retry_after_s = static_cast<int64_t>(*ra);
        out.error->retry_after_s = retry_after_s;
        if (whole && call.conn->parser.response().keep_alive) upstream::release(up, 0, std::move(call.conn));
        if (!failoverStatus(status)) co_return out;  // the request itself is at fault
        if (status >= 500 || status == 429) recordFailure(target, mc);
      }
      // Retry this target after a backoff (at least what Retry-After asks), if allowed.
      auto backoff = std::chrono::milliseconds(doublingBackoffMs(250, 10'000, retry + 1));
      auto wait = std::max<std::chrono::milliseconds>(backoff, std::chrono::seconds(retry_after_s));
      if (retry < mc.retries && wait <= mc.retry_max_wait) {
        co_await sleepFor(worker, wait);
        continue;
      }
      next_target = true;
    }
    if (last) break;
  }
  if (!out.error) out.error = ApiError{503, "api_error", "the model has no target to call", "", "no_target"};
  co_return out;
}

}  // namespace ganglion::llm
