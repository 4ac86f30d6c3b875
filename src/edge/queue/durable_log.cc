#include "edge/queue/durable_log.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "base/file_io.h"

namespace ganglion::edge {

namespace fs = std::filesystem;

namespace {

constexpr char kSegmentMagic[8] = {'G', 'N', 'G', 'L', 'S', 'E', 'G', '1'};
constexpr char kCursorMagic[8] = {'G', 'N', 'G', 'L', 'C', 'U', 'R', '1'};
constexpr uint8_t kFrameMagic0 = 0x4A, kFrameMagic1 = 0x6E;
constexpr size_t kCursorBytes = 8 + 8 + 8 + 8 + 4;
constexpr size_t kReadChunk = 256 * 1024;

std::array<uint32_t, 256> makeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

uint32_t crcSoftware(uint32_t crc, const unsigned char* p, size_t n) {
  static const std::array<uint32_t, 256> table = makeCrcTable();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crcHardware(uint32_t crc, const unsigned char* p, size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
  }
  auto c32 = static_cast<uint32_t>(c);
  for (; n; --n, ++p) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
#endif

void putU32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
void putU64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t getU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t getU64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

/// The CRC of a frame: its tag byte, the zero byte, its length and its payload.
uint32_t frameCrc(const char* head, std::string_view payload) {
  uint32_t c = crc32c(0, std::string_view(head + 2, 6));
  return crc32c(c, payload);
}

/// Writes the head of a frame carrying `head` + `body` (kFrameHeader bytes at `h`).
void encodeFrameHead(char* h, uint8_t tag, std::string_view head, std::string_view body = {}) {
  h[0] = static_cast<char>(kFrameMagic0);
  h[1] = static_cast<char>(kFrameMagic1);
  h[2] = static_cast<char>(tag & 7);
  h[3] = 0;
  putU32(h + 4, static_cast<uint32_t>(head.size() + body.size()));
  putU32(h + 8, crc32c(frameCrc(h, head), body));
}

enum class Parse { kOk, kNeedMore, kBad };

/// Checks the frame at `p` (`avail` bytes there): its payload length on success.
Parse parseFrame(const char* p, size_t avail, uint32_t& length) {
  if (avail < DurableLog::kFrameHeader) {
    // A prefix that cannot start a frame is damage even before the rest arrives.
    if (avail >= 1 && static_cast<uint8_t>(p[0]) != kFrameMagic0) return Parse::kBad;
    if (avail >= 2 && static_cast<uint8_t>(p[1]) != kFrameMagic1) return Parse::kBad;
    return Parse::kNeedMore;
  }
  if (static_cast<uint8_t>(p[0]) != kFrameMagic0 || static_cast<uint8_t>(p[1]) != kFrameMagic1 || p[3] != 0)
    return Parse::kBad;
  length = getU32(p + 4);
  if (length > DurableLog::kMaxPayload) return Parse::kBad;
  if (avail - DurableLog::kFrameHeader < length) return Parse::kNeedMore;
  if (frameCrc(p, std::string_view(p + DurableLog::kFrameHeader, length)) != getU32(p + 8))
    return Parse::kBad;
  return Parse::kOk;
}

}  // namespace

uint32_t crc32c(uint32_t crc, std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  crc = ~crc;
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) return ~crcHardware(crc, p, data.size());
#endif
  return ~crcSoftware(crc, p, data.size());
}

DurableLog::DurableLog(fs::path dir, uint64_t segment_bytes)
    : dir_(std::move(dir)), segment_bytes_(std::clamp<uint64_t>(segment_bytes, 4096, kMaxSegmentBytes)) {}

DurableLog::~DurableLog() {
  for (int fd : {write_fd_, read_fd_, cursor_fd_, lock_fd_})
    if (fd >= 0) ::close(fd);
}

fs::path DurableLog::segmentPath(uint64_t id) const { return dir_ / fmt::format("{:020}.seg", id); }

Result<std::unique_ptr<DurableLog>> DurableLog::open(const fs::path& dir, uint64_t segment_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  std::unique_ptr<DurableLog> log(new DurableLog(dir, segment_bytes));
  if (auto scanned = log->scan(); !scanned.ok()) return scanned.error();
  return log;
}

Result<void> DurableLog::scan() {
  const fs::path lock_path = dir_ / "lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return Error(errnoText("cannot open", lock_path));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return Error(fmt::format(
          "{} is in use by another process (or another queue of this one): its lock is held", dir_.string()));
    return Error(errnoText("cannot lock", lock_path));
  }
  // The cursor (absent or torn: from the oldest segment).
  const fs::path cursor_path = dir_ / "cursor";
  std::error_code exists_ec;
  const bool cursor_existed = fs::exists(cursor_path, exists_ec);
  cursor_fd_ = ::open(cursor_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (cursor_fd_ < 0) return Error(errnoText("cannot open", cursor_path));
  char cur[kCursorBytes];
  bool have_cursor = false;
  const ssize_t cursor_read = ::pread(cursor_fd_, cur, sizeof cur, 0);
  if (cursor_read == static_cast<ssize_t>(sizeof cur) && std::memcmp(cur, kCursorMagic, 8) == 0 &&
      crc32c(0, std::string_view(cur, kCursorBytes - 4)) == getU32(cur + kCursorBytes - 4)) {
    cursor_ = {getU64(cur + 8), getU64(cur + 16)};
    value_ = getU64(cur + 24);
    have_cursor = true;
  }
  // A log that consumed nothing has an empty cursor; one whose cursor is damaged, or gone while
  // segments are there, is read from its oldest segment again (records may come twice): said.
  std::string cursor_trouble;
  if (!have_cursor && cursor_read > 0) {
    corrupt_bytes_ += static_cast<uint64_t>(cursor_read);
    cursor_trouble = "damaged";
  } else if (!cursor_existed) {
    cursor_trouble = "missing";
  }
  // Segments, by id; leftovers of an interrupted rewrite go.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".seg.tmp")) {
      fs::remove(entry.path(), ec);
      continue;
    }
    if (!name.ends_with(".seg")) continue;
    if (!entry.is_regular_file(ec)) {
      // A directory (or other) named like a segment is not ours to remove, nor a segment.
      noteTrouble(
          fmt::format("{}: not a file, so not a segment of this log: left alone", entry.path().string()));
      ec.clear();
      continue;
    }
    uint64_t id = 0;
    const char* end = name.data() + name.size() - 4;
    const auto parsed = std::from_chars(name.data(), end, id);
    if (name.size() == 24 && parsed.ec == std::errc() && parsed.ptr == end && id > 0) {
      segments_[id] = Segment{};
      continue;
    }
    // Named like a segment, but no id of ours (20 digits, 1 to 2^64-1): reported and removed.
    std::error_code size_ec;
    const auto size = fs::file_size(entry.path(), size_ec);
    corrupt_bytes_ += size_ec ? 0 : size;
    noteTrouble(fmt::format("{}: not a segment of this log, removed", entry.path().string()));
    fs::remove(entry.path(), ec);
  }
  if (ec) return Error(fmt::format("cannot list {}: {}", dir_.string(), ec.message()));
  // What is wrong with the log as a whole, said with the damage (GET /edge, the log).
  if (!cursor_trouble.empty() && !segments_.empty())
    noteTrouble(
        fmt::format("{}: the cursor is {}: reading again from the oldest segment (records may come twice)",
                    cursor_path.string(), cursor_trouble));
  if (have_cursor && !segments_.empty() && !segments_.count(cursor_.segment))
    noteTrouble(fmt::format("{}: missing (the cursor was in it): its records are lost",
                            segmentPath(cursor_.segment).string()));
  if (!have_cursor || segments_.empty() || cursor_.segment < segments_.begin()->first) {
    cursor_ = segments_.empty() ? LogPosition{} : LogPosition{segments_.begin()->first, kSegmentHeader};
  } else if (!segments_.count(cursor_.segment)) {  // its segment is gone: the next one
    auto it = segments_.upper_bound(cursor_.segment);
    cursor_ = it == segments_.end() ? LogPosition{} : LogPosition{it->first, kSegmentHeader};
  }
  // Headers, from the cursor on, before gaps are judged by the ids: a file that is not one of
  // ours goes, and leaves no gap when it was past the newest segment (a stray name).
  std::vector<uint64_t> damaged;
  for (auto it = segments_.lower_bound(cursor_.segment); it != segments_.end();) {
    if (keepSegment(it->first, std::next(it) == segments_.end())) {
      ++it;
      continue;
    }
    damaged.push_back(it->first);
    // The cursor moves to the next segment (with none, it stays: those before it are consumed).
    if (cursor_.segment == it->first && std::next(it) != segments_.end())
      cursor_ = {std::next(it)->first, kSegmentHeader};
    it = segments_.erase(it);
  }
  // Segment ids follow one another: a gap from the cursor on is a segment someone removed (a
  // damaged one was reported as such).
  if (cursor_.segment) {
    std::set<uint64_t> present;
    for (auto it = segments_.lower_bound(cursor_.segment); it != segments_.end(); ++it)
      present.insert(it->first);
    for (uint64_t id : damaged)
      if (!present.empty() && id > cursor_.segment && id < *present.rbegin()) present.insert(id);
    uint64_t expected = cursor_.segment;
    for (uint64_t id : present) {
      if (id != expected)
        noteTrouble(id - expected == 1
                        ? fmt::format("{}: missing: its records are lost", segmentPath(expected).string())
                        : fmt::format("segments {} to {} of {} are missing: their records are lost", expected,
                                      id - 1, dir_.string()));
      expected = id + 1;
    }
  }
  // Segments wholly consumed go; the rest are checked frame by frame.
  for (auto it = segments_.begin(); it != segments_.end();) {
    if (cursor_.segment && it->first < cursor_.segment) {
      fs::remove(segmentPath(it->first), ec);
      it = segments_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [id, seg] : segments_) {
    struct stat st {};
    seg.bytes = ::stat(segmentPath(id).c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    disk_bytes_ += seg.bytes;
  }
  if (!segments_.empty()) active_ = segments_.rbegin()->first;
  for (auto it = segments_.begin(); it != segments_.end();) {
    const uint64_t id = it->first;
    const bool newest = id == active_;
    Segment& seg = it->second;
    // Larger than any segment is (a disk fault, a careless `truncate -s`): only the size a
    // segment can have is read (a sparse 4 GiB file would hold a worker for seconds), and the
    // file is cut after its last valid frame below.
    const uint64_t file_bytes = seg.bytes;
    const bool oversized = file_bytes > kMaxSegmentFile;
    if (oversized) {
      disk_bytes_ -= file_bytes - kMaxSegmentFile;
      seg.bytes = kMaxSegmentFile;
    }
    if (cursor_.segment == 0) cursor_ = {id, kSegmentHeader};
    // Frames: counted (from the cursor on for frames_), damage skipped and counted.
    const uint64_t damage_before = corrupt_bytes_;
    const std::string corruption_before = corruption_;
    const size_t notes_before = damage_notes_.size();
    LogPosition at{id, kSegmentHeader};
    uint64_t tail = kSegmentHeader;  // the end of the last valid frame
    std::vector<LogFrame> frames;
    while (true) {
      frames.clear();
      const LogPosition before = at;
      readFrames(at, 4096, 16u << 20, frames, true);
      for (const auto& f : frames) {
        ++seg.frames;
        seg.max_tag |= static_cast<uint8_t>(1u << (f.tag & 7));
        if (f.at >= cursor_) ++frames_;
        tail = f.next.offset;
      }
      if (at == before || at.segment != id || at.offset >= seg.bytes) break;
    }
    if (!newest && !oversized && seg.bytes > tail) noteIfCutShort(id, seg, tail);
    if ((newest || oversized) && seg.bytes > tail) {
      // A torn tail (kill -9 mid-write) is cut, and not counted as damage; what an oversized
      // file held past its last frame is cut and counted, all of it.
      if (::truncate(segmentPath(id).c_str(), static_cast<off_t>(tail)) != 0)
        return Error(errnoText("cannot truncate", segmentPath(id)));
      corrupt_bytes_ -= std::min(corrupt_bytes_ - damage_before, seg.bytes - tail);
      if (corrupt_bytes_ == damage_before) {
        corruption_ = corruption_before;
        damage_notes_.resize(notes_before);
      }
      disk_bytes_ -= seg.bytes - tail;
      seg.bytes = tail;
      if (oversized) noteDamage(id, tail, file_bytes - tail);
    }
    ++it;
  }
  if (cursor_.segment && !segments_.count(cursor_.segment)) {
    auto after = segments_.upper_bound(cursor_.segment);
    cursor_ = after == segments_.end() ? LogPosition{} : LogPosition{after->first, kSegmentHeader};
  }
  // Writing goes on in the newest segment (a new one when there is none or it is full).
  if (segments_.empty()) {
    if (auto started = startSegment(std::max<uint64_t>(1, cursor_.segment)); !started.ok())
      return started.error();
    cursor_ = {active_, kSegmentHeader};
  } else {
    active_ = segments_.rbegin()->first;
    write_fd_ = ::open(segmentPath(active_).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (write_fd_ < 0) return Error(errnoText("cannot open", segmentPath(active_)));
    if (cursor_.segment == 0) cursor_ = {segments_.begin()->first, kSegmentHeader};
  }
  // The cursor file gets its blocks now: a first write when the disk is already full would
  // leave it empty, and the next start would send everything consumed since again, unsaid.
  if (cursor_read != static_cast<ssize_t>(kCursorBytes)) writeCursor();
  return {};
}

bool DurableLog::keepSegment(uint64_t id, bool newest) {
  const fs::path path = segmentPath(id);
  struct stat st {};
  const uint64_t file_bytes = ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  std::string head;
  const bool got = readAt(id, 0, kSegmentHeader + kFrameHeader, head);
  if (got && head.size() >= kSegmentHeader && std::memcmp(head.data(), kSegmentMagic, 8) == 0 &&
      getU64(head.data() + 8) == id)
    return true;
  // The header is damaged but the first frame after it is whole: the segment is ours.
  uint32_t length = 0;
  std::string frame;
  if (got && head.size() == kSegmentHeader + kFrameHeader &&
      parseFrame(head.data() + kSegmentHeader, kFrameHeader, length) != Parse::kBad &&
      readAt(id, kSegmentHeader, kFrameHeader + length, frame) &&
      parseFrame(frame.data(), frame.size(), length) == Parse::kOk) {
    char fixed[kSegmentHeader];
    std::memcpy(fixed, kSegmentMagic, 8);
    putU64(fixed + 8, id);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    const bool written = fd >= 0 &&
                         ::pwrite(fd, fixed, sizeof fixed, 0) == static_cast<ssize_t>(sizeof fixed) &&
                         ::fsync(fd) == 0;
    if (fd >= 0) ::close(fd);
    corrupt_bytes_ += kSegmentHeader;
    noteTrouble(fmt::format("{}: its header was damaged ({}); its frames are intact and kept", path.string(),
                            written ? "written again" : errnoText("cannot write it again", path)));
    return true;
  }
  // Not one of ours: reported and removed (an empty newest segment is a crash right after its
  // creation, and no damage).
  if (file_bytes > 0 || !newest) noteDamage(id, 0, file_bytes);
  // An empty one that is not the newest: no bytes to count, but whatever it held is gone.
  if (file_bytes == 0 && !newest)
    noteTrouble(fmt::format("{}: empty (not the newest segment), removed", path.string()));
  if (read_fd_ >= 0) ::close(read_fd_);
  read_fd_ = -1;
  std::error_code ec;
  fs::remove(path, ec);
  return false;
}

Result<void> DurableLog::startSegment(uint64_t id) {
  const fs::path path = segmentPath(id);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Error(errnoText("cannot create", path));
  char head[kSegmentHeader];
  std::memcpy(head, kSegmentMagic, 8);
  putU64(head + 8, id);
  if (!writeAll(fd, head, sizeof head)) {
    const std::string why = errnoText("cannot write", path);
    ::close(fd);
    ::unlink(path.c_str());
    return Error(why);
  }
  if (write_fd_ >= 0) ::close(write_fd_);
  write_fd_ = fd;
  active_ = id;
  segments_[id] = Segment{.bytes = kSegmentHeader};
  disk_bytes_ += kSegmentHeader;
  unsynced_.push_back(0);  // the directory: a new name in it
  unsynced_.push_back(id);
  return {};
}

LogPosition DurableLog::end() const {
  auto it = segments_.find(active_);
  return {active_, it == segments_.end() ? kSegmentHeader : it->second.bytes};
}

bool FrameBatch::add(uint8_t tag, std::string_view head, std::string_view body) {
  if (head.size() + body.size() > DurableLog::kMaxPayload) return false;
  const size_t at = bytes_.size();
  bytes_.resize(at + DurableLog::kFrameHeader);
  encodeFrameHead(bytes_.data() + at, tag, head, body);
  bytes_.append(head).append(body);
  ends_.push_back(bytes_.size());
  tags_.push_back(tag);
  return true;
}

void FrameBatch::clear() {
  bytes_.clear();
  ends_.clear();
  tags_.clear();
  if (bytes_.capacity() > 4 * kReadChunk) std::string().swap(bytes_);
}

Result<LogPosition> DurableLog::append(uint8_t tag, std::string_view payload) {
  one_.clear();
  if (!one_.add(tag, payload)) return Error("a record larger than 64 MiB cannot be queued");
  if (append(one_) != 1) return Error(last_error_);
  const LogPosition after = end();  // the frame is the last thing in the active segment
  return LogPosition{after.segment, after.offset - one_.bytes_.size()};
}

size_t DurableLog::append(const FrameBatch& batch) {
  size_t done = 0;
  while (done < batch.size()) {
    if (segments_[active_].bytes >= segment_bytes_) {
      if (auto started = startSegment(active_ + 1); !started.ok()) {
        last_error_ = started.error().message;
        return done;
      }
    }
    // The frames that start before the segment is full go in one write.
    Segment& seg = segments_[active_];
    const size_t from = done ? batch.ends_[done - 1] : 0;
    size_t last = done;
    uint8_t tags = 0;
    while (last < batch.size() && seg.bytes + ((last ? batch.ends_[last - 1] : 0) - from) < segment_bytes_) {
      tags |= static_cast<uint8_t>(1u << (batch.tags_[last] & 7));
      ++last;
    }
    const size_t len = batch.ends_[last - 1] - from;
    if (!writeAll(write_fd_, batch.bytes_.data() + from, len)) {
      last_error_ = errnoText("cannot write", segmentPath(active_));
      // A partial frame would be damage: cut it off.
      if (::ftruncate(write_fd_, static_cast<off_t>(seg.bytes)) != 0) {
      }
      return done;
    }
    seg.bytes += len;
    disk_bytes_ += len;
    seg.frames += last - done;
    seg.max_tag |= tags;
    frames_ += last - done;
    if (unsynced_.empty() || unsynced_.back() != active_) unsynced_.push_back(active_);
    done = last;
  }
  last_error_.clear();
  return done;
}

bool DurableLog::readAt(uint64_t segment, uint64_t offset, size_t len, std::string& buf) {
  if (read_fd_ < 0 || read_segment_ != segment) {
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = ::open(segmentPath(segment).c_str(), O_RDONLY | O_CLOEXEC);
    read_segment_ = segment;
    if (read_fd_ < 0) return false;
  }
  buf.resize(len);
  size_t got = 0;
  while (got < len) {
    const ssize_t r = ::pread(read_fd_, buf.data() + got, len - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return false;
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  buf.resize(got);
  return true;
}

void DurableLog::noteDamage(uint64_t segment, uint64_t offset, uint64_t bytes) {
  if (!bytes) return;
  // Found again when the frames around it are read once more (at open, then to deliver).
  if (damage_seen_.size() < 4096 && !damage_seen_.emplace(segment, offset).second) return;
  corrupt_bytes_ += bytes;
  noteTrouble(
      fmt::format("{}: {} damaged bytes skipped at offset {}", segmentPath(segment).string(), bytes, offset));
  last_damage_ = {segment, offset};
}

void DurableLog::noteTrouble(std::string what) {
  corruption_ = what;
  if (damage_notes_.size() == kMaxDamageNotes)
    what = "more damage found: not listed (corrupt bytes counts it)";
  if (damage_notes_.size() <= kMaxDamageNotes) damage_notes_.push_back(std::move(what));
}

void DurableLog::read(LogPosition& from, size_t max_frames, uint64_t max_bytes, std::vector<LogFrame>& out) {
  readFrames(from, max_frames, max_bytes, out, false);
}

void DurableLog::readFrames(LogPosition& from, size_t max_frames, uint64_t max_bytes,
                            std::vector<LogFrame>& out, bool one_segment) {
  uint64_t bytes = 0;
  size_t taken = 0;
  std::string buf;
  while (taken < max_frames) {
    auto it = segments_.lower_bound(from.segment);
    if (it == segments_.end()) return;
    if (it->first != from.segment) from = {it->first, kSegmentHeader};  // its segment is gone
    if (from.offset < kSegmentHeader) from.offset = kSegmentHeader;
    const uint64_t size = it->second.bytes;
    if (from.offset >= size) {
      if (it->first == active_ || one_segment) return;  // the end
      auto next = std::next(it);
      if (next == segments_.end()) return;
      from = {next->first, kSegmentHeader};
      continue;
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kReadChunk, size - from.offset));
    if (!readAt(from.segment, from.offset, want, buf) || buf.empty()) {
      // Unreadable (gone underneath, I/O error): the rest of the segment is damage.
      noteDamage(from.segment, from.offset, size - from.offset);
      from.offset = size;
      continue;
    }
    size_t used = 0;
    while (used < buf.size() && taken < max_frames) {
      uint32_t length = 0;
      const Parse p = parseFrame(buf.data() + used, buf.size() - used, length);
      if (p == Parse::kOk) {
        if (taken && bytes + length > max_bytes) {
          from.offset += used;
          return;
        }
        LogFrame& f = out.emplace_back();
        f.at = {from.segment, from.offset + used};
        f.tag = static_cast<uint8_t>(buf[used + 2]);
        f.payload.assign(buf.data() + used + kFrameHeader, length);
        used += kFrameHeader + length;
        f.next = {from.segment, from.offset + used};
        bytes += length;
        ++taken;
        continue;
      }
      if (p == Parse::kNeedMore && from.offset + buf.size() < size) {
        if (used == 0 && buf.size() < kFrameHeader + size_t{length}) {
          // A frame larger than the chunk: read it whole (once: short again is damage).
          if (!readAt(from.segment, from.offset, kFrameHeader + length, buf)) break;
          if (buf.size() == kFrameHeader + size_t{length}) continue;
        } else if (used > 0) {
          break;  // read on from this frame
        }
      }
      // Damage: skip to the next valid frame in what was read (or past it all).
      size_t next = used + 1;
      for (; next < buf.size(); ++next) {
        uint32_t l2 = 0;
        if (static_cast<uint8_t>(buf[next]) == kFrameMagic0 &&
            parseFrame(buf.data() + next, buf.size() - next, l2) == Parse::kOk)
          break;
      }
      if (next >= buf.size() && from.offset + buf.size() < size)
        next = std::max(used + 1, buf.size() - kFrameHeader);
      noteDamage(from.segment, from.offset + used, next - used);
      used = next;
    }
    from.offset += used;
  }
}

void DurableLog::noteIfCutShort(uint64_t id, const Segment& seg, uint64_t tail) {
  // Writing never leaves a partial frame behind in a closed segment (a failed write is cut
  // back): one that ends inside a frame lost its end to a truncate or a lost range of disk,
  // and with it every record written after that frame, which the skipped bytes undercount.
  std::string rest;
  uint32_t length = 0;
  if (!readAt(id, tail, kFrameHeader, rest) ||
      parseFrame(rest.data(), rest.size(), length) != Parse::kNeedMore ||
      (rest.size() == kFrameHeader && tail + kFrameHeader + length <= seg.bytes))
    return;
  std::string what = fmt::format(
      "{}: cut short at {} bytes, inside the frame at offset {}: the records written after "
      "it are lost",
      segmentPath(id).string(), seg.bytes, tail);
  // A closed segment held at least segment_bytes_ (unless the queue's size changed since).
  if (segment_bytes_ > tail && seg.frames > 0) {
    const uint64_t lost = segment_bytes_ - tail;
    const uint64_t per_frame = std::max<uint64_t>(1, (tail - kSegmentHeader) / seg.frames);
    what += fmt::format(" (about {} records, {} bytes, if it held a whole segment of {} bytes)",
                        std::max<uint64_t>(1, lost / per_frame), lost, segment_bytes_);
  }
  if (last_damage_ == LogPosition{id, tail} && !damage_notes_.empty() && damage_notes_.back() == corruption_)
    damage_notes_.pop_back();  // the torn frame's own note: this one says more
  noteTrouble(std::move(what));
}

uint64_t DurableLog::framesBefore(uint64_t segment, uint64_t offset) {
  LogPosition at{segment, kSegmentHeader};
  uint64_t n = 0;
  std::vector<LogFrame> frames;
  while (at.segment == segment && at.offset < offset) {
    frames.clear();
    const LogPosition before = at;
    read(at, 256, 16u << 20, frames);
    for (const auto& f : frames)
      if (f.at.segment == segment && f.at.offset < offset) ++n;
    if (frames.empty() || at == before) break;
  }
  return n;
}

void DurableLog::writeCursor() {
  char cur[kCursorBytes];
  std::memcpy(cur, kCursorMagic, 8);
  putU64(cur + 8, cursor_.segment);
  putU64(cur + 16, cursor_.offset);
  putU64(cur + 24, value_);
  putU32(cur + kCursorBytes - 4, crc32c(0, std::string_view(cur, kCursorBytes - 4)));
  if (::pwrite(cursor_fd_, cur, sizeof cur, 0) != static_cast<ssize_t>(sizeof cur))
    last_error_ = errnoText("cannot write", dir_ / "cursor");
}

void DurableLog::removeSegment(uint64_t id) {
  auto it = segments_.find(id);
  if (it == segments_.end() || id == active_) return;
  disk_bytes_ -= std::min(disk_bytes_, it->second.bytes);
  segments_.erase(it);
  if (read_fd_ >= 0 && read_segment_ == id) {
    ::close(read_fd_);
    read_fd_ = -1;
  }
  ::unlink(segmentPath(id).c_str());
  std::erase(unsynced_, id);
  unsynced_.push_back(0);  // the directory
}

void DurableLog::consume(LogPosition upto, uint64_t frames, uint64_t value) {
  if (upto > end()) upto = end();
  if (upto > cursor_) cursor_ = upto;
  frames_ -= std::min(frames_, frames);
  value_ = value;
  while (!segments_.empty() && segments_.begin()->first < cursor_.segment &&
         segments_.begin()->first != active_)
    removeSegment(segments_.begin()->first);
  // A disk that refused an append, and every frame consumed: the segment being written holds
  // nothing anyone reads, yet it would stay until it fills, which a full disk never lets it.
  if (!last_error_.empty() && cursor_ == end() && end().offset > kSegmentHeader) freeActiveSegment();
  writeCursor();
}

void DurableLog::freeActiveSegment() {
  const uint64_t old = active_;
  Segment& seg = segments_[old];
  if (::truncate(segmentPath(old).c_str(), static_cast<off_t>(kSegmentHeader)) != 0) return;
  disk_bytes_ -= seg.bytes - kSegmentHeader;
  seg = Segment{.bytes = kSegmentHeader};
  // Writing goes on in a new segment (positions never repeat); if even that cannot be made,
  // in the emptied one.
  if (startSegment(old + 1).ok()) removeSegment(old);
  cursor_ = {active_, kSegmentHeader};
}

uint64_t DurableLog::shed(uint8_t min_tag, LogPosition keep_through) {
  const auto below = static_cast<uint8_t>((1u << min_tag) - 1);
  for (auto& [id, seg] : segments_) {
    if (id == active_ || (keep_through.segment && id <= keep_through.segment)) continue;
    if (!(seg.max_tag & below)) continue;
    const bool cursor_here = cursor_.segment == id;
    const uint64_t consumed = cursor_here ? framesBefore(id, cursor_.offset) : 0;
    if (!(seg.max_tag & static_cast<uint8_t>(~below))) {  // only frames to drop: the file goes
      const uint64_t dropped = seg.frames - std::min(seg.frames, consumed);
      frames_ -= std::min(frames_, dropped);
      const uint64_t gone = id;
      removeSegment(gone);
      if (cursor_here) {
        auto next = segments_.upper_bound(gone);
        cursor_ = next == segments_.end() ? end() : LogPosition{next->first, kSegmentHeader};
        writeCursor();
      }
      return dropped;
    }
    // Rewrite it without them, order kept (from the cursor on, when the cursor is in it).
    std::vector<LogFrame> frames;
    LogPosition at{id, cursor_here ? cursor_.offset : kSegmentHeader};
    while (at.segment == id) {
      const LogPosition before = at;
      read(at, 4096, 64u << 20, frames);
      if (at == before) break;
      while (!frames.empty() && frames.back().at.segment != id) frames.pop_back();
    }
    std::string out(kSegmentHeader, '\0');
    std::memcpy(out.data(), kSegmentMagic, 8);
    putU64(out.data() + 8, id);
    Segment fresh{};
    uint64_t dropped = 0;
    for (const auto& f : frames) {
      if (f.tag < min_tag) {
        ++dropped;
        continue;
      }
      char h[kFrameHeader];
      encodeFrameHead(h, f.tag, f.payload);
      out.append(h, sizeof h).append(f.payload);
      ++fresh.frames;
      fresh.max_tag |= static_cast<uint8_t>(1u << f.tag);
    }
    fresh.bytes = out.size();
    const fs::path tmp = segmentPath(id).string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const bool written = fd >= 0 && writeAll(fd, out.data(), out.size()) && ::fsync(fd) == 0;
    if (fd >= 0) ::close(fd);
    if (!written || ::rename(tmp.c_str(), segmentPath(id).c_str()) != 0) {
      last_error_ = errnoText("cannot rewrite", segmentPath(id));
      ::unlink(tmp.c_str());
      return 0;
    }
    if (read_fd_ >= 0 && read_segment_ == id) {
      ::close(read_fd_);
      read_fd_ = -1;
    }
    disk_bytes_ = disk_bytes_ - std::min(disk_bytes_, seg.bytes) + fresh.bytes;
    seg = fresh;
    frames_ -= std::min(frames_, dropped);
    if (cursor_here) {
      cursor_ = {id, kSegmentHeader};
      writeCursor();
    }
    unsynced_.push_back(0);
    return dropped;
  }
  return 0;
}

std::vector<int> DurableLog::unsyncedFds() {
  std::vector<int> fds;
  bool dir = false;
  for (uint64_t id : unsynced_) {
    if (id == 0) {
      dir = true;
      continue;
    }
    const int fd = id == active_ ? ::dup(write_fd_) : ::open(segmentPath(id).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) fds.push_back(fd);
  }
  if (dir) {
    const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) fds.push_back(fd);
  }
  if (!unsynced_.empty() && cursor_fd_ >= 0) fds.push_back(::dup(cursor_fd_));
  unsynced_.clear();
  return fds;
}

}  // namespace ganglion::edge
