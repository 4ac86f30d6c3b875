#include "edge/queue/record_queue.h"

#include <algorithm>
#include <cstring>

namespace ganglion::edge {

// ---------------------------------------------------------------- in memory

uint64_t MemoryQueue::push(std::vector<QueuedRecord>& records) {
  for (auto& r : records) {
    bytes_ += r.json.size() + QueuedRecord::kOverhead;
    ++live_[r.drop_class];
    queue_.push_back(std::move(r));
  }
  uint64_t dropped = 0;
  while (bytes_ > max_bytes_ && dropOne()) ++dropped;
  popDroppedFront();
  return dropped;
}

bool MemoryQueue::dropOne() {
  for (uint8_t c = 0; c < kDropClasses; ++c) {
    if (!live_[c]) continue;
    uint64_t at = std::max({cursor_[c], inflight_end_, base_});
    for (; at < base_ + queue_.size(); ++at) {
      QueuedRecord& r = queue_[at - base_];
      if (r.dropped || r.drop_class != c) continue;
      r.dropped = true;
      bytes_ -= r.json.size() + QueuedRecord::kOverhead;
      std::string().swap(r.json);
      --live_[c];
      cursor_[c] = at + 1;
      return true;
    }
    cursor_[c] = at;
  }
  return false;  // everything left is in flight
}

void MemoryQueue::popDroppedFront() {
  // Records dropped at the front go first, so the oldest live one is found without walking
  // past every record an overflow dropped.
  while (!queue_.empty() && queue_.front().dropped && base_ >= inflight_end_) {
    queue_.pop_front();
    ++base_;
  }
}

const QueuedRecord* MemoryQueue::front() const {
  for (const auto& r : queue_)
    if (!r.dropped) return &r;
  return nullptr;
}

int64_t MemoryQueue::oldestMs() const {
  for (const auto& r : queue_)
    if (!r.dropped) return r.enqueued_ms;
  return 0;
}

uint32_t MemoryQueue::take(uint32_t max_records, std::string& body) {
  popDroppedFront();
  uint32_t in_batch = 0;
  size_t entries = 0;
  for (; entries < queue_.size() && in_batch < max_records; ++entries) {
    const QueuedRecord& r = queue_[entries];
    if (r.dropped) continue;
    if (in_batch++) body.push_back(',');
    body += r.json;
  }
  inflight_end_ = in_batch ? base_ + entries : 0;
  return in_batch;
}

uint32_t MemoryQueue::extend(uint32_t max_records, uint64_t max_bytes, std::string& body) {
  if (inflight_end_ == 0) return 0;
  uint32_t added = 0;
  uint64_t at = inflight_end_;
  for (; at < base_ + queue_.size() && added < max_records; ++at) {
    const QueuedRecord& r = queue_[at - base_];
    if (r.dropped) continue;
    if (body.size() + r.json.size() + 1 > max_bytes) break;
    if (added++) body.push_back(',');
    body += r.json;
  }
  inflight_end_ = at;
  return added;
}

void MemoryQueue::finish(bool delivered) {
  const uint64_t sent_until = inflight_end_;
  inflight_end_ = 0;
  if (delivered) {
    // Records dropped while in flight were sent anyway: they go as delivered.
    while (base_ < sent_until && !queue_.empty()) {
      QueuedRecord& r = queue_.front();
      if (!r.dropped) {
        bytes_ -= r.json.size() + QueuedRecord::kOverhead;
        --live_[r.drop_class];
      }
      queue_.pop_front();
      ++base_;
    }
    for (auto& c : cursor_) c = std::max(c, base_);
  }
  popDroppedFront();
}

void MemoryQueue::takeAll(std::vector<QueuedRecord>& out) {
  for (auto& r : queue_)
    if (!r.dropped) out.push_back(std::move(r));
  queue_.clear();
  base_ = inflight_end_ = bytes_ = 0;
  for (auto& c : cursor_) c = 0;
  for (auto& c : live_) c = 0;
}

// ---------------------------------------------------------------- on disk

Result<std::unique_ptr<DurableQueue>> DurableQueue::open(const std::string& dir, uint64_t max_bytes) {
  const uint64_t segment = std::clamp<uint64_t>(max_bytes / 32, 16 * 1024, DurableLog::kMaxSegmentBytes);
  auto log = DurableLog::open(dir, segment);
  if (!log) return log.error();
  std::unique_ptr<DurableQueue> q(new DurableQueue(std::move(*log), max_bytes));
  q->peekOldest();
  return q;
}

void DurableQueue::peekOldest() {
  frames_.clear();
  LogPosition at = log_->cursor();
  log_->read(at, 1, 1, frames_);
  oldest_ms_ = 0;
  if (!frames_.empty() && frames_[0].payload.size() >= 8)
    std::memcpy(&oldest_ms_, frames_[0].payload.data(), 8);
}

bool DurableQueue::addFrame(const QueuedRecord& r) {
  char stamp[8];
  std::memcpy(stamp, &r.enqueued_ms, 8);
  return batch_.add(r.drop_class, std::string_view(stamp, 8), r.json);
}

uint64_t DurableQueue::write(std::vector<QueuedRecord>& records) {
  // One write for the whole push (per segment it reaches).
  batch_.clear();
  uint64_t dropped = 0;
  std::vector<size_t> framed;  // which records are in batch_
  framed.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    if (addFrame(records[i])) {
      framed.push_back(i);
    } else {  // larger than a frame: no disk takes it
      ++write_failures_;
      ++dropped;
    }
  }
  const size_t written = log_->append(batch_);
  batch_.clear();
  if (written == framed.size()) return dropped;
  // The disk refused one: it and every one after it wait in memory, in order.
  std::vector<QueuedRecord> rest;
  rest.reserve(framed.size() - written);
  for (size_t k = written; k < framed.size(); ++k) rest.push_back(std::move(records[framed[k]]));
  write_failures_ += rest.size();
  const uint64_t lost = held_.push(rest);
  held_dropped_ += lost;
  return dropped + lost;
}

