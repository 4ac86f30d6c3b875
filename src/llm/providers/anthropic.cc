#include "llm/providers/anthropic.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <map>
#include <set>

#include "http/sse.h"
#include "llm/json_answer_tool.h"
#include "llm/json_fields.h"
#include "llm/openai_shapes.h"
#include "llm/providers/sse_json.h"

namespace ganglion::llm {

namespace json = boost::json;

namespace {

/// An OpenAI image_url part as an Anthropic image block (data: URLs become base64 sources).
json::object imageBlock(std::string_view url) {
  std::string_view media_type, data;
  if (splitDataUrl(url, media_type, data))
    return json::object{
        {"type", "image"},
        {"source", json::object{{"type", "base64"}, {"media_type", media_type}, {"data", data}}}};
  return json::object{{"type", "image"}, {"source", json::object{{"type", "url"}, {"url", url}}}};
}

/// OpenAI message content as Anthropic content blocks.
json::array contentBlocks(const json::value& content) {
  json::array blocks;
  if (auto* s = content.if_string()) {
    if (!s->empty()) blocks.push_back(json::object{{"type", "text"}, {"text", *s}});
  } else if (auto* parts = content.if_array()) {
    for (const auto& p : *parts) {
      auto* po = p.if_object();
      if (!po) continue;
      auto type = stringAt(*po, "type");
      if (auto text = partText(*po))
        blocks.push_back(json::object{{"type", "text"}, {"text", *text}});
      else if (type == "image_url")
        if (auto* img = objectAt(*po, "image_url")) blocks.push_back(imageBlock(stringAt(*img, "url")));
    }
  }
  return blocks;
}

json::value parseArguments(std::string_view arguments) {
  boost::system::error_code ec;
  json::value v = json::parse(arguments, ec);
  if (ec || !v.is_object()) return json::object();  // the model's own malformed JSON: send an empty input
  return v;
}

class AnthropicStream final : public ChatStreamDecoder {
 public:
  ApiResult feed(std::string_view bytes, std::vector<json::object>& out, Usage& usage) override {
    return feedJsonEvents(
        sse_, bytes, [&] { return finished_; },
        [&](const json::object& ev, ApiResult& err) { onEvent(ev, out, usage, err); });
  }
  bool finished() const override { return finished_; }

 private:
  void onEvent(const json::object& ev, std::vector<json::object>& out, Usage& usage, ApiResult& err) {
    auto type = stringAt(ev, "type");
    if (type == "message_start") {
      if (auto* msg = objectAt(ev, "message")) {
        stamp_.id = idOr("chatcmpl-", stringAt(*msg, "id"));
        stamp_.model = std::string(stringAt(*msg, "model"));
        stamp_.created = nowSeconds();
        if (auto* u = objectAt(*msg, "usage")) usage_ = usageFromAnthropic(*u);
      }
      out.push_back(chunk(stamp_, json::object{{"role", "assistant"}, {"content", ""}}));
    } else if (type == "content_block_start") {
      auto* block = objectAt(ev, "content_block");
      int64_t index = ev.contains("index") && ev.at("index").is_int64() ? ev.at("index").as_int64() : -1;
      if (block && stringAt(*block, "type") == "tool_use" && stringAt(*block, "name") == kJsonAnswerTool) {
        json_blocks_.insert(index);  // response_format: its input streams as content
      } else if (block && stringAt(*block, "type") == "tool_use") {
        tool_index_[index] = next_tool_;
        json::object call = toolCall(stringAt(*block, "id"), stringAt(*block, "name"), "");
        call["index"] = next_tool_++;
        out.push_back(chunk(stamp_, json::object{{"tool_calls", json::array{std::move(call)}}}));
      } else if (block && stringAt(*block, "type") == "text" && !stringAt(*block, "text").empty()) {
        out.push_back(chunk(stamp_, json::object{{"content", stringAt(*block, "text")}}));
      }
    } else if (type == "content_block_delta") {
      auto* delta = objectAt(ev, "delta");
      if (!delta) return;
      auto dtype = stringAt(*delta, "type");
      if (dtype == "text_delta") {
        out.push_back(chunk(stamp_, json::object{{"content", stringAt(*delta, "text")}}));
      } else if (dtype == "input_json_delta") {
        int64_t index = ev.contains("index") && ev.at("index").is_int64() ? ev.at("index").as_int64() : -1;
        if (json_blocks_.count(index)) {
          if (auto part = stringAt(*delta, "partial_json"); !part.empty())
            out.push_back(chunk(stamp_, json::object{{"content", part}}));
          return;
        }
        auto it = tool_index_.find(index);
        if (it == tool_index_.end()) return;
        json::object call{{"index", it->second},
                          {"function", json::object{{"arguments", stringAt(*delta, "partial_json")}}}};
        out.push_back(chunk(stamp_, json::object{{"tool_calls", json::array{std::move(call)}}}));
      }
      // thinking_delta / signature_delta: extended thinking has no OpenAI chunk field.
    } else if (type == "message_delta") {
      if (auto* u = objectAt(ev, "usage")) {
        // Cumulative counts: the latest value wins; input counts appear here on some models.
        usage_.completion = countAt(*u, "output_tokens");
        if (u->contains("input_tokens")) {
          Usage in = usageFromAnthropic(*u);
          usage_.prompt = in.prompt;
          usage_.cached = in.cached;
          usage_.cache_write = in.cache_write;
        }
      }
      if (auto* d = objectAt(ev, "delta"); d && !stringAt(*d, "stop_reason").empty()) {
        out.push_back(
            chunk(stamp_, json::object(),
                  finishAfterTools(finishFromAnthropic(stringAt(*d, "stop_reason")), next_tool_ > 0)));
      }
    } else if (type == "message_stop") {
      usage_.reported = true;
      usage = usage_;
      out.push_back(usageChunk(stamp_, usage_));
      finished_ = true;
    } else if (type == "error") {
      const json::object* e = objectAt(ev, "error");
      std::string_view etype = e ? stringAt(*e, "type") : "api_error";
      err = ApiError{etype == "overloaded_error" ? 529 : 502, std::string(etype),
                     std::string(e ? stringAt(*e, "message") : "the provider reported an error"), "",
                     std::string(etype)};
    }
    // ping and unknown event types are ignored, as Anthropic's versioning policy asks.
  }

