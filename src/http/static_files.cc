#include "http/static_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <memory>

#include "http/http_date.h"
#include "loop/pools.h"

namespace ganglion::http {

namespace {

/// What a body is read and written in when it does not go out with sendfile: one piece per
/// connection is held while a slow client reads it, counted against the listener's
/// max_buffered_body_bytes.
constexpr size_t kPiece = 64 * 1024;
/// Bodies from this size on go out with sendfile when their pages are cached; below it one
/// read and one write with the head cost less.
constexpr uint64_t kSendFileMin = 16 * 1024;

/// cachestat(2) (Linux 6.5): how many pages of a range are in the page cache. Not in Debian
/// 12's headers; the number is the same on every architecture.
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif
struct CachestatRange {
  uint64_t off;
  uint64_t len;
};
struct Cachestat {
  uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/// Whether every page of the range is in the page cache, so that sendfile will not wait on
/// the disk. False when the kernel cannot tell (before 6.5): the body is then read as pieces.
bool pagesCached(int fd, uint64_t offset, uint64_t length) {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  CachestatRange range{offset, length};
  Cachestat stat{};
  if (::syscall(SYS_cachestat, fd, &range, &stat, 0) != 0) return false;
  const uint64_t pages = (offset + length + page - 1) / page - offset / page;
  return stat.nr_cache >= pages;
}

/// What the response will be, decided from the file's size and time and the request's
/// conditions (RFC 9110 13.2.2 order: If-Match, If-Unmodified-Since, If-None-Match,
/// If-Modified-Since, then Range with If-Range).
struct Plan {
  int status = 200;  ///< 200, 206, 304, 412 or 416
  uint64_t first = 0;
  uint64_t length = 0;
  uint64_t size = 0;  ///< the whole file's
  EntityTag etag;
  char last_modified[kHttpDateSize];
};

/// Whether any of the request's `name` fields (a list may be split over several field lines,
/// RFC 9110 5.3) holds `etag`.
bool anyFieldMatches(const HeaderList& headers, std::string_view name, std::string_view etag, bool weak) {
  for (const auto& h : headers)
    if (iequals(h.name, name) && entityTagListMatches(h.value, etag, weak)) return true;
  return false;
}

/// The Range field when there is exactly one (two lines are not one valid range set).
const Header* singleRange(const HeaderList& headers) {
  const Header* found = nullptr;
  for (const auto& h : headers)
    if (iequals(h.name, "range")) {
      if (found) return nullptr;
      found = &h;
    }
  return found;
}

Plan planResponse(const RequestHead& req, uint64_t size, int64_t mtime, int64_t mtime_ns) {
  Plan plan;
  plan.etag = fileEntityTag(size, mtime, mtime_ns);
  formatHttpDate(mtime, plan.last_modified);
  const std::string_view etag = plan.etag.view();
  plan.length = size;
  plan.size = size;
  const auto& h = req.headers;
  if (h.has("if-match")) {
    if (!anyFieldMatches(h, "if-match", etag, false)) {
      plan.status = 412;
      return plan;
    }
  } else if (const auto* f = h.find("if-unmodified-since")) {
    if (auto date = parseHttpDate(f->value); date && mtime > *date) {
      plan.status = 412;
      return plan;
    }
  }
  if (h.has("if-none-match")) {
    if (anyFieldMatches(h, "if-none-match", etag, true)) {
      plan.status = 304;
      return plan;
    }
  } else if (const auto* f = h.find("if-modified-since")) {
    if (auto date = parseHttpDate(f->value); date && mtime <= *date) {
      plan.status = 304;
      return plan;
    }
  }
  const auto* range = singleRange(h);
  if (!range || req.method != "GET") return plan;  // ranges are defined for GET only
  if (const auto* if_range = h.find("if-range")) {
    const std::string_view v = trim(if_range->value);
    const bool same = !v.empty() && (v.front() == '"' || v.substr(0, 2) == "W/")
                          ? entityTagListMatches(v, etag, false) && v.find(',') == std::string_view::npos
                          : parseHttpDate(v) == mtime;
    if (!same) return plan;  // the file changed: the whole new version
  }
  ByteRange r;
  switch (parseByteRange(range->value, size, r)) {
    case RangeAsk::kWhole:
      break;
    case RangeAsk::kUnsatisfiable:
      plan.status = 416;
      break;
    case RangeAsk::kRange:
      plan.status = 206;
      plan.first = r.first;
      plan.length = r.last - r.first + 1;
      break;
  }
  return plan;
}

/// The file work of a request: open, stat, plan, and the pieces of the body. Each step is
/// first tried on the connection's own thread without waiting (a path in the lookup cache,
/// pages in the page cache: the usual case, no thread hop); what would wait on the disk is
/// finished on the blocking pool. Lives on the serving coroutine's frame.
struct FileJob {
  const StaticSite* site = nullptr;
  const RequestHead* request = nullptr;
  std::string relative;
  int fd = -1;
  int error = 0;  ///< errno of the open or read that failed
  bool directory = false;
  bool regular = false;
  Plan plan;
  enum class Step { kOpen, kRead, kDone } step = Step::kOpen;
  uint64_t offset = 0;             ///< next byte of the file to read
  uint64_t remaining = 0;          ///< bytes still to read after the current piece
  std::unique_ptr<char[]> buffer;  ///< uninitialised: no memset of what the read fills
  size_t capacity = 0;
  size_t piece = 0;  ///< bytes of the current piece
  size_t got = 0;    ///< of them read so far

