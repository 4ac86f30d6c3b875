// Request paths in the one form routes are matched in and upstreams receive, so that a route's
// filters (key_auth on /admin) cannot be walked around with another spelling of the same path
// that the upstream would resolve to it (/api/../admin, /%61dmin, //admin).
#pragma once

#include <string>
#include <string_view>

namespace ganglion::http {

/// Normalises the path of an origin-form request target (`/p?q`; the query is kept as it is):
/// percent-encoded unreserved characters decoded (RFC 3986 6.2.2.2: `%61` is `a`), the
/// remaining percent-encodings' hex in upper case, a '%' that starts none written `%25`, dot segments removed
/// (5.2.4: `/a/./b/../c` is `/a/c`; `..` never climbs above the root), and runs of `/` merged into one.
/// Returns false and leaves `target` as it was when it is already normal (no allocation). Worker thread, for
/// every request: the check is one scan for '%', "/." and "//".
bool normalisePath(std::string& target);

/// True when the path of `target` (before any '?') has a "." or ".." segment, which an
/// upstream would resolve against the segments before it.
bool hasDotSegment(std::string_view target);

}  // namespace ganglion::http
