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
#include <vector>

namespace ganglion {

struct JsonBounds {
  size_t max_containers = 100'000;  ///< objects and arrays
  size_t max_values = 1'000'000;    ///< values of any kind
  unsigned max_depth = 64;
  /// A key written twice in one object is refused (kDuplicateKey) instead of the last one
  /// kept: where two readers of the same text must not see different values.
  bool refuse_duplicate_keys = false;
};

/// What went wrong, for callers that word their own errors.
enum class JsonFault { kNone, kTooManyContainers, kTooManyValues, kTooDeep, kSyntax, kDuplicateKey };

struct BoundedJson {
  boost::json::value value;  ///< null unless fault == kNone
  JsonFault fault = JsonFault::kNone;
  size_t at = 0;       ///< kTooDeep, kSyntax: the byte where parsing stopped
  std::string reason;  ///< kSyntax: the parser's words; kDuplicateKey: which key, where
};

/// Parses `text` into `storage` (a monotonic resource keeps a large body's nodes in a few
/// blocks, released together). Any thread; allocates only what the bounds allow.
BoundedJson parseBoundedJson(std::string_view text, const JsonBounds& bounds,
                             boost::json::storage_ptr storage);

/// A key written twice in one object of JSON text (boost::json keeps the last silently).
struct JsonDuplicateKey {
  std::string path;  ///< the second occurrence, "$.routes[0].upstream"
  std::string key;
};

/// Every key written twice in an object of `text` (at most `max` of them), in text order;
/// empty when there are none or the text does not parse (the parser reports that). Used where
/// one source of config must mean what another does: YAML refuses duplicate keys, and a JSON
/// body read through the same schema must too. Any thread; `text` up to the caller's bounds.
std::vector<JsonDuplicateKey> findDuplicateKeys(std::string_view text, size_t max = 100);

/// `path.key` for identifier-like keys, `path["a key"]` otherwise (the JSON paths config
/// errors name).
std::string jsonChildPath(std::string_view path, std::string_view key);

}  // namespace ganglion
