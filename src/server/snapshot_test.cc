#include "server/snapshot.h"

#include <gtest/gtest.h>

#include "server/config_loader.h"

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section
namespace {

Config load(const std::string& yaml) {
  auto r = loadConfigText(yaml, "t.yaml");
  EXPECT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].text());
  if (!r.config) return Config{};
  return std::move(*r.config);
}

constexpr const char* kNamed = R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
upstreams:
  - name: u
    targets: [ "localhost:8080", "127.0.0.9:81" ]
)";

TEST(Snapshot, ResolvesNamesAndKeepsHealthAcrossBuilds) {
  HealthRegistry health;
  auto first = buildSnapshot(load(kNamed), 1, health);
  ASSERT_TRUE(first.snapshot);
  const auto& targets = first.snapshot->upstreams[0].targets;
  ASSERT_EQ(targets.size(), 2u);
  ASSERT_FALSE(targets[0].endpoints.empty());
  EXPECT_TRUE(targets[0].endpoints[0].address().is_loopback());
  EXPECT_EQ(targets[0].endpoints[0].port(), 8080);
  EXPECT_EQ(targets[0].host, "localhost");
  targets[1].health->active_healthy = false;
  auto second = buildSnapshot(load(kNamed), 2, health);
  ASSERT_TRUE(second.snapshot);
  EXPECT_EQ(second.snapshot->upstreams[0].targets[1].health, targets[1].health);
  EXPECT_FALSE(second.snapshot->upstreams[0].targets[1].health->active_healthy);
}

TEST(Snapshot, DnsRefreshAnswersReplaceResolution) {
  HealthRegistry health;
  ResolvedNames names;
  names["localhost:8080"] = {
      boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.42"), 8080)};
  auto built = buildSnapshot(load(kNamed), 3, health, names);
  ASSERT_TRUE(built.snapshot);
  const auto& endpoints = built.snapshot->upstreams[0].targets[0].endpoints;
  ASSERT_EQ(endpoints.size(), 1u);
  EXPECT_EQ(endpoints[0].address().to_string(), "127.0.0.42");
}

TEST(Snapshot, UnresolvableNameIsAnErrorWithLine) {
  HealthRegistry health;
  auto built = buildSnapshot(load(R"(listeners: [ { name: l, address: "127.0.0.1:1" } ]
upstreams:
  - name: u
    targets: [ "no-such-host.invalid:80" ]
)"),
                             1, health);
  EXPECT_FALSE(built.snapshot);
  ASSERT_EQ(built.errors.size(), 1u);
  EXPECT_EQ(built.errors[0].line, 3);
  EXPECT_NE(built.errors[0].message.find("cannot resolve 'no-such-host.invalid'"), std::string::npos);
}

}  // namespace
}  // namespace ganglion::server
