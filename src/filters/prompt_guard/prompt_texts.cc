#include "filters/prompt_guard/prompt_texts.h"

#include <boost/json.hpp>

namespace ganglion::filters {

namespace json = boost::json;

namespace {

constexpr std::string_view kTokenIds = "a prompt given as token ids cannot be checked against patterns";

class Collector {
 public:
  explicit Collector(std::vector<PromptText>& out) : out_(out) {}
  std::optional<std::string> failure;

  /// A message's content: a string, or an array of strings and parts.
  void content(const json::value& v, PromptRole role) {
    if (const auto* s = v.if_string()) {
      add(role, *s);
    } else if (const auto* a = v.if_array()) {
      for (const auto& part : *a) {
        if (const auto* s = part.if_string())
          add(role, *s);
        else if (const auto* o = part.if_object())
          contentPart(*o, role);
      }
    } else if (const auto* o = v.if_object()) {
      contentPart(*o, role);
    }
  }

  /// A message object: {role, content} (OpenAI, Anthropic, Responses items) or {role, parts}
  /// (Gemini); Responses' function_call_output items carry `output`.
  void message(const json::value& v) {
    const auto* o = v.if_object();
    if (!o) return content(v, kRoleUser);  // a bare string in an input list
    PromptRole role = kRoleUser;
    if (const auto* r = o->if_contains("role"); r && r->is_string()) role = promptRoleNamed(r->get_string());
    if (const auto* t = o->if_contains("type");
        t && t->is_string() && t->get_string() == "function_call_output")
      role = kRoleTool;
    for (std::string_view field : {"content", "parts", "output", "text"})
      if (const auto* c = o->if_contains(field)) content(*c, role);
  }

  /// A list of messages, or a prompt: a string, strings, or token ids (refused).
  void messages(const json::value& v, PromptRole role_of_strings) {
    if (const auto* s = v.if_string()) return add(role_of_strings, *s);
    const auto* a = v.if_array();
    if (!a) return;
    for (const auto& item : *a) {
      if (item.is_number() || item.is_array()) {
        failure = std::string(kTokenIds);
        return;
      }
      if (const auto* s = item.if_string())
        add(role_of_strings, *s);
      else
        message(item);
    }
  }

 private:
  void contentPart(const json::object& part, PromptRole role) {
    const auto* type = part.if_contains("type");
    const std::string_view kind = type && type->is_string() ? std::string_view(type->get_string()) : "";
    if (const auto* t = part.if_contains("text"); t && t->is_string()) add(role, t->get_string());
    if (kind == "tool_result") {
      if (const auto* c = part.if_contains("content")) content(*c, kRoleTool);
    } else if (kind == "document") {  // Anthropic: a plain-text document is read like a message
      const auto* source = part.if_contains("source");
      const auto* so = source ? source->if_object() : nullptr;
      if (!so) return;
      const auto* st = so->if_contains("type");
      if (!st || !st->is_string()) return;
      if (st->get_string() == "text") {
        if (const auto* d = so->if_contains("data"); d && d->is_string()) add(role, d->get_string());
      } else if (st->get_string() == "content") {
        if (const auto* c = so->if_contains("content")) content(*c, role);
      }
    } else if (const auto* fr = part.if_contains("functionResponse"); fr && fr->is_object()) {
      if (const auto* r = fr->get_object().if_contains("response")) jsonStrings(*r, kRoleTool);
    }
  }
  /// Every string inside a value of unknown shape (a Gemini function response).
  void jsonStrings(const json::value& v, PromptRole role) {
    if (const auto* s = v.if_string()) {
      add(role, *s);
    } else if (const auto* a = v.if_array()) {
      for (const auto& x : *a) jsonStrings(x, role);
    } else if (const auto* o = v.if_object()) {
      for (const auto& kv : *o) jsonStrings(kv.value(), role);
    }
  }
  void add(PromptRole role, const json::string& s) {
    out_.push_back({role, std::string_view(s.data(), s.size())});
  }

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
    if (key == "messages" || key == "contents") {
      if (const auto* a = v.if_array())
        for (const auto& m : *a) c.message(m);
    } else if (key == "system" || key == "instructions") {
      c.content(v, kRoleSystem);
    } else if (key == "systemInstruction" || key == "system_instruction") {
      const auto* si = v.if_object();
      const auto* parts = si ? si->if_contains("parts") : nullptr;
      c.content(parts ? *parts : v, kRoleSystem);
    } else if (key == "prompt" || key == "input") {
      c.messages(v, kRoleUser);
    }
    if (c.failure) return c.failure;
  }
  return std::nullopt;
}

}  // namespace ganglion::filters
