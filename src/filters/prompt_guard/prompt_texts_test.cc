#include "filters/prompt_guard/prompt_texts.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace ganglion::filters {
namespace {

/// The recognised texts of `body` with their roles; `others`: the rest (deny patterns only).
std::vector<std::pair<int, std::string>> texts(std::string_view body,
                                               std::optional<std::string>* why = nullptr,
                                               std::vector<std::pair<int, std::string>>* others = nullptr) {
  auto v = boost::json::parse(body);
  std::vector<PromptText> out;
  auto failure = collectPromptTexts(v, out);
  if (why) *why = failure;
  std::vector<std::pair<int, std::string>> got;
  for (const auto& t : out) {
    if (t.recognised)
      got.emplace_back(t.role, std::string(t.text));
    else if (others)
      others->emplace_back(t.role, std::string(t.text));
  }
  return got;
}

using Got = std::vector<std::pair<int, std::string>>;

TEST(PromptTexts, OpenAiChatStringsAndParts) {
  EXPECT_EQ(texts(R"({"messages":[{"role":"system","content":"s"},{"role":"developer","content":"d"},
      {"role":"user","content":[{"type":"text","text":"u1"},{"type":"image_url","image_url":{"url":"x"}}]},
      {"role":"assistant","content":"a"},{"role":"tool","content":"t","tool_call_id":"1"},
      {"role":"wizard","content":"w"},{"content":"norole"}]})"),
            (Got{{kRoleSystem, "s"},
                 {kRoleSystem, "d"},
                 {kRoleUser, "u1"},
                 {kRoleAssistant, "a"},
                 {kRoleTool, "t"},
                 {kRoleUser, "w"},
                 {kRoleUser, "norole"}}));
}

TEST(PromptTexts, AnthropicSystemBlocksDocumentsAndToolResults) {
  EXPECT_EQ(texts(R"({"system":[{"type":"text","text":"sys"}],"messages":[{"role":"user","content":[
      {"type":"document","source":{"type":"text","media_type":"text/plain","data":"doc"}},
      {"type":"document","source":{"type":"content","content":[{"type":"text","text":"doc2"}]}},
      {"type":"tool_result","tool_use_id":"x","content":"res"},
      {"type":"tool_result","tool_use_id":"y","content":[{"type":"text","text":"res2"}]}]}]})"),
            (Got{{kRoleSystem, "sys"},
                 {kRoleUser, "doc"},
                 {kRoleUser, "doc2"},
                 {kRoleTool, "res"},
                 {kRoleTool, "res2"}}));
}

TEST(PromptTexts, ResponsesEmbeddingsAndCompletions) {
  EXPECT_EQ(
      texts(R"({"instructions":"i","input":[{"role":"user","content":[{"type":"input_text","text":"x"}]},
      {"type":"function_call_output","call_id":"c","output":"out"},"bare"]})"),
      (Got{{kRoleSystem, "i"}, {kRoleUser, "x"}, {kRoleTool, "out"}, {kRoleUser, "bare"}}));
  EXPECT_EQ(texts(R"({"input":"one"})"), (Got{{kRoleUser, "one"}}));
  EXPECT_EQ(texts(R"({"prompt":["a","b"]})"), (Got{{kRoleUser, "a"}, {kRoleUser, "b"}}));
}

TEST(PromptTexts, Gemini) {
  EXPECT_EQ(
      texts(
          R"({"systemInstruction":{"parts":[{"text":"s"}]},"contents":[{"role":"model","parts":[{"text":"m"}]},
      {"role":"user","parts":[{"text":"u"},{"functionResponse":{"name":"f","response":{"a":["r"]}}}]}]})"),
      (Got{{kRoleSystem, "s"}, {kRoleAssistant, "m"}, {kRoleUser, "u"}}));
}

