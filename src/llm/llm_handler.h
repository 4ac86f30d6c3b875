// The LLM API on routes whose target is `llm:`: gateway-key auth, the OpenAI-compatible
// endpoints (/v1/chat/completions, /v1/embeddings, /v1/models, /v1/responses), model lookup,
// failover over a model's targets, usage read from every answer, errors in OpenAI's shape.
// Concrete, one per worker; the proxy handler dispatches to it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/config.h"
#include "http/server_connection.h"
#include "http/terminal_handler.h"
#include "llm/api_error.h"
#include "llm/ledger.h"
#include "llm/llm_metrics.h"
#include "llm/response_cache.h"
#include "llm/tokenizer/prompt_count.h"
#include "llm/usage.h"
#include "upstream/upstream_client.h"

namespace ganglion::llm {

class Catalog;
class SharedLimits;
class StreamRelay;

/// What one LLM call did, for the access log and metrics.
struct CallRecord {
  std::string_view key_name;     ///< the gateway key's name (owned by the snapshot)
  std::string_view model_alias;  ///< the model name the client asked for (owned by the snapshot)
  std::string_view provider;     ///< the provider that answered last
  std::string model;             ///< the provider model that answered last
  std::string_view target;       ///< provider "host:port"
  int attempts = 0;
  int upstream_status = 0;
  std::string error;  ///< what went wrong (an error code), empty on success
  Usage usage;
  config::Picodollars cost = 0;  ///< of the call, at the serving target's price
  bool priced = false;           ///< the serving target has a known price
  bool cache_hit = false;        ///< answered from the response cache (no provider call)
};

/// Counts a prompt with an encoding, within a budget (llm/tokenizer/prompt_count.h).
using PromptCounter =
    std::function<tokenizer::PromptCount(const tokenizer::Encoding&, tokenizer::CountBudget*)>;

class LlmHandler {
 public:
  LlmHandler(loop::Worker& worker, KeyLedger& ledger, ResponseCache& cache);
  ~LlmHandler();
  /// This worker's ganglion_llm_* counters, for the composition to register with LlmMetrics
  /// (read at scrape time on the main thread).
  LlmWorkerMetrics& metrics() { return metrics_; }

  /// Answers a filter's reply on an LLM route in the client's dialect (error replies), with an
  /// x-request-id. Worker thread.
  http::Task<void> sendLocalReply(http::ServerConnection& conn, const http::LocalReply& reply);
  /// The same reply rendered as a whole response (a refused answer). Worker thread.
  void renderLocalReply(const http::ServerConnection& conn, const http::LocalReply& reply,
                        http::ResponseHead& head, std::string& body);

  /// Serves one request on an `llm:` route with one config version: its `catalog` (with the
  /// settings the API reads), and this worker's runtimes for its upstreams (providers included). The key
  /// the route's key_auth filter authenticated is routed.filters.principal; what the call did
  /// goes into routed.report. Worker thread.
  http::Task<void> handle(http::RoutedRequest& routed, const Catalog& catalog,
                          std::span<upstream::UpstreamRuntime> upstreams);

