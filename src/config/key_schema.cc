// The `keys[]` section (gateway API keys and their LLM limits), declared once
// (config/schema.h). Only each key's SHA-256 is kept.
#include <fmt/format.h>

#include <boost/json.hpp>

#include "base/hash.h"
#include "base/strings.h"
#include "config/schema.h"

namespace ganglion::config {

namespace json = boost::json;

namespace {

void readSecret(Reader& r, const config::Node& v, KeyConfig& k) {
  auto secret = r.str(v, "key");
  if (!secret) return;
  if (secret->size() < 8) return r.fail(v, "a key must be at least 8 characters");
  k.hash = sha256(*secret);
}

/// Read after `key`, which wins when both are given.
void readSecretDigest(Reader& r, const config::Node& v, KeyConfig& k) {
  if (k.hash != Sha256{}) return;
  auto hex = r.str(v, "key_sha256");
  if (!hex) return;
  if (hex->size() != 64 || hex->find_first_not_of("0123456789abcdef") != std::string::npos)
    return r.fail(v, "key_sha256 must be 64 lower-case hex digits");
  for (size_t i = 0; i < 32; ++i)
    k.hash[i] = static_cast<uint8_t>(std::stoi(hex->substr(i * 2, 2), nullptr, 16));
}

void readRpm(Reader& r, const config::Node& v, KeyConfig& k) {
  k.limits.rpm = r.integer<uint32_t>(v, "rpm", 1, 10'000'000).value_or(0);
}

json::value showRpm(const KeyConfig& k) { return k.limits.rpm ? json::value(k.limits.rpm) : nullptr; }

void readTpm(Reader& r, const config::Node& v, KeyConfig& k) {
  k.limits.tpm = r.integer<uint64_t>(v, "tpm", 1, 1'000'000'000'000).value_or(0);
}

json::value showTpm(const KeyConfig& k) { return k.limits.tpm ? json::value(k.limits.tpm) : nullptr; }

void readBudget(Reader& r, const config::Node& v, KeyConfig& k) {
  if (!v.IsMap()) return r.fail(v, "budget is a map: { usd: 10, period: day | month }");
  r.checkKeys(v, {"usd", "period"}, "budget");
  auto usd = v["usd"];
  if (!usd.IsDefined()) return r.fail(v, "budget needs 'usd'");
  auto text = r.str(usd, "budget.usd").value_or("");
  auto micros = parseMillionths(text);
  if (!micros || *micros == 0 || *micros > 1'000'000'000'000ull)
    return r.fail(
        usd,
        fmt::format("budget.usd must be a positive amount up to 1000000 with at most 6 decimals, got '{}'",
                    text));
  k.limits.budget = *micros * 1'000'000;  // picodollars
  if (auto per = v["period"]; per.IsDefined()) {
    auto period = r.str(per, "budget.period").value_or("");
    if (period == "day")
      k.limits.period = KeyLimits::Period::kDay;
    else if (period != "month")
      r.fail(per, fmt::format("budget.period must be 'day' or 'month', got '{}'", period));
  }
}

json::value showBudget(const KeyConfig& k) {
  if (!k.limits.budget) return nullptr;
  return json::object{{"usd", formatMillionths(k.limits.budget / 1'000'000)},
                      {"period", k.limits.period == KeyLimits::Period::kDay ? "day" : "month"}};
}

}  // namespace

const Schema<KeyConfig>& keySchema() {
  static const Schema<KeyConfig> schema{
      "key",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &KeyConfig::name,
           .default_text = "",
           .doc = "Unique. Logged as `key` in the access log and used by `rate_limit: { by: key }`.",
           .required = true,
           .what = "key name",
           .missing = "key needs a 'name'"},
          {.name = "key",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "The secret. Use `${VAR}`. Never logged; `GET /config` shows `\"<redacted>\"`.",
           .secret = true,
           .type_text = "string, at least 8 characters",
           .read = readSecret},
          {.name = "key_sha256",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc =
               "The secret's SHA-256 instead (`printf %s \"$KEY\" | sha256sum`). Ignored when `key` is also "
               "given. Not shown by `GET /config`.",
           .type_text = "64 lower-case hex digits",
           .read = readSecretDigest},
          {.name = "rpm",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "no limit",
           .doc = "LLM API only: requests per minute.",
           .type_text = "integer 1–10000000",
           .read = readRpm,
           .show = showRpm},
          {.name = "tpm",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "no limit",
           .doc = "LLM API only: tokens (prompt + completion) per minute.",
           .type_text = "integer 1–1000000000000",
           .read = readTpm,
           .show = showTpm},
          {.name = "budget",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "no limit",
           .doc =
               "LLM API only: spend per period. `usd`: a positive amount of US dollars up to 1000000, at "
               "most 6 decimals (`10`, `0.25`). `period`: `day` or `month` (default `month`), UTC calendar "
               "periods.",
           .type_text = "`{ usd, period }`",
           .read = readBudget,
           .show = showBudget},
          {.name = "cache",
           .kind = FieldKind::kBool,
           .member = &KeyConfig::cache,
           .default_text = "`false`",
           .doc = "LLM API only: answers to this key's chat completions and embeddings are cached (see [LLM "
                  "response cache](#llm-response-cache))."},
      },
      {},
  };
  return schema;
}

}  // namespace ganglion::config
