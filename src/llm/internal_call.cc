#include "llm/internal_call.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "llm/catalog.h"
#include "llm/chat_request.h"
#include "llm/dispatch.h"
#include "upstream/exchange.h"

namespace ganglion::llm {

namespace json = boost::json;

namespace {

constexpr size_t kMaxAnswerBytes = 4u << 20;

}  // namespace

http::Task<Result<InternalAnswer>> completeChat(loop::Worker& worker, const Catalog& catalog,
                                                std::span<upstream::UpstreamRuntime> upstreams,
                                                std::string_view model_name, std::string_view system,
                                                std::string_view user, uint32_t max_tokens,
                                                upstream::Millis timeout) {
  const CatalogModel* model = catalog.find(model_name);
  if (!model) co_return Error(fmt::format("no model '{}' in this config", model_name), "unknown_model");
  json::array messages;
  messages.push_back(json::object{{"role", "system"}, {"content", system}});
  messages.push_back(json::object{{"role", "user"}, {"content", user}});
  const std::string text = json::serialize(
      json::object{{"model", model_name}, {"messages", std::move(messages)}, {"max_tokens", max_tokens}});
  ChatRequest req;
  if (auto bad = parseChatRequest(text, req); !bad.ok())
    co_return Error(fmt::format("the request was refused: {}", bad.error().message), "bad_request");
  config::RouteConfig route;
  route.name = "edge";
  route.first_byte_timeout = timeout;
  route.idle_timeout = timeout;
  CallRecord rec;
  rec.model_alias = model->config->name;
  const Encoder encode = [&](const CatalogProvider& p, const CatalogTarget& t, ProviderRequest& out) {
    return p.codec->chatRequest(req, t.model, out);
  };
  const DispatchOptions options{false, req.prompt_estimate, nullptr};
  Attempted tried = co_await dispatch(worker, catalog, upstreams, route, *model, rec, encode, options);
  if (tried.error)
    co_return Error(tried.error->message, tried.error->code.empty() ? "upstream_failed" : tried.error->code);
  auto& uc = *tried.call.conn;
  std::string body;
  const bool whole = co_await upstream::readWholeBody(uc, body, kMaxAnswerBytes, timeout);
  if (!whole)
    co_return Error(fmt::format("provider '{}' sent an incomplete answer", rec.provider),
                    "bad_provider_response");
  if (uc.parser.response().keep_alive)
    upstream::release(upstreams[tried.provider->upstream], 0, std::move(tried.call.conn));
  InternalAnswer out;
  out.provider = std::string(rec.provider);
  out.model = rec.model;
  std::string answer;
  try {
    auto decoded = tried.provider->codec->chatResponse(body, answer, out.usage);
    if (!decoded.ok()) co_return Error(decoded.error().message, "bad_provider_response");
    const json::value doc = json::parse(answer);
    const json::value* content = nullptr;
    if (const auto* choices = doc.is_object() ? doc.as_object().if_contains("choices") : nullptr;
        choices && choices->is_array() && !choices->as_array().empty() && choices->as_array()[0].is_object())
      if (const auto* message = choices->as_array()[0].as_object().if_contains("message");
          message && message->is_object())
        content = message->as_object().if_contains("content");
    if (!content || !content->is_string())
      co_return Error(fmt::format("provider '{}' answered without a message", rec.provider),
                      "bad_provider_response");
    out.text = std::string(content->get_string());
  } catch (const std::exception&) {
    co_return Error(fmt::format("provider '{}' sent an answer of an unexpected shape", rec.provider),
                    "bad_provider_response");
  }
  co_return out;
}

}  // namespace ganglion::llm
