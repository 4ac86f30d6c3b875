#include "http/static_site.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <boost/json.hpp>
#include <boost/url/pct_string_view.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "base/strings.h"

namespace ganglion::http {

namespace json = boost::json;
using namespace config;

namespace {

void readTypes(Reader& r, const config::Node& v, StaticFilesConfig& c) {
  if (!v.IsMap()) return r.fail(v, "static.types must be a map of extension: media type");
  for (const auto& kv : v) {
    std::string ext = toLower(kv.first.Scalar());
    if (!ext.empty() && ext.front() == '.') ext.erase(0, 1);
    if (ext.empty() || ext.find('/') != std::string::npos) {
      r.fail(kv.first, fmt::format("'{}' is not a file extension", kv.first.Scalar()));
      continue;
    }
    auto type = r.str(kv.second, "media type");
    if (!type) continue;
    const size_t slash = type->find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == type->size() ||
        !isToken(type->substr(0, slash)))
      r.fail(kv.second, fmt::format("'{}' is not a media type like text/markdown", *type));
    else
      c.types.emplace_back(std::move(ext), *type);
  }
}

json::value showTypes(const StaticFilesConfig& c) {
  if (c.types.empty()) return nullptr;
  json::object out;
  for (const auto& [ext, type] : c.types) out[ext] = type;
  return out;
}

void readIndex(Reader& r, const config::Node& v, StaticFilesConfig& c) {
  auto s = r.str(v, "static.index");
  if (!s) return;
  if (s->find('/') != std::string::npos || *s == "." || *s == "..")
    return r.fail(v, "static.index is a file name (no '/'), or empty for none");
  c.index = *s;
}

json::value showIndex(const StaticFilesConfig& c) { return json::string(c.index); }

/// openat2 beneath `dir` with `resolve` added to RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS. An
/// EAGAIN without RESOLVE_CACHED means a rename under the root raced the lookup: the kernel
/// asks to try again.
int openBeneath(int dir, const char* path, uint64_t flags, uint64_t resolve) {
  open_how how{};
  how.flags = flags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | resolve;
  int fd, tries = 0;
  do fd = static_cast<int>(syscall(SYS_openat2, dir, path, &how, sizeof how));
  while (fd < 0 && (errno == EINTR || (errno == EAGAIN && !(resolve & RESOLVE_CACHED) && ++tries < 8)));
  return fd;
}

struct MediaType {
  std::string_view extension;
  std::string_view type;
};

// What browsers and the console need; the rest comes from `types`.
constexpr std::array<MediaType, 36> kMediaTypes = {{
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"wav", "audio/wav"},
    {"ogg", "audio/ogg"},
    {"onnx", "application/octet-stream"},
}};

}  // namespace

const Schema<StaticFilesConfig>& staticFilesSchema() {
  using S = StaticFilesConfig;
  static const Schema<StaticFilesConfig> schema{
      "static",
      {
          {.name = "root",
           .kind = FieldKind::kString,
           .member = &S::root,
           .default_text = "",
           .doc = "The directory served. A relative path is relative to the directory of the config file. "
                  "It must exist when the config loads; it is held open until the next reload.",
           .required = true,
           .what = "static.root",
           .missing = "static needs a 'root' directory"},
          {.name = "index",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`index.html`",
           .doc = "The file served for a path that ends in `/`. Empty: such paths answer `404` (there are "
                  "no directory listings).",
           .type_text = "file name",
           .read = readIndex,
           .show = showIndex},
          {.name = "cache_control",
           .kind = FieldKind::kString,
           .member = &S::cache_control,
           .default_text = "`no-cache`",
           .doc = "The `Cache-Control` of every `200`, `206` and `304`. The default makes browsers "
                  "revalidate each time (a `304` when nothing changed); fingerprinted assets can say "
                  "`public, max-age=31536000, immutable`. Empty: none sent."},
          {.name = "dotfiles",
           .kind = FieldKind::kBool,
           .member = &S::dotfiles,
           .default_text = "`false`",
           .doc = "Serve files and directories whose name starts with `.` (`.env`, `.git/`). Off, they "
                  "answer `404`; `.well-known/` is served either way."},
          {.name = "follow_symlinks",
           .kind = FieldKind::kBool,
           .member = &S::follow_symlinks,
           .default_text = "`false`",
           .doc = "Follow symbolic links inside the root. Off, a path through a link answers `403`. On, "
                  "a relative link is followed only while it stays under the root (the kernel checks it: "
                  "`RESOLVE_BENEATH`); one that leads out, and every absolute link, answers `403`."},
          {.name = "types",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "Extra media types by extension (`{ md: text/markdown, glb: model/gltf-binary }`), "
                  "tried before the built-in table (HTML, CSS, JavaScript, JSON, images, fonts, WebAssembly, "
                  "...). Unknown extensions are `application/octet-stream`.",
           .type_text = "map extension: media type",
           .read = readTypes,
           .show = showTypes},
      },
      {},
      "static must be a map: { root: DIR }",
  };
  return schema;
}

