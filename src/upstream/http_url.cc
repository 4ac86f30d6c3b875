#include "upstream/http_url.h"

#include <fmt/format.h>

#include <boost/url/parse.hpp>

#include "base/strings.h"

namespace ganglion::upstream {

Result<HttpUrl> parseHttpUrl(std::string_view text, std::string_view what, bool allow_query,
                             std::string_view forbidden) {
  auto fail = [&](std::string_view why) {
    return Error(fmt::format("{} '{}' {}", what, redactUrl(text), why));
  };
  auto url = boost::urls::parse_uri(text);
  if (!url) return fail("is not a URL");
  const std::string_view scheme = url->scheme();
  if (scheme != "https" && scheme != "http") return fail("must use http or https");
  if ((url->has_query() && !allow_query) || url->has_fragment() || url->has_userinfo())
    return fail(forbidden);
  HttpUrl out;
  out.https = scheme == "https";
  out.host = std::string(url->host_address());
  if (out.host.empty()) return fail("has no host");
  out.port = out.https ? 443 : 80;
  if (url->has_port()) {
    auto port = parseUint(url->port());
    if (!port || *port == 0 || *port > 65535) return fail("has an invalid port");
    out.port = static_cast<uint16_t>(*port);
  }
  out.path = std::string(url->encoded_path());
  out.has_query = url->has_query();
  out.query = std::string(url->encoded_query());
  return out;
}

std::string hostHeader(const std::string& host, uint16_t port, bool https) {
  const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;  // IPv6 literal
  return port == (https ? 443 : 80) ? shown : fmt::format("{}:{}", shown, port);
}

}  // namespace ganglion::upstream