 private:
  struct Call;
  http::Task<void> chatCompletions(Call& call);
  http::Task<void> embeddings(Call& call);
  http::Task<void> messages(Call& call);
  http::Task<void> countTokens(Call& call);
  http::Task<void> responses(Call& call);
  http::Task<void> listModels(Call& call);
  http::Task<bool> readRequestBody(Call& call, std::string_view& body);
  http::Task<void> sendError(Call& call, const ApiError& error);
  http::Task<void> sendJson(Call& call, int status, std::string_view body);
  /// Looks the call up in the response cache when the key or the request opts in; true when
  /// a cached answer was sent.
  http::Task<bool> answerFromCache(Call& call, std::string_view endpoint, const boost::json::object& body);
  http::Task<void> clientLeft(Call& call);
  /// Usage the provider did not report: the prompt's tokens (promptTokens) and `completion`.
  http::Task<void> estimateUsage(Call& call, uint64_t completion);
  /// The same for a whole answer (`answer`: its JSON), read only when usage is missing.
  http::Task<void> estimateAnswerUsage(Call& call, std::string_view answer);
  /// The call's prompt tokens: the parser's estimate, counted exactly at the first call when
  /// the endpoint gave a counter (Call::count_prompt). Counting is lazy: most calls get usage
  /// from the provider and never need it.
  http::Task<uint64_t> promptTokens(Call& call);
  /// What dispatch's context-window check needs: promptTokens when a target of `model` has a
  /// window, else the estimate (unused).
  http::Task<uint64_t> promptForDispatch(Call& call, const struct CatalogModel& model);
  http::Task<bool> readAnswer(Call& call, struct Attempted& tried, std::string& body, size_t limit);
  http::Task<upstream::BodyStatus> nextStreamBytes(struct Attempted& tried, std::string& raw,
                                                   upstream::Millis idle);
  http::Task<void> keepIfReusable(Call& call, struct Attempted& tried, upstream::BodyStatus status);
  /// Waits for `work` (the dispatch over a model's targets) unless the client leaves first.
  /// The attempt whose provider answered with a 2xx head, or nullopt when the call is over:
  /// the client left (usage estimated), or every target failed and the error was sent.
  http::Task<std::optional<struct Attempted>> awaitTargets(Call& call, http::Task<struct Attempted> work);
  /// Relays a provider's stream to the client through `relay` (the endpoint's encoding), ends
  /// it with an error event if it breaks (or answers a plain error if nothing was sent yet),
  /// records usage (estimated if none came) and keeps a reusable provider connection.
  /// `cache`: a stream that reaches the client whole (and fits) goes into the response cache.
  http::Task<void> relayStream(Call& call, struct Attempted& tried, StreamRelay& relay, bool cache);
  /// The tokens of a prompt, counted by `count` with the encoding of `model`'s first target
  /// (exact for plain text sent to OpenAI-family models); nullopt, where the parser's estimate
  /// stays, when that target has no encoding or the count would cost too much: a body
  /// (`body_bytes`) over kMaxCountedBytes, a piece too long, a full compute pool, or a client
  /// that leaves while it waits. Small bodies are counted on the worker as long as no piece is
  /// long; others on the compute pool, unless `may_wait` is false. Worker thread.
  http::Task<std::optional<tokenizer::PromptCount>> countPrompt(Call& call, const struct CatalogModel& model,
                                                                size_t body_bytes, const PromptCounter& count,
                                                                bool may_wait);
  /// The model the client named, or nullptr after answering 404 in the call's dialect.
  http::Task<const struct CatalogModel*> findModel(Call& call, std::string_view name);
  /// Stores a complete answer for a call that looked the cache up and missed.
  void remember(Call& call, std::string payload, bool stream);
  void addCallHeaders(Call& call, http::ResponseHead& head);

  /// Reserves the call's worst case against the key's limits; false when refused (answered).
  /// Reserves the call's worst case against its key's limits (or answers 429/400/503 and returns
  /// false): `prompt_tokens` (an upper bound) plus, for each of `choices`, `max_output` tokens or,
  /// when 0, the target model's output limit. `unbounded` names an input the provider expands
  /// (a stored conversation): the prompt is then bounded by the targets' context windows, and
  /// refused (400 unbounded_prompt) when one is unknown. `free`: a call that costs nothing
  /// (count_tokens), held to the key's request rate only. Worker thread.
  http::Task<bool> admit(Call& call, const struct CatalogModel& model, uint64_t prompt_tokens,
                         uint64_t max_output, uint32_t choices, std::string_view unbounded,
                         bool free = false);
  using KeyLimitsEntry = std::unordered_map<std::string, KeyLimits>::value_type;
  static const KeyLimitsEntry* limitsOf(const Call& call);

  loop::Worker& worker_;
  LlmWorkerMetrics metrics_;  ///< this worker's ganglion_llm_* counters
  KeyLedger& ledger_;
  ResponseCache& cache_;
  std::unique_ptr<SharedLimits> shared_;  ///< state.redis: this worker's connection, made on first use
  uint64_t next_id_ = 0;
};

/// The LLM API as the terminal handler of one config version on one worker: the worker's
/// LlmHandler with that version's catalog and upstream runtimes.
class LlmRoutes final : public http::TerminalHandler {
 public:
  LlmRoutes(LlmHandler& handler, const Catalog& catalog, std::span<upstream::UpstreamRuntime> upstreams)
      : handler_(handler), catalog_(catalog), upstreams_(upstreams) {}
  /// Serves one request on an `llm:` route. Called by the connection manager, worker thread.
  http::Task<void> serve(http::RoutedRequest& routed) override;
  /// A filter's reply as OpenAI's error object (Anthropic's on /v1/messages), so SDKs read it.
  http::Task<void> sendLocalReply(http::ServerConnection& conn, const http::LocalReply& reply) override;
  void renderLocalReply(const http::ServerConnection& conn, const http::LocalReply& reply,
                        http::ResponseHead& head, std::string& body) override;

 private:
  LlmHandler& handler_;
  const Catalog& catalog_;
  std::span<upstream::UpstreamRuntime> upstreams_;
};

}  // namespace ganglion::llm
