// The config vocabulary every module shares (durations, addresses, where a value was
// written, errors) and the sections that more than one module reads (routes, keys, state).
// A section read by one module lives in it (upstream/upstream_config.h, llm/llm_config.h,
// admin/admin_config.h, each filter's settings; listeners and the access log, which only the
// composition reads, in server/); the whole config is server/gateway_config.h. Immutable once
// loaded.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/hash.h"
#include "config/node.h"

namespace ganglion::http {
class Filter;
class StaticSite;
}  // namespace ganglion::http

namespace ganglion::config {

using Millis = std::chrono::milliseconds;

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string text() const;
};

struct HeaderOps {
  std::vector<std::pair<std::string, std::string>> add;  ///< set (replace) these headers
  std::vector<std::string> remove;
  bool empty() const { return add.empty() && remove.empty(); }
};

struct RouteMatch {
  std::optional<std::string> host;  ///< exact, or "*.suffix" wildcard
  std::optional<std::string> path;  ///< exact; may hold {param} segments
  std::optional<std::string> path_prefix;
  std::vector<std::string> methods;                          ///< upper case; empty matches any
  std::vector<std::pair<std::string, std::string>> headers;  ///< lower-case name, exact value
};

/// A route whose target is the LLM API (`llm: {}`) instead of an upstream.
struct LlmRouteConfig {
  bool require_key = true;  ///< `auth: none` turns gateway-key checks off (local use only)
};

/// The body limit of an LLM route that sets none: the LLM API reads bodies whole.
constexpr uint64_t kLlmMaxBodyBytes = 32ull << 20;

struct RouteConfig {
  std::string name;
  RouteMatch match;
  std::string upstream;               ///< empty when `llm` is set
  std::optional<LlmRouteConfig> llm;  ///< set: the route serves the LLM API
  bool welcome = false;               ///< set: the route answers with the welcome page
  /// Set: the route serves files from this directory (`static:`); shared by every worker.
  std::shared_ptr<const http::StaticSite> static_files;
  std::string static_shown;  ///< for GET /config: the `static` map as read (JSON text)
  std::string ingest;        ///< set: the route takes device readings for this connector (edge)
  bool implicit = false;  ///< added by the gateway (the LLM API on /v1/); ranked after every explicit route
  Millis timeout{0};      ///< whole exchange with the upstream; 0: no limit
  Millis first_byte_timeout{60'000};  ///< until the upstream's response head
  Millis idle_timeout{60'000};        ///< between two reads of the upstream's body
  uint32_t retries = 1;               ///< extra attempts, only when safe
  uint64_t max_body_bytes = 1ull << 30;
  std::optional<std::string> rewrite_path_prefix;
  HeaderOps request_headers;
  HeaderOps response_headers;
  /// Built filters in the order written; shared, immutable, used by every worker.
  std::vector<std::shared_ptr<const http::Filter>> filters;
  /// For GET /config: each filter as written, `{"<kind>": {settings}}` (JSON text, secrets redacted).
  std::vector<std::string> filters_shown;
  config::Place at;           ///< where it is written, for errors found later
  config::Place upstream_at;  ///< where `upstream:` is written, for reference errors
  config::Place ingest_at;    ///< where `ingest:` is written, for reference errors
};

/// Money is counted in integer picodollars (1e-12 USD): a price in USD per million tokens
/// is exactly picodollars per token, so every cost is an exact integer product.
using Picodollars = uint64_t;

/// What one key may spend on the LLM API; 0 = no limit.
struct KeyLimits {
  uint32_t rpm = 0;                                            ///< requests per minute
  uint64_t tpm = 0;                                            ///< tokens (prompt + completion) per minute
  Picodollars budget = 0;                                      ///< spend per period
  enum class Period { kDay, kMonth } period = Period::kMonth;  ///< UTC calendar day or month
  bool any() const { return rpm || tpm || budget; }
};

/// A gateway API key. Only its SHA-256 is kept; the key itself is dropped after loading.
struct KeyConfig {
  std::string name;
  Sha256 hash{};
  KeyLimits limits;
  bool cache = false;  ///< its LLM answers are cached unless a request says otherwise
  config::Place at;    ///< where it is written, for errors found later
};

/// Key lookup by digest, built at load and shared by the auth filters of a snapshot.
struct KeyTable {
  std::unordered_map<Sha256, std::string, DigestHash> by_hash;  ///< digest → key name
  std::unordered_map<std::string, KeyLimits> limits;            ///< key name → limits (keys with any)
  std::unordered_map<std::string, bool> cache;                  ///< key name → cache on (keys with it)
};

/// Where LLM key spend and limits live beyond one process (`state:`). Read at start; a reload
/// that changes it is refused (restart to apply).
struct StateConfig {
  std::string sqlite;  ///< embedded database file for key spend; empty: spend is kept in memory
  /// Shared limits: every gateway on this Redis enforces one rpm/tpm/budget per key.
  bool redis = false;
  std::string redis_url;  ///< as written, password redacted in /config
  std::string redis_host;
  uint16_t redis_port = 6379;
  std::string redis_password;  ///< secret: never logged, redacted in /config
  unsigned redis_db = 0;
  Millis redis_timeout{500};  ///< a limit check waiting longer fails (503 for budgeted keys)
  bool operator==(const StateConfig&) const = default;
};

/// One problem found in a config file.
struct ConfigError {
  std::string file;
  int line = 0;  ///< 1-based; 0 when the problem has no line (file unreadable, JSON source)
  std::string message;
  std::string path = {};     ///< JSON path of the bad value ("$.routes[0].name") for JSON sources
  std::string text() const;  ///< "file:line: message", or "file: $.path: message"
};

}  // namespace ganglion::config
