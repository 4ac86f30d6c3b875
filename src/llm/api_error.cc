#include "llm/api_error.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "base/strings.h"
#include "http/headers.h"

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
    case 400:
    case 404:
    case 413:
    case 422:
      type = e.status == 404   ? "not_found_error"
             : e.status == 413 ? "request_too_large"
                               : "invalid_request_error";
      break;
    case 401:
      type = "authentication_error";
      break;
    case 403:
      type = "permission_error";
      break;
    case 429:
      type = "rate_limit_error";
      break;
    case 529:
    case 503:
      type = "overloaded_error";
      break;
    default:
      break;
  }
  return json::serialize(
      json::object{{"type", "error"}, {"error", json::object{{"type", type}, {"message", e.message}}}});
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

namespace {

bool isWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '/' || c == '+' || c == '=' || c == ':' || c == '@' || c == '%' || c == '~';
}

bool looksLikeIpv4(std::string_view w) {
  int dots = 0, digits = 0;
  for (char c : w) {
    if (c == '.') {
      if (digits == 0) return false;
      ++dots;
      digits = 0;
    } else if (c >= '0' && c <= '9') {
      if (++digits > 3) return false;
    } else if (c == ':' && dots == 3) {
      break;  // a port follows
    } else {
      return false;
    }
  }
  return dots == 3 && digits > 0;
}

bool allLetters(std::string_view s) {
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
  return !s.empty();
}

/// A host name, host:port, "localhost" or an IPv6 address: internal names are nobody's business.
bool looksLikeHost(std::string_view w) {
  if (iequals(w.substr(0, 9), "localhost")) return true;
  if (w.find("::") != std::string_view::npos) return true;  // IPv6
  if (auto colon = w.rfind(':'); colon != std::string_view::npos && colon + 1 < w.size()) {
    bool port = true;
    for (char c : w.substr(colon + 1)) port = port && c >= '0' && c <= '9';
    if (port && colon > 0) return true;  // host:port
  }
  // A dotted name of host-name characters with an alphabetic last label: three labels or more
  // (llm-7.prod.internal), or two with a domain-like last label (internal.corp, example.com).
  // Field paths (response_format.type: underscores), file names (report.pdf) and model ids
  // (gemini-1.5-pro) stay.
  size_t labels = 1;
  for (char c : w) {
    if (c == '.')
      ++labels;
    else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  }
  auto dot = w.rfind('.');
  if (labels < 2 || dot == 0 || w[dot - 1] == '.' || w.find("..") != std::string_view::npos) return false;
  std::string_view last = w.substr(dot + 1);
  if (last.size() < 2 || last.size() > 24 || !allLetters(last)) return false;
  if (labels >= 3) return true;
  for (std::string_view tld : {"com",   "net",         "org",  "io",   "ai",      "dev",      "app",
                               "cloud", "co",          "us",   "eu",   "uk",      "de",       "internal",
                               "local", "localdomain", "corp", "lan",  "intra",   "intranet", "private",
                               "svc",   "cluster",     "home", "test", "example", "invalid",  "arpa"})
    if (iequals(last, tld)) return true;
  return false;
}

/// True when `w` holds eight or more consecutive characters of a secret the gateway knows.
bool holdsKnownSecret(std::string_view w, std::span<const std::string_view> known) {
  constexpr size_t kWindow = 8;
  for (std::string_view secret : known) {
    if (secret.size() < kWindow) continue;
    for (size_t j = 0; j + kWindow <= secret.size(); ++j)
      if (w.find(secret.substr(j, kWindow)) != std::string_view::npos) return true;
  }
  return false;
}

bool looksSecret(std::string_view w) {
  while (!w.empty() && (w.back() == '.' || w.back() == ':' || w.back() == ',')) w.remove_suffix(1);
  if (looksLikeHost(w)) return true;
  for (std::string_view prefix :
       {"sk-", "sk_", "pk_", "rk_", "AKIA", "ASIA", "AIza", "ghp_", "gho_", "xox", "eyJ"})
    if (w.size() >= prefix.size() + 8 && w.substr(0, prefix.size()) == prefix) return true;
  if (w.find("://") != std::string_view::npos || looksLikeIpv4(w)) return true;
  for (std::string_view key : {"key=", "token=", "secret=", "password=", "sig=", "signature="}) {
    auto at = w.find(key);
    if (at != std::string_view::npos && (at == 0 || !std::isalnum(static_cast<unsigned char>(w[at - 1]))))
      return true;
  }
  if (w.size() < 16) return false;
  bool upper = false, lower = false, digit = false;
  for (char c : w) {
    upper |= c >= 'A' && c <= 'Z';
    lower |= c >= 'a' && c <= 'z';
    digit |= c >= '0' && c <= '9';
  }
  return upper && lower && digit;
}

}  // namespace

std::string redactSecrets(std::string_view text, std::span<const std::string_view> known) {
  text = text.substr(0, 1000);
  std::string out;
  out.reserve(text.size());
  bool after_bearer = false;
  for (size_t i = 0; i < text.size();) {
    if (!isWordChar(text[i])) {
      out += text[i++];
      continue;
    }
    size_t end = i;
    while (end < text.size() && isWordChar(text[end])) ++end;
    std::string_view word = text.substr(i, end - i);
    if (after_bearer || looksSecret(word) || holdsKnownSecret(word, known)) {
      out += "[redacted]";
    } else {
      out += word;
    }
    after_bearer = iequals(word, "bearer") || iequals(word, "basic");
    i = end;
  }
  return out;
}

ApiError redactedProviderError(ApiError e, std::span<const std::string_view> known) {
  // Every field the client sees: providers have put secrets in type, code and param too.
  e.type = redactSecrets(e.type, known).substr(0, 100);
  e.code = redactSecrets(e.code, known).substr(0, 100);
  e.param = redactSecrets(e.param, known).substr(0, 200);
  e.message = redactSecrets(e.message, known);
  return e;
}

ApiError clientSafeProviderError(std::string_view provider, ApiError e,
                                 std::span<const std::string_view> known) {
  const bool request_fault = e.status == 400 || e.status == 404 || e.status == 409 || e.status == 413 ||
                             e.status == 415 || e.status == 422;
  e = redactedProviderError(std::move(e), known);
  if (request_fault) return e;
  e.param.clear();
  std::string_view why = e.status == 401 || e.status == 403 ? ": it refused the gateway's credentials for it"
                         : e.status == 429                  ? ": it is rate limiting the gateway"
                                                            : "";
  e.message = fmt::format("provider '{}' answered {} {}{}; the gateway's log has the details", provider,
                          e.status, http::reasonPhrase(e.status), why);
  return e;
}

}  // namespace ganglion::llm
