#include "llm/api_error.h"

#include <fmt/format.h>
#include <boost/json.hpp>

namespace ganglion::llm {

namespace json = boost::json;

std::string openaiErrorBody(const ApiError& e) {
  json::object err;
  err["message"] = e.message;
  err["type"] = e.type;
  err["param"] = e.param.empty() ? json::value(nullptr) : json::value(e.param);
  err["code"] = e.code.empty() ? json::value(nullptr) : json::value(e.code);
  return json::serialize(json::object{{"error", std::move(err)}});
}

std::string anthropicErrorBody(const ApiError& e) {
  std::string_view type = "api_error";
  switch (e.status) {
    case 400: case 404: case 413: case 422: type = e.status == 404 ? "not_found_error"
                                                 : e.status == 413 ? "request_too_large"
                                                                   : "invalid_request_error"; break;
    case 401: type = "authentication_error"; break;
    case 403: type = "permission_error"; break;
    case 429: type = "rate_limit_error"; break;
    case 529: case 503: type = "overloaded_error"; break;
    default: break;
  }
  return json::serialize(json::object{{"type", "error"}, {"error", json::object{{"type", type}, {"message", e.message}}}});
}

ApiError badProviderAnswer(std::string_view what) {
  return ApiError{502, "api_error", fmt::format("the provider sent {}", what), "", "bad_provider_response"};
}

std::string providerStatusMessage(int status, std::string_view body) {
  std::string_view head = body.substr(0, 300);
  return head.empty() ? fmt::format("the provider answered HTTP {}", status)
                      : fmt::format("the provider answered HTTP {}: {}", status, head);
}

std::string_view openaiTypeForStatus(int status) {
  if (status == 401) return "authentication_error";
  if (status == 403) return "permission_error";
  if (status == 404) return "not_found_error";
  if (status == 429) return "rate_limit_error";  // "insufficient_quota" is OpenAI's for budgets
  if (status >= 500) return "api_error";
  return "invalid_request_error";
}

}  // namespace ganglion::llm
