#include "llm/anthropic_ingress.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "http/sse.h"
#include "llm/json_fields.h"
#include "llm/openai_shapes.h"

namespace ganglion::llm {

namespace json = boost::json;

namespace {

ApiError invalid(std::string param, std::string message) {
  return ApiError{400, "invalid_request_error", std::move(message), std::move(param),
                  "invalid_request_error"};
}

/// Text of a tool_result's content: a string or text blocks.
std::string resultText(const json::value* content) {
  if (!content) return {};
  if (content->is_string()) return std::string(content->get_string());
  std::string out;
  if (content->is_array())
    for (const auto& b : content->as_array())
      if (b.is_object() && stringAt(b.as_object(), "type") == "text") {
        if (!out.empty()) out += "\n";
        out += stringAt(b.as_object(), "text");
      }
  return out;
}

/// Anthropic content blocks of one message → OpenAI messages appended to `out`.
ApiResult translateMessage(const json::object& m, size_t i, json::array& out) {
  auto role = stringAt(m, "role");
  const json::value* content = m.if_contains("content");
  std::string p = fmt::format("messages.{}", i);
  if (role != "user" && role != "assistant")
    return invalid(p + ".role", fmt::format("{}.role: Input should be 'user' or 'assistant'", p));
  if (!content) return invalid(p + ".content", fmt::format("{}.content: Field required", p));
  if (content->is_string()) {
    out.push_back(json::object{{"role", role}, {"content", content->get_string()}});
    return {};
  }
  if (!content->is_array())
    return invalid(p + ".content", fmt::format("{}.content: Input should be a valid list", p));
  json::array parts, calls;
  for (size_t j = 0; j < content->as_array().size(); ++j) {
    const auto& bv = content->as_array()[j];
    std::string bp = fmt::format("{}.content.{}", p, j);
    if (!bv.is_object()) return invalid(bp, bp + ": Input should be an object");
    const auto& b = bv.as_object();
    auto type = stringAt(b, "type");
    if (type == "text") {
      auto* text = b.if_contains("text");
      if (!text) return invalid(bp + ".text", bp + ".text: Field required");
      if (!text->is_string()) return invalid(bp + ".text", bp + ".text: Input should be a valid string");
      parts.push_back(json::object{{"type", "text"}, {"text", text->get_string()}});
    } else if (auto* src = b.if_contains("source"); type == "document" && src && src->is_object() &&
                                                    stringAt(src->as_object(), "type") == "text") {
      // A plain-text document is text to any model; other documents (PDF) are dropped below.
      parts.push_back(json::object{{"type", "text"}, {"text", stringAt(src->as_object(), "data")}});
    } else if (type == "image") {
      auto* src = b.if_contains("source");
      if (!src || !src->is_object()) return invalid(bp + ".source", bp + ".source: Field required");
      const auto& so = src->as_object();
      std::string url =
          stringAt(so, "type") == "base64"
              ? fmt::format("data:{};base64,{}", stringAt(so, "media_type"), stringAt(so, "data"))
              : std::string(stringAt(so, "url"));
      parts.push_back(json::object{{"type", "image_url"}, {"image_url", json::object{{"url", url}}}});
    } else if (type == "tool_use") {
      if (role != "assistant")
        return invalid(bp + ".type", bp + ": tool_use blocks belong to assistant turns");
      auto* input = b.if_contains("input");
      calls.push_back(
          json::object{{"id", stringAt(b, "id")},
                       {"type", "function"},
                       {"function", json::object{{"name", stringAt(b, "name")},
                                                 {"arguments", input ? json::serialize(*input) : "{}"}}}});
    } else if (type == "tool_result") {
      // OpenAI carries each result as its own `tool` message, before the turn's other content.
      out.push_back(json::object{{"role", "tool"},
                                 {"tool_call_id", stringAt(b, "tool_use_id")},
                                 {"content", resultText(b.if_contains("content"))}});
    } else if (type == "thinking" || type == "redacted_thinking" || type == "document") {
      continue;  // no OpenAI equivalent: dropped for non-Anthropic providers
    } else {
      return invalid(bp + ".type", fmt::format("{}.type: unknown content block type '{}'", bp, type));
    }
  }
  if (!parts.empty() || !calls.empty()) {
    json::object msg{{"role", role}};
    msg["content"] = parts.empty() ? json::value(nullptr) : json::value(std::move(parts));
    if (!calls.empty()) msg["tool_calls"] = std::move(calls);
    out.push_back(std::move(msg));
  }
  return {};
}

std::string_view stopFromFinish(std::string_view finish) {
  if (finish == "length") return "max_tokens";
  if (finish == "tool_calls" || finish == "function_call") return "tool_use";
  if (finish == "content_filter") return "refusal";
  return "end_turn";
}

json::object anthropicUsage(const Usage& u) {
  return json::object{{"input_tokens", u.prompt - std::min(u.prompt, u.cached + u.cache_write)},
                      {"output_tokens", u.completion},
                      {"cache_creation_input_tokens", u.cache_write},
                      {"cache_read_input_tokens", u.cached}};
}

}  // namespace

void appendEvent(std::string& out, std::string_view type, const json::object& data) {
  http::appendSseEvent(out, type, json::serialize(data));
}

ApiResult parseMessagesRequest(std::string_view text, MessagesRequest& out) {
  out = MessagesRequest{};
  if (auto err = parseJsonObject(text, out.body); !err.ok()) {
    err.error().code = "invalid_request_error";
    return err;
  }
  const auto& b = out.body;
  auto* model = b.if_contains("model");
  if (!model) return invalid("model", "model: Field required");
  if (!model->is_string()) return invalid("model", "model: Input should be a valid string");
  out.model = std::string(model->get_string());
  auto* max_tokens = b.if_contains("max_tokens");
  if (!max_tokens) return invalid("max_tokens", "max_tokens: Field required");
  if (!max_tokens->is_int64() || max_tokens->get_int64() < 1)
    return invalid("max_tokens", "max_tokens: Input should be a positive integer");
  auto* messages = b.if_contains("messages");
  if (!messages) return invalid("messages", "messages: Field required");
  if (!messages->is_array() || messages->as_array().empty())
    return invalid("messages", "messages: Input should be a non-empty list");
  if (auto* s = b.if_contains("stream")) {
    if (!s->is_bool()) return invalid("stream", "stream: Input should be a valid boolean");
    out.stream = s->get_bool();
  }

  // The OpenAI form, checked again by the chat parser so both ingresses share one set of rules.
  json::object chat{{"model", out.model}, {"max_tokens", *max_tokens}};
  json::array msgs;
  if (auto* system = b.if_contains("system")) {
    std::string text = system->is_string() ? std::string(system->get_string()) : resultText(system);
    if (!text.empty()) msgs.push_back(json::object{{"role", "system"}, {"content", text}});
  }
  for (size_t i = 0; i < messages->as_array().size(); ++i) {
    const auto& m = messages->as_array()[i];
    if (!m.is_object())
      return invalid(fmt::format("messages.{}", i), fmt::format("messages.{}: Input should be an object", i));
    if (auto err = translateMessage(m.as_object(), i, msgs); !err.ok()) return err;
  }
  chat["messages"] = std::move(msgs);
  for (auto [from, to] : {std::pair{"temperature", "temperature"}, std::pair{"top_p", "top_p"}})
    if (auto* v = b.if_contains(from)) chat[to] = *v;
  if (auto* stop = b.if_contains("stop_sequences")) chat["stop"] = *stop;
  if (out.stream) {
    chat["stream"] = true;
    chat["stream_options"] = json::object{{"include_usage", true}};
  }
  if (auto* meta = b.if_contains("metadata"); meta && meta->is_object())
    if (auto user = stringAt(meta->as_object(), "user_id"); !user.empty()) chat["user"] = user;
  if (auto* tools = b.if_contains("tools"); tools && tools->is_array()) {
    json::array out_tools;
    for (const auto& t : tools->as_array()) {
      if (!t.is_object()) return invalid("tools", "tools: Input should be a list of objects");
      const auto& to = t.as_object();
      json::object fn{{"name", stringAt(to, "name")}};
      if (auto d = stringAt(to, "description"); !d.empty()) fn["description"] = d;
      if (auto* schema = to.if_contains("input_schema")) fn["parameters"] = *schema;
      out_tools.push_back(json::object{{"type", "function"}, {"function", std::move(fn)}});
    }
    if (!out_tools.empty()) chat["tools"] = std::move(out_tools);
  }
  if (auto* tc = b.if_contains("tool_choice"); tc && tc->is_object()) {
    const auto& tco = tc->as_object();
    auto type = stringAt(tco, "type");
    if (type == "any")
      chat["tool_choice"] = "required";
    else if (type == "none")
      chat["tool_choice"] = "none";
    else if (type == "tool")
      chat["tool_choice"] =
          json::object{{"type", "function"}, {"function", json::object{{"name", stringAt(tco, "name")}}}};
    else
      chat["tool_choice"] = "auto";
    if (auto* d = tco.if_contains("disable_parallel_tool_use"); d && d->is_bool() && d->get_bool())
      chat["parallel_tool_calls"] = false;
  }
  // Structured outputs: output_config.format (GA) or output_format (the beta's name), a JSON
  // schema, become OpenAI's response_format, which every codec translates.
  const json::value* format = nullptr;
  if (auto* config = b.if_contains("output_config"); config && config->is_object())
    format = config->as_object().if_contains("format");
  if (!format) format = b.if_contains("output_format");
  if (format && !format->is_null()) {
    const json::object* fo = format->if_object();
    const json::value* schema = fo ? fo->if_contains("schema") : nullptr;
    if (!fo || stringAt(*fo, "type") != "json_schema" || !schema || !schema->is_object())
      return invalid("output_config.format",
                     "output_config.format: Input should be {\"type\": \"json_schema\", \"schema\": {...}}");
    chat["response_format"] = json::object{
        {"type", "json_schema"},
        {"json_schema", json::object{{"name", "output"}, {"schema", *schema}, {"strict", true}}}};
  }
  if (auto err = parseChatRequest(json::serialize(chat), out.chat); !err.ok()) {
    err.error().code = "invalid_request_error";
    return err;
  }
  out.chat.include_usage = true;
  return {};
}

ApiResult messageFromCompletion(std::string_view completion, std::string& out) {
  boost::system::error_code ec;
  json::value v = json::parse(completion, ec);
  if (ec || !v.is_object())
    return ApiError{502, "api_error", "the provider's answer could not be translated", "", "api_error"};
  const auto& c = v.as_object();
  if (auto* choices = c.if_contains("choices");
      !choices || !choices->is_array() || choices->as_array().empty() || !choices->as_array()[0].is_object())
    return badProviderAnswer("a chat completion without choices");
  json::array content;
  std::string_view finish;
  if (auto* choices = c.if_contains("choices");
      choices && choices->is_array() && !choices->as_array().empty() && choices->as_array()[0].is_object()) {
    const auto& choice = choices->as_array()[0].as_object();
    finish = stringAt(choice, "finish_reason");
    if (auto* msg = choice.if_contains("message"); msg && msg->is_object()) {
      const auto& m = msg->as_object();
      if (auto text = stringAt(m, "content"); !text.empty())
        content.push_back(json::object{{"type", "text"}, {"text", text}});
      if (auto* calls = m.if_contains("tool_calls"); calls && calls->is_array())
        for (const auto& call : calls->as_array()) {
          if (!call.is_object()) continue;
          const auto* fn = call.as_object().if_contains("function");
          if (!fn || !fn->is_object()) continue;
          json::value input = json::parse(stringAt(fn->as_object(), "arguments"), ec);
          if (ec || !input.is_object()) input = json::object();
          content.push_back(json::object{{"type", "tool_use"},
                                         {"id", stringAt(call.as_object(), "id")},
                                         {"name", stringAt(fn->as_object(), "name")},
                                         {"input", std::move(input)}});
        }
    }
  }
  Usage u;
  if (auto* usage = c.if_contains("usage"); usage && usage->is_object())
    u = usageFromOpenAI(usage->as_object());
  out = json::serialize(json::object{{"id", idOr("msg_", stringAt(c, "id"))},
                                     {"type", "message"},
                                     {"role", "assistant"},
                                     {"model", stringAt(c, "model")},
                                     {"content", std::move(content)},
                                     {"stop_reason", stopFromFinish(finish)},
                                     {"stop_sequence", nullptr},
                                     {"usage", anthropicUsage(u)}});
  return {};
}

void MessagesStreamEncoder::start(const json::object& chunk, std::string& out) {
  started_ = true;
  appendEvent(out, "message_start",
              json::object{{"type", "message_start"},
                           {"message", json::object{{"id", idOr("msg_", stringAt(chunk, "id"))},
                                                    {"type", "message"},
                                                    {"role", "assistant"},
                                                    {"model", stringAt(chunk, "model")},
                                                    {"content", json::array()},
                                                    {"stop_reason", nullptr},
                                                    {"stop_sequence", nullptr},
                                                    {"usage", json::object{{"input_tokens", prompt_tokens_},
                                                                           {"output_tokens", 0}}}}}});
}

void MessagesStreamEncoder::closeBlock(std::string& out) {
  if (open_block_ < 0) return;
  appendEvent(out, "content_block_stop",
              json::object{{"type", "content_block_stop"}, {"index", open_block_}});
  open_block_ = -1;
}

void MessagesStreamEncoder::chunk(const json::object& chunk, std::string& out) {
  if (!started_) start(chunk, out);
  auto* choices = chunk.if_contains("choices");
  if (!choices || !choices->is_array()) return;
  for (const auto& cv : choices->as_array()) {
    if (!cv.is_object()) continue;
    const auto& choice = cv.as_object();
    if (auto finish = stringAt(choice, "finish_reason"); !finish.empty())
      stop_reason_ = std::string(stopFromFinish(finish));
    auto* dv = choice.if_contains("delta");
    if (!dv || !dv->is_object()) continue;
    const auto& delta = dv->as_object();
    if (auto text = stringAt(delta, "content"); !text.empty()) {
      if (open_block_ < 0 || !open_is_text_) {
        closeBlock(out);
        open_block_ = next_block_++;
        open_is_text_ = true;
        appendEvent(out, "content_block_start",
                    json::object{{"type", "content_block_start"},
                                 {"index", open_block_},
                                 {"content_block", json::object{{"type", "text"}, {"text", ""}}}});
      }
      appendEvent(out, "content_block_delta",
                  json::object{{"type", "content_block_delta"},
                               {"index", open_block_},
                               {"delta", json::object{{"type", "text_delta"}, {"text", text}}}});
    }
    auto* calls = delta.if_contains("tool_calls");
    if (!calls || !calls->is_array()) continue;
    for (const auto& call : calls->as_array()) {
      if (!call.is_object()) continue;
      const auto& co = call.as_object();
      int64_t index = co.contains("index") && co.at("index").is_int64() ? co.at("index").as_int64() : 0;
      const json::object* fn = co.if_contains("function") && co.at("function").is_object()
                                   ? &co.at("function").as_object()
                                   : nullptr;
      auto it = tool_blocks_.find(index);
      if (it == tool_blocks_.end()) {
        closeBlock(out);
        open_block_ = next_block_++;
        open_is_text_ = false;
        it = tool_blocks_.emplace(index, open_block_).first;
        appendEvent(out, "content_block_start",
                    json::object{{"type", "content_block_start"},
                                 {"index", open_block_},
                                 {"content_block", json::object{{"type", "tool_use"},
                                                                {"id", stringAt(co, "id")},
                                                                {"name", fn ? stringAt(*fn, "name") : ""},
                                                                {"input", json::object()}}}});
      }
      if (auto args = fn ? stringAt(*fn, "arguments") : std::string_view(); !args.empty())
        appendEvent(
            out, "content_block_delta",
            json::object{{"type", "content_block_delta"},
                         {"index", it->second},
                         {"delta", json::object{{"type", "input_json_delta"}, {"partial_json", args}}}});
    }
  }
}

void MessagesStreamEncoder::finish(const Usage& usage, std::string& out) {
  closeBlock(out);
  json::object u = anthropicUsage(usage);
  appendEvent(out, "message_delta",
              json::object{{"type", "message_delta"},
                           {"delta", json::object{{"stop_reason", stop_reason_}, {"stop_sequence", nullptr}}},
                           {"usage", std::move(u)}});
  appendEvent(out, "message_stop", json::object{{"type", "message_stop"}});
}

void MessagesStreamEncoder::error(const ApiError& e, std::string& out) {
  boost::system::error_code ec;
  json::value body = json::parse(anthropicErrorBody(e), ec);
  appendEvent(out, "error", body.as_object());
}

}  // namespace ganglion::llm
