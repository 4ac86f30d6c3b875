// The `state` section (where key spend and limits live beyond one process), declared once
// (config/schema.h).
#include <fmt/format.h>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include "base/strings.h"
#include "config/schema.h"

namespace ganglion::config {

namespace json = boost::json;

namespace {

void readSqlite(Reader& r, const config::Node& v, StateConfig& st) {
  auto s = r.str(v, "state.sqlite");
  if (!s) return;
  if (s->empty()) r.fail(v, "state.sqlite must name a file");
  st.sqlite = *s;
}

json::value showSqlite(const StateConfig& st) {
  if (st.sqlite.empty()) return nullptr;
  return json::string(st.sqlite);
}

/// redis://[:password@]host[:port][/db] (also redis://user:password@... where user is ignored
/// unless it is an ACL user name other than "default").
void readRedisUrl(Reader& r, const config::Node& n, StateConfig& st) {
  auto s = r.str(n, "state.redis");
  if (!s) return;
  st.redis_url = *s;
  auto url = boost::urls::parse_uri(*s);
  // The value is not echoed: it may hold the password.
  if (!url)
    return r.fail(
        n, "state.redis must be a URL like redis://127.0.0.1:6379/0 (or redis://:password@host:port/db)");
  if (url->scheme() == "rediss")
    return r.fail(n, "state.redis: rediss:// (TLS) is not supported yet; use redis:// on a private network");
  if (url->scheme() != "redis")
    return r.fail(n, fmt::format("state.redis must start with redis://, got '{}'", url->scheme()));
  if (url->host().empty()) return r.fail(n, "state.redis has no host");
  if (url->has_userinfo()) {
    auto user = url->user();
    if (!user.empty() && user != "default")
      return r.fail(
          n, "state.redis: ACL user names are not supported; give only a password (redis://:secret@host)");
    st.redis_password = url->password();
  }
  st.redis_host = url->host();
  if (url->has_port()) {
    auto port = parseUint(url->port());
    if (!port || *port == 0 || *port > 65535)
      return r.fail(n,
                    "state.redis port must be a number from 1 to 65535 (percent-encode '@', ':' and '/' in "
                    "the password)");
    st.redis_port = static_cast<uint16_t>(*port);
  }
  std::string_view path = url->encoded_path();
  if (!path.empty() && path != "/") {
    auto db = parseUint(path.substr(1));
    if (!db || *db > 1023)
      return r.fail(n,
                    "state.redis database must be a number from 0 to 1023 (percent-encode '@', ':' and '/' "
                    "in the password)");
    st.redis_db = static_cast<unsigned>(*db);
  }
  st.redis = true;
}

json::value showRedis(const StateConfig& st) {
  if (!st.redis) return nullptr;
  return json::string(fmt::format("redis://{}{}:{}/{}", st.redis_password.empty() ? "" : ":<redacted>@",
                                  st.redis_host, st.redis_port, st.redis_db));
}

void readRedisTimeout(Reader& r, const config::Node& v, StateConfig& st) {
  auto d = r.duration(v, "state.redis_timeout");
  if (!d) return;
  if (d->count() < 1 || d->count() > 60'000) return r.fail(v, "state.redis_timeout must be from 1ms to 60s");
  st.redis_timeout = *d;
}

json::value showRedisTimeout(const StateConfig& st) {
  if (!st.redis) return nullptr;
  return json::string(durationText(st.redis_timeout));
}

}  // namespace

const Schema<StateConfig>& stateSchema() {
  static const Schema<StateConfig> schema{
      "state",
      {
          {.name = "sqlite",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "absent",
           .doc = "A SQLite database file that keeps each budgeted key's spend across restarts and binary "
                  "upgrades. A relative path is relative to the directory of the config file. Created if "
                  "missing; its directory must exist.",
           .type_text = "string",
           .read = readSqlite,
           .show = showSqlite},
          {.name = "redis",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "absent",
           .doc = "`redis://[:password@]host[:port][/db]` (port `6379` and database `0` by default): the "
                  "keys' `rpm`, `tpm` and `budget` are kept in this Redis, and every gateway on it enforces "
                  "one limit per key. The password is never logged and is redacted in `GET /config`; "
                  "percent-encode `@`, `:` or `/` in it.",
           .type_text = "string",
           .read = readRedisUrl,
           .show = showRedis},
          {.name = "redis_timeout",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`500ms`",
           .doc = "How long a limit check waits for Redis before it counts Redis as unavailable. Also bounds "
                  "each step of the Redis reads of `GET /llm/keys`.",
           .type_text = "duration, 1ms–60s",
           .read = readRedisTimeout,
           .show = showRedisTimeout},
      },
      {},
      "state must be a map: { sqlite: ganglion-state.db } or { redis: redis://host:6379/0 }",
  };
  return schema;
}

}  // namespace ganglion::config
