// The `listeners` and `access_log` sections, which only the composition reads: it binds the
// listeners' sockets, hands their limits to the workers' connections, and opens the access
// log. Main thread (or the blocking pool for POST /config/check).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/reader.h"
#include "config/schema.h"

namespace ganglion::net {
class TlsServerContext;
}  // namespace ganglion::net

namespace ganglion::server {

using config::Millis;

struct ListenerConfig {
  std::string name;
  config::HostPort address;
  uint64_t max_header_bytes = 32 * 1024;
  uint64_t max_uri_bytes = 8 * 1024;
  uint64_t max_headers = 100;
  Millis header_timeout{10'000};
  Millis body_timeout{30'000};
  Millis idle_timeout{60'000};
  /// Longest wait for the client to take a piece of a response (a client that stops reading
  /// cannot hold a connection, or a response held for a filter, forever).
  Millis send_timeout{60'000};
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

struct AccessLogConfig {
  bool enabled = true;
  std::string path = "stdout";  ///< "stdout", "stderr" or a file path
};

/// The `listeners[]` fields (the `tls` map is read by readListener).
const config::Schema<ListenerConfig>& listenerSchema();
const config::Schema<AccessLogConfig>& accessLogSchema();

/// Reads one `listeners[]` entry (a map), its `tls` included, onto `out`.
void readListener(config::Reader& r, const config::Node& n, std::vector<ListenerConfig>& out);

}  // namespace ganglion::server