  ~FileJob() {
    if (fd >= 0) ::close(fd);
  }

  /// Runs the steps that are left. `may_block` false: stops, returning false, at the first one
  /// that would wait (the caller then runs it again on the blocking pool with true).
  bool advance(bool may_block) {
    if (step == Step::kOpen && !open(may_block)) return false;
    if (step == Step::kRead && !read(may_block)) return false;
    return true;
  }

  /// Starts the next piece of the body (at most kPiece bytes); advance() reads it.
  void nextPiece() {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(remaining, kPiece));
    if (want > capacity) {
      buffer = std::make_unique_for_overwrite<char[]>(want);
      capacity = want;
    }
    piece = want;
    remaining -= want;
    got = 0;
    step = Step::kRead;
  }

 private:
  bool open(bool may_block) {
    if (!may_block && !site->cachedOpens()) return false;  // no way to open without waiting
    fd = site->openFile(relative.c_str(), !may_block);
    if (fd < 0) {
      if (!may_block && errno == EAGAIN) return false;
      error = errno;
      step = Step::kDone;
      return true;
    }
    struct stat st {};
    step = Step::kDone;
    if (::fstat(fd, &st) != 0) {
      error = errno;
      return true;
    }
    directory = S_ISDIR(st.st_mode);
    regular = S_ISREG(st.st_mode);
    if (!regular) return true;
    plan = planResponse(*request, static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    offset = plan.first;
    remaining = plan.length;
    return true;
  }

  bool read(bool may_block) {
    while (got < piece) {
      iovec io{buffer.get() + got, piece - got};
      const ssize_t n = ::preadv2(fd, &io, 1, static_cast<off_t>(offset), may_block ? 0 : RWF_NOWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && !may_block && (errno == EAGAIN || errno == EOPNOTSUPP)) return false;
      if (n <= 0) {
        error = n < 0 ? errno : EIO;  // 0: the file was cut short after its length was planned
        step = Step::kDone;
        return true;
      }
      got += static_cast<size_t>(n);
      offset += static_cast<uint64_t>(n);
    }
    step = Step::kDone;
    return true;
  }
};

/// The answer to a failed open: which status and words.
Task<void> sendOpenError(ServerConnection& conn, int error) {
  switch (error) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
    case ENXIO:   // a Unix socket
    case ENODEV:  // a device without a driver
      co_return co_await conn.sendError(404, "not_found", "no such file");
    case EACCES:
    case EPERM:
      co_return co_await conn.sendError(403, "forbidden", "the file may not be read");
    case ELOOP:
    case EXDEV:
      co_return co_await conn.sendError(403, "forbidden", "the path goes through a symbolic link");
    case EMFILE:
    case ENFILE:
    case ENOMEM: {
      HeaderList retry;
      retry.add("Retry-After", "1");
      co_return co_await conn.sendError(503, "unavailable", "the gateway is out of file descriptors", &retry);
    }
    default:
      co_return co_await conn.sendError(500, "internal_error", "the file could not be read");
  }
}

}  // namespace

Task<void> serveStaticFile(ServerConnection& conn, const StaticSite& site, std::string_view url_path,
                           const config::HeaderOps* ops) {
  const auto& req = conn.request();
  if (req.method != "GET" && req.method != "HEAD") {
    HeaderList allow;
    allow.add("Allow", "GET, HEAD");
    co_return co_await conn.sendError(405, "method_not_allowed", "static files answer GET and HEAD", &allow);
  }
  StaticPath path = resolveStaticPath(url_path, site.config().dotfiles);
  if (path.kind == StaticPath::Kind::kBad)
    co_return co_await conn.sendError(400, "bad_request", path.problem);
  if (path.kind == StaticPath::Kind::kHidden)
    co_return co_await conn.sendError(404, "not_found", "no such file");
  FileJob job;
  job.site = &site;
  job.request = &req;
  if (path.kind == StaticPath::Kind::kDirectory) {
    if (site.config().index.empty())
      co_return co_await conn.sendError(404, "not_found", "no such file (directories are not listed)");
    job.relative = path.relative == "." ? site.config().index : path.relative + "/" + site.config().index;
  } else {
    job.relative = std::move(path.relative);
  }
  FileJob* const running = &job;  // the pool's lambda holds only a pointer (loop::runOn)
  if (!job.advance(false)) co_await loop::runBlocking([running] { running->advance(true); });
  if (job.error) co_return co_await sendOpenError(conn, job.error);  // the open or its fstat failed
  if (job.directory) {
    if (path.kind == StaticPath::Kind::kDirectory)  // the index is itself a directory
      co_return co_await conn.sendError(404, "not_found", "no such file");
    // The slash form, relative to the request ("./name/"): never a path another host could
    // be read from ("//host/"), whatever prefix the route strips.
    const std::string_view request_path = req.path();
    const std::string_view last = request_path.substr(request_path.rfind('/') + 1);
    HeaderList location;
    location.add("Location",
                 fmt::format("./{}/{}", last, std::string_view(req.target).substr(request_path.size())));
    co_return co_await conn.sendError(301, "moved", "a directory: its path ends in '/'", &location);
  }
  if (!job.regular) co_return co_await conn.sendError(404, "not_found", "no such file");
  const Plan& plan = job.plan;
  if (plan.status == 412)
    co_return co_await conn.sendError(412, "precondition_failed",
                                      "the file does not match the request's "
                                      "If-Match or If-Unmodified-Since");
  if (plan.status == 416) {
    HeaderList range;
    range.add("Content-Range", fmt::format("bytes */{}", plan.size));
    co_return co_await conn.sendError(416, "range_not_satisfiable", "the range lies outside the file",
                                      &range);
  }
  ResponseHead& head = conn.scratchResponseHead();  // keeps its fields' storage from request to request
  head.clear();
  head.status = plan.status;
  if (plan.status != 304) {
    head.headers.add("Content-Type", site.mediaType(job.relative));
    head.has_content_length = true;
    head.content_length = plan.length;
    head.headers.add("Accept-Ranges", "bytes");
  }
  if (plan.status == 206)
    head.headers.add("Content-Range",
                     fmt::format("bytes {}-{}/{}", plan.first, plan.first + plan.length - 1, plan.size));
  head.headers.add("ETag", plan.etag.view());
  head.headers.add("Last-Modified", std::string_view(plan.last_modified, kHttpDateSize));
  if (!site.config().cache_control.empty()) head.headers.add("Cache-Control", site.config().cache_control);
  head.headers.add("X-Content-Type-Options", "nosniff");
  if (ops) head.headers.applyOps(ops->remove, ops->add);
  if (req.method == "HEAD" || plan.status == 304 || plan.length == 0) {
    co_await conn.writeResponse(&head, {}, true);
    co_return;
  }
  ResponseHead* pending_head = &head;  // sent with the first piece
  // A larger body that is all in the page cache goes out with sendfile: no copy through here.
  if (plan.length >= kSendFileMin && !conn.stream().isTls() && pagesCached(job.fd, plan.first, plan.length)) {
    if (!co_await conn.writeResponse(&head, {}, false)) co_return;
    if (conn.canSendFile()) {
      co_await conn.sendFileBody(job.fd, plan.first, plan.length);
      co_return;
    }
    pending_head = nullptr;  // a filter holds the response: it gets the pieces
  }
  // The piece buffer is memory a slow client can hold: it counts against the listener's cap.
  if (!conn.holdBodyBytes(std::min<uint64_t>(plan.length, kPiece))) {
    if (!pending_head) {  // the head is out: nothing else can be said
      conn.abort();
      co_return;
    }
    HeaderList retry;
    retry.add("Retry-After", "1");
    co_return co_await conn.sendError(503, "overloaded", "the gateway holds too many buffered bytes", &retry);
  }
  while (true) {
    job.nextPiece();
    if (!job.advance(false)) co_await loop::runBlocking([running] { running->advance(true); });
    if (job.error) {
      if (pending_head)  // nothing sent yet
        co_return co_await conn.sendError(500, "internal_error", "the file could not be read");
      conn.abort();  // the head promised bytes that cannot come: the connection ends mid-body
      co_return;
    }
    std::array<std::string_view, 1> body{std::string_view(job.buffer.get(), job.piece)};
    const bool last = job.remaining == 0;  // (of the pieces after this one)
    if (!co_await conn.writeResponse(pending_head, body, last) || last) co_return;
    pending_head = nullptr;
  }
}

Task<void> StaticFiles::serve(RoutedRequest& routed) {
  const auto& req = routed.conn.request();
  const auto& config = *routed.route.config;
  if (!config.rewrite_path_prefix)
    co_return co_await serveStaticFile(routed.conn, *config.static_files, req.path(),
                                       &config.response_headers);
  const std::string target = rewriteTarget(req, routed.route);
  const std::string_view path = std::string_view(target).substr(0, target.find('?'));
  co_await serveStaticFile(routed.conn, *config.static_files, path, &config.response_headers);
}

}  // namespace ganglion::http
