#include "filters/prompt_guard/prompt_texts.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace ganglion::filters {
namespace {

std::vector<std::pair<int, std::string>> texts(std::string_view body,
                                               std::optional<std::string>* why = nullptr) {
  auto v = boost::json::parse(body);
  std::vector<PromptText> out;
  auto failure = collectPromptTexts(v, out);
  if (why) *why = failure;
  std::vector<std::pair<int, std::string>> got;
  for (const auto& t : out) got.emplace_back(t.role, std::string(t.text));
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
      (Got{{kRoleSystem, "s"}, {kRoleAssistant, "m"}, {kRoleUser, "u"}, {kRoleTool, "r"}}));
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
