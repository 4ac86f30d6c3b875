#include "edge/device_limit.h"

#include <gtest/gtest.h>

#include <string>

namespace ganglion::edge {
namespace {

TEST(DeviceLimiter, ABurstPassesThenTheRateAndOtherDevicesAreNotTouched) {
  DeviceLimiter limit(10, 20);  // 10 readings/s, bursts of 20
  int passed = 0;
  for (int i = 0; i < 100; ++i) passed += limit.admit("plant", "flood", 1000);
  EXPECT_EQ(passed, 20);
  EXPECT_EQ(limit.limited(), 80u);
  EXPECT_TRUE(limit.admit("plant", "quiet", 1000));  // its own bucket
  EXPECT_TRUE(limit.admit("lab", "flood", 1000));    // same name, another source
  // 500 ms later: 5 more tokens.
  passed = 0;
  for (int i = 0; i < 10; ++i) passed += limit.admit("plant", "flood", 1500);
  EXPECT_EQ(passed, 5);
  // A wall clock that steps back refills nothing (and takes nothing back).
  EXPECT_FALSE(limit.admit("plant", "flood", 900));
  // Long idle: the bucket is full again, never more than the burst.
  passed = 0;
  for (int i = 0; i < 50; ++i) passed += limit.admit("plant", "flood", 100'000);
  EXPECT_EQ(passed, 20);
}

TEST(DeviceLimiter, BurstDefaultsToOneSecondOfRate) {
  DeviceLimiter limit(5, 0);
  int passed = 0;
  for (int i = 0; i < 10; ++i) passed += limit.admit("s", "d", 0);
  EXPECT_EQ(passed, 5);
}

TEST(DeviceLimiter, ListsTheDevicesLimitedWithinTheLastMinuteMostDroppedFirst) {
  DeviceLimiter limit(1, 1);
  for (int i = 0; i < 4; ++i) limit.admit("plant", "a", 0);  // 3 dropped
  for (int i = 0; i < 7; ++i) limit.admit("plant", "b", 0);  // 6 dropped
  limit.admit("plant", "c", 0);                              // none
  auto listed = limit.limitedLately(1000);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ((listed[0].source + "/" + listed[0].device), "plant/b");
  EXPECT_EQ(listed[0].dropped, 6u);
  EXPECT_EQ(listed[1].device, "a");
  EXPECT_EQ(listed[1].dropped, 3u);
  EXPECT_TRUE(limit.limitedLately(61'001).empty());  // a minute without a drop
}

TEST(DeviceLimiter, AFullTableForgetsIdleDevicesAndLetsNewOnesThroughUntracked) {
  DeviceLimiter limit(1000, 1000);
  for (size_t i = 0; i < DeviceLimiter::kMaxDevices; ++i) limit.admit("s", std::to_string(i), 0);
  EXPECT_EQ(limit.devices(), DeviceLimiter::kMaxDevices);
  // Each spent one token of 1,000: none is idle yet, so a new device passes without a bucket.
  EXPECT_TRUE(limit.admit("s", "new", 0));
  EXPECT_EQ(limit.untracked(), 1u);
  // A second later every bucket has refilled: they are forgotten to make room.
  EXPECT_TRUE(limit.admit("s", "newer", 1000));
  EXPECT_EQ(limit.devices(), 1u);
  EXPECT_EQ(limit.untracked(), 1u);
}

TEST(DeviceLimiter, TheLastDevicesBucketIsReusedOnlyForThatDevice) {
  // Names that share a prefix, and the same device of another source, keep their own buckets
  // although each is looked up right after the other.
  DeviceLimiter limit(1, 2);
  EXPECT_TRUE(limit.admit("s", "ab", 0));
  EXPECT_TRUE(limit.admit("s", "a", 0));
  EXPECT_TRUE(limit.admit("sa", "b", 0));
  EXPECT_TRUE(limit.admit("s", "ab", 0));
  EXPECT_FALSE(limit.admit("s", "ab", 0));  // its burst of 2 is spent, the others' are not
  EXPECT_TRUE(limit.admit("s", "a", 0));
  EXPECT_FALSE(limit.admit("s", "a", 0));
  EXPECT_EQ(limit.devices(), 3u);
  // A device let through untracked (full table) is not taken for the one looked up before.
  DeviceLimiter full(1000, 1000);
  for (size_t i = 0; i < DeviceLimiter::kMaxDevices; ++i) full.admit("s", std::to_string(i), 0);
  EXPECT_TRUE(full.admit("s", "new", 0));
  EXPECT_TRUE(full.admit("s", "new", 0));
  EXPECT_EQ(full.untracked(), 2u);
}

}  // namespace
}  // namespace ganglion::edge
