// The filter seam: request and response hooks that run around the terminal handler (the
// proxy, later the LLM router). Filters are built once per config snapshot from the route's
// `filters:` list and shared by every worker, so they hold only immutable settings or state
// designed for concurrent use (rate-limit buckets); per-request state lives in FilterContext.
#pragma once

#include <string>
#include <string_view>

#include "http/headers.h"

namespace ganglion::http {

enum class FilterStatus {
  kContinue,  ///< go on to the next filter, then the handler
  kReply,     ///< the filter filled in ctx.reply; answer with it and skip the rest
};

/// A reply a filter makes instead of forwarding (401, 403, 429, a CORS preflight 204...).
struct LocalReply {
  int status = 0;
  std::string type;     ///< machine-readable error type; empty for a non-error reply
  std::string message;  ///< human-readable reason
  HeaderList headers;   ///< extra headers (Retry-After, Access-Control-*)
};

/// Per-request state shared by the filters of one request. Lives on the worker's stack frame
/// of the request; never crosses threads.
struct FilterContext {
  RequestHead& request;
  std::string_view client_ip;
  std::string principal;  ///< who the request is from, once authenticated (key name)
  LocalReply reply;
  HeaderList response_add;  ///< headers every response to this request gets (CORS)
};

class Filter {
 public:
  virtual ~Filter() = default;
  /// Runs on the request's worker thread after routing, before the handler. May edit the
  /// request head (strip a credential), or fill ctx.reply and return kReply.
  virtual FilterStatus onRequest(FilterContext& ctx) const = 0;
  /// Runs on the worker thread just before a response head goes to the client, whether it came
  /// from the upstream or from a local reply. Filters run here in reverse order.
  virtual void onResponse(FilterContext& /*ctx*/, ResponseHead& /*head*/) const {}
  /// The filter's kind as written in config ("key_auth").
  virtual std::string_view kind() const = 0;
};

}  // namespace ganglion::http