Result<std::shared_ptr<const StaticSite>> StaticSite::open(StaticFilesConfig config,
                                                           std::string_view base_dir) {
  std::filesystem::path path(config.root);
  if (path.is_relative() && !base_dir.empty()) path = std::filesystem::path(base_dir) / path;
  path = path.lexically_normal();
  const int fd = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error(fmt::format("static.root '{}': {}", path.string(), std::strerror(errno)));
  // Serving needs openat2 (RESOLVE_BENEATH); a kernel or sandbox without it is refused here,
  // not at the first request.
  const int probe = openBeneath(fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_NO_SYMLINKS);
  if (probe < 0) {
    const int err = errno;
    ::close(fd);
    return Error(
        fmt::format("static.root '{}': the kernel refused openat2 ({}); serving files needs Linux 5.6 "
                    "or later",
                    path.string(), std::strerror(err)));
  }
  ::close(probe);
  // RESOLVE_CACHED (Linux 5.12): an older kernel says EINVAL, and every open goes to the pool.
  const int cached =
      openBeneath(fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, RESOLVE_CACHED | RESOLVE_NO_SYMLINKS);
  const bool cached_opens = cached >= 0 || errno != EINVAL;
  if (cached >= 0) ::close(cached);
  return std::shared_ptr<const StaticSite>(new StaticSite(std::move(config), fd, cached_opens));
}

std::shared_ptr<const StaticSite> readStaticSite(Reader& r, const config::Node& v, std::string& shown) {
  if (!isSectionMap(r, v, staticFilesSchema())) return nullptr;
  StaticFilesConfig settings;
  const size_t errors = r.errors.size();
  readFields(staticFilesSchema(), v, settings, r);
  if (r.errors.size() != errors) return nullptr;
  shown = json::serialize(fieldsToJson(staticFilesSchema(), settings));
  auto site = StaticSite::open(std::move(settings), std::filesystem::path(r.file()).parent_path().string());
  if (!site) {
    r.fail(v["root"], site.error().message);
    return nullptr;
  }
  return std::move(*site);
}

int StaticSite::openFile(const char* relative, bool cached_only) const {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  return openBeneath(
      root_fd_, relative, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
      (config_.follow_symlinks ? 0 : RESOLVE_NO_SYMLINKS) | (cached_only ? RESOLVE_CACHED : 0));
}

StaticSite::~StaticSite() {
  if (root_fd_ >= 0) ::close(root_fd_);
}

std::string_view StaticSite::mediaType(std::string_view file_name) const {
  const size_t dot = file_name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return "application/octet-stream";
  const std::string_view ext = file_name.substr(dot + 1);
  for (const auto& [e, type] : config_.types)
    if (iequals(e, ext)) return type;
  for (const auto& m : kMediaTypes)
    if (iequals(m.extension, ext)) return m.type;
  return "application/octet-stream";
}

