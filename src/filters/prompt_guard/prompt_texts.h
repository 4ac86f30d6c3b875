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
  /// PromptRole bits: every role the text's message names. A message may spell `role`
  /// several ways ("role", "Role"): an upstream may read any one, so it counts as all.
  uint8_t role;
  std::string_view text;  ///< points into the parsed body
  /// A text field of a known shape (content, text, title, ...): checked against allow and
  /// deny patterns. False: another string inside a message (an id, tool-call arguments, a
  /// field no API documents), checked against deny patterns only.
  bool recognised = true;
};

/// The role named `name` ("developer" is kRoleSystem; an unknown name is kRoleUser).
PromptRole promptRoleNamed(std::string_view name);

/// Appends every string a model may read in `body` to `out`, with its role: the messages of
/// `messages` and Gemini's `contents` (each message's role; tool results and function
/// responses as kRoleTool), `system`, `instructions` and `systemInstruction` (kRoleSystem),
/// `prompt` and `input` (strings, lists of strings, Responses items, prompt-template
/// variables). Every string inside those is collected, whatever its field, so that a shape
/// the gateway does not know still meets the deny patterns; those of known text fields are
/// marked `recognised`. Top-level and text field names are matched in any letter case, with
/// the folding Go's encoding/json applies (ASCII case, and 'ſ' as 's', the Kelvin sign as
/// 'k'), so a key an upstream reads as `messages` is read so here too.
/// Returns why the body cannot be checked: not an object, or a prompt given as token ids
/// (which no pattern can read). Any thread.
std::optional<std::string> collectPromptTexts(const boost::json::value& body, std::vector<PromptText>& out);

}  // namespace ganglion::filters
