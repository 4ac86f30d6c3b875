#include "edge/ingest_log.h"

#include <cstring>

#include "base/time.h"
#include "edge/queue/log_syncer.h"

namespace ganglion::edge {

namespace {

constexpr uint8_t kFormat = 1;

template <typename T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <typename T>
bool get(std::string_view& in, T& v) {
  if (in.size() < sizeof v) return false;
  std::memcpy(&v, in.data(), sizeof v);
  in.remove_prefix(sizeof v);
  return true;
}

/// A frame's payload: format, connector, first_seq, the items, the text.
void encode(const IncomingReadings& r, std::string& out) {
  out.clear();
  put(out, kFormat);
  put(out, static_cast<uint32_t>(r.connector.size()));
  out += r.connector;
  put(out, r.first_seq);
  put(out, static_cast<uint32_t>(r.items.size()));
  for (const auto& item : r.items) {
    put(out, item.device_at);
    put(out, item.device_len);
    put(out, item.metric_at);
    put(out, item.metric_len);
    put(out, item.attrs_at);
    put(out, item.attrs_len);
    put(out, item.ts);
    put(out, item.value);
    put(out, static_cast<uint8_t>(item.quality));
  }
  put(out, static_cast<uint32_t>(r.text.size()));
  out += r.text;
}

std::shared_ptr<IncomingReadings> decode(std::string_view in) {
  auto r = std::make_shared<IncomingReadings>();
  uint8_t format = 0;
  uint32_t n = 0;
  if (!get(in, format) || format != kFormat || !get(in, n) || in.size() < n) return nullptr;
  r->connector.assign(in.substr(0, n));
  in.remove_prefix(n);
  if (!get(in, r->first_seq) || !get(in, n) || n > in.size() / 41) return nullptr;
  r->items.resize(n);
  for (auto& item : r->items) {
    uint8_t quality = 0;
    if (!get(in, item.device_at) || !get(in, item.device_len) || !get(in, item.metric_at) ||
        !get(in, item.metric_len) || !get(in, item.attrs_at) || !get(in, item.attrs_len) ||
        !get(in, item.ts) || !get(in, item.value) || !get(in, quality) ||
        quality > static_cast<uint8_t>(Quality::kBad))
      return nullptr;
    item.quality = static_cast<Quality>(quality);
  }
  if (!get(in, n) || in.size() != n) return nullptr;
  r->text.assign(in);
  const uint64_t size = r->text.size();
  for (const auto& item : r->items)
    if (uint64_t{item.device_at} + item.device_len > size ||
        uint64_t{item.metric_at} + item.metric_len > size || uint64_t{item.attrs_at} + item.attrs_len > size)
      return nullptr;
  return r;
}

}  // namespace

Result<std::shared_ptr<IngestLog>> IngestLog::open(const std::filesystem::path& dir, LogSyncer* syncer) {
  auto log = DurableLog::open(dir, 16ull << 20);
  if (!log) return log.error();
  return std::shared_ptr<IngestLog>(
      new IngestLog(std::move(*log), dir, syncer ? *syncer : LogSyncer::shared()));
}

std::optional<LogPosition> IngestLog::append(const IncomingReadings& readings,
                                             const std::shared_ptr<DeliveryTicket>& ticket) {
  std::lock_guard lock(mutex_);
  encode(readings, scratch_);
  auto at = log_->append(0, scratch_);
  if (scratch_.capacity() > (1u << 20)) std::string().swap(scratch_);
  if (!at) {
    if (ticket) ticket->complete(false);
    return std::nullopt;
  }
  commit_.appended();
  if (ticket) commit_.wait(ticket);
  requestSync();
  return log_->end();
}

void IngestLog::requestSync() {
  const auto target = commit_.start();
  if (!target) return;
  std::vector<int> fds = log_->unsyncedFds();
  if (fds.empty()) {
    for (auto& t : commit_.finish(*target)) t->complete(true);
    return;
  }
  sync_started_ms_ = steadyMillis();
  syncer_.sync(std::move(fds), [self = shared_from_this(), t = *target](bool ok) { self->synced(t, ok); });
}

void IngestLog::synced(uint64_t target, bool ok) {
  std::vector<std::shared_ptr<DeliveryTicket>> done;
  {
    std::lock_guard lock(mutex_);
    if (sync_started_ms_ >= 0) {
      stalled_ms_ += std::max<int64_t>(0, steadyMillis() - sync_started_ms_ - kStallGraceMs);
      sync_started_ms_ = -1;
    }
    done = commit_.finish(target);
    if (commit_.behind()) requestSync();
  }
  for (auto& t : done) t->complete(ok);
}

std::vector<IngestLog::Entry> IngestLog::replay(uint64_t& max_seq) {
  std::lock_guard lock(mutex_);
  std::vector<Entry> out;
  LogPosition at = log_->cursor();
  std::vector<LogFrame> frames;
  while (true) {
    frames.clear();
    log_->read(at, 256, 16u << 20, frames);
    if (frames.empty()) break;
    for (const auto& f : frames) {
      auto r = decode(f.payload);
      if (!r) {
        ++undecodable_;
        continue;
      }
      if (!r->items.empty()) max_seq = std::max(max_seq, r->first_seq + r->items.size() - 1);
      out.push_back(Entry{std::move(r), f.next});
    }
  }
  max_seq = std::max(max_seq, log_->value());
  return out;
}

void IngestLog::trim(LogPosition upto, uint64_t frames, uint64_t next_seq) {
  std::lock_guard lock(mutex_);
  log_->consume(upto, frames, next_seq);
}

int64_t IngestLog::stalledMs() {
  std::lock_guard lock(mutex_);
  if (sync_started_ms_ < 0) return stalled_ms_;
  return stalled_ms_ + std::max<int64_t>(0, steadyMillis() - sync_started_ms_ - kStallGraceMs);
}

uint64_t IngestLog::storedSeq() {
  std::lock_guard lock(mutex_);
  return log_->value();
}

IngestLog::Stats IngestLog::stats() {
  std::lock_guard lock(mutex_);
  return {log_->frames(), log_->diskBytes(), log_->corruptBytes(), log_->corruption(), log_->damageNotes()};
}

}  // namespace ganglion::edge
