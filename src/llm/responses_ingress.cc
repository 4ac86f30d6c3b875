#include "llm/responses_ingress.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "http/sse.h"
#include "llm/json_fields.h"
#include "llm/openai_shapes.h"

namespace ganglion::llm {

namespace json = boost::json;

namespace {

ApiError invalid(std::string param, std::string message, std::string_view code = "invalid_value") {
  return ApiError{400, "invalid_request_error", std::move(message), std::move(param), std::string(code)};
}

/// A string field that must be there (and, unless `may_be_empty`, not empty).
ApiResult requireString(const json::object& o, std::string_view key, const std::string& where,
                        bool may_be_empty = false) {
  const std::string param = fmt::format("{}.{}", where, key);
  auto* v = o.if_contains(key);
  if (!v)
    return invalid(param, fmt::format("Missing required parameter: '{}'.", param),
                   "missing_required_parameter");
  if (!v->is_string())
    return invalid(param, fmt::format("Invalid type for '{}': expected a string.", param), "invalid_type");
  if (v->get_string().empty() && !may_be_empty)
    return invalid(param, fmt::format("Invalid '{}': empty string.", param), "empty_string");
  return {};
}

ApiError onlyOpenAi(std::string param, std::string_view what) {
  return invalid(
      param,
      fmt::format("'{}' ({}) needs OpenAI's own Responses API: route this model to an OpenAI-kind provider, "
                  "or send the conversation itself.",
                  param, what),
      "unsupported_parameter");
}

/// One Responses content part as a chat content part, or an error naming it.
ApiResult chatPart(const json::value& v, const std::string& where, json::array& parts) {
  if (v.is_string()) {
    parts.push_back(json::object{{"type", "text"}, {"text", v.get_string()}});
    return {};
  }
  auto* o = v.if_object();
  if (!o)
    return invalid(where, fmt::format("Invalid type for '{}': expected an object.", where), "invalid_type");
  const auto type = stringAt(*o, "type");
  if (type == "input_text" || type == "output_text" || type == "text" || type == "refusal") {
    const char* field = type == "refusal" ? "refusal" : "text";
    if (auto err = requireString(*o, field, where, true); !err.ok()) return err;
    parts.push_back(json::object{{"type", "text"}, {"text", stringAt(*o, field)}});
  } else if (type == "input_image") {
    if (o->contains("file_id")) return onlyOpenAi(where + ".file_id", "an image by file id");
    if (auto err = requireString(*o, "image_url", where); !err.ok()) return err;
    json::object image{{"url", stringAt(*o, "image_url")}};
    if (auto detail = stringAt(*o, "detail"); !detail.empty()) image["detail"] = detail;
    parts.push_back(json::object{{"type", "image_url"}, {"image_url", std::move(image)}});
  } else if (type == "input_file") {
    return onlyOpenAi(where, "a file");
  } else {
    return invalid(where + ".type", fmt::format("Invalid value: '{}'. Supported values are: 'input_text', "
                                                "'output_text', 'input_image'.",
                                                type));
  }
  return {};
}

/// Text of a function_call_output's output: a string, or text parts joined.
std::string outputText(const json::value* output) {
  if (!output) return {};
  if (output->is_string()) return std::string(output->get_string());
  std::string out;
  if (output->is_array())
    for (const auto& p : output->as_array())
      if (p.is_object()) out += stringAt(p.as_object(), "text");
  return out.empty() ? json::serialize(*output) : out;
}

ApiResult translateInput(const json::value& input, json::array& messages) {
  if (input.is_string()) {
    messages.push_back(json::object{{"role", "user"}, {"content", input.get_string()}});
    return {};
  }
  if (!input.is_array())
    return invalid("input", "Invalid type for 'input': expected a string or an array of items.",
                   "invalid_type");
  json::object* open_calls = nullptr;  // consecutive function_call items share one assistant turn
  const auto& items = input.as_array();
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string where = fmt::format("input[{}]", i);
    auto* item = items[i].if_object();
    if (!item)
      return invalid(where, fmt::format("Invalid type for '{}': expected an object.", where), "invalid_type");
    auto type = stringAt(*item, "type");
    if (type.empty() && item->contains("role")) type = "message";
    if (type == "function_call") {
      for (std::string_view key : {"call_id", "name", "arguments"})
        if (auto err = requireString(*item, key, where, key == "arguments"); !err.ok()) return err;
      json::object call{{"id", stringAt(*item, "call_id")},
                        {"type", "function"},
                        {"function", json::object{{"name", stringAt(*item, "name")},
                                                  {"arguments", stringAt(*item, "arguments")}}}};
      if (!open_calls) {
        messages.push_back(
            json::object{{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array()}});
        open_calls = &messages.back().as_object();
      }
      open_calls->at("tool_calls").as_array().push_back(std::move(call));
      continue;
    }
    open_calls = nullptr;
    if (type == "function_call_output") {
      if (auto err = requireString(*item, "call_id", where); !err.ok()) return err;
      if (auto* o = item->if_contains("output"); !o || !(o->is_string() || o->is_array()))
        return invalid(where + ".output",
                       fmt::format("Invalid type for '{}.output': expected a string or an array.", where),
                       "invalid_type");
      messages.push_back(json::object{{"role", "tool"},
                                      {"tool_call_id", stringAt(*item, "call_id")},
                                      {"content", outputText(item->if_contains("output"))}});
    } else if (type == "message") {
      auto role = stringAt(*item, "role");
      if (role != "user" && role != "assistant" && role != "system" && role != "developer")
        return invalid(where + ".role",
                       fmt::format("Invalid value: '{}'. Supported values are: 'user', 'assistant', "
                                   "'system', and 'developer'.",
                                   role));
      const json::value* content = item->if_contains("content");
      if (!content)
        return invalid(where + ".content", fmt::format("Missing required parameter: '{}.content'.", where),
                       "missing_required_parameter");
      if (content->is_string()) {
        messages.push_back(json::object{{"role", role}, {"content", content->get_string()}});
        continue;
      }
      if (!content->is_array())
        return invalid(where + ".content", "Invalid type for 'content': expected a string or an array.",
                       "invalid_type");
      json::array parts;
      for (size_t j = 0; j < content->as_array().size(); ++j)
        if (auto err = chatPart(content->as_array()[j], fmt::format("{}.content[{}]", where, j), parts);
            !err.ok())
          return err;
      if (role == "assistant" || role == "system" || role == "developer") {
        std::string text;  // these roles take text only in the chat form
        for (const auto& p : parts) text += stringAt(p.as_object(), "text");
        messages.push_back(json::object{{"role", role}, {"content", text}});
      } else {
        messages.push_back(json::object{{"role", role}, {"content", std::move(parts)}});
      }
    } else if (type == "reasoning") {
      continue;  // a reasoning summary of an earlier turn: not input to another model
    } else if (type == "item_reference") {
      return onlyOpenAi(where, "a stored item");
    } else {
      return invalid(where + ".type", fmt::format("Invalid value: '{}'. Supported values are: 'message', "
                                                  "'function_call', 'function_call_output'.",
                                                  type));
    }
  }
  return {};
}

/// The request fields a Response echoes back.
void echoRequest(const json::object& request, json::object& response) {
  for (std::string_view key : {"instructions", "max_output_tokens", "metadata", "parallel_tool_calls",
                               "temperature", "tool_choice", "tools", "top_p", "text"}) {
    if (auto* v = request.if_contains(key))
      response[key] = *v;
    else
      response[key] = nullptr;
  }
  if (response["tools"].is_null()) response["tools"] = json::array();
  if (response["tool_choice"].is_null()) response["tool_choice"] = "auto";
  if (response["parallel_tool_calls"].is_null()) response["parallel_tool_calls"] = true;
  if (response["metadata"].is_null()) response["metadata"] = json::object();
}

}  // namespace