StaticPath resolveStaticPath(std::string_view url_path, bool dotfiles) {
  StaticPath out;
  const auto encoded = boost::urls::make_pct_string_view(url_path);
  if (!encoded) {
    out.problem = "the path has a '%' that starts no percent-encoding";
    return out;
  }
  const std::string decoded = encoded->decode();
  if (decoded.find('\0') != std::string::npos) {
    out.problem = "the path holds a NUL byte";
    return out;
  }
  // "/a/" and "/a/." name the directory a, never a file called a.
  const bool directory = decoded.empty() || decoded.back() == '/' || decoded == "." ||
                         (decoded.size() >= 2 && decoded.compare(decoded.size() - 2, 2, "/.") == 0);
  std::string_view rest = decoded;
  while (!rest.empty()) {
    const size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      out.relative.clear();
      out.problem = "the path climbs with '..'";
      return out;
    }
    if (segment.front() == '.' && !dotfiles && !(out.relative.empty() && segment == ".well-known")) {
      out.kind = StaticPath::Kind::kHidden;
      out.relative.clear();
      return out;
    }
    if (!out.relative.empty()) out.relative.push_back('/');
    out.relative.append(segment);
  }
  if (out.relative.empty()) {
    out.relative.push_back('.');  // (not = ".": g++ 12 warns falsely of an overflow)
    out.kind = StaticPath::Kind::kDirectory;
  } else {
    out.kind = directory ? StaticPath::Kind::kDirectory : StaticPath::Kind::kFile;
  }
  return out;
}

namespace {

/// A decimal number (no sign, no spaces), saturating at UINT64_MAX: a position past any file
/// is still a position (416 for a first byte, the end for a last one); nullopt otherwise.
std::optional<uint64_t> rangeNumber(std::string_view s) {
  if (s.empty()) return std::nullopt;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<uint64_t>(c - '0');
    v = v > (kMax - digit) / 10 ? kMax : v * 10 + digit;
  }
  return v;
}

}  // namespace

RangeAsk parseByteRange(std::string_view field, uint64_t size, ByteRange& out) {
  field = trim(field);
  constexpr std::string_view kUnit = "bytes=";
  if (field.size() < kUnit.size() || !iequals(field.substr(0, kUnit.size()), kUnit)) return RangeAsk::kWhole;
  std::string_view spec = trim(field.substr(kUnit.size()));
  if (spec.find(',') != std::string_view::npos) return RangeAsk::kWhole;  // several: the whole file
  const size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeAsk::kWhole;
  const std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
  if (a.empty()) {  // "-N": the last N bytes
    auto n = rangeNumber(b);
    if (!n) return RangeAsk::kWhole;
    if (*n == 0 || size == 0) return RangeAsk::kUnsatisfiable;
    out.first = *n >= size ? 0 : size - *n;
    out.last = size - 1;
    return RangeAsk::kRange;
  }
  auto first = rangeNumber(a);
  if (!first) return RangeAsk::kWhole;
  std::optional<uint64_t> last;
  if (!b.empty()) {
    last = rangeNumber(b);
    if (!last || *last < *first) return RangeAsk::kWhole;  // invalid: ignored (RFC 9110 14.1.1)
  }
  if (*first >= size) return RangeAsk::kUnsatisfiable;
  out.first = *first;
  out.last = last && *last < size ? *last : size - 1;
  return RangeAsk::kRange;
}

bool entityTagListMatches(std::string_view field, std::string_view etag, bool weak) {
  field = trim(field);
  if (field == "*") return true;
  const bool etag_weak = etag.substr(0, 2) == "W/";
  if (etag_weak) {
    if (!weak) return false;
    etag.remove_prefix(2);
  }
  while (!field.empty()) {
    field = trim(field);
    bool tag_weak = false;
    if (field.substr(0, 2) == "W/") {
      tag_weak = true;
      field.remove_prefix(2);
    }
    if (field.empty() || field.front() != '"') return false;  // not a list of entity tags
    const size_t close = field.find('"', 1);
    if (close == std::string_view::npos) return false;
    const std::string_view tag = field.substr(0, close + 1);
    if (tag == etag && (weak || !tag_weak)) return true;
    field.remove_prefix(close + 1);
    field = trim(field);
    if (field.empty()) break;
    if (field.front() != ',') return false;
    field.remove_prefix(1);
  }
  return false;
}

EntityTag fileEntityTag(uint64_t size, int64_t mtime_seconds, int64_t mtime_nanoseconds) {
  EntityTag tag;  // at most 44 bytes: two quotes, 16 + 8 + 16 hex digits, two separators
  const auto end =
      fmt::format_to_n(tag.text, sizeof tag.text, "\"{:x}.{:x}-{:x}\"", static_cast<uint64_t>(mtime_seconds),
                       static_cast<uint64_t>(mtime_nanoseconds), size);
  tag.size = std::min(end.size, sizeof tag.text);
  return tag;
}

}  // namespace ganglion::http
