#include "base/log.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace ganglion {
namespace {

TEST(RepeatLimiter, EachLineOnceAMinute) {
  RepeatLimiter limiter;
  // Two registers failing at every poll (20 ms): each line once, not once a poll.
  EXPECT_TRUE(limiter.logAt("register a: Illegal data address", 0));
  EXPECT_TRUE(limiter.logAt("register b: Illegal data address", 20));
  int written = 0;
  for (int64_t t = 40; t < 60'000; t += 20)
    written +=
        limiter.logAt(t % 40 ? "register b: Illegal data address" : "register a: Illegal data address", t);
  EXPECT_EQ(written, 0);
  // A minute after it was logged, a line is logged again (saying how many were held back).
  EXPECT_TRUE(limiter.logAt("register a: Illegal data address", 60'000));
  EXPECT_FALSE(limiter.logAt("register a: Illegal data address", 60'001));
  // Another line is logged at once; past 16 distinct lines the one logged longest ago is
  // forgotten (and would be logged again).
  for (int i = 0; i < 16; ++i) EXPECT_TRUE(limiter.logAt(fmt::format("line {}", i), 70'000 + i));
  EXPECT_TRUE(limiter.logAt("register b: Illegal data address", 70'100));
  EXPECT_FALSE(limiter.logAt("line 15", 70'200));
}

}  // namespace
}  // namespace ganglion
