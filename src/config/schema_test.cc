#include "config/schema.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace ganglion::config {
namespace {

struct Sample {
  std::string name;
  std::string secret;
  uint64_t size = 10;
  uint32_t count = 1;
  Millis wait{500};
  bool on = false;
};

const Schema<Sample>& sampleSchema() {
  static const Schema<Sample> schema{
      "sample",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &Sample::name,
           .default_text = "",
           .doc = "A name.",
           .required = true},
          {.name = "secret",
           .kind = FieldKind::kString,
           .member = &Sample::secret,
           .default_text = "`none`",
           .doc = "A secret.",
           .secret = true},
          {.name = "size",
           .kind = FieldKind::kSize,
           .member = &Sample::size,
           .default_text = "`10`",
           .doc = "Bytes.",
           .min = 4,
           .max = 4096},
          {.name = "count",
           .kind = FieldKind::kInteger,
           .member = &Sample::count,
           .default_text = "`1`",
           .doc = "How many.",
           .min = 1,
           .max = 9},
          {.name = "wait",
           .kind = FieldKind::kDuration,
           .member = &Sample::wait,
           .default_text = "`500ms`",
           .doc = "How long."},
          {.name = "on",
           .kind = FieldKind::kBool,
           .member = &Sample::on,
           .default_text = "`false`",
           .doc = "Whether."},
      },
      {{"nested", "map", "none", "Read apart."}},
  };
  return schema;
}

std::vector<std::string> read(const std::string& yaml, Sample& out) {
  Reader r("c.yaml");
  readFields(sampleSchema(), std::get<config::Node>(config::fromYaml(YAML::Load(yaml))), out, r);
  std::vector<std::string> errors;
  for (const auto& e : r.errors) errors.push_back(fmt::format("{}:{}: {}", e.file, e.line, e.message));
  return errors;
}

TEST(ConfigSchema, ReadsEveryKindWithLinesForErrors) {
  Sample s;
  EXPECT_TRUE(read("name: a\nsecret: s3\nsize: 1k\ncount: 3\nwait: 2s\non: true\nnested: {}\n", s).empty());
  EXPECT_EQ(s.name, "a");
  EXPECT_EQ(s.secret, "s3");
  EXPECT_EQ(s.size, 1024u);
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.wait, Millis(2000));
  EXPECT_TRUE(s.on);
  Sample bad;
  EXPECT_EQ(read("size: 2\ncount: 10\nwait: soon\non: maybe\nextra: 1\n", bad),
            (std::vector<std::string>{
                "c.yaml:5: unknown field 'extra' in sample",
                "c.yaml:1: sample needs 'name'",
                "c.yaml:1: size must be at least 4",
                "c.yaml:2: count must be an integer from 1 to 9, got '10'",
                "c.yaml:3: wait must be a duration like 500ms, 10s or 2m, got 'soon'",
                "c.yaml:4: on must be true or false, got 'maybe'",
            }));
  EXPECT_EQ(bad.size, 10u);  // bad values leave the default
}

TEST(ConfigSchema, DurationsPastTenYearsAreRefused) {
  // 2562047h is where a deadline in nanoseconds wraps: it used to pass and expire at once.
  Sample s;
  EXPECT_TRUE(read("name: a\nwait: 87600h\n", s).empty());
  EXPECT_EQ(s.wait, std::chrono::hours(87600));
  for (const char* text : {"87601h", "2562047h", "9223372036854775ms"}) {
    Sample far;
    EXPECT_EQ(read(std::string("name: a\nwait: ") + text + "\n", far),
              (std::vector<std::string>{"c.yaml:2: wait must be at most 87600h (10 years), got '" +
                                        std::string(text) + "'"}))
        << text;
  }
}

TEST(ConfigSchema, JsonRedactsSecrets) {
  Sample s;
  s.name = "a";
  s.secret = "hunter2";
  EXPECT_EQ(boost::json::serialize(fieldsToJson(sampleSchema(), s)),
            R"({"name":"a","secret":"<redacted>","size":10,"count":1,"wait":"500ms","on":false})");
}

TEST(ConfigSchema, DocsTable) {
  EXPECT_EQ(docsTable(sampleSchema()),
            "| Field | Type | Default | Meaning |\n|---|---|---|---|\n"
            "| `name` | string | required | A name. |\n"
            "| `secret` | string | `none` | A secret. |\n"
            "| `size` | size, ≥ 4 | `10` | Bytes. |\n"
            "| `count` | integer 1–9 | `1` | How many. |\n"
            "| `wait` | duration | `500ms` | How long. |\n"
            "| `on` | bool | `false` | Whether. |\n"
            "| `nested` | map | none | Read apart. |\n");
}

}  // namespace
}  // namespace ganglion::config
