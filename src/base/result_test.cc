#include "base/result.h"

#include <gtest/gtest.h>

#include <memory>

namespace ganglion {
namespace {

Result<void> succeed() { return {}; }
Result<void> fail() { return Error{"disk full", "io_error", 0, true}; }
Result<std::unique_ptr<int>> make(bool ok) {
  if (!ok) return Error{"no", "refused", 403, false};
  return std::make_unique<int>(7);
}

TEST(Result, VoidIsSuccessOrAnError) {
  EXPECT_TRUE(succeed().ok());
  auto failed = fail();
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message, "disk full");
  EXPECT_EQ(failed.error().code, "io_error");
  EXPECT_TRUE(failed.error().retryable);
}

TEST(Result, ValueOrAnErrorWithItsStatus) {
  auto made = make(true);
  ASSERT_TRUE(made);
  EXPECT_EQ(**made, 7);
  auto refused = make(false);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 403);
  EXPECT_FALSE(refused.error().retryable);
}

}  // namespace
}  // namespace ganglion
