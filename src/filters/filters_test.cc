#include <gtest/gtest.h>

#include "filters/ip_filter/cidr.h"
#include "filters/rate_limit/token_buckets.h"

namespace ganglion::filters {
namespace {

TEST(Cidr, Ipv4AndIpv6Ranges) {
  auto net = Cidr::parse("10.1.0.0/16");
  ASSERT_TRUE(net);
  EXPECT_TRUE(net->contains(*parseAddress("10.1.200.3")));
  EXPECT_FALSE(net->contains(*parseAddress("10.2.0.1")));
  EXPECT_FALSE(net->contains(*parseAddress("::1")));
  auto host = Cidr::parse("127.0.0.1");
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->contains(*parseAddress("127.0.0.1")));
  EXPECT_FALSE(host->contains(*parseAddress("127.0.0.2")));
  auto v6 = Cidr::parse("2001:db8::/32");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(*parseAddress("2001:db8:1::5")));
  EXPECT_FALSE(v6->contains(*parseAddress("2001:db9::1")));
  auto odd = Cidr::parse("10.1.2.3/12");  // host bits set: normalised to 10.0.0.0/12
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->contains(*parseAddress("10.15.255.255")));
  EXPECT_FALSE(odd->contains(*parseAddress("10.16.0.0")));
  EXPECT_TRUE(Cidr::parse("0.0.0.0/0")->contains(*parseAddress("8.8.8.8")));
}

TEST(Cidr, RejectsGarbage) {
  EXPECT_FALSE(Cidr::parse("10.0.0.0/33"));
  EXPECT_FALSE(Cidr::parse("::/129"));
  EXPECT_FALSE(Cidr::parse("banana"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/"));
  EXPECT_FALSE(Cidr::parse("10.0.0.0/-1"));
  EXPECT_FALSE(parseAddress(""));
}

TEST(TokenBuckets, RefillsAtRateUpToBurst) {
  TokenBuckets buckets(2.0, 3.0);  // 2 per second, burst 3
  auto t0 = TokenBuckets::Clock::now();
  EXPECT_TRUE(buckets.take("a", t0).allowed);
  EXPECT_TRUE(buckets.take("a", t0).allowed);
  EXPECT_TRUE(buckets.take("a", t0).allowed);
  auto refused = buckets.take("a", t0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_NEAR(refused.retry_after, 0.5, 1e-9);
  EXPECT_TRUE(buckets.take("b", t0).allowed);  // keys are independent
  EXPECT_TRUE(buckets.take("a", t0 + std::chrono::milliseconds(500)).allowed);
  EXPECT_FALSE(buckets.take("a", t0 + std::chrono::milliseconds(500)).allowed);
  // A long pause refills to burst, not beyond.
  auto later = t0 + std::chrono::hours(1);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(buckets.take("a", later).allowed);
  EXPECT_FALSE(buckets.take("a", later).allowed);
}

TEST(TokenBuckets, BoundedMemory) {
  TokenBuckets buckets(1.0, 1.0);
  auto t0 = TokenBuckets::Clock::now();
  for (int i = 0; i < 600'000; ++i) buckets.take(std::to_string(i), t0);
  EXPECT_LE(buckets.size(), 32u * 16384u);
}

}  // namespace
}  // namespace ganglion::filters
