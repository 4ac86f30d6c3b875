// The configuration as written by the operator, after validation. Immutable once loaded;
// compiled further into a Snapshot (server/snapshot.h) for the hot path. Read by
// server/config_loader.h. The structs move into the modules that use them as their sections
// are declared there (docs/design/config-schema.md).
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
}
namespace ganglion::net {
class TlsServerContext;
class TlsClientContext;
}  // namespace ganglion::net

namespace ganglion::config {

using Millis = std::chrono::milliseconds;

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string text() const;
};

struct ListenerConfig {
  std::string name;
  HostPort address;
  uint64_t max_header_bytes = 32 * 1024;
  uint64_t max_uri_bytes = 8 * 1024;
  uint64_t max_headers = 100;
  Millis header_timeout{10'000};
  Millis body_timeout{30'000};
  Millis idle_timeout{60'000};
  /// A request body must average at least this many bytes a second once `body_timeout` has
  /// passed (0: no minimum), so a client trickling a byte now and then is cut off.
  uint64_t body_min_rate = 1024;
  /// Connections one client address may hold open on this listener (0: no cap).
  uint32_t max_connections_per_ip = 4096;
  /// Request body bytes this listener's requests may hold in memory at once, across workers
  /// (bodies read whole for filters and the LLM API); 0: no cap.
  uint64_t max_buffered_body_bytes = 512ull << 20;
  /// Keep request fields whose name has an underscore (dropped by default, as nginx does).
  bool underscores_in_headers = false;
  bool normalize_path = true;  ///< routes see, and upstreams get, the normal form of the path
  /// Set for HTTPS listeners: certificates (by SNI), client-certificate verification.
  std::shared_ptr<net::TlsServerContext> tls;
  config::Place at;  ///< where it is written, for errors found later
};

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

/// An LLM provider account: where to call it and with which credentials (issue 3).
struct ProviderConfig {
  std::string name;
  std::string kind;      ///< openai, azure, anthropic, gemini, bedrock, or an OpenAI-compatible preset
  std::string base_url;  ///< scheme://host[:port][/path], defaulted from the kind
  bool https = true;
  std::string host;
  uint16_t port = 443;
  std::string base_path;    ///< path prefix from base_url, without trailing '/'
  std::string api_key;      ///< secret: never logged, redacted in /config
  std::string api_version;  ///< azure
  std::string region;       ///< bedrock
  std::string access_key_id, secret_access_key, session_token;  ///< bedrock (secrets)
  /// How the gateway reaches it: an upstream named "provider:<name>" with one target (TLS
  /// verified against the system store for https), pooled and health-tracked like any other.
  UpstreamConfig upstream;
  bool optional = false;  ///< left out (not refused) when its api_key is empty
  config::Place at;       ///< where it is written, for errors found later

  /// The credentials the gateway holds for this provider: redacted wherever a provider's
  /// words are shown to clients.
  std::array<std::string_view, 4> secrets() const {
    return {api_key, access_key_id, secret_access_key, session_token};
  }
};

/// Token prices in picodollars per token (= USD per million tokens × 1e6).
struct Price {
  Picodollars input = 0;
  Picodollars output = 0;
  Picodollars cached_input = 0;  ///< prompt tokens read from the provider's cache
  Picodollars cache_write = 0;   ///< prompt tokens written to it (Anthropic); input price if unset
};

/// One model reachable through a provider, as a model alias lists it.
struct ModelTarget {
  std::string provider;
  std::string model;
  uint32_t weight = 1;
  std::optional<Price> price;   ///< from the config; else the built-in table (llm/prices.h)
  uint64_t context_window = 0;  ///< tokens; 0: the model's, or unknown
  uint64_t max_output = 0;      ///< most output tokens of one answer; 0: built-in table, or unknown
  std::string tokenizer;        ///< "o200k_base", "cl100k_base" or "none"; empty: by provider kind and model
  config::Place at;             ///< where it is written, for errors found later
};

/// A target that keeps failing is tried last for a while (per model, shared by the workers).
struct CircuitBreakerConfig {
  uint32_t failures = 5;    ///< consecutive failures that open a target's circuit; 0 = off
  Millis cooldown{30'000};  ///< how long an open circuit sends calls elsewhere
};

enum class ModelStrategy { kSingle, kFallback, kWeighted, kLatency, kCost, kLeastBusy };

/// A model name clients ask for, mapped to provider models by a strategy.
struct ModelConfig {
  std::string name;
  ModelStrategy strategy = ModelStrategy::kSingle;
  std::vector<ModelTarget> targets;
  uint64_t context_window = 0;    ///< tokens; 0 = unknown. Targets too small for a prompt are skipped
  uint32_t retries = 0;           ///< extra attempts on the same target after 429/5xx/connection failures
  Millis retry_max_wait{10'000};  ///< a Retry-After longer than this moves on instead of waiting
  CircuitBreakerConfig breaker;
  Millis first_token_timeout{0};  ///< streams: no first event this soon → next target; 0 = off
  config::Place at;               ///< where it is written, for errors found later
};

struct AdminConfig {
  bool enabled = false;
  HostPort address{"127.0.0.1", 9901};
  std::string token;          ///< secret: never logged, redacted in /config
  bool allow_remote = false;  ///< as written: a non-loopback address is allowed
  bool remote = false;        ///< allowed and bound beyond loopback (in clear text: the start log warns)
};

/// The LLM response cache (opt-in per key with `cache: true`, per request with the
/// `x-ganglion-cache: on|off` header).
struct LlmCacheConfig {
  uint64_t max_bytes = 64ull << 20;  ///< least recently used entries go first past this
  Millis ttl{600'000};
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

struct AccessLogConfig {
  bool enabled = true;
  std::string path = "stdout";  ///< "stdout", "stderr" or a file path
};

struct Config {
  std::string source_path;
  unsigned workers = 0;  ///< 0 in the file means one per core; resolved at load
  std::vector<ListenerConfig> listeners;
  std::vector<UpstreamConfig> upstreams;
  std::vector<RouteConfig> routes;
  std::vector<KeyConfig> keys;
  std::shared_ptr<const KeyTable> key_table;
  std::vector<ProviderConfig> providers;
  std::vector<ModelConfig> models;
  /// Providers marked `optional` whose api_key was empty, left out with the model targets and
  /// models that needed them (the start log and the welcome page say so).
  std::vector<std::string> skipped_providers;
  std::vector<std::string> skipped_models;
  LlmCacheConfig llm_cache;
  StateConfig state;
  AdminConfig admin;
  AccessLogConfig access_log;
};

/// One problem found in a config file.
struct ConfigError {
  std::string file;
  int line = 0;  ///< 1-based; 0 when the problem has no line (file unreadable, JSON source)
  std::string message;
  std::string path = {};     ///< JSON path of the bad value ("$.routes[0].name") for JSON sources
  std::string text() const;  ///< "file:line: message", or "file: $.path: message"
};

struct LoadResult {
  std::optional<Config> config;     ///< set only when `errors` is empty
  std::vector<ConfigError> errors;  ///< every problem found, in file order
};

}  // namespace ganglion::config
