// The `admin` section: where the admin API listens, the token it asks for, and the console's
// files. Read by the
// composition's loader (main thread, or the blocking pool for POST /config/check).
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "config/reader.h"
#include "config/schema.h"
#include "http/static_site.h"

namespace ganglion::admin {

struct AdminConfig {
  bool enabled = false;
  config::HostPort address{"127.0.0.1", 9901};
  std::string token;          ///< secret: never logged, redacted in /config
  bool allow_remote = false;  ///< as written: a non-loopback address is allowed
  bool remote = false;        ///< allowed and bound beyond loopback (in clear text: the start log warns)
  /// `console`: files served at /console/ without the token (the web console's assets).
  std::shared_ptr<const http::StaticSite> console;
  std::string console_shown;  ///< for GET /config: the `console` map as read (JSON text)
};

/// `admin`'s fields (the loopback rule and the token's strength are checked by readAdmin).
const config::Schema<AdminConfig>& adminSchema();

/// Reads `admin` (a map) into `admin`, enabling the API: the address must be loopback unless
/// allow_remote is set, and the token must be hard to guess.
void readAdmin(config::Reader& r, const config::Node& n, AdminConfig& admin);

}  // namespace ganglion::admin
