// rate_limit: a token bucket per client IP, API key or header value. Over the limit the
// request gets 429 with Retry-After and is not forwarded. Buckets are process-wide (shared by
// all workers), so the limit does not multiply with the worker count.
#include <cmath>

#include "filters/rate_limit/token_buckets.h"
#include "filters/registry.h"

namespace ganglion::filters {

namespace {

class RateLimitFilter final : public http::Filter {
 public:
  enum class By { kClientIp, kKey, kHeader };
  RateLimitFilter(double requests, double per_seconds, double burst, By by, std::string header)
      : limit_(static_cast<uint64_t>(requests)),
        buckets_(requests / per_seconds, burst),
        by_(by),
        header_(std::move(header)) {}

  http::FilterStatus onRequest(http::FilterContext& ctx) const override {
    std::string_view key;
    switch (by_) {
      case By::kClientIp:
        key = ctx.client_ip;
        break;
      case By::kKey:
        key = ctx.principal.empty() ? ctx.client_ip : std::string_view(ctx.principal);
        break;
      case By::kHeader:
        key = ctx.request.headers.get(header_);
        break;
    }
    auto d = buckets_.take(key);
    ctx.response_add.set("X-RateLimit-Limit", std::to_string(limit_));
    ctx.response_add.set("X-RateLimit-Remaining", std::to_string(static_cast<uint64_t>(d.remaining)));
    if (d.allowed) return http::FilterStatus::kContinue;
    auto retry = static_cast<uint64_t>(std::ceil(d.retry_after));
    ctx.reply.status = 429;
    ctx.reply.type = "rate_limited";
    ctx.reply.message = fmt::format("rate limit exceeded; retry in {} s", std::max<uint64_t>(1, retry));
    ctx.reply.headers.set("Retry-After", std::to_string(std::max<uint64_t>(1, retry)));
    return http::FilterStatus::kReply;
  }
  std::string_view kind() const override { return "rate_limit"; }

 private:
  uint64_t limit_;
  mutable TokenBuckets buckets_;
  By by_;
  std::string header_;
};

}  // namespace

FilterPtr buildRateLimit(const YAML::Node& node, control::Reader& r, const control::Config&) {
  if (!node.IsMap()) {
    r.fail(node, "rate_limit takes a map: { requests, per, burst, by }");
    return nullptr;
  }
  r.checkKeys(node, {"requests", "per", "burst", "by"}, "rate_limit");
  std::optional<uint64_t> requests, burst;
  std::optional<control::Millis> per = control::Millis(1000);
  if (auto v = node["requests"]; v.IsDefined())
    requests = r.integer<uint64_t>(v, "requests", 1, 1'000'000'000);
  else
    r.fail(node, "rate_limit needs 'requests'");
  if (auto v = node["per"]; v.IsDefined()) {
    per = r.duration(v, "per");
    if (per && per->count() == 0) {
      r.fail(v, "per must be longer than 0");
      per.reset();
    }
  }
  if (auto v = node["burst"]; v.IsDefined()) burst = r.integer<uint64_t>(v, "burst", 1, 1'000'000'000);
  auto by = RateLimitFilter::By::kClientIp;
  std::string header;
  if (auto v = node["by"]; v.IsDefined()) {
    if (auto s = r.str(v, "by")) {
      if (*s == "client_ip")
        by = RateLimitFilter::By::kClientIp;
      else if (*s == "key")
        by = RateLimitFilter::By::kKey;
      else if (s->rfind("header:", 0) == 0 && s->size() > 7) {
        by = RateLimitFilter::By::kHeader;
        header = toLower(s->substr(7));
      } else {
        r.fail(v, fmt::format("by must be client_ip, key or header:<name>, got '{}'", *s));
      }
    }
  }
  if (!requests || !per) return nullptr;
  double seconds = static_cast<double>(per->count()) / 1000.0;
  double b = static_cast<double>(burst.value_or(*requests));
  return std::make_shared<RateLimitFilter>(static_cast<double>(*requests), seconds, b, by, header);
}

}  // namespace ganglion::filters