  http::SseParser sse_;
  ChunkStamp stamp_;
  Usage usage_;
  std::map<int64_t, int64_t> tool_index_;  ///< content block index → OpenAI tool call index
  std::set<int64_t> json_blocks_;          ///< content blocks of the response_format tool
  int64_t next_tool_ = 0;
  bool finished_ = false;
};

}  // namespace

std::string_view finishFromAnthropic(std::string_view stop_reason) {
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "refusal") return "content_filter";
  return "stop";  // end_turn, stop_sequence, pause_turn
}

Usage usageFromAnthropic(const json::object& u) {
  Usage out;
  out.reported = true;
  out.cached = countAt(u, "cache_read_input_tokens");
  out.cache_write = countAt(u, "cache_creation_input_tokens");
  out.prompt = countAt(u, "input_tokens") + out.cached + out.cache_write;
  out.completion = countAt(u, "output_tokens");
  return out;
}

AnthropicCodec::AnthropicCodec(const llm::ProviderConfig& p)
    : base_path_(p.base_path),
      api_key_(p.api_key),
      version_(p.api_version.empty() ? std::string(kVersion) : p.api_version) {}

ApiResult AnthropicCodec::chatRequest(const ChatRequest& req, std::string_view model,
                                      ProviderRequest& out) const {
  if (auto refused = oneChoiceOnly(req, "Anthropic"); !refused.ok()) return refused;
  out.path = base_path_ + "/v1/messages";
  out.headers.emplace_back("x-api-key", api_key_);
  out.headers.emplace_back("anthropic-version", version_);
  const json::object& in = req.body;
  json::object body;
  body["model"] = model;
  json::array system, messages;
  for (const auto& mv : in.at("messages").as_array()) {
    const auto& m = mv.as_object();
    auto role = stringAt(m, "role");
    const json::value* content = m.if_contains("content");
    if (role == "system" || role == "developer") {
      std::string text = content ? contentText(*content) : "";
      if (!text.empty()) system.push_back(json::object{{"type", "text"}, {"text", text}});
    } else if (role == "user") {
      if (content) appendTurn(messages, "user", contentBlocks(*content));
    } else if (role == "assistant") {
      json::array blocks = content ? contentBlocks(*content) : json::array();
      if (auto* calls = m.if_contains("tool_calls"); calls && calls->is_array())
        for (const auto& c : calls->as_array()) {
          const auto& co = c.as_object();
          const auto& fn = co.at("function").as_object();
          blocks.push_back(json::object{{"type", "tool_use"},
                                        {"id", stringAt(co, "id")},
                                        {"name", stringAt(fn, "name")},
                                        {"input", parseArguments(stringAt(fn, "arguments"))}});
        }
      appendTurn(messages, "assistant", std::move(blocks));
    } else if (role == "tool" || role == "function") {
      json::object result{{"type", "tool_result"},
                          {"tool_use_id", role == "tool" ? stringAt(m, "tool_call_id") : stringAt(m, "name")},
                          {"content", content ? contentText(*content) : ""}};
      appendTurn(messages, "user", json::array{std::move(result)});
    }
  }
  if (!system.empty()) {
    if (system.size() == 1)
      body["system"] = system[0].as_object()["text"];
    else
      body["system"] = std::move(system);
  }
  body["messages"] = std::move(messages);
  body["max_tokens"] = req.max_output ? req.max_output : kDefaultMaxTokens;
  if (auto* t = in.if_contains("temperature"); t && t->is_number())
    body["temperature"] = std::min(1.0, t->to_number<double>());  // Anthropic's range is [0, 1]
  if (auto* p = in.if_contains("top_p"); p && p->is_number()) body["top_p"] = *p;
  if (auto* stop = in.if_contains("stop")) {
    if (stop->is_string())
      body["stop_sequences"] = json::array{*stop};
    else if (stop->is_array())
      body["stop_sequences"] = *stop;
  }
  if (auto* user = in.if_contains("user"); user && user->is_string())
    body["metadata"] = json::object{{"user_id", *user}};
  if (auto* tools = in.if_contains("tools"); tools && tools->is_array() && !tools->as_array().empty()) {
    json::array out_tools;
    for (const auto& t : tools->as_array()) {
      const auto& fn = t.as_object().at("function").as_object();
      json::object tool{{"name", stringAt(fn, "name")}};
      if (auto d = stringAt(fn, "description"); !d.empty()) tool["description"] = d;
      auto* params = fn.if_contains("parameters");
      tool["input_schema"] =
          params && params->is_object() ? *params : json::value(json::object{{"type", "object"}});
      out_tools.push_back(std::move(tool));
    }
    body["tools"] = std::move(out_tools);
    json::object choice{{"type", "auto"}};
    if (auto* tc = in.if_contains("tool_choice")) {
      if (tc->is_string()) {
        auto s = tc->get_string();
        choice["type"] = s == "required" ? "any" : s == "none" ? "none" : "auto";
      } else if (tc->is_object()) {
        choice = json::object{{"type", "tool"},
                              {"name", stringAt(tc->as_object().at("function").as_object(), "name")}};
      }
    }
    if (auto* ptc = in.if_contains("parallel_tool_calls");
        ptc && ptc->is_bool() && !ptc->get_bool() && choice["type"] != "none")
      choice["disable_parallel_tool_use"] = true;
    body["tool_choice"] = std::move(choice);
  }
  std::optional<JsonAnswerTool> json_tool;
  if (auto refused = jsonAnswerTool(in, "Anthropic", json_tool); !refused.ok()) return refused;
  if (json_tool) {
    body["tools"] = json::array{json::object{{"name", kJsonAnswerTool},
                                             {"description", json_tool->description},
                                             {"input_schema", json_tool->schema}}};
    body["tool_choice"] = json::object{{"type", "tool"}, {"name", kJsonAnswerTool}};
  }
  if (req.stream) body["stream"] = true;
  out.body = json::serialize(body);
  return {};
}

