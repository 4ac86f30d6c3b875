#include "llm/tokenizer/prompt_count.h"

#include <boost/json.hpp>

namespace ganglion::llm::tokenizer {
namespace json = boost::json;
namespace {

// The cookbook's framing (verified against the API for gpt-3.5-turbo, gpt-4 and gpt-4o).
constexpr uint64_t kPerMessage = 3;
constexpr uint64_t kPerName = 1;
constexpr uint64_t kReplyPriming = 3;
// Its fitted constants for tool definitions: func_init differs by encoding.
/// What a Responses input_image is estimated at: the low-detail tile, as chat_request.cc does.
constexpr int64_t kImageEstimate = 85;
constexpr int64_t kPropInit = 3, kPropKey = 3, kEnumInit = -3, kEnumItem = 3, kFuncEnd = 12;

std::string_view withoutFinalDot(std::string_view s) {
  return s.ends_with('.') ? s.substr(0, s.size() - 1) : s;
}

std::string_view stringOr(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

class Counter {
 public:
  Counter(const Encoding& enc, CountBudget* budget) : enc_(enc), budget_(budget) {}

  void text(std::string_view s) { count_.tokens += enc_.count(s, budget_); }
  void add(int64_t n) { count_.tokens = n < 0 && uint64_t(-n) > count_.tokens ? 0 : count_.tokens + n; }
  void estimated() { count_.exact = false; }
  /// A value OpenAI renders its own way: its serialization, counted, as the estimate.
  void serialized(const json::value& v) {
    estimated();
    if (!v.is_null()) text(json::serialize(v));
  }

  /// One message's content: a string, or parts whose text is counted (others were estimated
  /// by the parser as media).
  void content(const json::value& content) {
    if (auto* s = content.if_string()) return text(*s);
    auto* parts = content.if_array();
    if (!parts) return content.is_null() ? void() : serialized(content);
    if (parts->size() > 1) estimated();  // how parts are joined is not published
    for (const auto& part : *parts) {
      auto* p = part.if_object();
      if (!p) continue;
      const std::string_view type = stringOr(*p, "type");
      if (type == "text" || type == "input_text" || type == "output_text")
        text(stringOr(*p, "text"));
      else if (type == "refusal")
        text(stringOr(*p, "refusal"));
      else if (type == "input_image")
        estimated(), add(kImageEstimate);  // (chat's images: media_estimate)
      else
        estimated();
    }
  }

  /// The cookbook's num_tokens_for_tools over function definitions ({name, description,
  /// parameters}); anything else in a tool is counted as its serialization.
  void functions(const json::array& tools, bool responses_shape) {
    if (tools.empty()) return;
    estimated();
    const int64_t func_init = enc_.name() == "o200k_base" ? 7 : 10;
    for (const auto& tool : tools) {
      auto* t = tool.if_object();
      if (!t) continue;
      const json::object* f = t;
      if (!responses_shape) {
        auto* fn = t->if_contains("function");
        if (!fn || !fn->is_object()) {
          serialized(tool);
          continue;
        }
        f = &fn->get_object();
      } else if (stringOr(*t, "type") != "function") {
        serialized(tool);
        continue;
      }
      add(func_init);
      text(std::string(stringOr(*f, "name")) + ":" +
           std::string(withoutFinalDot(stringOr(*f, "description"))));
      auto* params = f->if_contains("parameters");
      auto* props = params && params->is_object() ? params->get_object().if_contains("properties") : nullptr;
      if (!props || !props->is_object() || props->get_object().empty()) continue;
      add(kPropInit);
      for (const auto& [key, prop] : props->get_object()) {
        add(kPropKey);
        auto* p = prop.if_object();
        if (!p) continue;
        if (auto* en = p->if_contains("enum"); en && en->is_array()) {
          add(kEnumInit);
          for (const auto& item : en->get_array()) {
            add(kEnumItem);
            text(item.is_string() ? std::string(item.get_string()) : json::serialize(item));
          }
        }
        text(std::string(key) + ":" + std::string(stringOr(*p, "type")) + ":" +
             std::string(withoutFinalDot(stringOr(*p, "description"))));
      }
    }
    add(kFuncEnd);
  }

  PromptCount result() const { return count_; }

 private:
  const Encoding& enc_;
  CountBudget* budget_;
  PromptCount count_;
};

}  // namespace

PromptCount countChatPrompt(const Encoding& enc, const json::object& body, uint64_t media_estimate,
                            CountBudget* budget) {
  Counter c(enc, budget);
  if (auto* messages = body.if_contains("messages"); messages && messages->is_array()) {
    for (const auto& message : messages->get_array()) {
      auto* m = message.if_object();
      if (!m) continue;
      c.add(kPerMessage);
      for (const auto& [key, value] : *m) {
        if (key == "content") {
          c.content(value);
        } else if (auto* s = value.if_string()) {
          c.text(*s);  // role, name; as the cookbook, any other string too (tool_call_id)
          if (key == "name")
            c.add(kPerName);
          else if (key != "role")
            c.estimated();
        } else if (key == "tool_calls" && value.is_array()) {
          c.estimated();
          for (const auto& call : value.get_array())
            if (auto* fn = call.is_object() ? call.get_object().if_contains("function") : nullptr;
                fn && fn->is_object())
              c.text(std::string(stringOr(fn->get_object(), "name")) +
                     std::string(stringOr(fn->get_object(), "arguments")));
        } else if (!value.is_null()) {
          c.serialized(value);
        }
      }
    }
  }
  c.add(kReplyPriming);
  if (auto* tools = body.if_contains("tools"); tools && tools->is_array())
    c.functions(tools->get_array(), false);
  if (auto* format = body.if_contains("response_format"); format && format->is_object()) {
    if (auto* schema = format->get_object().if_contains("json_schema")) c.serialized(*schema);
  }
  if (media_estimate) {
    c.estimated();
    c.add(int64_t(media_estimate));
  }
  return c.result();
}

PromptCount countEmbeddingsInput(const Encoding& enc, const json::value& input, CountBudget* budget) {
  Counter c(enc, budget);
  if (auto* s = input.if_string()) {
    c.text(*s);
  } else if (auto* items = input.if_array()) {
    for (const auto& item : *items) {
      if (auto* s = item.if_string())
        c.text(*s);
      else if (auto* ids = item.if_array())
        c.add(int64_t(ids->size()));
      else
        c.add(1);  // one token id
    }
  }
  return c.result();
}

PromptCount countResponsesPrompt(const Encoding& enc, const json::object& body, CountBudget* budget) {
  Counter c(enc, budget);
  if (auto instructions = stringOr(body, "instructions"); !instructions.empty()) {
    c.add(kPerMessage);
    c.text("system");
    c.text(instructions);
  }
  if (auto* input = body.if_contains("input")) {
    if (auto* s = input->if_string()) {
      c.add(kPerMessage);
      c.text("user");
      c.text(*s);
    } else if (auto* items = input->if_array()) {
      for (const auto& item : *items) {
        auto* it = item.if_object();
        if (!it) continue;
        c.add(kPerMessage);
        const std::string_view type = stringOr(*it, "type");
        if (type.empty() || type == "message") {
          c.text(stringOr(*it, "role"));
          if (auto* content = it->if_contains("content")) c.content(*content);
        } else if (type == "function_call") {
          c.estimated();
          c.text(std::string(stringOr(*it, "name")) + std::string(stringOr(*it, "arguments")));
        } else if (type == "function_call_output") {
          c.estimated();
          if (auto* out = it->if_contains("output")) c.content(*out);
        } else {
          c.serialized(item);
        }
      }
    }
  }
  c.add(kReplyPriming);
  if (auto* tools = body.if_contains("tools"); tools && tools->is_array())
    c.functions(tools->get_array(), true);
  if (auto* text = body.if_contains("text"); text && text->is_object()) {
    if (auto* format = text->get_object().if_contains("format");
        format && format->is_object() && stringOr(format->get_object(), "type") == "json_schema")
      c.serialized(*format);
  }
  return c.result();
}

}  // namespace ganglion::llm::tokenizer
