// Talking to one upstream target: taking a pooled keep-alive connection or opening one (TCP,
// then TLS), reading the response head with a deadline, and the bookkeeping every attempt
// needs (latency for the balancer, passive health). The reverse proxy relays through it and
// the LLM router calls providers through it, so both share pools, health and ejection.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "http/server_connection.h"
#include "http/upstream_connection.h"
#include "loop/worker.h"
#include "telemetry/metrics.h"
#include "upstream/balancer.h"
#include "upstream/resolved_upstream.h"

namespace ganglion::upstream {

using Millis = std::chrono::milliseconds;

/// A worker's live state for one upstream of one snapshot: pools, balancing, counters.
/// Worker thread only.
struct UpstreamRuntime {
  const ResolvedUpstream* def = nullptr;
  std::vector<std::shared_ptr<http::ConnectionPool>> pools;  ///< one per target
  BalancerState balancer;
  telemetry::UpstreamStats* stats = nullptr;
};

/// Why an attempt failed, as the client will be told: an Error whose code is the gateway's
/// error type ("upstream_timeout"), whose message names no address, host or port, and which is
/// retryable when nothing reached the target (any request may be sent again); status 0: none.
struct UpstreamFailure : Error {
  UpstreamFailure() = default;
  UpstreamFailure(int status, std::string_view code, std::string message, std::string detail, bool retryable)
      : Error(std::move(message), std::string(code), status, retryable), detail(std::move(detail)) {}
  explicit operator bool() const { return status != 0; }

  std::string detail;  ///< for the log: the target and the system's reason
};

/// Result of acquire(): a connection ready for a request, or why there is none.
struct Acquired {
  std::unique_ptr<http::UpstreamConnection> conn;
  UpstreamFailure failure;
};

/// What reading a response head ended with.
enum class HeadOutcome { kHead, kTimeout, kProtocolError, kClosed };

struct HeadRead {
  HeadOutcome outcome = HeadOutcome::kClosed;
  bool received_any = false;  ///< kClosed before any byte on a reused connection: keep-alive race
};

/// Takes the most recently used idle connection to target `index` that the peer has not
/// closed, or opens a new one within `timeout` (connect, then the TLS handshake with SNI and
/// verification when the upstream uses TLS). `fresh`: skip the pool (a retry after a pooled
/// connection turned out dead). Failures are counted and fed to passive health. Worker thread.
http::Task<Acquired> acquire(loop::Worker& worker, UpstreamRuntime& up, uint32_t index, Millis timeout,
                             bool fresh = false);

/// Reads until a final response head (interim 1xx other than 101 are skipped) or `timeout`.
/// `head_request`: the request was HEAD, so the response has no body. Worker thread.
http::Task<HeadRead> readResponseHead(http::UpstreamConnection& uc, Millis timeout, bool head_request);

enum class ReadStatus { kData, kEof, kFailed };

/// Reads more bytes into `uc.in` within `timeout`: kData, kEof (clean close) or kFailed
/// (error, full buffer or timeout; `uc.timed_out` tells). Worker thread.
http::Task<ReadStatus> readMore(http::UpstreamConnection& uc, Millis timeout);

enum class BodyStatus { kData, kComplete, kTimeout, kBroken };

/// Appends the next bytes of the response body (de-chunked) to `out`, reading from the
/// connection at most once; kComplete once the body ended (also for close-delimited bodies).
/// For callers that hold the body in memory or re-frame it (the LLM router). Worker thread.
http::Task<BodyStatus> readBodySome(http::UpstreamConnection& uc, std::string& out, Millis timeout);

/// A failed attempt on target `index` (5xx, timeout, connect error): counts toward outlier
/// ejection, within the upstream's cap on ejected targets. Any worker.
void markFailure(const ResolvedUpstream& up, uint32_t index);

/// A response head arrived from target `index` after `elapsed`: counts it in the upstream's
/// metrics (status class, ganglion_upstream_duration_seconds), and feeds the balancer's
/// latency average and passive health (5xx counts as a failure). The proxy and provider calls
/// alike; worker thread.
void recordResponse(UpstreamRuntime& up, uint32_t index, int status, std::chrono::microseconds elapsed);

/// Gives a connection back to target `index`'s pool when its exchange ended cleanly.
void release(UpstreamRuntime& up, uint32_t index, std::unique_ptr<http::UpstreamConnection> uc);

}  // namespace ganglion::upstream
