// The `upstreams[]` section as read: targets, balancing, health checks, outlier ejection,
// the retry budget and pooling. Declared once in upstream_schema.cc; compiled into
// ResolvedUpstream (resolved_upstream.h) per config version. Immutable once loaded.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace ganglion::net {
class TlsClientContext;
}

namespace ganglion::upstream {

using config::HostPort;
using config::Millis;

struct TargetConfig {
  HostPort address;
  uint32_t weight = 1;
};

/// Active HTTP health checking of every target of an upstream (main thread runs the probes).
struct HealthCheckConfig {
  std::string path = "/healthz";
  std::string host;  ///< Host header; the target's address when empty
  Millis interval{5'000};
  Millis timeout{1'000};
  uint32_t healthy_threshold = 2;    ///< consecutive passes to return to service
  uint32_t unhealthy_threshold = 3;  ///< consecutive failures to leave it
  int expect_min = 200;              ///< accepted status range, inclusive
  int expect_max = 399;
};

/// Passive outlier ejection: targets failing in live traffic are rested for a while.
struct OutlierConfig {
  uint32_t consecutive_failures = 5;  ///< 5xx, connect failures or timeouts in a row; 0 = off
  Millis base_ejection{30'000};       ///< doubled for each repeated ejection, up to 10x
  uint32_t max_ejected_percent = 50;  ///< never eject more than this share of targets
};

/// Caps retries in flight, so retries cannot multiply an upstream's load when it struggles.
struct RetryBudgetConfig {
  uint32_t percent = 20;  ///< retries in flight ≤ this share of requests in flight
  uint32_t min = 3;       ///< ... but at least this many
};

enum class Balance { kRoundRobin, kLeastRequest, kHash, kEwma };

struct UpstreamConfig {
  std::string name;
  std::vector<TargetConfig> targets;
  Balance balance = Balance::kRoundRobin;
  std::string hash_header;  ///< for kHash: lower-case header name; empty = client IP
  std::optional<HealthCheckConfig> health_check;
  OutlierConfig outlier;
  RetryBudgetConfig retry_budget;
  Millis dns_refresh{30'000};                  ///< re-resolve host names this often
  std::shared_ptr<net::TlsClientContext> tls;  ///< set for HTTPS upstreams
  Millis connect_timeout{2'000};
  /// Idle pooled connections are closed after this. Below the keep-alive timeout of common
  /// servers (uvicorn, Node and Apache close after 5 s) so the gateway closes first and never
  /// sends a request into a connection the server is closing.
  Millis idle_timeout{4'000};
  uint32_t keepalive = 128;  ///< idle connections kept per worker per target
  config::Place at;          ///< where it is written, for errors found later
};

}  // namespace ganglion::upstream
