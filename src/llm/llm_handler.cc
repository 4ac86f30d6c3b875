#include "llm/llm_handler.h"

#include <fmt/format.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/json.hpp>
#include <random>

#include "base/hash.h"
#include "base/log.h"
#include "base/strings.h"
#include "http/sse.h"
#include "http/unless_client_leaves.h"
#include "llm/anthropic_ingress.h"
#include "llm/api_error.h"
#include "llm/catalog.h"
#include "llm/chat_request.h"
#include "llm/dispatch.h"
#include "llm/openai_shapes.h"
#include "llm/prices.h"
#include "llm/prompt_bounds.h"
#include "llm/provider_call.h"
#include "llm/providers/anthropic.h"
#include "llm/providers/openai.h"
#include "llm/responses_ingress.h"
#include "llm/shared_limits.h"
#include "llm/stream_relays.h"
#include "llm/tokenizer/prompt_count.h"
#include "loop/pools.h"

namespace ganglion::llm {

namespace json = boost::json;
using http::Task;

namespace {

constexpr size_t kMaxAnswerBytes = 128u << 20;  // embeddings of 2048 inputs fit
constexpr size_t kMaxErrorBytes = 1u << 20;
/// Output tokens reserved per choice for a call that sets no max_tokens to a model whose output
/// limit is unknown (budgets and tpm reserve the most a call may cost; the difference is
/// refunded when it ends). Set `max_output` on the model target to reserve exactly.
constexpr uint64_t kReservedOutput = 4096;

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// A request id: the client's own when it sent a sane one, else a fresh random one.
std::string requestId(const http::RequestHead& req, uint64_t& counter) {
  std::string_view given = req.headers.get("x-request-id");
  if (!given.empty() && given.size() <= 128) {
    bool sane = true;
    for (char c : given) sane = sane && c > 32 && c < 127;
    if (sane) return std::string(given);
  }
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("req_{:016x}{:08x}", rng(), static_cast<uint32_t>(++counter));
}

/// Copies what a call did into the manager's report when the call ends, however it ends.
struct ReportOnExit {
  CallRecord& rec;
  http::HandlerReport& report;
  ~ReportOnExit() {
    report.upstream = rec.provider;
    report.upstream_addr = rec.target;
    report.upstream_status = rec.upstream_status;
    report.attempts = rec.attempts;
    report.error = report.keep(std::move(rec.error));
    report.principal = rec.key_name;
    if (rec.model.empty()) return;  // no model answered: nothing of the LLM's to log
    report.attribute("model", report.keep(std::move(rec.model)));
    report.attribute("prompt_tokens", rec.usage.prompt);
    report.attribute("completion_tokens", rec.usage.completion);
    report.attribute("cached_tokens", rec.usage.cached);
    if (rec.usage.estimated) report.flag("usage_estimated", true);
    if (rec.cache_hit) report.attribute("cache", std::string_view("hit"));
    if (rec.priced) report.attribute("cost_usd", report.keep(formatUsd(rec.cost)));
  }
};

/// /v1/messages (and count_tokens): Anthropic's API, whose errors have Anthropic's shape.
bool isAnthropicPath(std::string_view path) { return path.find("/messages") != std::string_view::npos; }

/// A streamed answer: server-sent events, or AWS event-stream frames (Bedrock).
bool isStreamType(std::string_view content_type) {
  return content_type.find("text/event-stream") != std::string_view::npos ||
         content_type.find("application/vnd.amazon.eventstream") != std::string_view::npos;
}

json::object modelJson(const CatalogModel& m) {
  return json::object{{"id", m.config->name}, {"object", "model"}, {"created", 0}, {"owned_by", "ganglion"}};
}

std::string modelListJson(const Catalog& catalog) {
  json::array data;
  for (const auto& m : catalog.models()) data.push_back(modelJson(m));
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

}  // namespace

/// Runs a codec step on a provider's answer. Codecs read JSON with accessors that throw on a
/// value of another type than the provider's documentation promises; that is the provider's
/// fault, so it becomes a 502 in the client's dialect (the details go to the log), never an
/// exception that would drop the client's connection.
template <typename F>
ApiResult guardCodec(std::string_view provider, F&& step) {
  try {
    return step();
  } catch (const std::exception& e) {
    logLine(
        fmt::format("llm: provider '{}' sent an answer the codec could not read: {}", provider, e.what()));
    return badProviderAnswer("an answer of an unexpected shape");
  }
}

using http::unlessClientLeaves;

struct LlmHandler::Call {
  http::ServerConnection& conn;
  const LlmSettings& settings;
  const Catalog& catalog;
  std::span<upstream::UpstreamRuntime> upstreams;
  const config::RouteConfig& route;
  CallRecord& rec;
  KeyLedger& ledger;
  LlmWorkerMetrics& metrics;
  std::string request_id{};
  SharedLimits* shared = nullptr;  ///< set when the reservation is held in Redis
  std::string attempts_text{};
  std::string retry_after_text{};
  KeyLedger::Reservation reservation{};
  const CatalogTarget* served = nullptr;  ///< the target that answered (or was working when the client left)
  const CatalogTarget* in_flight = nullptr;  ///< the target dispatch is waiting on
  bool anthropic_dialect = false;            ///< /v1/messages: errors in Anthropic's shape
  bool cache_lookup = false;                 ///< the response cache was consulted
  std::string_view cache_state{};            ///< "hit" or "miss" (x-ganglion-cache), empty when not consulted
  Sha256 cache_key{};
  std::string cached_provider{};   ///< a cache hit's provider
  std::string_view token_count{};  ///< count_tokens: "exact" or "estimate" (x-ganglion-token-count)
  /// The prompt's tokens as the parser estimated them, until promptTokens() counts them with
  /// `count_prompt` (set by the endpoint; it reads the endpoint's request, which outlives it).
  uint64_t prompt_tokens = 0;
  PromptCounter count_prompt{};
  const CatalogModel* model = nullptr;
  size_t body_bytes = 0;
  /// The prompt tokens the key's limits reserved (0: no limits): an estimate never charges more.
  uint64_t prompt_cap = 0;

