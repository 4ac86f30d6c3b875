// Errors in the client's dialect. OpenAI-compatible routes answer
// {"error":{"message","type","param","code"}}; Anthropic-compatible ones
// {"type":"error","error":{"type","message"}}. Pure functions, any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ganglion::llm {

/// An error the gateway (or a provider) reports to the client.
struct ApiError {
  int status = 400;
  std::string type = "invalid_request_error";  ///< OpenAI error type
  std::string message;
  std::string param;  ///< the offending request field ("messages[0].role"), or empty
  std::string code;   ///< machine-readable code ("invalid_api_key", "model_not_found"), or empty
  int64_t retry_after_s = 0;  ///< > 0: sent as Retry-After
};

/// OpenAI's error object.
std::string openaiErrorBody(const ApiError& e);

/// Anthropic's error object; the type is mapped from the HTTP status as Anthropic does.
std::string anthropicErrorBody(const ApiError& e);

/// A provider answer the gateway cannot read: 502 "the provider sent <what>".
ApiError badProviderAnswer(std::string_view what);

/// The message for a provider error whose body said nothing usable:
/// "the provider answered HTTP <status>", with the first 300 bytes of the body if any.
std::string providerStatusMessage(int status, std::string_view body);

/// The OpenAI error type that goes with an HTTP status from a provider or the gateway.
std::string_view openaiTypeForStatus(int status);

}  // namespace ganglion::llm
