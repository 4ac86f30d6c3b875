#include "admin/admin_config.h"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <optional>
#include <string_view>

#include "net/host_address.h"

namespace ganglion::admin {

using namespace config;

namespace {

boost::json::value showConsole(const AdminConfig& admin) {
  if (admin.console_shown.empty()) return nullptr;
  return boost::json::parse(admin.console_shown);
}

}  // namespace

const Schema<AdminConfig>& adminSchema() {
  static const Schema<AdminConfig> schema{
      "admin",
      {
          {.name = "address",
           .kind = FieldKind::kHostPort,
           .member = &AdminConfig::address,
           .default_text = "`127.0.0.1:9901`",
           .doc = "An IP address or `localhost`. Must be loopback (`localhost`, `127.0.0.0/8`, `::1`) unless "
                  "`allow_remote` is true.",
           .what = "admin address"},
          {.name = "token",
           .kind = FieldKind::kString,
           .member = &AdminConfig::token,
           .default_text = "",
           .doc = "Bearer token for every endpoint but `/healthz`. At least 16 characters, none of them a "
                  "space or a control character, and at least 8 different characters; otherwise the config "
                  "is refused (at start, by `ganglion check`, and on reload). Use `${GANGLION_ADMIN_TOKEN}` "
                  "with a random value (`head -c 24 /dev/urandom | base64`). Never logged or repeated in "
                  "errors; redacted in `/config`.",
           .required = true,
           .secret = true,
           .what = "admin token",
           .missing = "admin needs a non-empty 'token' (use ${GANGLION_ADMIN_TOKEN})"},
          {.name = "allow_remote",
           .kind = FieldKind::kBool,
           .member = &AdminConfig::allow_remote,
           .default_text = "`false`",
           .doc = "Allows a non-loopback `address`. The admin API has no TLS: with a non-loopback address "
                  "the start log warns that the token and everything the API shows cross the network in "
                  "clear text (`WARNING: the admin API on 0.0.0.0:9901 is reachable beyond this host in "
                  "clear text: ...`). Prefer an SSH tunnel or a TLS-terminating proxy."},
          {.name = "console",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`{ root: DIR, ... }` (the fields of a route's [`static`](#static-files)): the web "
                  "console's files, served at `/console/` on the admin address without the token (the "
                  "page asks for it before it calls the API). `/console` redirects to `/console/`.",
           .type_text = "map",
           .show = showConsole},
      },
      {},
  };
  return schema;
}

namespace {

/// Why an admin token is too easy to guess, or nullopt: at least 16 characters, printable
/// with no spaces, and at least 8 distinct ones ("x", blanks or "aaaa..." are refused).
std::optional<std::string> weakTokenReason(std::string_view token) {
  if (token.size() < 16) return fmt::format("it has {} characters, at least 16 are needed", token.size());
  bool seen[256] = {};
  size_t distinct = 0;
  for (unsigned char c : token) {
    if (c <= ' ' || c == 127) return std::string("it holds spaces or control characters");
    if (!seen[c]) {
      seen[c] = true;
      ++distinct;
    }
  }
  if (distinct < 8)
    return fmt::format("it uses only {} different characters, at least 8 are needed", distinct);
  return std::nullopt;
}

}  // namespace

void readAdmin(config::Reader& r, const config::Node& n, AdminConfig& admin) {
  if (!n.IsMap()) return r.fail(n, "admin must be a map");
  admin.enabled = true;
  readFields(adminSchema(), n, admin, r);
  if (auto v = n["address"]; v.IsDefined()) {
    const auto ip = net::bindAddressOf(admin.address.host);
    admin.remote = !(ip && ip->is_loopback());
    if (admin.remote && !admin.allow_remote)
      r.fail(v, "admin address must be loopback unless 'allow_remote: true' is set");
  }
  if (auto v = n["console"]; v.IsDefined()) admin.console = http::readStaticSite(r, v, admin.console_shown);
  if (admin.token.empty()) {
    if (n["token"].IsDefined()) r.fail(n, "admin needs a non-empty 'token' (use ${GANGLION_ADMIN_TOKEN})");
    return;
  }
  if (auto why = weakTokenReason(admin.token))
    r.fail(n["token"],
           fmt::format("admin token is too weak: {} (generate one with: head -c 24 /dev/urandom | base64)",
                       *why));
}

}  // namespace ganglion::admin
