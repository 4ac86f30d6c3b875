// An append-only log of framed records on disk: the edge's store-and-forward queues (one per
// durable sink) and ingest logs (one per pipeline feeding a durable sink) are these.
//
// Layout: a directory of segment files `<id>.seg` (20 digits, ids increasing). A segment
// starts with a 16-byte header (magic "GNGLSEG1", its id) followed by frames:
//
//     u16 magic 0x4A6E | u8 tag | u8 0 | u32 length | u32 crc32c(tag, 0, length, payload) | payload
//
// and the file `cursor` holds the position of the first frame not yet consumed, with a value
// its owner keeps there (the ingest log's next record number). A cursor lost or torn means
// frames are read again: at least once.
//
// Damage: a frame whose magic, length or CRC does not hold is skipped; the reader resumes at
// the next valid frame (found byte by byte: magic and CRC make a false match about 1 in 2^48),
// and the bytes skipped are counted and the segment named (`corruption()`). A torn tail of the
// newest segment (kill -9 mid-write) is cut off at open.
//
// Durability: append() writes to the page cache (a kill -9 keeps it); `unsyncedFds()` hands
// duplicates of the descriptors with unsynced writes to a LogSyncer, which fsyncs them on its
// own thread (a power cut loses what was not synced).
//
// Threads: one owner at a time (not thread-safe); the owner serializes its calls.
#pragma once

#include <compare>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace ganglion::edge {

/// Where a frame starts: its segment's id and the byte offset in it. Ordered.
struct LogPosition {
  uint64_t segment = 0;
  uint64_t offset = 0;
  auto operator<=>(const LogPosition&) const = default;
};

/// One frame read back.
struct LogFrame {
  LogPosition at;
  LogPosition next;  ///< where the frame after it starts
  uint8_t tag = 0;
  std::string payload;
};

/// CRC-32C (Castagnoli) of `data`, continuing from `crc` (0 to start). SSE 4.2 when the CPU
/// has it.
uint32_t crc32c(uint32_t crc, std::string_view data);

/// Frames prepared for one DurableLog::append(FrameBatch&): encoded into one buffer, so that
/// the log writes them with one write(2) per segment they reach.
class FrameBatch {
 public:
  /// Adds a frame whose payload is `head` followed by `body`. A payload over
  /// DurableLog::kMaxPayload is refused (false).
  bool add(uint8_t tag, std::string_view head, std::string_view body = {});
  size_t size() const { return ends_.size(); }
  bool empty() const { return ends_.empty(); }
  void clear();

 private:
  friend class DurableLog;
  std::string bytes_;
  std::vector<size_t> ends_;  ///< where each frame ends in bytes_
  std::vector<uint8_t> tags_;
};

class DurableLog {
 public:
  static constexpr size_t kSegmentHeader = 16;
  static constexpr size_t kFrameHeader = 12;
  /// The largest payload a frame may carry (a longer length is damage).
  static constexpr uint32_t kMaxPayload = 64u << 20;
  /// The largest segment size any owner asks for (the durable sink queue's 64 MiB).
  static constexpr uint64_t kMaxSegmentBytes = 64ull << 20;
  /// No segment this log writes is larger (its last frame starts before kMaxSegmentBytes); a
  /// larger file is read up to this size and cut after its last valid frame (the rest is
  /// counted as damage).
  static constexpr uint64_t kMaxSegmentFile = kSegmentHeader + kMaxSegmentBytes + kFrameHeader + kMaxPayload;

  /// Opens (creating when absent) the log in `dir`: scans every segment from the cursor on
  /// (counting frames, cutting a torn tail), removes segments wholly consumed and leftovers of
  /// an interrupted rewrite. `segment_bytes`: a segment is closed once it holds that much.
  /// The directory is locked (flock on `dir/lock`) while the log is open: a second opener, in
  /// this process or another, gets an error saying so.
  static Result<std::unique_ptr<DurableLog>> open(const std::filesystem::path& dir, uint64_t segment_bytes);
  ~DurableLog();
  DurableLog(const DurableLog&) = delete;
  DurableLog& operator=(const DurableLog&) = delete;

  /// Appends one frame (to the page cache). An error (disk full, I/O) leaves the log as it
  /// was: the frame is not there.
  Result<LogPosition> append(uint8_t tag, std::string_view payload);
  /// Appends the batch's frames in order, one write per segment they reach. Returns how many
  /// were appended: all, or on an error (lastError() says which) the ones before it.
  size_t append(const FrameBatch& batch);

  /// Reads frames from `from` on, at most `max_frames` or (past the first) `max_bytes` of
  /// payload; moves `from` past them. Damaged bytes are skipped and counted.
  void read(LogPosition& from, size_t max_frames, uint64_t max_bytes, std::vector<LogFrame>& out);