  /// What promptTokens() starts from (the parser's `estimate`) and how it counts exactly with
  /// the encoding of `m`'s first target; `bytes`: the request body's size. Worker thread.
  void countLater(const CatalogModel& m, size_t bytes, uint64_t estimate, PromptCounter count) {
    model = &m;
    body_bytes = bytes;
    prompt_tokens = estimate;
    count_prompt = std::move(count);
  }

  /// Prices the call and settles its reservation with what it used, whichever way it ended
  /// (a call that failed before any answer used nothing).
  ~Call() {
    if (served && served->price && (rec.usage.reported || rec.usage.estimated))
      rec.cost = costOf(*served->price, rec.usage);
    if (reservation.shared)
      shared->settle(reservation, rec.usage.total(), rec.cost);
    else
      ledger.settle(reservation, rec.usage.total(), rec.cost);
    if (rec.model_alias.empty() || rec.model.empty()) return;
    auto* s = metrics.model(
        rec.model_alias, rec.provider.empty() ? std::string_view(cached_provider) : rec.provider, rec.model);
    (rec.error.empty() ? s->calls_ok : s->calls_failed).add();
    s->prompt_tokens.add(rec.usage.prompt);
    s->completion_tokens.add(rec.usage.completion);
    s->cached_tokens.add(rec.usage.cached);
    if (rec.usage.estimated) s->estimated_calls.add();
    s->cost_picodollars.add(rec.cost);
    if (rec.cache_hit) s->cache_hits.add();
  }
};

/// The call's key (name → limits) when it has limits, or null: a call without limits
/// reserves nothing, so nothing needs bounding for it.
const LlmHandler::KeyLimitsEntry* LlmHandler::limitsOf(const Call& call) {
  const auto& limits_by_key = call.settings.keys->limits;
  auto it =
      call.rec.key_name.empty() ? limits_by_key.end() : limits_by_key.find(std::string(call.rec.key_name));
  return it == limits_by_key.end() ? nullptr : &*it;
}

Task<bool> LlmHandler::admit(Call& call, const CatalogModel& model, uint64_t prompt_tokens,
                             uint64_t max_output, uint32_t choices, std::string_view unbounded, bool free) {
  const KeyLimitsEntry* it = limitsOf(call);
  if (!it) co_return true;
  const auto& limits = it->second;
  if (!unbounded.empty()) {
    // The provider adds input the gateway cannot see: only the model's context window bounds it.
    for (const auto& t : model.targets) {
      if (!t.context_limit) {
        const ApiError err{
            400, "invalid_request_error",
            fmt::format("The gateway cannot bound the prompt of this call: {} adds input on the "
                        "provider's side, so the limits of key '{}' cannot be kept. The operator "
                        "must set 'context_window' on the targets of model '{}'.",
                        unbounded, call.rec.key_name, model.config->name),
            "", "unbounded_prompt"};
        co_await sendError(call, err);
        co_return false;
      }
      prompt_tokens = std::max(prompt_tokens, t.context_limit);
    }
  }
  // Fallback may land on any target: reserve the dearest. Without max_tokens each choice may
  // run to the target model's own output limit.
  Picodollars worst = 0;
  uint64_t most_output = 0;
  for (const auto& t : model.targets) {
    const uint64_t output = (max_output     ? max_output
                             : t.max_output ? t.max_output
                                            : kReservedOutput) *
                            choices;
    most_output = std::max(most_output, output);
    if (t.price) {
      worst = std::max(worst, worstCaseCost(*t.price, prompt_tokens, output));
    } else if (limits.budget && !free) {
      const ApiError err{
          400, "invalid_request_error",
          fmt::format("Model '{}' has no known price for '{}', so the budget of key '{}' cannot be "
                      "kept: the operator must set a price for it.",
                      model.config->name, t.model, call.rec.key_name),
          "model", "price_unknown"};
      co_await sendError(call, err);
      co_return false;
    }
  }
  const uint64_t tokens = prompt_tokens + most_output;
  std::optional<Refusal> refused;
  if (call.settings.state.redis) {
    if (!shared_)
      shared_ = std::make_unique<SharedLimits>(worker_.io(), call.settings.state, worker_.index());
    call.shared = shared_.get();
    auto verdict = co_await shared_->admit(it->first, limits, tokens, worst, call.reservation);
    if (verdict.unavailable.empty()) {
      refused = std::move(verdict.refusal);
    } else if (limits.budget) {
      // A budget that cannot be checked is not spent: fail closed (the reason is in the log).
      ApiError err{
          503, "api_error",
          fmt::format("The gateway cannot check the budget of key '{}' right now, so the call was not "
                      "made. Try again shortly.",
                      call.rec.key_name),
          "", "limits_unavailable"};
      err.retry_after_s = 1;
      co_await sendError(call, err);
      co_return false;
    } else {
      // Rates only: keep serving, limited per instance until Redis is back.
      refused = call.ledger.admit(it->first, limits, tokens, worst, call.reservation);
    }
  } else {
    refused = call.ledger.admit(it->first, limits, tokens, worst, call.reservation);
  }
  if (!refused) {
    call.prompt_cap = prompt_tokens;
    co_return true;
  }
  ApiError err{429, refused->code == "budget_exceeded" ? "insufficient_quota" : "rate_limit_error",
               std::move(refused->message), "", refused->code};
  err.retry_after_s = refused->retry_after_s;
  co_await sendError(call, err);
  co_return false;
}

void LlmHandler::addCallHeaders(Call& call, http::ResponseHead& head) {
  head.headers.set("x-request-id", call.request_id);
  if (!call.rec.provider.empty() || !call.cached_provider.empty()) {
    head.headers.set("x-ganglion-provider",
                     call.rec.provider.empty() ? std::string_view(call.cached_provider) : call.rec.provider);
    head.headers.set("x-ganglion-model", call.rec.model);
  }
  if (!call.cache_state.empty()) head.headers.set("x-ganglion-cache", call.cache_state);
  if (!call.token_count.empty()) head.headers.set("x-ganglion-token-count", call.token_count);
  if (call.rec.attempts > 0) {
    call.attempts_text = std::to_string(call.rec.attempts);
    head.headers.set("x-ganglion-attempts", call.attempts_text);
  }
}

Task<void> LlmHandler::sendJson(Call& call, int status, std::string_view body) {
  http::ResponseHead head;
  head.status = status;
  head.headers.add("Content-Type", "application/json");
  head.has_content_length = true;
  head.content_length = body.size();
  addCallHeaders(call, head);
  std::array<std::string_view, 1> pieces{body};
  co_await call.conn.writeResponse(&head, pieces, true);
}

/// Usage the provider did not report (the client left, the stream broke, the provider does
/// not count): the gateway's estimate stands in, marked, and is charged like reported usage
/// when the call settles. The one place every endpoint and both answer shapes go through.
Task<void> LlmHandler::estimateUsage(Call& call, uint64_t completion) {
  if (call.rec.usage.reported) co_return;
  const uint64_t prompt = co_await promptTokens(call);
  call.rec.usage.estimated = true;
  call.rec.usage.prompt = prompt;
  call.rec.usage.completion = completion;
}

Task<void> LlmHandler::estimateAnswerUsage(Call& call, std::string_view answer) {
  if (call.rec.usage.reported) co_return;  // the usual case: the answer is not parsed again
  co_await estimateUsage(call, estimateAnswerTokens(answer));
}

/// The client left before its answer: nothing is sent; the call is charged the estimate of
/// what the target it reached may have used (the prompt; the provider reported nothing).
Task<void> LlmHandler::clientLeft(Call& call) {
  call.rec.error = "client_closed";
  call.conn.abort();
  co_await estimateUsage(call, 0);
}

namespace {
/// Bodies up to this size are counted on the worker (prose: a millisecond at most), unless a
/// piece is longer than kMaxPieceOnWorker (a single word merges in O(n log n): 64 KiB of one
/// letter would take ~20 ms).
constexpr size_t kCountOffLoopFrom = 64 << 10;
constexpr size_t kMaxPieceOnWorker = 1 << 10;
/// Larger bodies keep the parser's estimate: about the largest prompt any OpenAI model takes
/// (a million tokens), and a bound on the counting work one call may ask for.
constexpr size_t kMaxCountedBytes = 4 << 20;
/// On the pool, a piece longer than this stops the count (~100 ms of merging): no real prompt
/// has a quarter megabyte without a space or punctuation.
constexpr size_t kMaxPieceOnPool = 256 << 10;
/// Body bytes waiting on or being counted by the compute pool, all workers together; past
/// kMaxQueuedCountBytes a count is not queued (the estimate stays), so a flood of large
/// prompts cannot make other calls wait on the pool for long.
std::atomic<size_t> g_queued_count_bytes{0};
constexpr size_t kMaxQueuedCountBytes = 8 << 20;

/// Counts a chat request's prompt (chat completions, and /v1/messages in its chat form);
/// `req` must outlive the counter.
PromptCounter chatCounter(const ChatRequest& req) {
  return [&req](const tokenizer::Encoding& enc, tokenizer::CountBudget* budget) {
    return tokenizer::countChatPrompt(enc, req.body, req.media_estimate, budget);
  };
}

/// Completes when the client hangs up, after raising `stop`.
Task<void> stopWhenClientLeaves(http::ServerConnection& conn, std::shared_ptr<std::atomic<bool>> stop) {
  co_await conn.closedByClient();
  stop->store(true);
}
}  // namespace

Task<std::optional<tokenizer::PromptCount>> LlmHandler::countPrompt(Call& call, const CatalogModel& model,
                                                                    size_t body_bytes,
                                                                    const PromptCounter& count,
                                                                    bool may_wait) {
  if (model.targets.empty() || model.targets[0].encoding.empty() || body_bytes > kMaxCountedBytes)
    co_return std::nullopt;
  const std::string_view name = model.targets[0].encoding;
  const tokenizer::Encoding* enc = tokenizer::loadedEncoding(name);
  if (!enc) {  // the first count: the vocabulary's index is built on the pool (~15 ms, once)
    enc = co_await loop::runCompute([name] { return tokenizer::encodingNamed(name); });
    if (!enc) co_return std::nullopt;  // a build without vocabularies
  }
  if (body_bytes < kCountOffLoopFrom) {
    tokenizer::CountBudget budget;
    budget.max_piece = kMaxPieceOnWorker;
    auto counted = count(*enc, &budget);
    if (!budget.stopped) co_return counted;
  }
  if (!may_wait) co_return std::nullopt;
  if (g_queued_count_bytes.fetch_add(body_bytes) + body_bytes > kMaxQueuedCountBytes) {
    g_queued_count_bytes.fetch_sub(body_bytes);
    co_return std::nullopt;
  }
  struct Dequeue {
    size_t bytes;
    ~Dequeue() { g_queued_count_bytes.fetch_sub(bytes); }
  } dequeue{body_bytes};
  using namespace boost::asio::experimental::awaitable_operators;
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto work = loop::runCompute([&count, enc, stop] {
    tokenizer::CountBudget budget;
    budget.max_piece = kMaxPieceOnPool;
    budget.cancel = stop.get();
    auto counted = count(*enc, &budget);
    return budget.stopped ? std::optional<tokenizer::PromptCount>() : std::optional(counted);
  });
  auto raced = co_await (std::move(work) || stopWhenClientLeaves(call.conn, stop));
  if (raced.index() != 0) co_return std::nullopt;
  co_return std::get<0>(raced);
}

Task<uint64_t> LlmHandler::promptTokens(Call& call) {
  if (call.count_prompt && call.model) {
    auto count = std::move(call.count_prompt);
    call.count_prompt = nullptr;
    // A client that left is not waited for: only what counts cheaply on the worker.
    const bool may_wait = call.rec.error != "client_closed";
    if (auto counted = co_await countPrompt(call, *call.model, call.body_bytes, count, may_wait))
      call.prompt_tokens = counted->tokens;
  }
  if (call.prompt_cap) call.prompt_tokens = std::min(call.prompt_tokens, call.prompt_cap);
  co_return call.prompt_tokens;
}

Task<uint64_t> LlmHandler::promptForDispatch(Call& call, const CatalogModel& model) {
  for (const auto& t : model.targets)
    if (t.context_window) co_return co_await promptTokens(call);
  co_return call.prompt_tokens;
}

Task<const CatalogModel*> LlmHandler::findModel(Call& call, std::string_view name) {
  const CatalogModel* model = call.catalog.find(name);
  if (model) {
    call.rec.model_alias = model->config->name;
    co_return model;
  }
  const ApiError err =
      call.anthropic_dialect
          ? ApiError{404, "not_found_error", fmt::format("model: {}", name), "model", "not_found_error"}
          : ApiError{404, "invalid_request_error",
                     fmt::format("The model '{}' does not exist or you do not have access to it.", name),
                     "model", "model_not_found"};
  co_await sendError(call, err);
  co_return nullptr;
}

Task<bool> LlmHandler::answerFromCache(Call& call, std::string_view endpoint, const json::object& body) {
  std::string_view asked = trim(call.conn.request().headers.get("x-ganglion-cache"));
  bool wanted;
  if (iequals(asked, "on") || iequals(asked, "true") || asked == "1") {
    wanted = true;
  } else if (iequals(asked, "off") || iequals(asked, "false") || asked == "0" || iequals(asked, "no-store")) {
    wanted = false;
  } else {
    const auto& by_key = call.settings.keys->cache;
    wanted = !call.rec.key_name.empty() && by_key.count(std::string(call.rec.key_name));
  }
  if (!wanted) co_return false;
  call.cache_lookup = true;
  call.cache_key = cacheKey(call.rec.key_name, endpoint, body);
  auto hit = cache_.get(call.cache_key);
  if (!hit) {
    call.cache_state = "miss";
    co_return false;
  }
  call.cache_state = "hit";
  call.rec.cache_hit = true;
  call.cached_provider = std::move(hit->provider);
  call.rec.model = std::move(hit->model);
  http::ResponseHead head;
  head.status = 200;
  head.headers.add("Content-Type", hit->stream ? "text/event-stream" : "application/json");
  head.has_content_length = true;
  head.content_length = hit->payload.size();
  addCallHeaders(call, head);
  std::array<std::string_view, 1> pieces{hit->payload};
  co_await call.conn.writeResponse(&head, pieces, true);
  co_return true;
}

void LlmHandler::remember(Call& call, std::string payload, bool stream) {
  if (!call.cache_lookup || call.cache_state != "miss") return;
  const auto& cfg = call.settings.cache;
  cache_.put(call.cache_key, {std::move(payload), stream, std::string(call.rec.provider), call.rec.model},
             cfg.ttl, cfg.max_bytes);
}

namespace {

/// Writes `error` as the whole answer, in OpenAI's shape or Anthropic's, with the headers
/// already in `head`.
/// An API error as a whole response in the client's dialect: status, JSON body, Content-Type
/// and length (the head's other fields are the caller's).
void renderApiError(http::ResponseHead& head, std::string& body, const ApiError& error, bool anthropic) {
  body = anthropic ? anthropicErrorBody(error) : openaiErrorBody(error);
  head.status = error.status;
  head.headers.set("Content-Type", "application/json");
  head.chunked = false;
  head.has_content_length = true;
  head.content_length = body.size();
}

Task<void> writeApiError(http::ServerConnection& conn, http::ResponseHead& head, const ApiError& error,
                         bool anthropic) {
  std::string body;
  renderApiError(head, body, error, anthropic);
  std::array<std::string_view, 1> pieces{body};
  co_await conn.writeResponse(&head, pieces, true);
}

}  // namespace

Task<void> LlmHandler::sendError(Call& call, const ApiError& error) {
  if (call.rec.error.empty()) call.rec.error = error.code.empty() ? error.type : error.code;
  http::ResponseHead head;
  if (error.status == 401) head.headers.add("WWW-Authenticate", "Bearer");
  if (error.retry_after_s > 0) {
    call.retry_after_text = std::to_string(error.retry_after_s);
    head.headers.add("Retry-After", call.retry_after_text);
  }
  addCallHeaders(call, head);
  co_await writeApiError(call.conn, head, error, call.anthropic_dialect);
}

Task<bool> LlmHandler::readRequestBody(Call& call, std::string_view& body) {
  auto& req = call.conn.request();
  const uint64_t max = call.route.max_body_bytes;
  if (req.has_content_length && req.content_length > max) {
    const ApiError err{
        413, "invalid_request_error",
        fmt::format("The request body of {} bytes exceeds the limit of {} bytes.", req.content_length, max),
        "", "request_too_large"};
    co_await sendError(call, err);
    co_return false;
  }
  // The connection's whole-body read: bounded, counted against max_buffered_body_bytes, and
  // read once when a filter of the route read it already.
  const int failed = co_await call.conn.readWholeBody(max);
  if (failed == 0) {
    body = call.conn.wholeBody();
    co_return true;
  }
  call.rec.error = failed == 503 ? "overloaded" : "client_body_error";
  if (!call.conn.isOpen()) co_return false;
  ApiError err{failed, "invalid_request_error", "The request body is malformed.", "", ""};
  if (failed == 413) {
    err.message = fmt::format("The request body exceeds the limit of {} bytes.", max);
    err.code = "request_too_large";
  } else if (failed == 408) {
    err.message = "Timed out reading the request body.";
  } else if (failed == 503) {
    err.type = "server_error";
    err.message = "The gateway holds too many request bodies in memory; retry shortly.";
    err.code = "overloaded";
  }
  co_await sendError(call, err);
  co_return false;
}

LlmHandler::LlmHandler(loop::Worker& worker, KeyLedger& ledger, ResponseCache& cache)
    : worker_(worker), ledger_(ledger), cache_(cache) {}

LlmHandler::~LlmHandler() = default;

Task<void> LlmHandler::handle(http::RoutedRequest& routed, const Catalog& catalog,
                              std::span<upstream::UpstreamRuntime> upstreams) {
  auto& conn = routed.conn;
  const auto& route = *routed.route.config;
  CallRecord rec;
  rec.key_name = routed.filters.principal;  // the route's key_auth filter authenticated it
  ReportOnExit report{rec, routed.report};
  auto& req = conn.request();
  Call call{conn,     catalog.settings(),      catalog, upstreams, route, rec, ledger_,
            metrics_, requestId(req, next_id_)};
  call.anthropic_dialect = isAnthropicPath(req.path());  // its errors in Anthropic's shape
  std::string_view path = req.path();
  auto only = [&](std::string_view method) -> bool { return req.method == method; };
  if (endsWith(path, "/chat/completions")) {
    if (only("POST")) co_return co_await chatCompletions(call);
  } else if (endsWith(path, "/messages")) {
    if (only("POST")) co_return co_await messages(call);
  } else if (endsWith(path, "/messages/count_tokens")) {
    if (only("POST")) co_return co_await countTokens(call);
  } else if (endsWith(path, "/responses")) {
    if (only("POST")) co_return co_await responses(call);
  } else if (endsWith(path, "/embeddings")) {
    if (only("POST")) co_return co_await embeddings(call);
  } else if (endsWith(path, "/models") || path.find("/models/") != std::string_view::npos) {
    if (only("GET")) co_return co_await listModels(call);
  } else {
    const ApiError err{404, "invalid_request_error",
                       fmt::format("Invalid URL ({} {}): the gateway serves /v1/chat/completions, "
                                   "/v1/messages, /v1/responses, /v1/embeddings and /v1/models.",
                                   req.method, path),
                       "", "unknown_url"};
    co_return co_await sendError(call, err);
  }
  const ApiError err{405, "invalid_request_error",
                     fmt::format("Method {} is not allowed on {}.", req.method, path), "",
                     "method_not_allowed"};
  co_await sendError(call, err);
}

void LlmHandler::renderLocalReply(const http::ServerConnection& conn, const http::LocalReply& reply,
                                  http::ResponseHead& head, std::string& body) {
  if (reply.type.empty()) return http::renderGatewayLocalReply(reply, head, body);  // CORS preflight
  const auto& req = conn.request();
  const std::string_view type = reply.status == 429   ? "rate_limit_error"
                                : reply.status >= 500 ? "server_error"
                                                      : "invalid_request_error";
  const ApiError err{reply.status, std::string(type), reply.message, "", reply.type};
  head.headers = reply.headers;  // WWW-Authenticate, Retry-After, CORS
  head.headers.set("x-request-id", requestId(req, next_id_));
  renderApiError(head, body, err, isAnthropicPath(req.path()));
}

Task<void> LlmHandler::sendLocalReply(http::ServerConnection& conn, const http::LocalReply& reply) {
  http::ResponseHead head;
  std::string body;
  renderLocalReply(conn, reply, head, body);
  std::array<std::string_view, 1> pieces{body};
  co_await conn.writeResponse(&head, pieces, true);
}

Task<void> LlmRoutes::sendLocalReply(http::ServerConnection& conn, const http::LocalReply& reply) {
  return handler_.sendLocalReply(conn, reply);
}

void LlmRoutes::renderLocalReply(const http::ServerConnection& conn, const http::LocalReply& reply,
                                 http::ResponseHead& head, std::string& body) {
  handler_.renderLocalReply(conn, reply, head, body);
}

// Not a coroutine: LlmHandler::handle's frame is the only one the LLM API adds.
Task<void> LlmRoutes::serve(http::RoutedRequest& routed) {
  return handler_.handle(routed, catalog_, upstreams_);
}

Task<void> LlmHandler::listModels(Call& call) {
  std::string_view path = call.conn.request().path();
  if (auto slash = path.find("/models/"); slash != std::string_view::npos) {
    std::string id = decodePercent(path.substr(slash + 8));
    const CatalogModel* m = call.catalog.find(id);
    if (!m) {
      const ApiError err{404, "invalid_request_error", fmt::format("The model '{}' does not exist.", id),
                         "model", "model_not_found"};
      co_return co_await sendError(call, err);
    }
    const std::string body = json::serialize(modelJson(*m));
    co_return co_await sendJson(call, 200, body);
  }
  const std::string body = modelListJson(call.catalog);
  co_await sendJson(call, 200, body);
}

/// Reads the rest of a provider's whole answer into `body`, racing the client: false when the
/// call is over (the client left, or the answer broke and the client got a 502). A complete
/// answer gives its connection back to the pool.
Task<bool> LlmHandler::readAnswer(Call& call, Attempted& tried, std::string& body, size_t limit) {
  auto& uc = *tried.call.conn;
  auto reading = readWholeBody(uc, body, limit, call.route.idle_timeout);
  auto whole = co_await unlessClientLeaves(call.conn, std::move(reading));
  if (!whole) {
    co_await clientLeft(call);
    co_return false;
  }
  if (!*whole) {
    call.rec.error = "upstream_body_failed";
    const ApiError err{502, "api_error",
                       fmt::format("provider '{}' sent an incomplete answer", call.rec.provider), "",
                       "bad_provider_response"};
    co_await sendError(call, err);
    co_return false;
  }
  if (uc.parser.response().keep_alive)
    upstream::release(call.upstreams[tried.provider->upstream], 0, std::move(tried.call.conn));
  co_return true;
}

/// The next bytes of a streamed answer: first those dispatch read while waiting for the first
/// token, then from the connection.
Task<upstream::BodyStatus> LlmHandler::nextStreamBytes(Attempted& tried, std::string& raw,
                                                       upstream::Millis idle) {
  if (!tried.prefetched.empty() || tried.prefetch_status != upstream::BodyStatus::kData) {
    raw.swap(tried.prefetched);
    co_return std::exchange(tried.prefetch_status, upstream::BodyStatus::kData);
  }
  co_return co_await upstream::readBodySome(*tried.call.conn, raw, idle);
}

/// After the provider's end-of-stream marker only the body's terminator is left: reads it (a
/// few reads at most) and gives the connection back to the pool when the body ended cleanly.
Task<void> LlmHandler::keepIfReusable(Call& call, Attempted& tried, upstream::BodyStatus status) {
  auto& uc = *tried.call.conn;
  std::string rest;
  for (int i = 0; status == upstream::BodyStatus::kData && i < 4; ++i) {
    rest.clear();
    status = co_await upstream::readBodySome(uc, rest, call.route.idle_timeout);
  }
  if (status == upstream::BodyStatus::kComplete && uc.parser.response().keep_alive)
    upstream::release(call.upstreams[tried.provider->upstream], 0, std::move(tried.call.conn));
}

Task<void> LlmHandler::chatCompletions(Call& call) {
  std::string_view text;
  if (!co_await readRequestBody(call, text)) co_return;
  ChatRequest req;
  auto bad = parseChatRequest(text, req);
  if (!bad.ok()) co_return co_await sendError(call, std::move(bad.error()));
  const CatalogModel* model = co_await findModel(call, req.model);
  if (!model) co_return;
  if (co_await answerFromCache(call, "chat/completions", req.body)) co_return;
  if (!co_await admit(call, *model, req.prompt_bound, req.max_output, req.choices, req.unbounded)) co_return;
  call.countLater(*model, text.size(), req.prompt_estimate, chatCounter(req));
  const Encoder encode = [&](const CatalogProvider& p, const CatalogTarget& t, ProviderRequest& out) {
    return p.codec->chatRequest(req, t.model, out);
  };
  const DispatchOptions options{req.stream, co_await promptForDispatch(call, *model), &call.in_flight};
  auto work = dispatch(worker_, call.catalog, call.upstreams, call.route, *model, call.rec, encode, options);
  auto answered = co_await awaitTargets(call, std::move(work));
  if (!answered) co_return;
  auto tried = std::move(*answered);
  auto& uc = *tried.call.conn;
  const auto& codec = *tried.provider->codec;
  const bool event_stream = isStreamType(uc.parser.response().headers.get("content-type"));

  if (!req.stream || !event_stream) {
    std::string body, answer;
    if (!co_await readAnswer(call, tried, body, kMaxAnswerBytes)) co_return;
    auto err =
        guardCodec(call.rec.provider, [&] { return codec.chatResponse(body, answer, call.rec.usage); });
    if (!err.ok()) co_return co_await sendError(call, std::move(err.error()));
    co_await estimateAnswerUsage(call, answer);
    remember(call, answer, false);
    co_return co_await sendJson(call, 200, answer);
  }

  // Streamed: relay chunks as they decode; usage the client did not ask for is removed.
  auto relay = chatRelay(codec, req.include_usage);
  co_await relayStream(call, tried, *relay, call.cache_state == "miss");
}

Task<void> LlmHandler::embeddings(Call& call) {
  std::string_view text;
  if (!co_await readRequestBody(call, text)) co_return;
  EmbeddingsRequest req;
  auto bad = parseEmbeddingsRequest(text, req);
  if (!bad.ok()) co_return co_await sendError(call, std::move(bad.error()));
  const CatalogModel* model = co_await findModel(call, req.model);
  if (!model) co_return;
  if (co_await answerFromCache(call, "embeddings", req.body)) co_return;
  if (!co_await admit(call, *model, req.prompt_bound, 0, 0, {})) co_return;  // embeddings: no output
  call.countLater(*model, text.size(), req.prompt_estimate,
                  [&](const tokenizer::Encoding& enc, tokenizer::CountBudget* budget) {
                    return tokenizer::countEmbeddingsInput(enc, req.body.at("input"), budget);
                  });
  const Encoder encode = [&](const CatalogProvider& p, const CatalogTarget& t, ProviderRequest& out) {
    return p.codec->embeddingsRequest(req, t.model, out);
  };
  const DispatchOptions options{false, co_await promptForDispatch(call, *model), &call.in_flight};
  auto work = dispatch(worker_, call.catalog, call.upstreams, call.route, *model, call.rec, encode, options);
  auto answered = co_await awaitTargets(call, std::move(work));
  if (!answered) co_return;
  auto tried = std::move(*answered);
  std::string body, answer;
  if (!co_await readAnswer(call, tried, body, kMaxAnswerBytes)) co_return;
  auto err = guardCodec(call.rec.provider, [&] {
    return tried.provider->codec->embeddingsResponse(body, answer, call.rec.usage);
  });
  co_await estimateUsage(call, 0);  // some providers (Gemini) do not count embedding tokens
  if (!err.ok()) co_return co_await sendError(call, std::move(err.error()));
  // base64 is what the OpenAI client sends by default: providers that only speak floats
  // (Gemini, Bedrock, some OpenAI-compatible servers) answered floats, which it would misread.
  auto* format = req.body.if_contains("encoding_format");
  const bool base64 = format && format->is_string() && format->get_string() == "base64";
  finishEmbeddingsAnswer(answer, base64, call.rec.model, call.rec.usage);
  remember(call, answer, false);
  co_await sendJson(call, 200, answer);
}

Task<void> LlmHandler::countTokens(Call& call) {
  std::string_view text;
  if (!co_await readRequestBody(call, text)) co_return;
  // The same body as /v1/messages, without max_tokens: give the parser one.
  json::object body;
  auto bad = parseJsonObject(text, body);
  if (bad.ok() && !body.contains("max_tokens")) body["max_tokens"] = 1;
  MessagesRequest req;
  if (bad.ok()) bad = parseMessagesRequest(json::serialize(body), req);
  if (!bad.ok()) co_return co_await sendError(call, bad.error());
  const CatalogModel* model = co_await findModel(call, req.model);
  if (!model) co_return;
  // Counting is free, but it is a request: the key's request rate holds (it also bounds the
  // counting work one key may ask for).
  if (!co_await admit(call, *model, 0, 0, 0, {}, true)) co_return;
  const bool anthropic_first =
      !model->targets.empty() &&
      call.catalog.providers()[model->targets[0].provider].config->kind == "anthropic";
  if (!anthropic_first) {
    // Only Anthropic counts tokens over the API: OpenAI-family models are counted here with
    // their encoding (exact for plain text), others estimated (x-ganglion-token-count says which).
    auto counted = co_await countPrompt(call, *model, text.size(), chatCounter(req.chat), true);
    call.token_count = counted && counted->exact ? std::string_view("exact") : std::string_view("estimate");
    const uint64_t tokens = counted ? counted->tokens : req.chat.prompt_estimate;
    const std::string answer = json::serialize(json::object{{"input_tokens", tokens}});
    co_return co_await sendJson(call, 200, answer);
  }
  call.token_count = "exact";
  std::string version(call.conn.request().headers.get("anthropic-version"));
  const Encoder encode = [&](const CatalogProvider& p, const CatalogTarget& t, ProviderRequest& out) {
    if (p.config->kind != "anthropic")
      return ApiResult(ApiError{400, "invalid_request_error", "token counting needs an Anthropic target",
                                "model", "unsupported_endpoint"});
    out.path = p.config->base_path + "/v1/messages/count_tokens";
    out.headers.emplace_back("x-api-key", p.config->api_key);
    out.headers.emplace_back("anthropic-version",
                             !version.empty() ? version : std::string(AnthropicCodec::kVersion));
    json::object sent = req.body;
    sent.erase("max_tokens");
    sent.erase("stream");
    sent["model"] = t.model;
    out.body = json::serialize(sent);
    return ApiResult();
  };
  const DispatchOptions options{false, req.chat.prompt_estimate, &call.in_flight};
  auto work = dispatch(worker_, call.catalog, call.upstreams, call.route, *model, call.rec, encode, options);
  auto answered = co_await awaitTargets(call, std::move(work));  // (counting is free: prompt_tokens 0)
  if (!answered) co_return;
  auto tried = std::move(*answered);
  std::string answer;
  if (!co_await readAnswer(call, tried, answer, kMaxErrorBytes)) co_return;
  call.rec.model.clear();  // counting is free: not an LLM call for metrics
  co_await sendJson(call, 200, answer);
}

Task<void> LlmHandler::messages(Call& call) {
  std::string_view text;
  if (!co_await readRequestBody(call, text)) co_return;
  MessagesRequest req;
  auto bad = parseMessagesRequest(text, req);
  if (!bad.ok()) co_return co_await sendError(call, bad.error());
  const CatalogModel* model = co_await findModel(call, req.model);
  if (!model) co_return;
  // Anthropic targets get the body as written: bound what it holds, not only its translation
  // (only for a key with limits: the walk serializes every block).
  const PromptBound as_sent = limitsOf(call) ? boundMessagesPrompt(req.body) : PromptBound{};
  const std::string_view unbounded =
      as_sent.unbounded.empty() ? std::string_view(req.chat.unbounded) : as_sent.unbounded;
  if (!co_await admit(call, *model, std::max(req.chat.prompt_bound, as_sent.tokens), req.chat.max_output, 1,
                      unbounded))
    co_return;
  call.countLater(*model, text.size(), req.chat.prompt_estimate, chatCounter(req.chat));
  const auto& client_head = call.conn.request().headers;
  std::string version(client_head.get("anthropic-version"));
  std::string beta(client_head.get("anthropic-beta"));
  const Encoder encode = [&](const CatalogProvider& p, const CatalogTarget& t, ProviderRequest& out) {
    if (p.config->kind != "anthropic") return p.codec->chatRequest(req.chat, t.model, out);
    // Claude to Claude: the client's request as written.
    out.path = p.config->base_path + "/v1/messages";
    out.headers.emplace_back("x-api-key", p.config->api_key);
    out.headers.emplace_back("anthropic-version", !version.empty() ? version
                                                  : p.config->api_version.empty()
                                                      ? std::string(AnthropicCodec::kVersion)
                                                      : p.config->api_version);
    if (!beta.empty()) out.headers.emplace_back("anthropic-beta", beta);
    boost::json::object body = req.body;
    body["model"] = t.model;
    out.body = boost::json::serialize(body);
    return ApiResult();
  };
  const DispatchOptions options{req.stream, co_await promptForDispatch(call, *model), &call.in_flight};
  auto work = dispatch(worker_, call.catalog, call.upstreams, call.route, *model, call.rec, encode, options);
  auto answered = co_await awaitTargets(call, std::move(work));
  if (!answered) co_return;
  auto tried = std::move(*answered);
  auto& uc = *tried.call.conn;
  const auto& codec = *tried.provider->codec;
  const bool native = tried.provider->config->kind == "anthropic";
  const bool event_stream = isStreamType(uc.parser.response().headers.get("content-type"));

  if (!req.stream || !event_stream) {
    std::string body, completion, answer;
    if (!co_await readAnswer(call, tried, body, kMaxAnswerBytes)) co_return;
    auto err = guardCodec(call.rec.provider, [&] {
      auto failed = codec.chatResponse(body, completion, call.rec.usage);  // native too: reads its usage
      if (failed.ok() && !native) failed = messageFromCompletion(completion, answer);
      return failed;
    });
    if (!err.ok()) co_return co_await sendError(call, err.error());
    co_await estimateAnswerUsage(call, native ? body : answer);
    co_return co_await sendJson(call, 200, native ? body : answer);
  }

  // Anthropic's message_start carries the prompt count, which clients read: translated
  // streams count it now (Anthropic targets send their own).
  auto relay = messagesRelay(codec, native, native ? 0 : co_await promptTokens(call));
  co_await relayStream(call, tried, *relay, false);
}

Task<void> LlmHandler::responses(Call& call) {
  std::string_view text;
  if (!co_await readRequestBody(call, text)) co_return;
  json::object body;
  auto bad = parseJsonObject(text, body);
  if (bad.ok() && !body.contains("model"))
    bad = ApiError{400, "invalid_request_error", "Missing required parameter: 'model'.", "model",
                   "missing_required_parameter"};
  if (bad.ok() && !body.at("model").is_string())
    bad = ApiError{400, "invalid_request_error", "Invalid type for 'model': expected a string.", "model",
                   "invalid_type"};
  if (bad.ok() && body.contains("stream") && !body.at("stream").is_bool())
    bad = ApiError{400, "invalid_request_error", "Invalid type for 'stream': expected a boolean.", "stream",
                   "invalid_type"};
  if (!bad.ok()) co_return co_await sendError(call, bad.error());
  const std::string model_name(body.at("model").get_string());
  const bool stream = body.contains("stream") && body.at("stream").get_bool();
  const CatalogModel* model = co_await findModel(call, model_name);
  if (!model) co_return;
  uint64_t max_output = 0;  // absent: the model's own limit
  if (auto* m = body.if_contains("max_output_tokens"); m && m->is_int64() && m->get_int64() > 0)
    max_output = static_cast<uint64_t>(m->get_int64());
  // The Responses API is passed through unparsed: the whole body bounds its prompt.
  const PromptBound bound = limitsOf(call) ? boundResponsesPrompt(body, text.size()) : PromptBound{};
  if (!co_await admit(call, *model, bound.tokens, max_output, 1, bound.unbounded)) co_return;
  call.countLater(*model, text.size(), estimateTokens(text.size()),
                  [&](const tokenizer::Encoding& enc, tokenizer::CountBudget* budget) {
                    return tokenizer::countResponsesPrompt(enc, body, budget);
                  });
  // OpenAI-kind targets get the request as written; others its translation into the chat
  // form, made when the first such target is tried (a call that reaches only OpenAI targets
  // never pays for it), its error reported for each of them.
  ChatRequest translated;
  std::optional<ApiResult> untranslatable;
  const Encoder encode = [&](const CatalogProvider& p, const CatalogTarget& t, ProviderRequest& out) {
    auto* openai = dynamic_cast<const OpenAiCodec*>(p.codec.get());
    if (!openai) {
      if (!untranslatable) untranslatable = chatFromResponsesRequest(body, translated);
      if (!untranslatable->ok()) return *untranslatable;
      return p.codec->chatRequest(translated, t.model, out);
    }
    openai->target("responses", t.model, out);
    json::object sent = body;
    sent["model"] = t.model;
    out.body = json::serialize(sent);
    return ApiResult();
  };
  const DispatchOptions options{stream, co_await promptForDispatch(call, *model), &call.in_flight};
  auto work = dispatch(worker_, call.catalog, call.upstreams, call.route, *model, call.rec, encode, options);
  auto answered = co_await awaitTargets(call, std::move(work));
  if (!answered) co_return;
  auto tried = std::move(*answered);
  auto& uc = *tried.call.conn;
  const auto& codec = *tried.provider->codec;
  const bool native = dynamic_cast<const OpenAiCodec*>(&codec) != nullptr;
  const bool event_stream = isStreamType(uc.parser.response().headers.get("content-type"));
  if (!stream || !event_stream) {
    std::string answer;
    if (!co_await readAnswer(call, tried, answer, kMaxAnswerBytes)) co_return;
    if (!native) {
      std::string completion, response;
      auto err = guardCodec(call.rec.provider, [&] {
        auto failed = codec.chatResponse(answer, completion, call.rec.usage);
        if (failed.ok()) failed = responseFromCompletion(completion, body, response, call.rec.model);
        return failed;
      });
      if (!err.ok()) co_return co_await sendError(call, err.error());
      co_await estimateAnswerUsage(call, response);
      co_return co_await sendJson(call, 200, response);
    }
    boost::system::error_code ec;
    json::value v = json::parse(answer, ec);
    if (!ec && v.is_object())
      if (auto* u = v.as_object().if_contains("usage"); u && u->is_object())
        call.rec.usage = usageFromResponses(u->as_object());
    co_await estimateAnswerUsage(call, answer);
    co_return co_await sendJson(call, 200, answer);
  }

  if (!native) {
    auto relay = responsesFromChatRelay(codec, body, call.rec.model);
    co_return co_await relayStream(call, tried, *relay, false);
  }
  const auto secrets = tried.provider->config->secrets();
  auto relay = responsesRelay([&secrets](std::string_view text) { return redactSecrets(text, secrets); });
  co_await relayStream(call, tried, *relay, false);
}

Task<std::optional<Attempted>> LlmHandler::awaitTargets(Call& call, Task<Attempted> work) {
  auto raced = co_await unlessClientLeaves(call.conn, std::move(work));
  if (!raced) {
    call.served = call.in_flight;  // it may have done the work: charged like a stream cut short
    call.rec.priced = call.served && call.served->price.has_value();
    co_await clientLeft(call);
    co_return std::nullopt;
  }
  call.served = raced->target;
  if (raced->error) {
    co_await sendError(call, *raced->error);
    co_return std::nullopt;
  }
  co_return raced;
}

Task<void> LlmHandler::relayStream(Call& call, Attempted& tried, StreamRelay& relay, bool cache) {
  http::ResponseHead head;
  head.status = 200;
  head.headers.add("Content-Type", "text/event-stream");
  head.headers.add("Cache-Control", "no-cache");
  addCallHeaders(call, head);
  http::ResponseHead* pending_head = &head;
  std::string raw, out, recorded;
  bool recording = cache;
  std::optional<ApiError> stream_error;
  bool provider_done = false, client_gone = false;
  auto status = upstream::BodyStatus::kData;
  for (;;) {
    raw.clear();
    out.clear();
    status = co_await nextStreamBytes(tried, raw, call.route.idle_timeout);
    if (!raw.empty())
      if (auto fed = guardCodec(call.rec.provider, [&] { return relay.feed(raw, call.rec.usage, out); });
          !fed.ok())
        stream_error = std::move(fed.error());
    if (stream_error && !stream_error->message.empty()) {  // an error event from the provider
      logLine(fmt::format("llm: provider '{}' stream error: {}", call.rec.provider, stream_error->message));
      stream_error = redactedProviderError(std::move(*stream_error), tried.provider->config->secrets());
    }
    provider_done = relay.done();
    const bool ended = provider_done || stream_error || status != upstream::BodyStatus::kData;
    if (ended) {
      if (!provider_done && !stream_error) {
        stream_error = ApiError{
            502, "api_error",
            status == upstream::BodyStatus::kTimeout
                ? fmt::format("provider '{}' stopped sending in the middle of the stream", call.rec.provider)
                : fmt::format("provider '{}' ended the stream early", call.rec.provider),
            "", "stream_interrupted"};
      }
      if (stream_error && pending_head) {
        // Nothing reached the client yet: a plain error with its status, never a 200 stream.
        co_await sendError(call, *stream_error);
        co_return;
      }
      if (stream_error) call.rec.error = "stream_interrupted";
      relay.end(stream_error ? &*stream_error : nullptr, call.rec.usage, out);
    }
    if (recording) {  // the whole stream, for the response cache, while it fits
      recorded += out;
      recording = recorded.size() <= call.settings.cache.max_bytes;
    }
    // Cached before the last bytes leave: a client that asks again the moment its stream
    // ends must find it (after the write, the next request could be read first).
    if (ended && recording && provider_done && !stream_error) {
      remember(call, std::move(recorded), true);
      recording = false;
    }
    if (pending_head || !out.empty()) {
      std::array<std::string_view, 1> pieces{out};
      bool ok = co_await call.conn.writeResponse(pending_head,
                                                 out.empty() ? std::span<std::string_view>() : pieces, ended);
      pending_head = nullptr;
      if (!ok) {
        call.rec.error = "client_closed";
        client_gone = true;
        break;  // the provider connection is dropped with `tried`: the call is cancelled
      }
    }
    if (ended) break;
  }
  co_await estimateUsage(call, relay.completionEstimate());
  if (provider_done && !client_gone) co_await keepIfReusable(call, tried, status);
}

}  // namespace ganglion::llm
