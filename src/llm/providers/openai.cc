#include "llm/providers/openai.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "http/sse.h"

namespace ganglion::llm {

namespace json = boost::json;

namespace {

std::optional<json::object> parseObject(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

class OpenAiStream final : public ChatStreamDecoder {
 public:
  ApiResult feed(std::string_view bytes, std::vector<json::object>& out, Usage& usage) override {
    ApiResult err;
    bool ok = sse_.feed(bytes, [&](const http::SseEvent& e) {
      if (!err.ok() || finished_) return;
      if (e.data == "[DONE]") {
        finished_ = true;
        return;
      }
      auto chunk = parseObject(e.data);
      if (!chunk) {
        err = badProviderAnswer("a stream event that is not a JSON object");
        return;
      }
      if (auto it = chunk->find("error"); it != chunk->end()) {
        err = openaiStyleError(502, e.data);
        return;
      }
      if (auto it = chunk->find("usage"); it != chunk->end() && it->value().is_object())
        usage = usageFromOpenAI(it->value().get_object());
      out.push_back(std::move(*chunk));
    });
    if (!ok && err.ok()) err = badProviderAnswer("a stream event over the size limit");
    return err;
  }
  bool finished() const override { return finished_; }

 private:
  http::SseParser sse_;
  bool finished_ = false;
};

}  // namespace

ApiError openaiStyleError(int status, std::string_view body) {
  ApiError e = statusError(status);
  if (auto o = parseObject(body)) {
    const json::object* err = nullptr;
    if (auto it = o->find("error"); it != o->end()) err = it->value().if_object();
    if (err) {
      if (auto it = err->find("message"); it != err->end() && it->value().is_string())
        e.message = std::string(it->value().get_string());
      if (auto it = err->find("type"); it != err->end() && it->value().is_string())
        e.type = std::string(it->value().get_string());
      if (auto it = err->find("param"); it != err->end() && it->value().is_string())
        e.param = std::string(it->value().get_string());
      if (auto it = err->find("code"); it != err->end()) {
        if (it->value().is_string())
          e.code = std::string(it->value().get_string());
        else if (it->value().is_int64())
          e.code = std::to_string(it->value().get_int64());
      }
    } else if (auto it = o->find("error"); it != o->end() && it->value().is_string()) {
      e.message = std::string(it->value().get_string());  // vLLM / Ollama style
    } else if (auto it = o->find("message"); it != o->end() && it->value().is_string()) {
      e.message = std::string(it->value().get_string());
    }
  }
  if (e.message.empty()) e.message = providerStatusMessage(status, body);
  return e;
}

OpenAiCodec::OpenAiCodec(const llm::ProviderConfig& p)
    : azure_(p.kind == "azure"), base_path_(p.base_path), api_key_(p.api_key), api_version_(p.api_version) {}

void OpenAiCodec::target(std::string_view endpoint, std::string_view model, ProviderRequest& out) const {
  if (azure_) {
    out.path =
        fmt::format("{}/openai/deployments/{}/{}?api-version={}", base_path_, model, endpoint, api_version_);
    out.headers.emplace_back("api-key", api_key_);
  } else {
    out.path = fmt::format("{}/{}", base_path_, endpoint);
    if (!api_key_.empty()) out.headers.emplace_back("Authorization", "Bearer " + api_key_);
  }
}

ApiResult OpenAiCodec::chatRequest(const ChatRequest& req, std::string_view model,
                                   ProviderRequest& out) const {
  target("chat/completions", model, out);
  json::object body = req.body;
  body["model"] = model;
  if (req.stream) {
    // Usage is always asked for, so every stream is accounted; clients that did not ask
    // never see it (the router strips it).
    auto& opts = body["stream_options"];
    if (!opts.is_object()) opts = json::object();
    opts.get_object()["include_usage"] = true;
  }
  out.body = json::serialize(body);
  return {};
}

namespace {

/// An OpenAI answer passed through as sent, once it has the array it must have (`choices`,
/// `data`); its usage is read on the way.
ApiResult passThrough(std::string_view body, std::string_view array, std::string_view what, std::string& out,
                      Usage& usage) {
  auto o = parseObject(body);
  if (!o) return badProviderAnswer(fmt::format("{} that is not a JSON object", what));
  if (auto* items = o->if_contains(array); !items || !items->is_array())
    return badProviderAnswer(fmt::format("{} without a '{}' array", what, array));
  if (auto it = o->find("usage"); it != o->end() && it->value().is_object())
    usage = usageFromOpenAI(it->value().get_object());
  out.assign(body);
  return {};
}

}  // namespace

ApiResult OpenAiCodec::chatResponse(std::string_view body, std::string& out, Usage& usage) const {
  return passThrough(body, "choices", "a chat completion", out, usage);
}

std::unique_ptr<ChatStreamDecoder> OpenAiCodec::chatStream() const {
  return std::make_unique<OpenAiStream>();
}

ApiResult OpenAiCodec::embeddingsRequest(const EmbeddingsRequest& req, std::string_view model,
                                         ProviderRequest& out) const {
  target("embeddings", model, out);
  json::object body = req.body;
  body["model"] = model;
  out.body = json::serialize(body);
  return {};
}

ApiResult OpenAiCodec::embeddingsResponse(std::string_view body, std::string& out, Usage& usage) const {
  return passThrough(body, "data", "an embeddings answer", out, usage);
}

ApiError OpenAiCodec::error(int status, std::string_view body) const {
  return openaiStyleError(status, body);
}

}  // namespace ganglion::llm
