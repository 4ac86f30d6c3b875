#include "config/node.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <string>

namespace ganglion::config {
namespace {

Node yamlTree(const std::string& text) { return std::get<Node>(fromYaml(YAML::Load(text))); }

TEST(ConfigNode, YamlKeepsKindsOrderAndLines) {
  Node root = yamlTree("a: 1\nb: [ x, ~, { c: d } ]\nempty:\n");
  ASSERT_TRUE(root.IsMap());
  EXPECT_EQ(root.size(), 3u);
  EXPECT_EQ(root["a"].Scalar(), "1");
  EXPECT_EQ(root["a"].line(), 1);
  EXPECT_TRUE(root["empty"].IsNull());
  EXPECT_FALSE(root["missing"].IsDefined());
  EXPECT_FALSE(root["a"]["x"].IsDefined());  // a lookup in a scalar is undefined, not an exception
  const auto items = root["b"].items();
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].Scalar(), "x");
  EXPECT_TRUE(items[1].IsNull());
  EXPECT_EQ(items[2]["c"].Scalar(), "d");
  EXPECT_EQ(items[2].line(), 2);
  std::string keys;
  for (const auto& [k, v] : root) keys += k.Scalar() + ",";
  EXPECT_EQ(keys, "a,b,empty,");
  EXPECT_TRUE(root.path().empty());
}

TEST(ConfigNode, YamlAliasesThatExpandPastTheLimitAreAnError) {
  // Nine levels of ten aliases name a billion values.
  std::string text = "l0: &l0 [ x, x, x, x, x, x, x, x, x, x ]\n";
  for (int i = 1; i <= 9; ++i)
    text += fmt::format(
        "l{0}: &l{0} [ *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1}, *l{1} ]\n", i, i - 1);
  auto tree = fromYaml(YAML::Load(text));
  ASSERT_TRUE(std::holds_alternative<TreeError>(tree));
  EXPECT_NE(std::get<TreeError>(tree).message.find("more than 1000000 values"), std::string::npos);
}

TEST(ConfigNode, AliasesThatRepeatALongTextPastTheLimitAreAnError) {
  // 100 KB named 200 times: 20 MB of text from a 100 KB file (it took gigabytes before).
  std::string text = "x: &s [ \"" + std::string(100'000, 'a') + "\" ]\ny: [";
  for (int i = 0; i < 200; ++i) text += i ? ", *s" : " *s";
  text += " ]\n";
  auto tree = fromYaml(YAML::Load(text));
  ASSERT_TRUE(std::holds_alternative<TreeError>(tree));
  EXPECT_NE(std::get<TreeError>(tree).message.find("more than 16 MiB"), std::string::npos);
}

TEST(ConfigNode, NestingDeeperThanTheLimitIsAnError) {
  std::string deep(400, ']');
  deep.replace(0, 200, 200, '[');
  auto yaml = fromYaml(YAML::Load(deep));
  ASSERT_TRUE(std::holds_alternative<TreeError>(yaml));
  EXPECT_NE(std::get<TreeError>(yaml).message.find("deeper than 128"), std::string::npos);
  boost::json::parse_options deep_json;
  deep_json.max_depth = 1000;
  auto json = fromJson(boost::json::parse(deep, {}, deep_json));
  ASSERT_TRUE(std::holds_alternative<TreeError>(json));
  EXPECT_EQ(std::get<TreeError>(json).path.substr(0, 8), "$[0][0][");
}

TEST(ConfigNode, AnEmptyValueHasItsKeysLine) {
  // `- rate_limit:` with nothing after it: yaml-cpp places the null on the next token, which
  // made errors about it name the next route's line.
  Node tree = yamlTree("routes:\n  - name: a\n    filters:\n      - rate_limit:\n\n\n  - name: b\n");
  const Node filter = tree["routes"].items()[0]["filters"].items()[0]["rate_limit"];
  EXPECT_TRUE(filter.IsNull());
  EXPECT_EQ(filter.line(), 4);
}

TEST(ConfigNode, TextThatIsNotUtf8IsAnError) {
  // Names reach /config (JSON), metric labels and logs, which all need UTF-8.
  auto tree = fromYaml(YAML::Load("routes:\n  - name: \"raw\xff\xfename\"\n"));
  ASSERT_TRUE(std::holds_alternative<TreeError>(tree));
  EXPECT_EQ(std::get<TreeError>(tree).line, 2);
  EXPECT_EQ(std::get<TreeError>(tree).message, "the text is not valid UTF-8");
  EXPECT_TRUE(std::holds_alternative<Node>(fromYaml(YAML::Load("name: \"caf\xc3\xa9 \xe2\x82\xac\"\n"))));
}

TEST(ConfigNode, JsonValuesBecomeScalarsWithPaths) {
  Node root = std::get<Node>(fromJson(boost::json::parse(
      R"({"routes":[{"name":"r","retries":2,"on":true,"price":0.15,"big":18446744073709551615,"n":null,)"
      R"("odd key":{"x.y":-3}}]})")));
  const Node route = root["routes"].items()[0];
  EXPECT_EQ(route.path(), "$.routes[0]");
  EXPECT_EQ(route["name"].Scalar(), "r");
  EXPECT_EQ(route["name"].path(), "$.routes[0].name");
  EXPECT_EQ(route["retries"].Scalar(), "2");
  EXPECT_EQ(route["on"].Scalar(), "true");
  EXPECT_EQ(route["price"].Scalar(), "0.15");
  EXPECT_EQ(route["big"].Scalar(), "18446744073709551615");
  EXPECT_TRUE(route["n"].IsNull());
  EXPECT_EQ(route["odd key"]["x.y"].Scalar(), "-3");
  EXPECT_EQ(route["odd key"]["x.y"].path(), R"($.routes[0]["odd key"]["x.y"])");
  EXPECT_EQ(route["name"].line(), 0);
  // Keys carry the path of their value, so an unknown key is reported where it is.
  bool seen = false;
  for (const auto& [k, v] : route) {
    if (k.Scalar() != "retries") continue;
    seen = true;
    EXPECT_EQ(k.path(), "$.routes[0].retries");
  }
  EXPECT_TRUE(seen);
}

}  // namespace
}  // namespace ganglion::config