TEST(PromptTexts, EveryStringOfAMessageMeetsTheDenyPatterns) {
  std::vector<std::pair<int, std::string>> others;
  // Fields no API documents, an image URL, tool-call arguments, an id: collected, not recognised.
  auto got = texts(R"({"messages":[{"role":"user","content":"hi","Content":"Hidden","extra":{"deep":["x"]}},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
       "function":{"name":"f","arguments":"{\"q\":\"args\"}"}}],"refusal":"no"}]})",
                   nullptr, &others);
  EXPECT_EQ(got, (Got{{kRoleUser, "hi"}, {kRoleUser, "Hidden"}, {kRoleAssistant, "no"}}));
  EXPECT_EQ(others, (Got{{kRoleUser, "x"},
                         {kRoleAssistant, "c1"},
                         {kRoleAssistant, "f"},
                         {kRoleAssistant, "{\"q\":\"args\"}"}}));
}

TEST(PromptTexts, ShapesFoundByAnOutsider) {
  // Anthropic document title/context, search results inside tool results, refusal parts,
  // Gemini contents as one object and snake_case function responses, Bedrock tool results,
  // Responses prompt-template variables and instruction items, keys in another case.
  std::vector<std::pair<int, std::string>> others;
  EXPECT_EQ(
      texts(R"({"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","data":"d"},
      "title":"T","context":"C"},{"type":"tool_result","content":[{"type":"search_result","title":"ST",
      "content":[{"type":"text","text":"S"}]}]},{"type":"refusal","refusal":"R"}]}]})"),
      (Got{{kRoleUser, "d"},
           {kRoleUser, "T"},
           {kRoleUser, "C"},
           {kRoleTool, "ST"},
           {kRoleTool, "S"},
           {kRoleUser, "R"}}));
  EXPECT_EQ(
      texts(
          R"({"contents":{"role":"user","parts":[{"text":"g"},{"function_response":{"response":{"a":"fr"}}}]}})",
          nullptr, &others),
      (Got{{kRoleUser, "g"}}));
  EXPECT_EQ(others, (Got{{kRoleTool, "fr"}}));
  EXPECT_EQ(texts(R"({"messages":[{"role":"user","content":[{"toolResult":{"content":[{"text":"b"}]}},
      {"document":{"source":{"text":"bd"}}}]}]})"),
            (Got{{kRoleTool, "b"}, {kRoleUser, "bd"}}));
  others.clear();
  EXPECT_EQ(texts(R"({"prompt":{"id":"p1","variables":{"x":"v","y":{"type":"input_text","text":"w"}}},
      "instructions":[{"role":"developer","content":"i"}]})",
                  nullptr, &others),
            (Got{{kRoleUser, "w"}, {kRoleSystem, "i"}}));
  EXPECT_EQ(others, (Got{{kRoleUser, "p1"}, {kRoleUser, "v"}}));
  EXPECT_EQ(texts(R"({"Messages":[{"Role":"user","Content":"m"}],"SYSTEM":"s"})"),
            (Got{{kRoleUser, "m"}, {kRoleSystem, "s"}}));
}

TEST(PromptTexts, KeysAnUpstreamMayReadAnotherWayCountEveryWay) {
  // Found by an outside review: "Role": "system" beside "role": "user" hid a user prompt from
  // `roles: [user]`; 'ſ' (U+017F) in "meſsages" is `messages` to Go's encoding/json.
  EXPECT_EQ(texts(R"({"messages":[{"role":"user","Role":"system","content":"x"}]})"),
            (Got{{kRoleUser | kRoleSystem, "x"}}));
  EXPECT_EQ(texts("{\"me\u017fsages\":[{\"role\":\"user\",\"content\":\"y\"}],"
                  "\"\u212aey\":1,\"sy\u017ftem\":\"z\"}"),
            (Got{{kRoleUser, "y"}, {kRoleSystem, "z"}}));
  EXPECT_TRUE(texts(R"({"me\u017fsagesX":[{"content":"no"}]})").empty());
}

TEST(PromptTexts, TokenIdsAndNonObjectsCannotBeChecked) {
  std::optional<std::string> why;
  texts(R"({"input":[[1,2]]})", &why);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("token ids"), std::string::npos);
  texts(R"({"prompt":[1,2]})", &why);
  EXPECT_TRUE(why);
  texts(R"(["messages"])", &why);
  EXPECT_TRUE(why);
  texts(R"({"messages":"not a list","model":"m"})", &why);
  EXPECT_FALSE(why);  // nothing a model would read as a prompt; the API refuses it itself
}

}  // namespace
}  // namespace ganglion::filters