ApiResult chatFromResponsesRequest(const json::object& b, ChatRequest& out) {
  for (std::string_view key : {"previous_response_id", "conversation", "prompt"})
    if (auto* v = b.if_contains(key); v && !v->is_null())
      return onlyOpenAi(std::string(key), "state OpenAI keeps");
  json::object chat{{"model", b.contains("model") ? b.at("model") : json::value("")}};
  json::array messages;
  auto wrongType = [](std::string param, std::string_view expected) {
    return invalid(param, fmt::format("Invalid type for '{}': expected {}.", param, expected),
                   "invalid_type");
  };
  if (auto* instructions = b.if_contains("instructions"); instructions && !instructions->is_null()) {
    if (!instructions->is_string()) return wrongType("instructions", "a string");
    messages.push_back(json::object{{"role", "system"}, {"content", instructions->get_string()}});
  }
  auto* input = b.if_contains("input");
  if (!input) return invalid("input", "Missing required parameter: 'input'.", "missing_required_parameter");
  if (auto err = translateInput(*input, messages); !err.ok()) return err;
  chat["messages"] = std::move(messages);
  if (auto* m = b.if_contains("max_output_tokens"); m && !m->is_null()) chat["max_completion_tokens"] = *m;
  for (std::string_view key : {"temperature", "top_p", "parallel_tool_calls", "user"})
    if (auto* v = b.if_contains(key); v && !v->is_null()) chat[key] = *v;
  if (auto* tools = b.if_contains("tools"); tools && !tools->is_null()) {
    if (!tools->is_array()) return wrongType("tools", "an array");
  }
  if (auto* tools = b.if_contains("tools"); tools && tools->is_array() && !tools->as_array().empty()) {
    json::array chat_tools;
    const auto& list = tools->as_array();
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = fmt::format("tools[{}]", i);
      auto* t = list[i].if_object();
      if (!t) return wrongType(where, "an object");
      if (stringAt(*t, "type") != "function") return onlyOpenAi(where, "a built-in or custom tool");
      if (auto err = requireString(*t, "name", where); !err.ok()) return err;
      json::object fn{{"name", stringAt(*t, "name")}};
      if (auto d = stringAt(*t, "description"); !d.empty()) fn["description"] = d;
      if (auto* p = t->if_contains("parameters"); p && p->is_object()) fn["parameters"] = *p;
      if (auto* s = t->if_contains("strict"); s && s->is_bool()) fn["strict"] = *s;
      chat_tools.push_back(json::object{{"type", "function"}, {"function", std::move(fn)}});
    }
    chat["tools"] = std::move(chat_tools);
  }
  if (auto* tc = b.if_contains("tool_choice"); tc && !tc->is_null()) {
    if (tc->is_string()) {
      const auto& s = tc->get_string();
      if (s != "none" && s != "auto" && s != "required")
        return invalid("tool_choice",
                       fmt::format("Invalid value: '{}'. Supported values are: 'none', 'auto', and "
                                   "'required'.",
                                   std::string_view(s)));
      chat["tool_choice"] = *tc;
    } else if (auto* o = tc->if_object(); o && stringAt(*o, "type") == "function") {
      if (auto err = requireString(*o, "name", "tool_choice"); !err.ok()) return err;
      chat["tool_choice"] =
          json::object{{"type", "function"}, {"function", json::object{{"name", stringAt(*o, "name")}}}};
    } else {
      return wrongType("tool_choice",
                       "'none', 'auto', 'required' or {\"type\": \"function\", \"name\": ...}");
    }
  }
  if (auto* text = b.if_contains("text"); text && !text->is_null() && !text->is_object())
    return wrongType("text", "an object");
  if (auto* text = b.if_contains("text"); text && text->is_object())
    if (auto* format = text->as_object().if_contains("format"); format && !format->is_null()) {
      if (!format->is_object()) return wrongType("text.format", "an object");
      const auto& f = format->as_object();
      const auto type = stringAt(f, "type");
      if (type != "text" && type != "json_schema" && type != "json_object")
        return invalid("text.format.type", fmt::format("Invalid value: '{}'. Supported values are: 'text', "
                                                       "'json_schema', and 'json_object'.",
                                                       type));
      if (type == "json_schema") {
        if (auto* s = f.if_contains("schema"); !s || !s->is_object())
          return wrongType("text.format.schema", "an object");
        json::object schema{
            {"name", stringAt(f, "name").empty() ? std::string_view("output") : stringAt(f, "name")}};
        if (auto* s = f.if_contains("schema")) schema["schema"] = *s;
        if (auto* s = f.if_contains("strict"); s && s->is_bool()) schema["strict"] = *s;
        chat["response_format"] = json::object{{"type", "json_schema"}, {"json_schema", std::move(schema)}};
      } else if (type == "json_object") {
        chat["response_format"] = json::object{{"type", "json_object"}};
      }
    }
  if (auto* s = b.if_contains("stream"); s && s->is_bool() && s->get_bool()) {
    chat["stream"] = true;
    chat["stream_options"] = json::object{{"include_usage", true}};
  }
  if (auto err = parseChatRequest(json::serialize(chat), out); !err.ok()) {
    // The chat form's names back into the Responses API's, so the client can find the field.
    for (auto [from, to] :
         {std::pair<std::string_view, std::string_view>{"max_completion_tokens", "max_output_tokens"},
          {"response_format.json_schema", "text.format"},
          {"messages", "input"}})
      for (std::string* s : {&err.error().param, &err.error().message})
        for (size_t at = s->find(from); at != std::string::npos; at = s->find(from, at + to.size()))
          s->replace(at, from.size(), to);
    return err;
  }
  out.include_usage = true;
  return {};
}

