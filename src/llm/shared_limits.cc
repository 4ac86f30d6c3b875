#include "llm/shared_limits.h"

#include <fmt/format.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <array>

#include "base/hash.h"
#include "base/strings.h"

namespace ganglion::llm {

namespace {

/// KEYS: the key's hash (req, tok, ts: token buckets; period, spent, reserved: budget, in
/// picodollars) and its in-flight reservations (members "<id>:<cost>", scored by expiry).
/// ARGV: rpm, tpm, tokens, budget, cost, period, seconds left in it, reservation id, hold.
/// Amounts go to HINCRBY as the caller's decimal strings, so stored spend stays exact; the
/// comparison with the budget is in Lua doubles (exact up to $9,007 of spend).
constexpr const char* kAdmitScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local budget, cost = tonumber(ARGV[4]), tonumber(ARGV[5])
local f = redis.call('HMGET', KEYS[1], 'req', 'tok', 'ts', 'period', 'spent')
local elapsed = 0
if f[3] then elapsed = math.max(0, now - tonumber(f[3])) end
local req = tonumber(f[1]) or rpm
local tok = tonumber(f[2]) or tpm
if rpm > 0 then
  req = math.min(rpm, req + elapsed * rpm / 60)
  if req < 1 then return {'rpm', tostring(math.ceil((1 - req) * 60 / rpm))} end
end
if tpm > 0 then
  tok = math.min(tpm, tok + elapsed * tpm / 60)
  if tokens > tpm then return {'tpm_large', '0'} end
  if tok < tokens then return {'tpm', tostring(math.ceil((tokens - tok) * 60 / tpm))} end
end
local ttl = 120
if budget > 0 then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  for _, m in ipairs(expired) do
    redis.call('HINCRBY', KEYS[1], 'reserved', '-' .. string.match(m, '(%d+)$'))
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
  local spent = f[5] or '0'
  if f[4] ~= ARGV[6] then
    spent = '0'
    redis.call('HSET', KEYS[1], 'period', ARGV[6], 'spent', '0')
  end
  local reserved = redis.call('HGET', KEYS[1], 'reserved') or '0'
  if tonumber(spent) + tonumber(reserved) + cost > budget then return {'budget', spent, reserved} end
  redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[5])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[9]), ARGV[8] .. ':' .. ARGV[5])
  ttl = tonumber(ARGV[7]) + 86400
end
if rpm > 0 then req = req - 1 end
if tpm > 0 then tok = tok - tokens end
redis.call('HSET', KEYS[1], 'req', tostring(req), 'tok', tostring(tok), 'ts', tostring(now))
if redis.call('TTL', KEYS[1]) < ttl then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return {'ok'}
)lua";

/// KEYS as above. ARGV: tpm, tokens to give back (reserved - used, may be negative), the
/// reservation member ("" without a budget), actual cost, period, seconds left in it.
constexpr const char* kSettleScript = R"lua(
if tonumber(ARGV[1]) > 0 and ARGV[2] ~= '0' then
  local tok = tonumber(redis.call('HGET', KEYS[1], 'tok') or ARGV[1])
  redis.call('HSET', KEYS[1], 'tok', tostring(tok + tonumber(ARGV[2])))
end
if ARGV[3] ~= '' then
  if redis.call('ZREM', KEYS[2], ARGV[3]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'reserved', '-' .. string.match(ARGV[3], '(%d+)$'))
  end
  if redis.call('HGET', KEYS[1], 'period') ~= ARGV[5] then
    redis.call('HSET', KEYS[1], 'period', ARGV[5], 'spent', '0')
  end
  redis.call('HINCRBY', KEYS[1], 'spent', ARGV[4])
  local ttl = tonumber(ARGV[6]) + 86400
  if redis.call('TTL', KEYS[1]) < ttl then
    redis.call('EXPIRE', KEYS[1], ttl)
    redis.call('EXPIRE', KEYS[2], ttl)
  end
end
return 1
)lua";

/// A reservation outlives its call by this much only if the gateway holding it died.
constexpr int kHoldSeconds = 1800;

std::string randomInstanceId() {
  std::array<uint8_t, 6> bytes;
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) return fmt::format("{:x}", ::getpid());
  return toHex(bytes);
}

store::RedisEndpoint endpointOf(const config::StateConfig& s) {
  return {s.redis_host, s.redis_port, s.redis_password, s.redis_db, s.redis_timeout};
}

/// A Redis integer reply element ("" for nil): 0 when it is not a non-negative integer.
uint64_t intOf(const store::RedisReply& r) { return parseUint(r.str).value_or(0); }

}  // namespace

std::string SharedLimits::hashKey(const std::string& key) { return "ganglion:llm:{" + key + "}"; }
std::string SharedLimits::inflightKey(const std::string& key) {
  return "ganglion:llm:{" + key + "}:inflight";
}

SharedLimits::SharedLimits(boost::asio::io_context& io, const config::StateConfig& state,
                           unsigned worker_index)
    : client_(io, endpointOf(state), {{"SCRIPT", "LOAD", kAdmitScript}, {"SCRIPT", "LOAD", kSettleScript}}),
      instance_(fmt::format("{}-w{}", randomInstanceId(), worker_index)),
      admit_sha_(sha1Hex(kAdmitScript)),
      settle_sha_(sha1Hex(kSettleScript)) {}

