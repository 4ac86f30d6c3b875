// An http:// or https:// URL from the config (an LLM provider's base_url, an edge sink's url)
// split into what an upstream needs. Main thread (config load).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace ganglion::upstream {

struct HttpUrl {
  bool https = false;
  std::string host;  ///< without IPv6 brackets
  uint16_t port = 80;
  std::string path;        ///< encoded, as written (may be empty)
  bool has_query = false;  ///< a '?', even with nothing after it
  std::string query;       ///< encoded, without '?'
};

/// Splits `text`. Errors name it as `what` (`base_url`, `url`) with credentials redacted: not a
/// URL, not http(s), no host, a bad port, or parts it may not have. Credentials and a fragment
/// are always refused, a query unless `allow_query`; `forbidden` words that error ("may not
/// have a query, fragment or credentials").
Result<HttpUrl> parseHttpUrl(std::string_view text, std::string_view what, bool allow_query,
                             std::string_view forbidden);

/// The Host header for `host`:`port`: the port left out when it is the scheme's, an IPv6
/// literal in brackets.
std::string hostHeader(const std::string& host, uint16_t port, bool https);

}  // namespace ganglion::upstream
