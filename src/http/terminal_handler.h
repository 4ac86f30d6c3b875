// The terminal-handler seam: what serves a request once the connection manager has routed it
// and the route's filters let it through (the proxy, the LLM API, the welcome page, static
// files; later device ingest). The rows of the table live in the composition
// (server/handler_table.h); each route names its row (CompiledRoute::action).
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "http/filter.h"
#include "http/router.h"
#include "http/server_connection.h"
#include "telemetry/access_log.h"

namespace ganglion::http {

/// What a terminal handler reports about a request for the access log. Views point at strings
/// that outlive the request (the snapshot's) or at `keep()`.
struct HandlerReport {
  std::string_view upstream;       ///< upstream or provider name
  std::string_view upstream_addr;  ///< "host:port" of the last target tried
  int upstream_status = 0;
  int attempts = 0;
  std::string_view error;      ///< error type, empty on success
  std::string_view principal;  ///< who the handler authenticated (overrides the filters')

  /// Adds a field of the handler's own to the request's access record (names are literals;
  /// at most kMaxAttributes, the rest are dropped).
  void attribute(std::string_view name, std::string_view text) {
    add({name, telemetry::AccessAttribute::Kind::kText, text, 0});
  }
  void attribute(std::string_view name, uint64_t value) {
    add({name, telemetry::AccessAttribute::Kind::kInteger, {}, value});
  }
  void flag(std::string_view name, bool value) {
    add({name, telemetry::AccessAttribute::Kind::kBool, {}, value ? 1u : 0u});
  }
  std::span<const telemetry::AccessAttribute> attributes() const {
    return {attributes_.data(), attribute_count_};
  }

  /// Keeps `text` for as long as the report lives and returns a view of it (at most three:
  /// the LLM's error, model and cost).
  std::string_view keep(std::string text) {
    if (kept_ == kept_text_.size()) return {};
    kept_text_[kept_] = std::move(text);
    return kept_text_[kept_++];
  }

 private:
  static constexpr size_t kMaxAttributes = 12;
  void add(const telemetry::AccessAttribute& a) {
    if (attribute_count_ < kMaxAttributes) attributes_[attribute_count_++] = a;
  }
  std::array<std::string, 3> kept_text_;
  size_t kept_ = 0;
  std::array<telemetry::AccessAttribute, kMaxAttributes> attributes_{};
  size_t attribute_count_ = 0;
};

/// One routed request as the manager hands it to its terminal handler. Lives on the
/// manager's coroutine frame; worker thread only.
struct RoutedRequest {
  ServerConnection& conn;
  const CompiledRoute& route;
  FilterContext& filters;  ///< principal set by an authenticating filter, if any
  HandlerReport report;
};

class TerminalHandler {
 public:
  virtual ~TerminalHandler() = default;
  /// Serves `req` after the route's filters let it through: answers exactly once through
  /// req.conn (unless the connection fails) and fills req.report. Called by the connection
  /// manager on the request's worker thread; the handler object belongs to the config
  /// version the request was routed with and outlives the call.
  virtual Task<void> serve(RoutedRequest& req) = 0;
  /// Answers with the reply a filter of one of its routes made instead of letting the request
  /// through (401, 403, 429, a CORS preflight), in the handler's dialect: the gateway's JSON
  /// error by default, OpenAI's or Anthropic's error object on LLM routes. Called by the
  /// connection manager, worker thread.
  virtual Task<void> sendLocalReply(ServerConnection& conn, const LocalReply& reply);
  /// The same reply as a whole response in the handler's dialect (Content-Type and length
  /// set), for a filter that refuses a response it has already held (onResponseBody).
  /// Called by the connection manager's response hook, worker thread.
  virtual void renderLocalReply(const ServerConnection& conn, const LocalReply& reply, ResponseHead& head,
                                std::string& body);
};

/// The gateway's own rendering of a filter's reply: a JSON error, or the bare status and
/// headers of a non-error reply.
void renderGatewayLocalReply(const LocalReply& reply, ResponseHead& head, std::string& body);

/// The gateway's own answer to a filter's reply: a JSON error, or the bare status and headers
/// of a non-error reply (the CORS preflight's 204).
Task<void> sendGatewayLocalReply(ServerConnection& conn, const LocalReply& reply);

}  // namespace ganglion::http
