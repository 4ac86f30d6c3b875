// JSON from a client, parsed with bounds on its shape so that its parsed form stays bounded
// whatever the text: a linear scan refuses text with too many containers or values before the
// parser builds anything, and the parser refuses nesting past a depth. Used by the LLM API's
// request parsing and by filters that read request bodies (prompt_guard).
#pragma once

#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <string>
#include <string_view>

namespace ganglion {

struct JsonBounds {
  size_t max_containers = 100'000;  ///< objects and arrays
  size_t max_values = 1'000'000;    ///< values of any kind
  unsigned max_depth = 64;
};

/// What went wrong, for callers that word their own errors.
enum class JsonFault { kNone, kTooManyContainers, kTooManyValues, kTooDeep, kSyntax };

struct BoundedJson {
  boost::json::value value;  ///< null unless fault == kNone
  JsonFault fault = JsonFault::kNone;
  size_t at = 0;       ///< kTooDeep, kSyntax: the byte where parsing stopped
  std::string reason;  ///< kSyntax: the parser's words
};

/// Parses `text` into `storage` (a monotonic resource keeps a large body's nodes in a few
/// blocks, released together). Any thread; allocates only what the bounds allow.
BoundedJson parseBoundedJson(std::string_view text, const JsonBounds& bounds,
                             boost::json::storage_ptr storage);

}  // namespace ganglion
