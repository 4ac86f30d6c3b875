// rate_limit: a token bucket per client IP, API key or header value. Over the limit the
// request gets 429 with Retry-After and is not forwarded. Buckets are process-wide (shared by
// all workers), so the limit does not multiply with the worker count; with `shared: NAME`
// they live in state.redis, shared by every gateway on it (GCRA in one Lua script), and the
// process's own buckets stand in while Redis cannot be reached.
#include <boost/json.hpp>
#include <cmath>

#include "base/hash.h"
#include "base/log.h"
#include "filters/rate_limit/token_buckets.h"
#include "filters/registry.h"
#include "store/redis_clients.h"

namespace ganglion::filters {

namespace {

/// GCRA: the bucket is the time at which it will be full again ("theoretical arrival time",
/// microseconds of Redis's clock). ARGV: emission interval (µs per token), burst (tokens).
/// Returns {allowed, remaining, retry_after_us}.
constexpr std::string_view kGcraScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2]) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > capacity then
  return {0, 0, math.ceil(new_tat - capacity - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((capacity - (new_tat - now)) / interval), 0}
)lua";

class RateLimitFilter final : public http::Filter {
 public:
  enum class By { kClientIp, kKey, kHeader };
  RateLimitFilter(double requests, double per_seconds, double burst, By by, std::string header)
      : limit_(static_cast<uint64_t>(requests)),
        rate_(requests / per_seconds),
        burst_(burst),
        buckets_(rate_, burst),
        by_(by),
        header_(std::move(header)) {}

  /// Counts in Redis under `name`, shared by every gateway and route that names it.
  void shareIn(std::string name, store::RedisEndpoint endpoint) {
    shared_name_ = std::move(name);
    endpoint_ = std::move(endpoint);
    script_sha_ = sha1Hex(kGcraScript);
  }

  http::FilterStatus onRequest(http::FilterContext& ctx) const override {
    std::string_view key, kind;  // kind: what identifies the client (Redis keys keep them apart)
    switch (by_) {
      case By::kClientIp:
        key = ctx.client_ip;
        kind = "ip";
        break;
      case By::kKey:
        key = ctx.principal.empty() ? ctx.client_ip : std::string_view(ctx.principal);
        kind = ctx.principal.empty() ? "ip" : "key";
        break;
      case By::kHeader:
        key = ctx.request.headers.get(header_);
        kind = "hdr";
        break;
    }
    if (!shared_name_.empty() && ctx.redis) {
      ctx.resume.emplace(takeShared(ctx, std::string(key), bucketKey(kind, key)));
      return http::FilterStatus::kPause;
    }
    return decide(ctx, buckets_.take(key));
  }
  std::string_view kind() const override { return "rate_limit"; }

 private:
  /// The Redis key of a client's bucket: the shared name, the limit (so routes that share a
  /// name with other settings do not drain each other's buckets), what identifies the client
  /// (so a header value cannot pose as an address or a key name), and the identity itself,
  /// hashed when long (a 30 kB header value would be a 30 kB key).
  std::string bucketKey(std::string_view kind, std::string_view id) const {
    std::string shown = id.size() <= 64 ? std::string(id) : "sha256:" + toHex(sha256(id));
    return fmt::format("ganglion:rate:{{{}}}:{:g}/{:g}:{}:{}", shared_name_, rate_, burst_, kind, shown);
  }

  http::FilterStatus decide(http::FilterContext& ctx, const TokenBuckets::Decision& d) const {
    ctx.response_add.set("X-RateLimit-Limit", std::to_string(limit_));
    ctx.response_add.set("X-RateLimit-Remaining", std::to_string(static_cast<uint64_t>(d.remaining)));
    if (d.allowed) return http::FilterStatus::kContinue;
    auto retry = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(d.retry_after)));
    ctx.reply.status = 429;
    ctx.reply.type = "rate_limited";
    ctx.reply.message = fmt::format("rate limit exceeded; retry in {} s", retry);
    ctx.reply.headers.set("Retry-After", std::to_string(retry));
    return http::FilterStatus::kReply;
  }

  /// One GCRA step in Redis; this process's buckets decide while Redis cannot answer (the
  /// client logs that once), so an outage loosens the limit to one per gateway instead of
  /// refusing or stalling traffic. Worker thread; `ctx` outlives it (the manager awaits it).
  boost::asio::awaitable<http::FilterStatus> takeShared(http::FilterContext& ctx, std::string key,
                                                        std::string bucket) const {
    auto& redis = ctx.redis->get(endpoint_);
    const std::string interval = fmt::format("{:.3f}", 1e6 / rate_);
    const std::string burst = fmt::format("{:.3f}", burst_);
    // Named vectors: GCC 12 cannot put a braced list of string literals in a coroutine frame.
    std::vector<std::string> args{"EVALSHA", script_sha_, "1", bucket, interval, burst};
    auto reply = co_await redis.command(args);
    if (reply && reply->isError() && reply->str.rfind("NOSCRIPT", 0) == 0) {
      args[0] = "EVAL";
      args[1] = kGcraScript;
      reply = co_await redis.command(std::move(args));
    }
    if (!reply || reply->type != store::RedisReply::Type::kArray || reply->elements.size() != 3) {
      // An unreachable Redis is logged by its client; an error reply (out of memory, a
      // read-only replica) is said here, once per worker until the script works again.
      thread_local bool said = false;
      if (reply && !said)
        logLine(
            fmt::format("rate_limit '{}': Redis answered {}: using this gateway's own "
                        "buckets until it works again",
                        shared_name_, reply->isError() ? reply->str : "something unexpected"));
      said = reply.ok();
      co_return decide(ctx, buckets_.take(key));
    }
    auto number = [&](size_t i) { return static_cast<double>(reply->elements[i].integer); };
    co_return decide(ctx, {number(0) == 1, number(1), number(2) / 1e6});
  }

  uint64_t limit_;
  double rate_;   ///< tokens per second
  double burst_;  ///< bucket size
  mutable TokenBuckets buckets_;
  By by_;
  std::string header_;
  std::string shared_name_;  ///< set: the buckets live in Redis under this name
  store::RedisEndpoint endpoint_;
  std::string script_sha_;
};

