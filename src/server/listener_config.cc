#include "server/listener_config.h"

#include "net/tls_config.h"

namespace ganglion::server {

using namespace config;

const Schema<ListenerConfig>& listenerSchema() {
  // Field order is the docs table's.
  static const Schema<ListenerConfig> schema{
      "listener",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &ListenerConfig::name,
           .default_text = "",
           .doc = "Unique among listeners.",
           .required = true,
           .what = "listener name",
           .missing = "listener needs a 'name'"},
          {.name = "address",
           .kind = FieldKind::kHostPort,
           .member = &ListenerConfig::address,
           .default_text = "",
           .doc = "The host must be an IP address or `localhost` (bound as `127.0.0.1`). Two listeners may "
                  "not bind one socket: the same port on the same address, or on any address when one of "
                  "them is a wildcard (`0.0.0.0`, `::`).",
           .required = true,
           .what = "listener address",
           .missing = "listener needs an 'address' (host:port)"},
          {.name = "max_header_bytes",
           .kind = FieldKind::kSize,
           .member = &ListenerConfig::max_header_bytes,
           .default_text = "`32k`",
           .doc = "Limit on the request head: the bytes of the method, the request target and every header "
                  "name and value (the version, separators and line ends are not counted). Over it: `431`. "
                  "Trailer fields of a chunked body count toward the same total.",
           .min = 1024},
          {.name = "max_uri_bytes",
           .kind = FieldKind::kSize,
           .member = &ListenerConfig::max_uri_bytes,
           .default_text = "`8k`",
           .doc = "Limit on the request target (path and query). Over it: `414`.",
           .min = 64},
          {.name = "max_headers",
           .kind = FieldKind::kInteger,
           .member = &ListenerConfig::max_headers,
           .default_text = "`100`",
           .doc = "Limit on the number of header fields. Over it: `431`.",
           .min = 1,
           .max = 10000},
          {.name = "header_timeout",
           .kind = FieldKind::kDuration,
           .member = &ListenerConfig::header_timeout,
           .default_text = "`10s`",
           .doc = "The whole request head must arrive within this time of its **first byte**. A client that "
                  "sends a byte at a time is cut off all the same. On expiry: `408` and the connection is "
                  "closed."},
          {.name = "body_timeout",
           .kind = FieldKind::kDuration,
           .member = &ListenerConfig::body_timeout,
           .default_text = "`30s`",
           .doc =
               "Longest wait **between two reads** of the request body; every read that returns data starts "
               "the wait again. On expiry: `408` if no response has started, and the connection is closed."},
          {.name = "idle_timeout",
           .kind = FieldKind::kDuration,
           .member = &ListenerConfig::idle_timeout,
           .default_text = "`60s`",
           .doc = "Longest wait for the first byte of a request, both on a new connection and between "
                  "keep-alive requests. On expiry the connection is closed without a response."},
          {.name = "send_timeout",
           .kind = FieldKind::kDuration,
           .member = &ListenerConfig::send_timeout,
           .default_text = "`60s`",
           .doc = "Longest wait for the client to accept the next piece of a response (as nginx's "
                  "`send_timeout`). On expiry the connection is closed: a client that stops reading cannot "
                  "hold it, or a response held for a filter, forever.",
           .min = 1000},
          {.name = "body_min_rate",
           .kind = FieldKind::kSize,
           .member = &ListenerConfig::body_min_rate,
           .default_text = "`1k`",
           .doc =
               "Least average rate of a request body. During the first `body_timeout` after the head ends "
               "only `body_timeout` applies; from then on the body must have arrived at an average of at "
               "least this many bytes a second since the end of the head (each read must come before the "
               "earlier of `body_timeout` from now and the end of the head + `body_timeout` + bytes received "
               "÷ `body_min_rate`). The average restarts from each moment the last `body_timeout` met the "
               "rate, so "
               "time earned by a burst expires: a client that sends most of a body at once and then a byte "
               "now "
               "and then is cut off within about two `body_timeout`s. A client that sends a byte just often "
               "enough to beat `body_timeout` is "
               "cut off: `408` if no response has started, and the connection is closed. The time the "
               "gateway spends connecting upstream before it reads the body counts too. `0`: no minimum.",
           .type_text = "size (bytes a second)"},
          {.name = "max_connections_per_ip",
           .kind = FieldKind::kInteger,
           .member = &ListenerConfig::max_connections_per_ip,
           .default_text = "`4096`",
           .doc =
               "Connections one client address may hold open on this listener, counted across all workers. A "
               "connection over the cap is closed right after `accept`, before any TLS handshake and without "
               "a response, and counted in `ganglion_connections_refused_per_ip_total` (not in "
               "`ganglion_connections_total`). Addresses are counted in a table of 65,536 hashed slots, so "
               "two addresses that share a slot share one cap. Behind a load balancer or NAT many clients "
               "arrive from one address: raise the cap there, or set `0` (no cap).",
           .min = 0,
           .max = 10000000},
          {.name = "max_buffered_body_bytes",
           .kind = FieldKind::kSize,
           .member = &ListenerConfig::max_buffered_body_bytes,
           .default_text = "`512M`",
           .doc = "Request-body bytes this listener's requests may hold in memory at once, counted across "
                  "all workers: bodies read whole for filters (`prompt_guard`) and by the LLM API (which "
                  "holds each body it parses). A request whose body would go over it is answered `503 "
                  "overloaded` with `Retry-After: 1` (in the OpenAI or Anthropic error shape on LLM routes) "
                  "and its connection closed; bodies streamed to an upstream are not counted. This bounds "
                  "what many slow clients, each sending most of a large body, can pin. `0`: no cap. Like the "
                  "per-address cap, it starts anew at a reload."},
          {.name = "normalize_path",
           .kind = FieldKind::kBool,
           .member = &ListenerConfig::normalize_path,
           .default_text = "`true`",
           .doc =
               "Put each request path in normal form before routing, filters and forwarding: percent-encoded "
               "unreserved characters decoded (`/%61dmin` is `/admin`), other percent-encodings' hex "
               "upper-cased, dot segments removed (`/api/../admin` is `/admin`; `..` never climbs above "
               "`/`), runs of `/` merged (`//admin` is `/admin`); the query is left as sent. Routes then see "
               "the path the upstream will resolve, so a `key_auth` on `/admin` cannot be walked around "
               "through a catch-all route with another spelling of it that follows RFC 3986. The upstream "
               "receives the normal form (and the access log's `target` shows it); a `%` that starts no "
               "encoding is sent as `%25`. Not normalised, and forwarded as they are: `%2F` and `%5C` (an "
               "encoded slash or backslash stays encoded, as APIs put them in path parameters), `\\`, `;` "
               "parameters (`/..;/`), `%00` and overlong UTF-8 (`%c0%ae`). An upstream that reads these as "
               "separators or dots (Tomcat's `..;`, IIS's `\\`, a server that decodes `%2F`) can still "
               "resolve such a path past a route's filters: guard those upstreams with the filters of the "
               "route that reaches them, or put an `ip_filter`/`key_auth` on the catch-all too. `false`: "
               "routes match, and upstreams get, the path byte for byte as sent."},
          {.name = "underscores_in_headers",
           .kind = FieldKind::kBool,
           .member = &ListenerConfig::underscores_in_headers,
           .default_text = "`false`",
           .doc = "Keep request header fields whose name contains `_`. By default they are dropped before "
                  "routing, filters and forwarding (counted in `ganglion_headers_dropped_total`), as nginx "
                  "does: servers behind CGI, WSGI or Rails read `Content_Length` or `X_Forwarded_For` as "
                  "their dashed twins, so such a field could override what the gateway checked."},
      },
      {{"tls", "map", "none", "Makes this an HTTPS listener; see below."}},
  };
  return schema;
}

const Schema<AccessLogConfig>& accessLogSchema() {
  static const Schema<AccessLogConfig> schema{
      "access_log",
      {
          {.name = "enabled",
           .kind = FieldKind::kBool,
           .member = &AccessLogConfig::enabled,
           .default_text = "`true`",
           .doc = "Write one JSON line per request.",
           .what = "access_log.enabled"},
          {.name = "path",
           .kind = FieldKind::kString,
           .member = &AccessLogConfig::path,
           .default_text = "`stdout`",
           .doc = "`stdout`, `stderr`, or a file path, opened for appending (mode 0640) at start. If the "
                  "file cannot be opened, records go to stderr.",
           .what = "access_log.path"},
      },
      {},
      "access_log must be a map",
  };
  return schema;
}

void readListener(config::Reader& r, const config::Node& n, std::vector<ListenerConfig>& out) {
  ListenerConfig l;
  l.at = n.place();
  if (!n.IsMap()) return r.fail(n, "a listener must be a map");
  readFields(listenerSchema(), n, l, r);
  if (auto v = n["tls"]; v.IsDefined()) l.tls = net::readTlsServer(r, v);
  out.push_back(std::move(l));
}

}  // namespace ganglion::server
