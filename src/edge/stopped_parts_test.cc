#include "edge/stopped_parts.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "edge/edge_config.h"
#include "edge/state/state_file.h"

namespace ganglion::edge {
namespace {

namespace fs = std::filesystem;

EdgeConfig configWith(const std::string& pipeline, const std::string& sink) {
  EdgeConfig cfg;
  PipelineConfig p;
  p.name = pipeline;
  cfg.pipelines.push_back(p);
  SinkConfig s;
  s.name = sink;
  cfg.sinks.push_back(s);
  return cfg;
}

class StoppedPartsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ganglion-stopped-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(StoppedPartsTest, KeptInTheFileAndForgottenWhenTheConfigDropsTheName) {
  const EdgeConfig cfg = configWith("raw", "uplink");
  {
    StoppedParts s;
    s.load(dir_, cfg);
    EXPECT_TRUE(s.all().empty());
    EXPECT_TRUE(s.set("pipelines", "raw", true));
    EXPECT_FALSE(s.set("pipelines", "raw", true));  // already so
    EXPECT_TRUE(s.set("sinks", "uplink", true));
    ASSERT_TRUE(s.save().ok());
  }
  {
    StoppedParts s;
    s.load(dir_, cfg);
    EXPECT_TRUE(s.contains("pipelines", "raw"));
    EXPECT_TRUE(s.contains("sinks", "uplink"));
    EXPECT_FALSE(s.contains("sinks", "raw"));  // by part, not by name alone
    // A config without the pipeline forgets it, and the file says so at once.
    s.load(dir_, configWith("other", "uplink"));
    EXPECT_FALSE(s.contains("pipelines", "raw"));
    EXPECT_TRUE(s.contains("sinks", "uplink"));
  }
  {
    StoppedParts s;
    s.load(dir_, cfg);
    EXPECT_FALSE(s.contains("pipelines", "raw"));
    EXPECT_TRUE(s.set("sinks", "uplink", false));
    ASSERT_TRUE(s.save().ok());
  }
  EXPECT_FALSE(fs::exists(dir_ / "stopped.state"));  // nothing stopped: no file
}

TEST_F(StoppedPartsTest, TheSetMovesWithTheDataDirectory) {
  const EdgeConfig cfg = configWith("raw", "uplink");
  StoppedParts s;
  s.load(dir_ / "a", cfg);
  s.set("sinks", "uplink", true);
  ASSERT_TRUE(s.save().ok());
  ASSERT_TRUE(fs::exists(dir_ / "a" / "stopped.state"));
  s.load(dir_ / "b", cfg);  // edge.data_dir reloaded
  EXPECT_FALSE(fs::exists(dir_ / "a" / "stopped.state"));
  StoppedParts later;
  later.load(dir_ / "b", cfg);
  EXPECT_TRUE(later.contains("sinks", "uplink"));
}

TEST_F(StoppedPartsTest, AFileThatDoesNotReadStopsNothing) {
  {
    std::ofstream out(dir_ / "stopped.state", std::ios::binary);
    out << "junk";
  }
  StoppedParts s;
  s.load(dir_, configWith("raw", "uplink"));
  EXPECT_TRUE(s.all().empty());
  ASSERT_TRUE(writeStateFile(dir_ / "stopped.state", R"({"rules":["x"]})").ok());
  StoppedParts t;
  t.load(dir_, configWith("raw", "uplink"));
  EXPECT_TRUE(t.all().empty());
  // A valid file far larger than any set the admin API writes is not read at all.
  std::string big = R"({"sinks":["uplink")";
  while (big.size() < (2u << 20)) big += R"(,"a-name-that-no-config-has")";
  big += "]}";
  ASSERT_TRUE(writeStateFile(dir_ / "stopped.state", big).ok());
  StoppedParts u;
  u.load(dir_, configWith("raw", "uplink"));
  EXPECT_FALSE(u.contains("sinks", "uplink"));
}

TEST(StoppedPartsCodec, RoundTripsAndRefusesWhatItDoesNotWrite) {
  std::set<std::pair<std::string, std::string>> set{{"connectors", "plant"}, {"sinks", "a \"quoted\" name"}};
  auto back = StoppedParts::decode(StoppedParts::encode(set));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, set);
  EXPECT_TRUE(StoppedParts::decode("").ok());  // no file
  EXPECT_FALSE(StoppedParts::decode("[]").ok());
  EXPECT_FALSE(StoppedParts::decode(R"({"pipelines":"raw"})").ok());
  EXPECT_FALSE(StoppedParts::decode(R"({"pipelines":[1]})").ok());
  EXPECT_FALSE(StoppedParts::decode(R"({"pipelines":[""]})").ok());
  EXPECT_FALSE(StoppedParts::decode(R"({"pipelines":["a"],"rules":[]})").ok());
  EXPECT_TRUE(StoppedParts::knownPart("sinks"));
  EXPECT_FALSE(StoppedParts::knownPart("rules"));
  EXPECT_EQ(StoppedParts::singular("connectors"), "connector");
}

}  // namespace
}  // namespace ganglion::edge
