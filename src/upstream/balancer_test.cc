#include "upstream/balancer.h"

#include <gtest/gtest.h>

#include <map>

#include "server/config_loader.h"
#include "server/snapshot.h"

namespace ganglion::upstream {
namespace {

std::shared_ptr<const server::Snapshot> build(const std::string& upstream_yaml) {
  auto loaded = server::loadConfigText(
      "listeners: [ { name: l, address: \"127.0.0.1:1\" } ]\nupstreams:\n" + upstream_yaml, "t.yaml");
  EXPECT_TRUE(loaded.config) << (loaded.errors.empty() ? "" : loaded.errors[0].text());
  static server::HealthRegistry registry;
  return server::buildSnapshot(std::move(*loaded.config), 1, registry).snapshot;
}

http::RequestHead request(std::string header_value = "") {
  http::RequestHead req;
  req.method = "GET";
  req.target = "/";
  if (!header_value.empty()) req.headers.add("X-User", header_value);
  return req;
}

TEST(Balancer, WeightedRoundRobinIsSmoothAndSkipsUnavailable) {
  auto snap = build(R"(  - name: u
    targets: [ { address: "127.0.0.1:1", weight: 3 }, "127.0.0.1:2" ]
)");
  const auto& up = snap->upstreams[0];
  BalancerState st;
  std::vector<uint32_t> picks;
  for (int i = 0; i < 8; ++i) picks.push_back(pickTarget(up, st, request(), "1.1.1.1", 0));
  EXPECT_EQ(std::count(picks.begin(), picks.end(), 0u), 6);
  EXPECT_EQ(std::count(picks.begin(), picks.end(), 1u), 2);
  up.targets[0].health->active_healthy = false;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(pickTarget(up, st, request(), "1.1.1.1", 0), 1u);
  up.targets[1].health->active_healthy = false;
  EXPECT_EQ(pickTarget(up, st, request(), "1.1.1.1", 0), kNoTarget);
  up.targets[0].health->active_healthy = true;
  up.targets[1].health->active_healthy = true;
}

TEST(Balancer, RetryAvoidsTriedTargetWhenAnotherIsUp) {
  auto snap = build(R"(  - name: u2
    balance: least_request
    targets: [ "127.0.0.1:1", "127.0.0.1:2" ]
)");
  BalancerState st;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(pickTarget(snap->upstreams[0], st, request(), "x", 0b01), 1u);
  // Every target tried: fall back to a tried one rather than fail.
  EXPECT_NE(pickTarget(snap->upstreams[0], st, request(), "x", 0b11), kNoTarget);
}

TEST(Balancer, LeastRequestPrefersIdleTarget) {
  auto snap = build(R"(  - name: u3
    balance: least_request
    targets: [ "127.0.0.1:1", "127.0.0.1:2" ]
)");
  BalancerState st;
  st.loads.resize(2);
  st.loads[0].inflight = 50;
  int to_idle = 0;
  for (int i = 0; i < 100; ++i) to_idle += pickTarget(snap->upstreams[0], st, request(), "x", 0) == 1u;
  EXPECT_EQ(to_idle, 100);  // with two targets both are always compared
}

TEST(Balancer, EwmaPrefersFasterTarget) {
  auto snap = build(R"(  - name: u4
    balance: ewma
    targets: [ "127.0.0.1:1", "127.0.0.1:2" ]
)");
  BalancerState st;
  st.loads.resize(2);
  recordLatency(st.loads[0], 1'000'000, 50'000);
  recordLatency(st.loads[1], 1'000'000, 1'000);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(pickTarget(snap->upstreams[0], st, request(), "x", 0), 1u);
  // Peak EWMA: a slow sample counts at once, a fast one decays in slowly.
  recordLatency(st.loads[1], 1'001'000, 90'000);
  EXPECT_DOUBLE_EQ(st.loads[1].ewma_us, 90'000);
  recordLatency(st.loads[1], 1'002'000, 1'000);
  EXPECT_GT(st.loads[1].ewma_us, 80'000);
}

TEST(Balancer, ConsistentHashIsStableAndMovesLittle) {
  auto three = build(R"(  - name: h3
    balance: hash
    hash_on: header:x-user
    targets: [ "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80" ]
)");
  auto two = build(R"(  - name: h2
    balance: hash
    hash_on: header:x-user
    targets: [ "10.0.0.1:80", "10.0.0.2:80" ]
)");
  BalancerState a, b;
  std::map<uint32_t, int> spread;
  int moved = 0, kept_on_survivors = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string user = "user-" + std::to_string(i);
    uint32_t t3 = pickTarget(three->upstreams[0], a, request(user), "x", 0);
    EXPECT_EQ(t3, pickTarget(three->upstreams[0], a, request(user), "x", 0));
    spread[t3]++;
    uint32_t t2 = pickTarget(two->upstreams[0], b, request(user), "x", 0);
    if (t3 != 2) {
      kept_on_survivors += t2 == t3;
      moved += t2 != t3;
    }
  }
  for (auto& [t, n] : spread) EXPECT_GT(n, 700) << "target " << t;
  EXPECT_EQ(moved, 0) << "keys of surviving targets must not move";
  EXPECT_GT(kept_on_survivors, 1500);
}

TEST(Balancer, OutlierEjectionAfterConsecutiveFailures) {
  upstream::OutlierConfig cfg;
  cfg.consecutive_failures = 3;
  cfg.base_ejection = std::chrono::milliseconds(60'000);
  TargetHealth h;
  EXPECT_FALSE(h.recordFailure(cfg));
  EXPECT_FALSE(h.recordFailure(cfg));
  h.recordSuccess();  // a success resets the run
  EXPECT_FALSE(h.recordFailure(cfg));
  EXPECT_FALSE(h.recordFailure(cfg));
  ASSERT_TRUE(h.recordFailure(cfg));
  h.eject(cfg);
  EXPECT_FALSE(h.available(steadyMillis()));
  EXPECT_TRUE(h.available(steadyMillis() + 61'000));
  EXPECT_EQ(h.ejections_total.load(), 1u);
}

}  // namespace
}  // namespace ganglion::upstream
