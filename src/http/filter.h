// The filter seam: request and response hooks that run around the terminal handler (the
// proxy, the LLM API, ...). Filters are built once per config snapshot from the route's
// `filters:` list and shared by every worker, so they hold only immutable settings or state
// designed for concurrent use (rate-limit buckets); per-request state lives in FilterContext
// and, for a hook that waits (kPause), in its coroutine. Design: docs/design/filters.md.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "http/headers.h"

namespace ganglion::store {
class RedisClients;
}

namespace ganglion::http {

enum class FilterStatus {
  kContinue,  ///< go on to the next filter, then the handler
  kReply,     ///< the filter filled in ctx.reply; answer with it and skip the rest
  kPause,     ///< the filter set ctx.resume: the chain waits for it, then goes on as it says
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
  /// Set when a response-body hook replaced the handler's response: the reply's error type,
  /// for the access log.
  std::string_view response_replaced;
  HeaderList response_add;  ///< headers every response to this request gets (CORS)
  /// This worker's Redis connections, for filters whose state is shared between gateways.
  store::RedisClients* redis = nullptr;
  /// Set by a hook that returns kPause: the rest of its work (a Redis call, a store lookup),
  /// as a coroutine on the worker's loop. The connection manager awaits it (cancelled, with
  /// everything it holds, if the client leaves first: the one cancel point) and takes its
  /// result as the hook's (kContinue or kReply).
  std::optional<boost::asio::awaitable<FilterStatus>> resume;
};

/// Fills ctx.reply and returns kReply: a hook answers itself (refuses the request, or replaces
/// a held response) with a gateway error of `status` and `type`.
inline FilterStatus replyWith(FilterContext& ctx, int status, std::string_view type, std::string message) {
  ctx.reply.status = status;
  ctx.reply.type = type;
  ctx.reply.message = std::move(message);
  return FilterStatus::kReply;
}

class Filter {
 public:
  virtual ~Filter() = default;
  /// Runs on the request's worker thread after routing, before the handler. May edit the
  /// request head (strip a credential), fill ctx.reply and return kReply, or set ctx.resume
  /// and return kPause to finish asynchronously (the worker serves others meanwhile).
  virtual FilterStatus onRequest(FilterContext& ctx) const = 0;
  /// Whether the filter looks at the request body, asked on the worker thread for each request
  /// the filter sees. 0 (the default): never; the body streams past it untouched, at no cost.
  /// N: the filter needs the whole body, at most N bytes, before the request may go on; a
  /// longer body is refused with 413 (a padded body must not slip past unchecked).
  virtual uint64_t wholeRequestBodyLimit() const { return 0; }
  /// Runs on the worker thread with the whole request body (empty for a request without
  /// one), for filters whose wholeRequestBodyLimit() is not 0, once every filter's onRequest
  /// let the request through; in chain order. May fill ctx.reply and return kReply, or
  /// pause. The terminal handler then gets the same body.
  virtual FilterStatus onRequestBody(FilterContext& /*ctx*/, std::string_view /*body*/) const {
    return FilterStatus::kContinue;
  }
  /// Runs on the worker thread just before a response head goes to the client, whether it came
  /// from the upstream or from a local reply. Filters run here in reverse order.
  virtual void onResponse(FilterContext& /*ctx*/, ResponseHead& /*head*/) const {}
  /// Whether the filter checks the bodies of the terminal handler's responses (an upstream's,
  /// the LLM API's answer), asked on the worker thread for each request the filter let
  /// through. 0 (the default): never; responses stream past it at no cost. N: the whole body,
  /// at most N bytes, is held before any of it is sent; a longer one is refused with
  /// `502 response_too_large`, never passed unchecked. Local replies are not held.
  virtual uint64_t wholeResponseBodyLimit() const { return 0; }
  /// Runs on the worker thread with the whole response body, in reverse chain order, before
  /// onResponse. kReply replaces the response with ctx.reply, written in the route's dialect;
  /// kContinue lets it go. Not a pause point: a check that takes long bounds its own work.
  virtual FilterStatus onResponseBody(FilterContext& /*ctx*/, const ResponseHead& /*head*/,
                                      std::string_view /*body*/) const {
    return FilterStatus::kContinue;
  }
  /// The filter's kind as written in config ("key_auth").
  virtual std::string_view kind() const = 0;
};

}  // namespace ganglion::http
