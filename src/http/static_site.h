// A directory served as static files (a route's `static:` target, the admin API's console
// assets): its settings and schema, the root directory held open for the config version's
// life, and the pure steps of serving a file (URL path → file under the root, media type,
// entity tags, byte ranges), kept apart from the I/O so they can be fuzzed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "config/schema.h"

namespace ganglion::http {

struct StaticFilesConfig {
  std::string root;                        ///< as written; relative: to the config file's directory
  std::string index = "index.html";        ///< served for a path ending in '/'; empty: none
  std::string cache_control = "no-cache";  ///< empty: no Cache-Control
  bool dotfiles = false;                   ///< serve names starting with '.' (.well-known always is)
  bool follow_symlinks = false;            ///< symbolic links that stay under the root
  /// Extension (lower case, without the dot) → media type, before the built-in table.
  std::vector<std::pair<std::string, std::string>> types;
};

/// The `static` map's fields. Main thread (config load).
const config::Schema<StaticFilesConfig>& staticFilesSchema();

/// The served directory, opened once per config version (an O_PATH descriptor: a rename or
/// replacement of the directory afterwards is not followed until the next reload). Immutable
/// and shared by every worker.
class StaticSite {
 public:
  /// Opens `config.root` (relative paths from `base_dir`) and checks that the kernel resolves
  /// paths beneath it (openat2, Linux 5.6). Main thread, at config load.
  static Result<std::shared_ptr<const StaticSite>> open(StaticFilesConfig config, std::string_view base_dir);
  ~StaticSite();
  StaticSite(const StaticSite&) = delete;
  StaticSite& operator=(const StaticSite&) = delete;

  const StaticFilesConfig& config() const { return config_; }
  /// Opens `relative` for reading with openat2 beneath the root (RESOLVE_BENEATH; symbolic
  /// links refused unless follow_symlinks). `cached_only`: fails with EAGAIN unless every
  /// component is in the kernel's lookup cache (RESOLVE_CACHED), so the open cannot wait on
  /// the disk. Returns the descriptor, or -1 with errno. Any thread.
  int openFile(const char* relative, bool cached_only) const;
  /// Whether the kernel takes RESOLVE_CACHED (Linux 5.12), which lets an open that would wait
  /// on the disk fail at once instead. Any thread.
  bool cachedOpens() const { return cached_opens_; }
  /// The media type for `file_name` by its extension (the configured `types` first); text
  /// types carry charset=utf-8; unknown: application/octet-stream. Any thread.
  std::string_view mediaType(std::string_view file_name) const;

 private:
  StaticSite(StaticFilesConfig config, int fd, bool cached_opens)
      : config_(std::move(config)), root_fd_(fd), cached_opens_(cached_opens) {}
  StaticFilesConfig config_;
  int root_fd_ = -1;
  bool cached_opens_ = false;
};

/// Reads a `static` map (a route's target, the admin API's console) and opens its root
/// (relative to the directory of the file `r` reads); errors go to `r`, with null returned.
/// `shown`: the settings as GET /config shows them (JSON text). Main thread (config load).
std::shared_ptr<const StaticSite> readStaticSite(config::Reader& r, const config::Node& v,
                                                 std::string& shown);

/// Where a URL path leads under the root.
struct StaticPath {
  enum class Kind {
    kFile,       ///< `relative` names a file (or a directory, found out when opened)
    kDirectory,  ///< the path ends in '/': `relative` is the directory ("." for the root)
    kBad,        ///< 400: a bad percent-encoding, a NUL, or a ".." segment
    kHidden,     ///< 404: a segment starting with '.' while dotfiles are off
  };
  Kind kind = Kind::kBad;
  std::string relative;  ///< decoded, segments joined by '/', no empty, "." or ".." segment
  std::string problem;   ///< kBad: what is wrong, for the 400's message
};

/// Maps a URL path (percent-encoded, without the query) onto a path relative to the root:
/// decodes it, drops empty and "." segments, and refuses what could climb out or name a
/// hidden file. The kernel's RESOLVE_BENEATH guards the same border again at open. Any thread.
StaticPath resolveStaticPath(std::string_view url_path, bool dotfiles);

/// A single byte range within a file, both ends included.
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;
};

/// What a Range field asks of a file of `size` bytes (RFC 9110 14.2): nothing (absent,
/// another unit, bad syntax, or several ranges: the whole file is sent), one satisfiable
/// range (clipped to the file), or nothing the file has (416).
enum class RangeAsk { kWhole, kRange, kUnsatisfiable };
RangeAsk parseByteRange(std::string_view field, uint64_t size, ByteRange& out);

/// Whether an If-None-Match / If-Match field (a list of entity tags, or "*") holds `etag`.
/// `weak`: W/ prefixes are ignored on both sides (If-None-Match); otherwise only strong tags
/// compare (If-Match, If-Range).
bool entityTagListMatches(std::string_view field, std::string_view etag, bool weak);

/// The entity tag of a file version, quoted: its modification time and size in hex
/// ("6b0dc7a3.1aadb635-c"). Kept inline: no allocation per request.
struct EntityTag {
  char text[48];
  size_t size = 0;
  std::string_view view() const { return {text, size}; }
};
EntityTag fileEntityTag(uint64_t size, int64_t mtime_seconds, int64_t mtime_nanoseconds);

}  // namespace ganglion::http
