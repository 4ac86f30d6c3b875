// Errors in the client's dialect. OpenAI-compatible routes answer
// {"error":{"message","type","param","code"}}; Anthropic-compatible ones
// {"type":"error","error":{"type","message"}}. Pure functions, any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"

namespace ganglion::llm {

/// An error the gateway (or a provider) reports to the client: an Error (message; code, the
/// machine-readable code such as "invalid_api_key" or "model_not_found", or empty; HTTP
/// status; retryable, set from the status when made) with the wire fields of the error bodies.
struct ApiError : Error {
  ApiError() : Error({}, {}, 400) {}
  ApiError(int status, std::string type, std::string message, std::string param = {}, std::string code = {})
      : Error(std::move(message), std::move(code), status, retryableStatus(status)),
        type(std::move(type)),
        param(std::move(param)) {}

  /// 408, 425, 429, 5xx other than 501 and 505: the same call may succeed later.
  static bool retryableStatus(int status) {
    return status == 408 || status == 425 || status == 429 ||
           (status >= 500 && status != 501 && status != 505);
  }

  std::string type = "invalid_request_error";  ///< OpenAI error type
  std::string param;                           ///< the offending request field ("messages[0].role"), or empty
  int64_t retry_after_s = 0;                   ///< > 0: sent as Retry-After
};

/// Success, or the error to answer with: what request parsers, codecs and stream relays return.
using ApiResult = Result<void, ApiError>;

/// OpenAI's error object.
std::string openaiErrorBody(const ApiError& e);

/// Anthropic's error object; the type is mapped from the HTTP status as Anthropic does.
std::string anthropicErrorBody(const ApiError& e);

/// A provider answer the gateway cannot read: 502 "the provider sent <what>".
ApiError badProviderAnswer(std::string_view what);

/// The message for a provider error whose body said nothing usable:
/// "the provider answered HTTP <status>", with the first 300 bytes of the body if any.
std::string providerStatusMessage(int status, std::string_view body);

/// A provider's error as a client may see it. Errors that are the request's fault (400, 404,
/// 409, 413, 415, 422) keep the provider's message, its secrets redacted (redactSecrets);
/// others (401/403: the gateway's own credentials, 429, 5xx) get the gateway's words, since
/// providers put account ids, key fragments and internal URLs there. Status, type and code
/// are kept. The caller logs the original.
ApiError clientSafeProviderError(std::string_view provider, ApiError from_provider,
                                 std::span<const std::string_view> known_secrets = {});

/// `e` with every field scrubbed by redactSecrets (type and code cut to 100 bytes, param to
/// 200): how a provider's own words reach a client, in an error answer or a stream's error event.
ApiError redactedProviderError(ApiError e, std::span<const std::string_view> known_secrets = {});

/// `text` with what looks like a secret or an internal address replaced by "[redacted]":
/// URLs, IPv4 and IPv6 addresses, host names (a.b with an alphabetic last label, host:port,
/// localhost), `key=`/`token=`/`secret=`/`password=` values, words after "Bearer", key-like
/// words (known key prefixes such as sk-, AKIA, AIza; or 16+ characters mixing upper case,
/// lower case and digits), and any word holding 8+ consecutive characters of `known_secrets`
/// (the provider's own credentials). Cut to 1,000 bytes.
std::string redactSecrets(std::string_view text, std::span<const std::string_view> known_secrets = {});

/// The OpenAI error type that goes with an HTTP status from a provider or the gateway.
std::string_view openaiTypeForStatus(int status);

/// An error of `status` with its OpenAI type and no message yet: where a provider's error
/// answer is read from.
inline ApiError statusError(int status) {
  return ApiError(status, std::string(openaiTypeForStatus(status)), {});
}

}  // namespace ganglion::llm