ApiResult responseFromCompletion(std::string_view completion, const json::object& request, std::string& out,
                                 std::string_view fallback_model) {
  boost::system::error_code ec;
  json::value v = json::parse(completion, ec);
  if (ec || !v.is_object()) return badProviderAnswer("an answer that could not be translated");
  const auto& c = v.as_object();
  auto* choices = c.if_contains("choices");
  if (!choices || !choices->is_array() || choices->as_array().empty() || !choices->as_array()[0].is_object())
    return badProviderAnswer("a chat completion without choices");
  const auto& choice = choices->as_array()[0].as_object();
  json::array output;
  std::string_view finish = stringAt(choice, "finish_reason");
  if (auto* msg = objectAt(choice, "message")) {
    if (auto text = stringAt(*msg, "content"); !text.empty()) {
      output.push_back(json::object{
          {"type", "message"},
          {"id", uniqueId("msg_")},
          {"status", "completed"},
          {"role", "assistant"},
          {"content", json::array{json::object{
                          {"type", "output_text"}, {"text", text}, {"annotations", json::array()}}}}});
    }
    if (auto* calls = msg->if_contains("tool_calls"); calls && calls->is_array())
      for (const auto& call : calls->as_array()) {
        auto* co = call.if_object();
        auto* fn = co ? objectAt(*co, "function") : nullptr;
        if (!fn) continue;
        output.push_back(json::object{{"type", "function_call"},
                                      {"id", uniqueId("fc_")},
                                      {"call_id", stringAt(*co, "id")},
                                      {"name", stringAt(*fn, "name")},
                                      {"arguments", stringAt(*fn, "arguments")},
                                      {"status", "completed"}});
      }
  }
  Usage usage;
  if (auto* u = objectAt(c, "usage")) usage = usageFromOpenAI(*u);
  const bool cut = finish == "length" || finish == "content_filter";
  json::object response{{"id", uniqueId("resp_")},
                        {"object", "response"},
                        {"created_at", nowSeconds()},
                        {"status", cut ? "incomplete" : "completed"},
                        {"error", nullptr},
                        {"model", stringAt(c, "model").empty() ? fallback_model : stringAt(c, "model")},
                        {"output", std::move(output)},
                        {"usage", usageToResponses(usage)}};
  response["incomplete_details"] =
      cut ? json::value(json::object{{"reason", finish == "length" ? "max_output_tokens" : "content_filter"}})
          : json::value(nullptr);
  echoRequest(request, response);
  out = json::serialize(response);
  return {};
}