http::Task<Result<store::RedisReply>> SharedLimits::runScript(const std::string& sha, const std::string& body,
                                                              std::vector<std::string> args) {
  // EVALSHA first; a Redis that has not seen the script (restarted, flushed) gets it whole.
  std::vector<std::string> evalsha{"EVALSHA", sha};
  evalsha.insert(evalsha.end(), args.begin(), args.end());
  auto reply = co_await client_.command(std::move(evalsha));
  if (!reply || !reply->isError() || reply->str.rfind("NOSCRIPT", 0) != 0) co_return reply;
  std::vector<std::string> eval{"EVAL", body};
  eval.insert(eval.end(), args.begin(), args.end());
  auto again = co_await client_.command(std::move(eval));
  co_return again;
}

http::Task<SharedLimits::Verdict> SharedLimits::admit(const std::string& key, const KeyLimits& limits,
                                                      uint64_t tokens, Picodollars cost,
                                                      KeyLedger::Reservation& out) {
  out = KeyLedger::Reservation{};
  Verdict verdict;
  if (!limits.any()) co_return verdict;
  auto [period, left_s] = budgetPeriod(limits.period, std::chrono::system_clock::now());
  const uint64_t held_tokens = limits.tpm ? tokens : 0;
  const Picodollars held_cost = limits.budget ? cost : 0;
  std::string member = limits.budget ? fmt::format("{}-{}", instance_, ++next_reservation_) : std::string();
  std::vector<std::string> args{"2",
                                hashKey(key),
                                inflightKey(key),
                                std::to_string(limits.rpm),
                                std::to_string(limits.tpm),
                                std::to_string(tokens),
                                std::to_string(limits.budget),
                                std::to_string(held_cost),
                                std::to_string(period),
                                std::to_string(left_s),
                                member,
                                std::to_string(kHoldSeconds)};
  auto reply = co_await runScript(admit_sha_, kAdmitScript, std::move(args));
  if (!reply) {
    verdict.unavailable = reply.error().message;
    co_return verdict;
  }
  const auto& r = *reply;
  if (r.isError() || r.type != store::RedisReply::Type::kArray || r.elements.empty()) {
    verdict.unavailable = r.isError() ? "Redis: " + r.str : "Redis answered the limit script oddly";
    co_return verdict;
  }
  const std::string& outcome = r.elements[0].str;
  auto arg = [&](size_t i) { return i < r.elements.size() ? intOf(r.elements[i]) : 0; };
  if (outcome == "ok") {
    out = KeyLedger::Reservation{};
    out.key = key;
    out.tokens = held_tokens;
    out.cost = held_cost;
    out.period = limits.period;
    out.budgeted = limits.budget != 0;
    out.active = true;
    out.shared = true;
    out.tpm = limits.tpm;
    if (limits.budget) out.member = member + ":" + std::to_string(held_cost);
  } else if (outcome == "rpm") {
    verdict.refusal = requestRateRefusal(key, limits.rpm, static_cast<int64_t>(arg(1)));
  } else if (outcome == "tpm_large") {
    verdict.refusal = tooManyTokensRefusal(key, tokens, limits.tpm);
  } else if (outcome == "tpm") {
    verdict.refusal = tokenRateRefusal(key, limits.tpm, tokens, static_cast<int64_t>(arg(1)));
  } else if (outcome == "budget") {
    verdict.refusal = budgetRefusal(key, limits, arg(1), arg(2), left_s);
  } else {
    verdict.unavailable = "Redis answered the limit script with '" + outcome + "'";
  }
  co_return verdict;
}

void SharedLimits::settle(KeyLedger::Reservation& r, uint64_t tokens, Picodollars cost) {
  if (!r.active) return;
  r.active = false;
  auto [period, left_s] = budgetPeriod(r.period, std::chrono::system_clock::now());
  const int64_t give_back = r.tokens ? static_cast<int64_t>(r.tokens) - static_cast<int64_t>(tokens) : 0;
  // EVALSHA: both scripts are loaded on every new connection (SCRIPT LOAD), and a Redis that
  // restarts drops the connection, so the script is there. Only a SCRIPT FLUSH between the
  // two would lose a settle (logged as NOSCRIPT; the reservation then expires).
  std::vector<std::string> args{"EVALSHA",
                                settle_sha_,
                                "2",
                                hashKey(r.key),
                                inflightKey(r.key),
                                std::to_string(r.tpm),
                                std::to_string(give_back),
                                r.budgeted ? r.member : std::string(),
                                std::to_string(r.budgeted ? cost : 0),
                                std::to_string(period),
                                std::to_string(left_s)};
  client_.send(args);
}

std::vector<Result<KeyLedger::Totals>> SharedLimits::readTotals(
    const config::StateConfig& state, const std::vector<std::pair<std::string, KeyLimits::Period>>& keys) {
  std::vector<std::vector<std::string>> reads;
  for (const auto& [key, period] : keys)
    reads.push_back({"HMGET", hashKey(key), "period", "spent", "reserved"});
  auto replies = store::redisBlocking(endpointOf(state), reads);
  if (!replies) return std::vector<Result<KeyLedger::Totals>>(keys.size(), replies.error());
  const auto now = std::chrono::system_clock::now();
  std::vector<Result<KeyLedger::Totals>> out;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& reply = (*replies)[i];
    if (reply.isError()) {
      out.push_back(Error{"Redis: " + reply.str});
      continue;
    }
    KeyLedger::Totals totals;
    const auto& e = reply.elements;
    if (e.size() == 3) {
      if (e[0].str == std::to_string(budgetPeriod(keys[i].second, now).first)) totals.spent = intOf(e[1]);
      totals.reserved = intOf(e[2]);
    }
    out.push_back(totals);
  }
  return out;
}

}  // namespace ganglion::llm
