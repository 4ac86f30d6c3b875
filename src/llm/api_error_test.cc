#include "llm/api_error.h"

#include <gtest/gtest.h>

namespace ganglion::llm {
namespace {

TEST(ApiError, IsAnErrorRetryableByItsStatus) {
  const ApiError limited{429, "rate_limit_error", "slow down", "", "rate_limit_exceeded"};
  EXPECT_TRUE(limited.retryable);
  EXPECT_EQ(limited.code, "rate_limit_exceeded");
  for (int status : {408, 500, 502, 503, 504, 529}) EXPECT_TRUE(ApiError(status, "api_error", "x").retryable);
  for (int status : {400, 401, 403, 404, 413, 422, 501})
    EXPECT_FALSE(ApiError(status, "api_error", "x").retryable);
  const ApiError plain;
  EXPECT_EQ(plain.status, 400);
  EXPECT_EQ(plain.type, "invalid_request_error");
  const ApiError read = statusError(401);
  EXPECT_EQ(read.type, "authentication_error");
  EXPECT_FALSE(read.retryable);
}

TEST(RedactSecrets, RemovesKeysUrlsAndAddresses) {
  const std::string text =
      "Incorrect API key provided: sk-proj-abcdEFGH1234ijkl. See https://internal.corp/v1?key=zz or "
      "call 10.0.3.7:8000 with Bearer tok3nXYZ and aws AKIAIOSFODNN7EXAMPLE, token=abc";
  const std::string out = redactSecrets(text);
  for (const char* leaked :
       {"sk-proj", "internal.corp", "10.0.3.7", "tok3nXYZ", "AKIAIOSFODNN7EXAMPLE", "abc"})
    EXPECT_EQ(out.find(leaked), std::string::npos) << leaked << " in " << out;
  EXPECT_NE(out.find("Incorrect API key provided"), std::string::npos);
}

TEST(RedactSecrets, RemovesHostNamesAndKnownSecrets) {
  const std::string text =
      "upstream llm-7.prod.internal.corp:8443 and [fd00::5]:80 and localhost:9000 refused "
      "PROVIDER-SECRET-abc";
  const std::string_view known[] = {"sk-PROVIDER-SECRET-abc"};
  const std::string out = redactSecrets(text, known);
  for (const char* leaked : {"internal", "fd00", "localhost", "9000", "PROVIDER-SECRET"})
    EXPECT_EQ(out.find(leaked), std::string::npos) << leaked << " in " << out;
  EXPECT_EQ(redactSecrets("gemini-1.5-pro and claude-3.5-sonnet are fine."),
            "gemini-1.5-pro and claude-3.5-sonnet are fine.");
  EXPECT_EQ(redactSecrets("response_format.type is wrong in report.pdf, e.g. here."),
            "response_format.type is wrong in report.pdf, e.g. here.");
  EXPECT_EQ(redactSecrets("see api.example.com or svc.cluster.local"), "see [redacted] or [redacted]");
}

TEST(RedactSecrets, KeepsOrdinaryWordsAndModelNames) {
  const std::string text =
      "This model's maximum context length is 8192 tokens; gpt-4o-mini-2024-07-18 got 9000.";
  EXPECT_EQ(redactSecrets(text), text);
  EXPECT_LE(redactSecrets(std::string(5000, 'a') + " x").size(), 1000u);
}

TEST(ClientSafeProviderError, RequestFaultsKeepTheMessageOthersGetTheGatewaysWords) {
  ApiError bad{400, "invalid_request_error", "context too long for sk-live-1234567890abcdef", "messages",
               "context_length_exceeded"};
  auto out = clientSafeProviderError("main", bad);
  EXPECT_EQ(out.status, 400);
  EXPECT_EQ(out.code, "context_length_exceeded");
  EXPECT_EQ(out.param, "messages");
  EXPECT_EQ(out.message.find("sk-live"), std::string::npos);
  EXPECT_NE(out.message.find("context too long"), std::string::npos);

  ApiError auth{401, "authentication_error", "canary-Secret-Value-42 rejected at http://10.1.1.1/admin", "",
                "invalid_api_key"};
  out = clientSafeProviderError("main", auth);
  EXPECT_EQ(out.status, 401);
  EXPECT_EQ(out.type, "authentication_error");
  EXPECT_EQ(out.code, "invalid_api_key");
  EXPECT_EQ(out.message.find("canary"), std::string::npos);
  EXPECT_EQ(out.message.find("10.1.1.1"), std::string::npos);
  EXPECT_NE(out.message.find("provider 'main' answered 401"), std::string::npos);

  ApiError odd{400, "sk-PROVIDER-SECRET-abc", "bad", "sk-PROVIDER-SECRET-abc", "sk-PROVIDER-SECRET-abc"};
  const std::string_view known[] = {"sk-PROVIDER-SECRET-abc"};
  out = clientSafeProviderError("main", odd, known);
  for (const std::string* field : {&out.type, &out.param, &out.code, &out.message})
    EXPECT_EQ(field->find("SECRET"), std::string::npos) << *field;

  ApiError down{503, "api_error", "upstream connect error to llm-backend.internal.corp", "", ""};
  out = clientSafeProviderError("main", down);
  EXPECT_EQ(out.message.find("internal"), std::string::npos);
  EXPECT_EQ(out.status, 503);
}

}  // namespace
}  // namespace ganglion::llm
