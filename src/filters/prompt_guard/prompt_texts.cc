#include "filters/prompt_guard/prompt_texts.h"

#include <boost/json.hpp>

#include "base/strings.h"

namespace ganglion::filters {

namespace json = boost::json;

namespace {

constexpr std::string_view kTokenIds = "a prompt given as token ids cannot be checked against patterns";

bool named(std::string_view key, std::initializer_list<std::string_view> names) {
  for (auto n : names)
    if (iequals(key, n)) return true;
  return false;
}

/// Fields whose strings are what a model reads as text.
bool isTextField(std::string_view key) {
  return named(key,
               {"content", "text", "refusal", "title", "context", "output", "parts", "input", "instructions",
                "system", "prompt", "systemInstruction", "system_instruction", "messages", "contents"});
}

/// Fields and block types whose contents come back from tools.
bool isToolField(std::string_view key) {
  return named(key, {"toolResult", "tool_result", "functionResponse", "function_response"});
}

std::string_view typeOf(const json::object& o) {
  for (const auto& kv : o)
    if (iequals(kv.key(), "type") && kv.value().is_string()) return kv.value().get_string();
  return {};
}

class Collector {
 public:
  explicit Collector(std::vector<PromptText>& out) : out_(out) {}
  std::optional<std::string> failure;

  /// A message object, or a bare string in a list of messages. Its role comes from `role`
  /// (a role the APIs do not name counts as the user's).
  void message(const json::value& v, PromptRole default_role) {
    const auto* o = v.if_object();
    if (!o) return walk(v, default_role, "content");
    PromptRole role = default_role;
    for (const auto& kv : *o)
      if (iequals(kv.key(), "role") && kv.value().is_string())
        role = promptRoleNamed(kv.value().get_string());
    walk(v, role, "content");
  }

  /// A list of messages (or one message object).
  void messages(const json::value& v, PromptRole default_role) {
    if (const auto* a = v.if_array()) {
      for (const auto& m : *a) message(m, default_role);
    } else {
      message(v, default_role);
    }
  }

  /// A prompt: a string, strings, Responses items, a prompt template (its variables), or
  /// token ids (refused).
  void prompt(const json::value& v) {
    if (const auto* a = v.if_array()) {
      for (const auto& item : *a) {
        if (item.is_number() || item.is_array()) {
          failure = std::string(kTokenIds);
          return;
        }
        message(item, kRoleUser);
      }
      return;
    }
    message(v, kRoleUser);
  }

  /// Every string under `v`. `key`: the field `v` is the value of, which says whether its
  /// strings are text. Objects of tool results switch to kRoleTool.
  void walk(const json::value& v, PromptRole role, std::string_view key, bool text_source = false) {
    switch (v.kind()) {
      case json::kind::string:
        out_.push_back(
            {role, std::string_view(v.get_string()), isTextField(key) || (text_source && key == "data")});
        return;
      case json::kind::array:
        for (const auto& item : v.get_array()) walk(item, role, key);
        return;
      case json::kind::object: {
        const auto& o = v.get_object();
        const std::string_view type = typeOf(o);
        if (named(type, {"tool_result", "function_call_output", "tool"})) role = kRoleTool;
        const bool text = iequals(type, "text");  // an Anthropic text document source: its `data`
        for (const auto& kv : o) {
          const std::string_view k = kv.key();
          if (named(k, {"role", "type"})) continue;
          walk(kv.value(), isToolField(k) ? kRoleTool : role, k, text);
        }
        return;
      }
      default:
        return;
    }
  }

 private:
  std::vector<PromptText>& out_;
};

}  // namespace

PromptRole promptRoleNamed(std::string_view name) {
  if (name == "system" || name == "developer") return kRoleSystem;
  if (name == "assistant" || name == "model") return kRoleAssistant;
  if (name == "tool" || name == "function") return kRoleTool;
  return kRoleUser;
}

std::optional<std::string> collectPromptTexts(const json::value& body, std::vector<PromptText>& out) {
  const auto* o = body.if_object();
  if (!o) return std::string("the request body is not a JSON object");
  Collector c(out);
  for (const auto& kv : *o) {
    const std::string_view key = kv.key();
    const json::value& v = kv.value();
    if (named(key, {"messages", "contents"}))
      c.messages(v, kRoleUser);
    else if (named(key, {"system", "instructions", "systemInstruction", "system_instruction"}))
      c.messages(v, kRoleSystem);
    else if (named(key, {"prompt", "input"}))
      c.prompt(v);
    if (c.failure) return c.failure;
  }
  return std::nullopt;
}

}  // namespace ganglion::filters