ResponsesStreamEncoder::ResponsesStreamEncoder(const json::object& request, std::string_view fallback_model)
    : request_(request), id_(uniqueId("resp_")), model_(fallback_model), created_(nowSeconds()) {}

void ResponsesStreamEncoder::event(std::string& out, std::string_view type, json::object data) {
  json::object e{{"type", type}, {"sequence_number", sequence_++}};
  for (auto& [k, v] : data) e[k] = std::move(v);
  http::appendSseEvent(out, type, json::serialize(e));
}

json::object ResponsesStreamEncoder::responseObject(std::string_view status) const {
  json::array output;
  for (const auto& item : items_) output.push_back(itemJson(item, "completed"));
  json::object r{{"id", id_},        {"object", "response"}, {"created_at", created_},     {"status", status},
                 {"error", nullptr}, {"model", model_},      {"output", std::move(output)}};
  r["usage"] = status == "in_progress" ? json::value(nullptr) : json::value(usageToResponses(usage_));
  r["incomplete_details"] =
      status == "incomplete"
          ? json::value(
                json::object{{"reason", finish_reason_ == "length" ? "max_output_tokens" : "content_filter"}})
          : json::value(nullptr);
  json::object echoed;
  echoRequest(request_, echoed);
  for (auto& [k, v] : echoed) r[k] = std::move(v);
  return r;
}

json::object ResponsesStreamEncoder::itemJson(const Item& item, std::string_view status) const {
  if (item.is_call)
    return json::object{{"type", "function_call"}, {"id", item.id},          {"call_id", item.call_id},
                        {"name", item.name},       {"arguments", item.text}, {"status", status}};
  json::array content;
  if (status == "completed" || !item.text.empty())
    content.push_back(
        json::object{{"type", "output_text"}, {"text", item.text}, {"annotations", json::array()}});
  return json::object{{"type", "message"},
                      {"id", item.id},
                      {"status", status},
                      {"role", "assistant"},
                      {"content", std::move(content)}};
}

void ResponsesStreamEncoder::start(std::string& out) {
  started_ = true;
  event(out, "response.created", json::object{{"response", responseObject("in_progress")}});
  event(out, "response.in_progress", json::object{{"response", responseObject("in_progress")}});
}

