// The texts a model reads as messages, found in a request body of any of the common model
// APIs: OpenAI chat completions, completions, responses and embeddings, Anthropic messages,
// Gemini generateContent. Used by prompt_guard to check prompts whatever the route forwards to.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ganglion::filters {

/// Who a text comes from, as a bit so a set of roles is a mask.
enum PromptRole : uint8_t {
  kRoleSystem = 1,     ///< system, developer, instructions, Gemini's systemInstruction
  kRoleUser = 2,       ///< user, and any role the API does not name (checked, never skipped)
  kRoleAssistant = 4,  ///< assistant, Gemini's model
  kRoleTool = 8,       ///< tool and function results
};

struct PromptText {
  PromptRole role;
  std::string_view text;  ///< points into the parsed body
};

/// The role named `name` ("developer" is kRoleSystem; an unknown name is kRoleUser).
PromptRole promptRoleNamed(std::string_view name);

/// Appends every message text of `body` to `out`: `messages` (role + content as a string, or
/// parts with `text`, Anthropic's text documents and tool results), `system`, `instructions`,
/// `prompt` and `input` (strings, arrays of strings, or Responses items), and Gemini's
/// `contents` and `systemInstruction`. Returns why the body cannot be checked: not an object,
/// or a prompt given as token ids (which no pattern can read). Any thread.
std::optional<std::string> collectPromptTexts(const boost::json::value& body, std::vector<PromptText>& out);

}  // namespace ganglion::filters