uint64_t DurableQueue::writeHeld() {
  const QueuedRecord* first = held_.front();
  if (!first) return 0;
  batch_.clear();
  const bool taken = addFrame(*first) && log_->append(batch_) == 1;
  batch_.clear();
  if (!taken) return 0;
  std::vector<QueuedRecord> again;
  held_.takeAll(again);
  again.erase(again.begin());  // on disk now
  const uint64_t refused_before = write_failures_;
  const uint64_t dropped = write(again);
  write_failures_ = refused_before;  // each was counted when the disk first refused it
  return dropped;
}

uint64_t DurableQueue::push(std::vector<QueuedRecord>& records) {
  const bool was_empty = log_->frames() == 0;
  uint64_t dropped = 0;
  if (held_.records() && !held_in_flight_) dropped += writeHeld();
  if (held_.records()) {  // after them, in memory too
    const uint64_t lost = held_.push(records);
    held_dropped_ += lost;
    dropped += lost;
  } else {
    dropped += write(records);
  }
  // The cap: whole segments of readings first, then of windows, then anything; never the
  // segment being written or the ones the batch in flight reads.
  const LogPosition keep = in_flight_ ? inflight_end_ : LogPosition{};
  for (uint8_t below = 1; below <= kDropClasses && log_->diskBytes() > max_bytes_;) {
    const uint64_t before = log_->diskBytes();
    dropped += log_->shed(below, keep);
    if (log_->diskBytes() == before) ++below;  // nothing of this class left to shed
  }
  if (was_empty || dropped) peekOldest();
  return dropped;
}

namespace {

/// Appends the records `frames` hold (a frame's payload: 8 bytes of enqueued_ms, then the
/// record's JSON) to `body`, comma-separated, while `body` stays within `max_bytes`; a frame
/// too short to be one of ours is skipped, and taken with them. Returns the records appended;
/// `taken` gets the frames used, from the first.
uint32_t appendRecords(const std::vector<LogFrame>& frames, uint64_t max_bytes, std::string& body,
                       size_t& taken) {
  uint32_t n = 0;
  for (taken = 0; taken < frames.size(); ++taken) {
    const LogFrame& f = frames[taken];
    if (f.payload.size() < 8) continue;
    if (body.size() + f.payload.size() - 8 + 1 > max_bytes) break;
    if (n++) body.push_back(',');
    body.append(f.payload, 8);
  }
  return n;
}

}  // namespace

uint32_t DurableQueue::take(uint32_t max_records, std::string& body) {
  if (log_->frames() == 0 && held_.records()) {  // the disk's are all gone: then these
    const uint32_t n = held_.take(max_records, body);
    held_in_flight_ = n > 0;
    return n;
  }
  while (true) {
    frames_.clear();
    LogPosition at = log_->cursor();
    log_->read(at, max_records, 8u << 20, frames_);
    size_t taken = 0;  // all of them: no byte limit here (read() had one)
    const uint32_t n = appendRecords(frames_, UINT64_MAX, body, taken);
    in_flight_ = !frames_.empty();
    inflight_end_ = at;
    inflight_frames_ = frames_.size();
    if (!in_flight_ || n) return n;
    finish(true);  // only frames that are not records: they go at once
  }
}

uint32_t DurableQueue::extend(uint32_t max_records, uint64_t max_bytes, std::string& body) {
  if (held_in_flight_) return held_.extend(max_records, max_bytes, body);
  if (!in_flight_) return 0;
  // Only from the log: records the disk refused come after all of it, in a batch of their own.
  frames_.clear();
  LogPosition at = inflight_end_;
  log_->read(at, max_records, max_bytes, frames_);
  size_t taken = 0;
  const uint32_t n = appendRecords(frames_, max_bytes, body, taken);
  if (taken) inflight_end_ = frames_[taken - 1].next;
  inflight_frames_ += taken;
  return n;
}

void DurableQueue::finish(bool delivered) {
  if (held_in_flight_) {
    held_in_flight_ = false;
    held_.finish(delivered);
    return;
  }
  if (!in_flight_) return;
  in_flight_ = false;
  if (delivered) {
    log_->consume(inflight_end_, inflight_frames_);
    peekOldest();
  }
}

void DurableQueue::takeAll(std::vector<QueuedRecord>& out) {
  in_flight_ = false;
  LogPosition at = log_->cursor();
  uint64_t n = 0;
  while (true) {
    frames_.clear();
    log_->read(at, 4096, 64u << 20, frames_);
    if (frames_.empty()) break;
    for (auto& f : frames_) {
      ++n;
      if (f.payload.size() < 8) continue;
      QueuedRecord& r = out.emplace_back();
      std::memcpy(&r.enqueued_ms, f.payload.data(), 8);
      r.json = f.payload.substr(8);
      r.drop_class = std::min<uint8_t>(f.tag, kDropClasses - 1);
    }
  }
  log_->consume(at, n);
  oldest_ms_ = 0;
  held_in_flight_ = false;
  held_.takeAll(out);
}

}  // namespace ganglion::edge