void ResponsesStreamEncoder::closeItem(std::string& out) {
  if (open_ < 0) return;
  const Item& item = items_[static_cast<size_t>(open_)];
  if (item.is_call) {
    event(out, "response.function_call_arguments.done",
          json::object{{"item_id", item.id}, {"output_index", open_}, {"arguments", item.text}});
  } else {
    event(out, "response.output_text.done",
          json::object{
              {"item_id", item.id}, {"output_index", open_}, {"content_index", 0}, {"text", item.text}});
    event(out, "response.content_part.done",
          json::object{
              {"item_id", item.id},
              {"output_index", open_},
              {"content_index", 0},
              {"part",
               json::object{{"type", "output_text"}, {"text", item.text}, {"annotations", json::array()}}}});
  }
  event(out, "response.output_item.done",
        json::object{{"output_index", open_}, {"item", itemJson(item, "completed")}});
  open_ = -1;
}

void ResponsesStreamEncoder::chunk(const json::object& chunk, std::string& out) {
  if (auto m = stringAt(chunk, "model"); !m.empty() && !started_) model_ = std::string(m);
  if (!started_) start(out);
  if (auto* u = objectAt(chunk, "usage")) usage_ = usageFromOpenAI(*u);
  auto* choices = chunk.if_contains("choices");
  if (!choices || !choices->is_array()) return;
  for (const auto& cv : choices->as_array()) {
    auto* choice = cv.if_object();
    if (!choice) continue;
    if (auto f = stringAt(*choice, "finish_reason"); !f.empty()) finish_reason_ = std::string(f);
    auto* delta = objectAt(*choice, "delta");
    if (!delta) continue;
    if (auto text = stringAt(*delta, "content"); !text.empty()) {
      if (open_ < 0 || items_[static_cast<size_t>(open_)].is_call) {
        closeItem(out);
        items_.push_back({uniqueId("msg_"), false, "", "", ""});
        open_ = static_cast<int64_t>(items_.size() - 1);
        event(out, "response.output_item.added",
              json::object{{"output_index", open_}, {"item", itemJson(items_.back(), "in_progress")}});
        event(out, "response.content_part.added",
              json::object{
                  {"item_id", items_.back().id},
                  {"output_index", open_},
                  {"content_index", 0},
                  {"part",
                   json::object{{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}});
      }
      items_[static_cast<size_t>(open_)].text += text;
      event(out, "response.output_text.delta",
            json::object{{"item_id", items_[static_cast<size_t>(open_)].id},
                         {"output_index", open_},
                         {"content_index", 0},
                         {"delta", text}});
    }
    auto* calls = delta->if_contains("tool_calls");
    if (!calls || !calls->is_array()) continue;
    for (const auto& call_v : calls->as_array()) {
      auto* call = call_v.if_object();
      if (!call) continue;
      const int64_t index = countAt(*call, "index");
      auto* fn = objectAt(*call, "function");
      auto it = call_items_.find(index);
      if (it == call_items_.end()) {
        closeItem(out);
        items_.push_back({uniqueId("fc_"), true, std::string(stringAt(*call, "id")),
                          std::string(fn ? stringAt(*fn, "name") : ""), ""});
        open_ = static_cast<int64_t>(items_.size() - 1);
        it = call_items_.emplace(index, items_.size() - 1).first;
        event(out, "response.output_item.added",
              json::object{{"output_index", open_}, {"item", itemJson(items_.back(), "in_progress")}});
      }
      if (auto args = fn ? stringAt(*fn, "arguments") : std::string_view(); !args.empty()) {
        Item& item = items_[it->second];
        item.text += args;
        event(out, "response.function_call_arguments.delta",
              json::object{
                  {"item_id", item.id}, {"output_index", static_cast<int64_t>(it->second)}, {"delta", args}});
      }
    }
  }
}

void ResponsesStreamEncoder::finish(const Usage& usage, std::string& out) {
  if (!started_) start(out);
  closeItem(out);
  usage_ = usage;
  const bool cut = finish_reason_ == "length" || finish_reason_ == "content_filter";
  event(out, cut ? "response.incomplete" : "response.completed",
        json::object{{"response", responseObject(cut ? "incomplete" : "completed")}});
}

void ResponsesStreamEncoder::error(const ApiError& e, std::string& out) {
  if (!started_) start(out);
  event(out, "error",
        json::object{{"code", e.code.empty() ? e.type : e.code}, {"message", e.message}, {"param", nullptr}});
  json::object failed = responseObject("failed");
  failed["error"] =
      json::object{{"code", e.code.empty() ? std::string("server_error") : e.code}, {"message", e.message}};
  event(out, "response.failed", json::object{{"response", std::move(failed)}});
}

}  // namespace ganglion::llm