/// The settings as written, read with rateLimitSchema().
struct RateLimitSettings {
  uint64_t requests = 0;
  config::Millis per{1000};
  uint64_t burst = 0;  ///< 0 until read: `requests`
  std::string by = "client_ip";
  RateLimitFilter::By by_kind = RateLimitFilter::By::kClientIp;
  std::string by_header;  ///< lower case, for `header:NAME`
  std::string shared;
};

namespace json = boost::json;

void readPer(config::Reader& r, const config::Node& v, RateLimitSettings& s) {
  auto per = r.duration(v, "per");
  if (per && per->count() == 0) return r.fail(v, "per must be longer than 0");
  if (per) s.per = *per;
}

json::value showPer(const RateLimitSettings& s) { return json::string(config::durationText(s.per)); }

void readBy(config::Reader& r, const config::Node& v, RateLimitSettings& s) {
  auto by = r.str(v, "by");
  if (!by) return;
  if (*by == "client_ip")
    s.by_kind = RateLimitFilter::By::kClientIp;
  else if (*by == "key")
    s.by_kind = RateLimitFilter::By::kKey;
  else if (by->rfind("header:", 0) == 0 && by->size() > 7 && config::isToken(by->substr(7))) {
    s.by_kind = RateLimitFilter::By::kHeader;
    s.by_header = toLower(by->substr(7));
  } else {
    return r.fail(v, fmt::format("by must be client_ip, key or header:<name>, got '{}'", *by));
  }
  s.by = *by;
}

json::value showBy(const RateLimitSettings& s) { return json::string(s.by); }

void readShared(config::Reader& r, const config::Node& v, RateLimitSettings& s) {
  auto name = r.str(v, "shared");
  if (!name) return;
  const bool printable = std::all_of(name->begin(), name->end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (name->empty() || name->size() > 200)
    return r.fail(v, "shared is a name of 1 to 200 characters for the counts kept in Redis");
  if (!printable || name->find_first_of("{}") != std::string::npos)
    return r.fail(v,
                  "shared is a name for the counts kept in Redis: printable characters, no spaces or braces");
  s.shared = *name;
}

json::value showShared(const RateLimitSettings& s) {
  if (s.shared.empty()) return nullptr;
  return json::string(s.shared);
}

const config::Schema<RateLimitSettings>& rateLimitSchema() {
  using config::FieldKind;
  static const config::Schema<RateLimitSettings> schema{
      "rate_limit",
      {
          {.name = "requests",
           .kind = FieldKind::kInteger,
           .member = &RateLimitSettings::requests,
           .default_text = "",
           .doc = "Requests allowed per `per`.",
           .min = 1,
           .max = 1'000'000'000,
           .required = true,
           .missing = "rate_limit needs 'requests'"},
          {.name = "per",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`1s`",
           .doc = "The period `requests` are counted over.",
           .type_text = "duration, > 0",
           .read = &readPer,
           .show = &showPer},
          {.name = "burst",
           .kind = FieldKind::kInteger,
           .member = &RateLimitSettings::burst,
           .default_text = "`requests`",
           .doc = "Bucket size.",
           .min = 1,
           .max = 1'000'000'000},
          {.name = "by",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`client_ip`",
           .doc =
               "`client_ip`; `key` (the `key_auth` key name, or the client IP when no key was "
               "authenticated); or `header:NAME` (the header's value; requests without it share one bucket).",
           .type_text = "string",
           .read = &readBy,
           .show = &showBy},
          {.name = "shared",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc =
               "A name: the buckets live in [`state.redis`](#state) under it "
               "(`ganglion:rate:{NAME}:<client>`), "
               "so every gateway on that Redis, and every `rate_limit` that names the same `shared`, counts "
               "against one bucket per client. Needs `state: { redis: ... }`.",
           .type_text = "string",
           .read = &readShared,
           .show = &showShared},
      },
      {},
      "rate_limit takes a map: { requests, per, burst, by }"};
  return schema;
}

}  // namespace

FilterPtr buildRateLimit(const config::Node& node, config::Reader& r, const FilterInputs& inputs,
                         json::object& shown) {
  RateLimitSettings s;
  if (!readSettings(rateLimitSchema(), node, s, r)) return nullptr;
  if (!s.shared.empty() && !inputs.state.redis) {
    r.fail(node["shared"],
           "rate_limit 'shared' keeps its counts in Redis: configure 'state: { redis: redis://host:6379 }'");
    return nullptr;
  }
  if (s.burst == 0) s.burst = s.requests;
  shown = config::fieldsToJson(rateLimitSchema(), s);
  const double seconds = static_cast<double>(s.per.count()) / 1000.0;
  const double burst = static_cast<double>(s.burst);
  auto filter = std::make_shared<RateLimitFilter>(static_cast<double>(s.requests), seconds, burst, s.by_kind,
                                                  s.by_header);
  if (!s.shared.empty()) {
    const auto& st = inputs.state;
    filter->shareIn(s.shared,
                    {st.redis_host, st.redis_port, st.redis_password, st.redis_db, st.redis_timeout});
  }
  return filter;
}

std::string rateLimitDocsTable() { return config::docsTable(rateLimitSchema()); }

}  // namespace ganglion::filters
