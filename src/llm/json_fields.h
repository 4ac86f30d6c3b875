// Tolerant field access on JSON objects from clients and providers: a missing field or one of
// the wrong type reads as empty, so codecs handle odd answers without exceptions.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ganglion::llm {

/// The object at `key`, or nullptr.
inline const boost::json::object* objectAt(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : it->value().if_object();
}

/// The string at `key`, or "" (valid while `o` lives).
inline std::string_view stringAt(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return it->value().get_string();
}

/// A non-negative count at `key`, or 0.
inline uint64_t countAt(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (auto* i = it->value().if_int64()) return *i > 0 ? static_cast<uint64_t>(*i) : 0;
  if (auto* u = it->value().if_uint64()) return *u;
  return 0;
}

/// The text of an OpenAI message content (a string, or its text parts joined by newlines).
/// The text of an OpenAI content part: a `text` part's text, an assistant `refusal` part's
/// refusal (the words the model said); nullopt for other parts.
inline std::optional<std::string_view> partText(const boost::json::object& part) {
  auto type = stringAt(part, "type");
  if (type == "text") return stringAt(part, "text");
  if (type == "refusal") return stringAt(part, "refusal");
  return std::nullopt;
}

inline std::string contentText(const boost::json::value& content) {
  if (auto* s = content.if_string()) return std::string(*s);
  std::string out;
  if (auto* parts = content.if_array())
    for (const auto& p : *parts)
      if (auto* po = p.if_object())
        if (auto text = partText(*po)) {
          if (!out.empty()) out += "\n";
          out += *text;
        }
  return out;
}

/// OpenAI message content as `{"text": ...}` blocks (Gemini parts, Converse blocks), image
/// parts handed to `image(url)`, which returns the block for it or nothing (dropped).
template <typename ImageBlock>
boost::json::array textAndImageBlocks(const boost::json::value& content, ImageBlock&& image) {
  boost::json::array blocks;
  if (auto* s = content.if_string()) {
    if (!s->empty()) blocks.push_back(boost::json::object{{"text", *s}});
    return blocks;
  }
  if (auto* parts = content.if_array())
    for (const auto& p : *parts) {
      auto* po = p.if_object();
      if (!po) continue;
      auto type = stringAt(*po, "type");
      if (auto text = partText(*po)) {
        blocks.push_back(boost::json::object{{"text", *text}});
      } else if (type == "image_url") {
        auto* img = objectAt(*po, "image_url");
        if (!img) continue;
        std::optional<boost::json::object> block = image(stringAt(*img, "url"));
        if (block) blocks.push_back(std::move(*block));
      }
    }
  return blocks;
}

/// Appends a turn's blocks to `messages`, merged into the last message when it has the same
/// role (Anthropic, Gemini and Bedrock want roles to alternate). `field` names the block list
/// ("content", or "parts" for Gemini).
inline void appendTurn(boost::json::array& messages, std::string_view role, boost::json::array blocks,
                       std::string_view field = "content") {
  if (blocks.empty()) return;
  if (!messages.empty()) {
    auto& last = messages.back().as_object();
    if (last["role"].as_string() == role) {
      auto& existing = last[field].as_array();
      for (auto& b : blocks) existing.push_back(std::move(b));
      return;
    }
  }
  boost::json::object turn{{"role", role}};
  turn[field] = std::move(blocks);
  messages.push_back(std::move(turn));
}

/// A base64 `data:` URL split into its media type and data; false for anything else.
inline bool splitDataUrl(std::string_view url, std::string_view& media_type, std::string_view& data) {
  constexpr std::string_view kData = "data:";
  size_t semi = url.find(';'), comma = url.find(',');
  if (url.substr(0, kData.size()) != kData || semi == std::string_view::npos ||
      comma == std::string_view::npos || semi > comma || url.substr(semi, comma - semi) != ";base64")
    return false;
  media_type = url.substr(kData.size(), semi - kData.size());
  data = url.substr(comma + 1);
  return true;
}

}  // namespace ganglion::llm
