#include "filters/prompt_guard/prompt_texts.h"

#include <boost/json.hpp>

#include "base/strings.h"

namespace ganglion::filters {

namespace json = boost::json;

namespace {

constexpr std::string_view kTokenIds = "a prompt given as token ids cannot be checked against patterns";

/// `key` equals the ASCII name `name` under Go's encoding/json folding: ASCII case-insensitive,
/// and U+017F (ſ) and U+212A (K) as the letters they fold to.
bool foldedEquals(std::string_view key, std::string_view name) {
  size_t k = 0;
  for (char want : name) {
    if (k >= key.size()) return false;
    const char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(want)));
    if (lower == 's' && key.compare(k, 2, "\xc5\xbf") == 0) {
      k += 2;
    } else if (lower == 'k' && key.compare(k, 3, "\xe2\x84\xaa") == 0) {
      k += 3;
    } else if (std::tolower(static_cast<unsigned char>(key[k])) == lower) {
      ++k;
    } else {
      return false;
    }
  }
  return k == key.size();
}

bool named(std::string_view key, std::initializer_list<std::string_view> names) {
  for (auto n : names)
    if (foldedEquals(key, n)) return true;
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
    if (foldedEquals(kv.key(), "type") && kv.value().is_string()) return kv.value().get_string();
  return {};
}

class Collector {
 public:
  explicit Collector(std::vector<PromptText>& out) : out_(out) {}
  std::optional<std::string> failure;

  /// A message object, or a bare string in a list of messages. Its role comes from `role`
  /// (a role the APIs do not name counts as the user's).
  void message(const json::value& v, uint8_t default_role) {
    const auto* o = v.if_object();
    if (!o) return walk(v, default_role, "content");
    uint8_t role = 0;  // every spelling of `role` counts: an upstream may read any of them
    for (const auto& kv : *o)
      if (foldedEquals(kv.key(), "role"))
        role |= kv.value().is_string() ? promptRoleNamed(kv.value().get_string()) : kRoleUser;
    walk(v, role ? role : default_role, "content");
  }

  /// A list of messages (or one message object).
  void messages(const json::value& v, uint8_t default_role) {
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
  void walk(const json::value& v, uint8_t role, std::string_view key, bool text_source = false) {
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
        const bool text = foldedEquals(type, "text");  // an Anthropic text document source: its `data`
        for (const auto& kv : o) {
          const std::string_view k = kv.key();
          if (named(k, {"role", "type"})) continue;
          walk(kv.value(), isToolField(k) ? static_cast<uint8_t>(kRoleTool) : role, k, text);
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
