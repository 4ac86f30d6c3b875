#include "llm/prompt_bounds.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "llm/chat_request.h"

namespace ganglion::llm {

namespace json = boost::json;

namespace {

std::string_view typeOf(const json::object& o) {
  auto* t = o.if_contains("type");
  return t && t->is_string() ? std::string_view(t->get_string()) : std::string_view();
}

uint64_t bytesOf(const json::value& v) { return boundTokens(json::serialize(v).size()); }

/// One Messages content block (and what it nests, for tool results).
void boundBlock(const json::value& v, const std::string& where, PromptBound& out) {
  auto* block = v.if_object();
  if (!block) {
    out.tokens += bytesOf(v);
    return;
  }
  const std::string_view type = typeOf(*block);
  if (type == "image") {
    out.tokens += kImageTokenBound;
  } else if (type == "document") {
    auto* source = block->if_contains("source");
    const bool text = source && source->is_object() && typeOf(source->as_object()) == "text";
    if (text)
      out.tokens += bytesOf(*source);
    else if (out.unbounded.empty())
      out.unbounded = where + " (a document the provider renders)";
  } else if (type == "tool_result") {
    auto* content = block->if_contains("content");
    if (content && content->is_array()) {
      const auto& parts = content->as_array();
      for (size_t i = 0; i < parts.size(); ++i)
        boundBlock(parts[i], fmt::format("{}.content[{}]", where, i), out);
    } else if (content) {
      out.tokens += bytesOf(*content);
    }
    out.tokens += 16;
  } else {
    out.tokens += bytesOf(v);  // text, tool_use, thinking, and blocks the gateway does not know
  }
}

}  // namespace

PromptBound boundMessagesPrompt(const json::object& body) {
  PromptBound out;
  if (auto* system = body.if_contains("system")) {
    if (system->is_array()) {
      for (size_t i = 0; i < system->as_array().size(); ++i)
        boundBlock(system->as_array()[i], fmt::format("system[{}]", i), out);
    } else {
      out.tokens += bytesOf(*system);
    }
  }
  if (auto* messages = body.if_contains("messages"); messages && messages->is_array()) {
    const auto& list = messages->as_array();
    for (size_t m = 0; m < list.size(); ++m) {
      out.tokens += 16;  // framing
      auto* msg = list[m].if_object();
      auto* content = msg ? msg->if_contains("content") : nullptr;
      if (content && content->is_array()) {
        for (size_t b = 0; b < content->as_array().size(); ++b)
          boundBlock(content->as_array()[b], fmt::format("messages[{}].content[{}]", m, b), out);
      } else if (content) {
        out.tokens += bytesOf(*content);
      }
    }
  }
  if (auto* tools = body.if_contains("tools"); tools && tools->is_array()) {
    const auto& list = tools->as_array();
    for (size_t i = 0; i < list.size(); ++i) {
      auto* tool = list[i].if_object();
      // A client tool has an input_schema; a server tool (web_search_..., code_execution_...)
      // brings back whatever it found.
      const bool client_tool =
          tool && tool->contains("input_schema") && (typeOf(*tool).empty() || typeOf(*tool) == "custom");
      if (!client_tool && out.unbounded.empty()) out.unbounded = fmt::format("tools[{}] (a server tool)", i);
      out.tokens += bytesOf(list[i]);
    }
  }
  for (std::string_view key : {"mcp_servers", "container"})
    if (body.contains(key) && out.unbounded.empty()) out.unbounded = std::string(key);
  return out;
}

namespace {

/// Walks Responses input items and their content for images and files.
void walkResponsesInput(const json::value& v, const std::string& where, PromptBound& out, int depth) {
  if (depth > 16) return;
  if (auto* arr = v.if_array()) {
    for (size_t i = 0; i < arr->size(); ++i)
      walkResponsesInput((*arr)[i], fmt::format("{}[{}]", where, i), out, depth + 1);
    return;
  }
  auto* o = v.if_object();
  if (!o) return;
  const std::string_view type = typeOf(*o);
  if (type == "input_image") out.tokens += kImageTokenBound;
  if ((type == "input_file" || o->contains("file_id") || o->contains("file_url")) && out.unbounded.empty())
    out.unbounded = where + " (a file the provider reads)";
  if (type == "item_reference" && out.unbounded.empty()) out.unbounded = where + " (a stored item)";
  // Images and files may sit anywhere in an item (a function_call_output's output too).
  for (const auto& [key, child] : *o)
    if (child.is_object() || child.is_array())
      walkResponsesInput(child, fmt::format("{}.{}", where, std::string_view(key)), out, depth + 1);
}

}  // namespace

PromptBound boundResponsesPrompt(const json::object& body, uint64_t body_bytes) {
  PromptBound out;
  out.tokens = boundTokens(body_bytes);
  for (std::string_view key : {"previous_response_id", "conversation", "prompt"})
    if (auto* v = body.if_contains(key); v && !v->is_null() && out.unbounded.empty())
      out.unbounded = std::string(key);
  if (auto* input = body.if_contains("input")) walkResponsesInput(*input, "input", out, 0);
  if (auto* tools = body.if_contains("tools"); tools && tools->is_array()) {
    const auto& list = tools->as_array();
    for (size_t i = 0; i < list.size() && out.unbounded.empty(); ++i) {
      auto* tool = list[i].if_object();
      const std::string_view type = tool ? typeOf(*tool) : std::string_view();
      if (type != "function" && type != "custom")
        out.unbounded = fmt::format("tools[{}] (a built-in tool)", i);
    }
  }
  return out;
}

}  // namespace ganglion::llm