  /// Frames before `upto` are consumed (`frames` of them, for the counts): the cursor moves
  /// there (written to the cursor file, with `value`) and segments wholly before it are
  /// removed.
  void consume(LogPosition upto, uint64_t frames, uint64_t value);
  /// consume() with the value kept.
  void consume(LogPosition upto, uint64_t frames) { consume(upto, frames, value_); }

  /// Makes room by the oldest segment past `keep_through` (a position being read, whose
  /// segment stays) that holds frames tagged below `min_tag`: a segment holding only those is
  /// removed, another is rewritten without them (order kept). The segment being written is
  /// never touched. Returns the frames dropped (0: no such segment).
  uint64_t shed(uint8_t min_tag, LogPosition keep_through);

  /// Descriptors (duplicates: the caller closes them) of segments written since the last call.
  std::vector<int> unsyncedFds();

  LogPosition cursor() const { return cursor_; }
  LogPosition end() const;
  /// The value stored with the cursor (see consume).
  uint64_t value() const { return value_; }
  /// Frames from the cursor to the end.
  uint64_t frames() const { return frames_; }
  /// Bytes of every segment on disk.
  uint64_t diskBytes() const { return disk_bytes_; }
  /// Damage found so far: bytes skipped, and the latest note (which segment, where, what).
  uint64_t corruptBytes() const { return corrupt_bytes_; }
  const std::string& corruption() const { return corruption_; }
  /// Every note of damage so far, oldest first (the first kMaxDamageNotes, then one saying
  /// more was found). The owner logs the ones it has not told yet.
  const std::vector<std::string>& damageNotes() const { return damage_notes_; }
  static constexpr size_t kMaxDamageNotes = 64;
  const std::filesystem::path& dir() const { return dir_; }
  /// An I/O error of the last append or consume ("" when none).
  const std::string& lastError() const { return last_error_; }

 private:
  struct Segment {
    uint64_t bytes = 0;   ///< file size
    uint64_t frames = 0;  ///< valid frames in it (those before the cursor included)
    uint8_t max_tag = 0;
  };
  explicit DurableLog(std::filesystem::path dir, uint64_t segment_bytes);
  Result<void> scan();
  Result<void> startSegment(uint64_t id);
  std::filesystem::path segmentPath(uint64_t id) const;
  void readFrames(LogPosition& from, size_t max_frames, uint64_t max_bytes, std::vector<LogFrame>& out,
                  bool one_segment);
  /// Reads a segment's bytes [offset, offset+len) into buf (short at its end).
  bool readAt(uint64_t segment, uint64_t offset, size_t len, std::string& buf);
  void noteDamage(uint64_t segment, uint64_t offset, uint64_t bytes);
  void noteTrouble(std::string what);
  /// At open: whether segment `id` is one of this log's. A damaged header before an intact
  /// first frame (a flipped bit) is written again and the segment kept; a file holding no
  /// frame of ours is reported and removed. `newest`: an empty one is a crash after creation.
  bool keepSegment(uint64_t id, bool newest);
  /// At open: a closed segment whose valid frames end at `tail` inside a frame was cut short.
  void noteIfCutShort(uint64_t id, const Segment& seg, uint64_t tail);
  void writeCursor();
  void removeSegment(uint64_t id);
  /// consume() on a full disk with nothing left to read: the active segment's space goes.
  void freeActiveSegment();
  /// Frames of `segment` before `offset` (scans it).
  uint64_t framesBefore(uint64_t segment, uint64_t offset);

  std::filesystem::path dir_;
  uint64_t segment_bytes_;
  std::map<uint64_t, Segment> segments_;
  uint64_t active_ = 0;  ///< the segment being written
  int write_fd_ = -1;
  int read_fd_ = -1;
  uint64_t read_segment_ = 0;
  int cursor_fd_ = -1;
  int lock_fd_ = -1;  ///< `lock`, flock()ed while the log is open: one owner per directory
  /// Damage already counted (segment, offset): reading it again does not count it twice.
  std::set<std::pair<uint64_t, uint64_t>> damage_seen_;
  std::vector<uint64_t> unsynced_;  ///< segments written since the last unsyncedFds()
  LogPosition cursor_;
  uint64_t value_ = 0;
  uint64_t frames_ = 0;
  uint64_t disk_bytes_ = 0;
  uint64_t corrupt_bytes_ = 0;
  std::string corruption_;
  std::vector<std::string> damage_notes_;
  LogPosition last_damage_;  ///< where noteDamage() last counted bytes
  std::string last_error_;
  FrameBatch one_;  ///< append(tag, payload)'s batch of one
};

}  // namespace ganglion::edge
