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

/// An error that carries more than Error, as the LLM API's ApiError does.
struct WireError : Error {
  WireError(std::string message, std::string param)
      : Error(std::move(message), "bad", 400), param(std::move(param)) {}
  std::string param;
};

Result<void, WireError> check(bool ok) {
  if (!ok) return WireError("missing field", "messages[0].role");
  return {};
}

TEST(Result, ARicherErrorKeepsItsFields) {
  EXPECT_TRUE(check(true).ok());
  auto failed = check(false);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().param, "messages[0].role");
  const Error& plain = failed.error();  // still an Error: code, status, message
  EXPECT_EQ(plain.status, 400);
  EXPECT_EQ(plain.code, "bad");
  // No truth value: it replaced optional<WireError>, whose truth meant the opposite.
  static_assert(!std::is_constructible_v<bool, Result<void, WireError>>);
  static_assert(std::is_constructible_v<bool, Result<void>>);
}

}  // namespace
}  // namespace ganglion