ApiResult AnthropicCodec::chatResponse(std::string_view text, std::string& out, Usage& usage) const {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return badProviderAnswer("a message that is not a JSON object");
  const auto& msg = v.get_object();
  ChunkStamp stamp{idOr("chatcmpl-", stringAt(msg, "id")), std::string(stringAt(msg, "model")), nowSeconds()};
  AssistantAnswer answer;
  if (auto* blocks = msg.if_contains("content"); !blocks || !blocks->is_array())
    return badProviderAnswer("a message without a content array");
  if (auto* blocks = msg.if_contains("content"); blocks && blocks->is_array()) {
    for (const auto& b : blocks->as_array()) {
      auto* bo = b.if_object();
      if (!bo) continue;
      auto type = stringAt(*bo, "type");
      if (type == "text")
        answer.addText(stringAt(*bo, "text"));
      else if (type == "tool_use")
        answer.addToolUse(stringAt(*bo, "id"), stringAt(*bo, "name"), bo->if_contains("input"));
    }
  }
  const bool called = !answer.tool_calls.empty();
  json::object message = answer.message();
  if (auto* u = objectAt(msg, "usage")) usage = usageFromAnthropic(*u);
  auto finish = finishAfterTools(finishFromAnthropic(stringAt(msg, "stop_reason")), called);
  out = json::serialize(completion(stamp, std::move(message), finish, usage));
  return {};
}

std::unique_ptr<ChatStreamDecoder> AnthropicCodec::chatStream() const {
  return std::make_unique<AnthropicStream>();
}

ApiResult AnthropicCodec::embeddingsRequest(const EmbeddingsRequest&, std::string_view,
                                            ProviderRequest&) const {
  return ApiError{400, "invalid_request_error",
                  "Anthropic has no embeddings API: route this model to another provider", "model",
                  "embeddings_unsupported"};
}

ApiResult AnthropicCodec::embeddingsResponse(std::string_view, std::string&, Usage&) const {
  return ApiError{502, "api_error", "Anthropic has no embeddings API", "", "embeddings_unsupported"};
}

ApiError AnthropicCodec::error(int status, std::string_view body) const {
  ApiError e = statusError(status);
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object())
    if (auto* err = objectAt(v.get_object(), "error")) {
      if (auto t = stringAt(*err, "type"); !t.empty()) e.type = e.code = std::string(t);
      e.message = std::string(stringAt(*err, "message"));
    }
  if (e.message.empty()) e.message = providerStatusMessage(status, body);
  return e;
}

}  // namespace ganglion::llm
