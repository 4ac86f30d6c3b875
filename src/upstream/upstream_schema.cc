// The `upstreams[]` section's fields: targets, balancing, health checks, outlier ejection and
// the retry budget, declared once (config/schema.h, upstream_schema.h).
#include "upstream/upstream_schema.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "base/strings.h"

namespace ganglion::upstream {

using namespace ganglion::config;  // the schema vocabulary

namespace json = boost::json;

namespace {

constexpr std::string_view kBalanceNames[] = {"round_robin", "least_request", "hash", "ewma"};

void readTarget(Reader& r, const config::Node& n, UpstreamConfig& u) {
  TargetConfig t;
  if (n.IsScalar()) {
    auto hp = r.hostPort(n, "target");
    if (!hp) return;
    t.address = *hp;
  } else if (n.IsMap()) {
    const size_t errors_before = r.errors.size();
    readFields(targetSchema(), n, t, r);
    if (r.errors.size() != errors_before) return;
  } else {
    return r.fail(n, "a target is \"host:port\" or { address, weight }");
  }
  u.targets.push_back(std::move(t));
}

void readTargets(Reader& r, const config::Node& v, UpstreamConfig& u) {
  r.forEach(v, "targets", [&](const config::Node& t) { readTarget(r, t, u); });
}

json::value showTargets(const UpstreamConfig& u) {
  json::array targets;
  for (const auto& t : u.targets) targets.push_back(fieldsToJson(targetSchema(), t));
  return targets;
}

void readBalance(Reader& r, const config::Node& v, UpstreamConfig& u) {
  auto s = r.str(v, "balance");
  if (!s) return;
  for (size_t i = 0; i < std::size(kBalanceNames); ++i)
    if (*s == kBalanceNames[i]) {
      u.balance = static_cast<Balance>(i);
      return;
    }
  r.fail(v, fmt::format("balance must be round_robin, least_request, hash or ewma, got '{}'", *s));
}

json::value showBalance(const UpstreamConfig& u) {
  return json::string(kBalanceNames[static_cast<size_t>(u.balance)]);
}

void readHashOn(Reader& r, const config::Node& v, UpstreamConfig& u) {
  auto s = r.str(v, "hash_on");
  if (!s) return;
  if (*s == "client_ip")
    u.hash_header.clear();
  else if (s->rfind("header:", 0) == 0 && isToken(s->substr(7)))
    u.hash_header = toLower(s->substr(7));
  else
    r.fail(v, fmt::format("hash_on must be client_ip or header:<name>, got '{}'", *s));
}

json::value showHashOn(const UpstreamConfig& u) {
  if (u.balance != Balance::kHash) return nullptr;
  return json::string(u.hash_header.empty() ? "client_ip" : "header:" + u.hash_header);
}

void readProbePath(Reader& r, const config::Node& v, HealthCheckConfig& hc) {
  auto s = r.str(v, "health_check.path");
  if (!s) return;
  if (s->empty() || (*s)[0] != '/' || s->find(' ') != std::string::npos)  // r.str refused controls
    return r.fail(v, "health_check.path must be an absolute path without spaces");
  hc.path = *s;
}

json::value showProbePath(const HealthCheckConfig& hc) { return json::string(hc.path); }

void readExpectStatus(Reader& r, const config::Node& v, HealthCheckConfig& hc) {
  auto s = r.str(v, "expect_status");
  if (!s) return;
  auto dash = s->find('-');
  auto lo = parseUint(s->substr(0, dash));
  auto hi = dash == std::string::npos ? lo : parseUint(s->substr(dash + 1));
  if (!lo || !hi || *lo < 100 || *hi > 599 || *lo > *hi)
    return r.fail(v, fmt::format("expect_status must be a status or range like 200-399, got '{}'", *s));
  hc.expect_min = static_cast<int>(*lo);
  hc.expect_max = static_cast<int>(*hi);
}

json::value showExpectStatus(const HealthCheckConfig& hc) {
  return json::string(fmt::format("{}-{}", hc.expect_min, hc.expect_max));
}

}  // namespace

const Schema<TargetConfig>& targetSchema() {
  static const Schema<TargetConfig> schema{
      "target",
      {
          {.name = "address",
           .kind = FieldKind::kHostPort,
           .member = &TargetConfig::address,
           .default_text = "",
           .doc = "An IP address or a DNS name. Names are resolved when the config is loaded (and again "
                  "at each reload), not per request; a connection attempt tries the resolved addresses in "
                  "order.",
           .required = true,
           .what = "target address",
           .missing = "target needs an 'address'"},
          {.name = "weight",
           .kind = FieldKind::kInteger,
           .member = &TargetConfig::weight,
           .default_text = "`1`",
           .doc = "Relative share of requests.",
           .min = 1,
           .max = 10'000},
      },
      {},
  };
  return schema;
}

const Schema<HealthCheckConfig>& healthCheckSchema() {
  static const Schema<HealthCheckConfig> schema{
      "health_check",
      {
          {.name = "path",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`/healthz`",
           .doc = "Absolute path, no spaces.",
           .type_text = "string",
           .read = readProbePath,
           .show = showProbePath},
          {.name = "host",
           .kind = FieldKind::kString,
           .member = &HealthCheckConfig::host,
           .default_text = "the target's `host:port`",
           .doc = "`Host` header of the probe.",
           .what = "health_check.host"},
          {.name = "interval",
           .kind = FieldKind::kDuration,
           .member = &HealthCheckConfig::interval,
           .default_text = "`5s`",
           .doc = "Pause after each probe before the next.",
           .min = 100,
           .what = "health_check.interval"},
          {.name = "timeout",
           .kind = FieldKind::kDuration,
           .member = &HealthCheckConfig::timeout,
           .default_text = "`1s`",
           .doc = "Limit on one probe.",
           .min = 10,
           .what = "health_check.timeout"},
          {.name = "healthy_threshold",
           .kind = FieldKind::kInteger,
           .member = &HealthCheckConfig::healthy_threshold,
           .default_text = "`2`",
           .doc = "Passes in a row that bring a target back.",
           .min = 1,
           .max = 100,
           .what = "health_check.healthy_threshold"},
          {.name = "unhealthy_threshold",
           .kind = FieldKind::kInteger,
           .member = &HealthCheckConfig::unhealthy_threshold,
           .default_text = "`3`",
           .doc = "Failures in a row that take it out of rotation.",
           .min = 1,
           .max = 100,
           .what = "health_check.unhealthy_threshold"},
          {.name = "expect_status",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`200-399`",
           .doc = "Statuses that pass.",
           .type_text = "`N` or `N-M`, within 100–599",
           .read = readExpectStatus,
           .show = showExpectStatus},
      },
      {},
  };
  return schema;
}

const Schema<OutlierConfig>& outlierSchema() {
  static const Schema<OutlierConfig> schema{
      "outlier",
      {
          {.name = "consecutive_failures",
           .kind = FieldKind::kInteger,
           .member = &OutlierConfig::consecutive_failures,
           .default_text = "`5`",
           .doc = "`0` turns ejection off.",
           .min = 0,
           .max = 1000,
           .what = "outlier.consecutive_failures"},
          {.name = "base_ejection",
           .kind = FieldKind::kDuration,
           .member = &OutlierConfig::base_ejection,
           .default_text = "`30s`",
           .doc = "An ejection lasts `base_ejection × n`, where n counts ejections in a row (at most 10). n "
                  "starts again once the target answers a request successfully after an ejection ends.",
           .what = "outlier.base_ejection"},
          {.name = "max_ejected_percent",
           .kind = FieldKind::kInteger,
           .member = &OutlierConfig::max_ejected_percent,
           .default_text = "`50`",
           .doc = "A target is not ejected if that would leave more than this share of the upstream's "
                  "targets ejected. With the default, an upstream of one target is never ejected.",
           .min = 0,
           .max = 100,
           .what = "outlier.max_ejected_percent"},
      },
      {},
  };
  return schema;
}

const Schema<RetryBudgetConfig>& retryBudgetSchema() {
  static const Schema<RetryBudgetConfig> schema{
      "retry_budget",
      {
          {.name = "percent",
           .kind = FieldKind::kInteger,
           .member = &RetryBudgetConfig::percent,
           .default_text = "`20`",
           .doc = "Requests may begin retrying while fewer than this share of the requests in flight to "
                  "the upstream are retrying (counted per worker).",
           .min = 0,
           .max = 100,
           .what = "retry_budget.percent"},
          {.name = "min",
           .kind = FieldKind::kInteger,
           .member = &RetryBudgetConfig::min,
           .default_text = "`3`",
           .doc = "... or, when that share is smaller, fewer than this many.",
           .min = 0,
           .max = 10'000,
           .what = "retry_budget.min"},
      },
      {},
      "retry_budget must be a map: { percent, min }",
  };
  return schema;
}

const Schema<UpstreamConfig>& upstreamSchema() {
  using U = UpstreamConfig;
  static const Schema<UpstreamConfig> schema{
      "upstream",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &U::name,
           .default_text = "",
           .doc = "Unique among upstreams.",
           .required = true,
           .what = "upstream name",
           .missing = "upstream needs a 'name'"},
          {.name = "targets",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "required, at least one",
           .doc = "Each entry is `\"host:port\"` or `{ address: \"host:port\", weight: N }` (target "
                  "fields below).",
           .type_text = "list",
           .read = readTargets,
           .show = showTargets},
          {.name = "balance",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`round_robin`",
           .doc = "`round_robin`, `least_request`, `hash` or `ewma`: see [Balancing](#balancing).",
           .type_text = "string",
           .read = readBalance,
           .show = showBalance},
          {.name = "hash_on",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`client_ip`",
           .doc = "Only with `balance: hash`: `client_ip` or `header:NAME`.",
           .type_text = "string",
           .read = readHashOn,
           .show = showHashOn},
          {.name = "health_check",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "Active HTTP checks: see [Health checks](#health-checks).",
           .type_text = "map",
           .read = readOptionalSection<U, HealthCheckConfig, &U::health_check, healthCheckSchema>,
           .show = showOptionalSection<U, HealthCheckConfig, &U::health_check, healthCheckSchema>},
          {.name = "outlier",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "on: `{ consecutive_failures: 5, base_ejection: 30s, max_ejected_percent: 50 }`",
           .doc = "Passive ejection: see [Outlier ejection](#outlier-ejection).",
           .type_text = "map",
           .read = readSection<U, OutlierConfig, &U::outlier, outlierSchema>,
           .show = showSection<U, OutlierConfig, &U::outlier, outlierSchema>},
          {.name = "retry_budget",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`{ percent: 20, min: 3 }`",
           .doc = "Caps retries in flight: see [Retries](#retries).",
           .type_text = "map",
           .read = readSection<U, RetryBudgetConfig, &U::retry_budget, retryBudgetSchema>,
           .show = showSection<U, RetryBudgetConfig, &U::retry_budget, retryBudgetSchema>},
          {.name = "dns_refresh",
           .kind = FieldKind::kDuration,
           .member = &U::dns_refresh,
           .default_text = "`30s`",
           .doc = "How often target host names are resolved again (asynchronously, on the main thread's "
                  "resolver; the shortest value among upstreams with names sets the pace). Changed addresses "
                  "install a new config version; a name that fails to resolve keeps its old addresses and "
                  "logs a line.",
           .min = 1000},
          {.name = "connect_timeout",
           .kind = FieldKind::kDuration,
           .member = &U::connect_timeout,
           .default_text = "`2s`",
           .doc = "Limit on establishing a TCP connection to a target (across all its resolved addresses). "
                  "Also capped by the route's remaining `timeout`."},
          {.name = "idle_timeout",
           .kind = FieldKind::kDuration,
           .member = &U::idle_timeout,
           .default_text = "`4s`",
           .doc = "An idle pooled connection is closed after this long unused. The default is below the 5 s "
                  "keep-alive timeout of common servers (uvicorn, Node.js, Apache httpd), so the gateway "
                  "closes an idle connection before the server does and never sends a request into a "
                  "connection the server is closing; keep it below your upstream's own keep-alive timeout."},
          {.name = "keepalive",
           .kind = FieldKind::kInteger,
           .member = &U::keepalive,
           .default_text = "`128`",
           .doc = "Idle connections kept **per target per worker**. `0` disables connection reuse.",
           .min = 0,
           .max = 100'000},
      },
      {{"tls", "`true` or map", "none",
        "Connect to the targets with TLS; see [Upstream `tls`](#upstream-tls)."}},
  };
  return schema;
}

}  // namespace ganglion::upstream
