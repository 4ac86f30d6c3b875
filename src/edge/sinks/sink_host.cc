#include "edge/sinks/sink_host.h"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <random>

#include "base/log.h"
#include "base/strings.h"
#include "base/time.h"
#include "config/schema.h"
#include "edge/connectors/mqtt_connector.h"
#include "edge/edge_runtime.h"
#include "edge/rules/rule_runner.h"
#include "edge/sinks/line_protocol.h"
#include "edge/sinks/record_batch.h"
#include "edge/sinks/tsdb.h"
#include "loop/pools.h"
#include "upstream/exchange.h"
#include "upstream/http_url.h"

namespace ganglion::edge {

namespace asio = boost::asio;
namespace json = boost::json;

uint8_t dropClass(RecordKind k) {
  switch (k) {
    case RecordKind::kReading:
      return 0;
    case RecordKind::kWindow:
      return 1;
    default:
      return 2;
  }
}

std::string sinkFingerprint(const SinkConfig& s) {
  json::object o = config::fieldsToJson(sinkSchema(), s);
  json::object headers;
  for (const auto& [name, value] : s.headers) headers[name] = value;  // a changed token is a change
  o["headers"] = std::move(headers);
  return json::serialize(o);
}

std::optional<uint32_t> droppedOf(std::string_view message) {
  const size_t at = message.rfind("dropped=");
  if (at == std::string_view::npos) return std::nullopt;
  uint32_t n = 0;
  const char* begin = message.data() + at + 8;
  auto [end, ec] = std::from_chars(begin, message.data() + message.size(), n);
  if (ec != std::errc() || end == begin) return std::nullopt;
  return n;
}

std::string refusalMessage(std::string_view body) {
  std::string text(body);
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (!ec && v.is_object())
    for (const char* key : {"error", "message"})
      if (const json::value* m = v.get_object().if_contains(key); m && m->is_string()) {
        text = m->get_string();
        break;
      }
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  if (text.size() > 300) text = text.substr(0, 297) + "...";
  return text;
}

SinkHost::SinkHost(EdgeHost& host, SinkConfig config, size_t worker, std::string queue_dir,
                   std::string tsdb_path)
    : host_(host),
      config_(std::move(config)),
      worker_(worker),
      fingerprint_(sinkFingerprint(config_)),
      queue_dir_(std::move(queue_dir)),
      tsdb_path_(std::move(tsdb_path)),
      upstream_name_("sink:" + config_.name),
      label_(config_.kind == kOutbox ? fmt::format("connector '{}' outbox", config_.name)
                                     : fmt::format("sink '{}'", config_.name)) {
  host_header_ = upstream::hostHeader(config_.host, config_.port, config_.https);
}

SinkHost::~SinkHost() = default;

SinkConfig SinkHost::outboxConfig(const ConnectorConfig& c) {
  SinkConfig o;
  o.name = c.name;
  o.kind = kOutbox;
  o.connector = c.name;
  o.queue.durable = c.outbox.durable;
  o.queue.max_bytes = c.outbox.max_bytes;
  o.batch.max_records = MqttConnector::kMaxOutgoing / 2;
  o.batch.max_delay = Millis(0);
  o.retry.initial = Millis(100);
  o.retry.max = Millis(2'000);
  return o;
}

void SinkHost::start(std::shared_ptr<SinkHost> previous) {
  wake_ = std::make_unique<asio::steady_timer>(host_.worker(worker_).io());
  acks_ = std::make_unique<asio::steady_timer>(host_.worker(worker_).io());
  std::unique_ptr<RecordQueue> handed;
  if (previous) {
    inherited_ = std::exchange(previous->inflight_acks_, nullptr);
    if (inherited_) inherited_->waiter = weak_from_this();
    handed = std::move(previous->queue_);
    durable_ = std::exchange(previous->durable_, nullptr);
    told_damage_notes_ = previous->told_damage_notes_;  // its damage was logged once already
    held_waiters_ = std::exchange(previous->held_waiters_, {});
    memory_waiters_ = std::exchange(previous->memory_waiters_, {});
    previous->successor_ = weak_from_this();  // late records and waiters come here
    previous->stop();
  }
  if (handed && (durable_ != nullptr) == config_.queue.durable &&
      (!durable_ || durable_->log().dir() == std::filesystem::path(queue_dir_))) {
    queue_ = std::move(handed);
    queue_->setMaxBytes(config_.queue.max_bytes);
    inherited_queue_ = true;
    queued_total_ = queue_->records();
  } else {
    durable_ = nullptr;
    told_damage_notes_ = 0;
    openQueue();
    if (handed) {  // durable on or off: what waited moves over, in order
      std::vector<QueuedRecord> records;
      handed->takeAll(records);
      push(records);
    }
  }
  // The predecessor's waiters for what its memory held wait here for the same records.
  for (auto& [queued, w] : std::exchange(memory_waiters_, {})) whenSynced(std::move(w));
  publish();
  started.store(true);
  asio::co_spawn(host_.worker(worker_).io(), run(shared_from_this()), asio::detached);
}

void SinkHost::stop() {
  stopped_ = true;
  durable_ = nullptr;
  queue_.reset();
  if (wake_) wake_->cancel();
  if (acks_) acks_->cancel();
}

void SinkHost::enqueue(std::vector<QueuedRecord> records) {
  if (stopped_) {
    // Replaced: its successor (same name, so the same worker) takes them; retired: gone.
    if (auto next = successor_.lock()) next->enqueue(std::move(records));
    return;
  }
  const int64_t now = wallMillis();
  for (auto& r : records) r.enqueued_ms = now;
  push(records);
  publish();
  if (waiting_for_records_) wake_->cancel();  // never a backoff: new records do not make the receiver well
  if (extending_) {                           // they may join the batch in flight (publishBatch)
    records_came_ = true;
    acks_->cancel();
  }
}

void SinkHost::whenSynced(std::function<void()> done) {
  if (stopped_)
    if (auto next = successor_.lock()) return next->whenSynced(std::move(done));
  if (!durable_) {
    if (!config_.queue.durable || doneTotal() >= queued_total_) return done();
    memory_waiters_.emplace_back(queued_total_, std::move(done));
    return;
  }
  if (durable_->heldRecords()) return held_waiters_.push_back(std::move(done));
  commit_.wait(std::move(done));
  requestSync();
}

void SinkHost::openQueue() {
  if (config_.queue.durable) {
    auto opened = DurableQueue::open(queue_dir_, config_.queue.max_bytes);
    if (opened) {
      durable_ = opened->get();
      queue_ = std::move(*opened);
      if (durable_->records())
        logLine(
            fmt::format("edge: {} resumes {} records queued in {}", label_, durable_->records(), queue_dir_));
      return;
    }
    // Kept running in memory, loudly: the operator sees why in the log and GET /edge.
    const std::string why = fmt::format("durable queue {} unusable, records wait in memory: {}", queue_dir_,
                                        opened.error().message);
    logLine(fmt::format("edge: {}: {}", label_, why));
    noteQueueError(why);
  }
  queue_ = std::make_unique<MemoryQueue>(config_.queue.max_bytes);
}

void SinkHost::push(std::vector<QueuedRecord>& records) {
  const uint64_t refused_before = durable_ ? durable_->writeFailures() : 0;
  const uint64_t held_lost_before = durable_ ? durable_->heldDropped() : 0;
  queued_total_ += records.size();
  const uint64_t n = queue_->push(records);
  commit_.appended(records.size());
  if (n) dropped.fetch_add(n, std::memory_order_relaxed);
  // Records the disk refused are not the cap's doing: said apart, with the disk's reason.
  const uint64_t refused = durable_ ? durable_->writeFailures() - refused_before : 0;
  const uint64_t held_lost = durable_ ? durable_->heldDropped() - held_lost_before : 0;
  const uint64_t over_cap = n - std::min(n, held_lost);
  const int64_t now = steadyMillis();
  if (over_cap) {
    // Once per episode (until the queue is back under half), and at most once a minute: a
    // cap smaller than a segment sheds at every push.
    if (!overflowing_ && now - told_overflow_ms_ >= 60'000) {
      told_overflow_ms_ = now;
      logLine(fmt::format(
          "edge: {} holds {}max_bytes ({} bytes): dropping the oldest readings, then windows ({})", label_,
          config_.kind == kOutbox ? "outbox." : "queue.", config_.queue.max_bytes,
          config_.kind == kOutbox ? "ganglion_edge_outbox_dropped_total"
                                  : "ganglion_edge_sink_dropped_total"));
    }
    overflowing_ = true;
  } else if (overflowing_ && queue_->bytes() < config_.queue.max_bytes / 2) {
    overflowing_ = false;
  }
  if (refused) {
    const std::string why = fmt::format(
        "the durable queue refused {} records ({}): they wait in memory (up to {} bytes; {} dropped past it) "
        "and go to disk again when it takes them",
        refused, durable_->log().lastError(), std::min(config_.queue.max_bytes, DurableQueue::kMaxHeldBytes),
        durable_->heldDropped());
    if (now - told_refused_ms_ >= 60'000) {
      told_refused_ms_ = now;
      logLine(fmt::format("edge: {}: {} (counted in write_failures)", label_, why));
    }
    noteQueueError(why);
    queue_error_is_refusal_ = true;
  }
  if (durable_) requestSync();
}

void SinkHost::requestSync() {
  if (!durable_) return;
  const auto target = commit_.start();
  if (!target) return;
  std::vector<int> fds = durable_->log().unsyncedFds();
  if (fds.empty()) return synced(*target, true);
  LogSyncer::shared().sync(std::move(fds), [self = shared_from_this(), t = *target](bool ok) {
    self->host_.worker(self->worker_).post([self, t, ok] { self->synced(t, ok); });
  });
}

void SinkHost::synced(uint64_t target, bool ok) {
  if (!ok) noteError("fsync of the durable queue failed", false);
  for (auto& done : commit_.finish(target)) done();
  if (commit_.behind()) requestSync();
}

void SinkHost::publish() {
  while (!memory_waiters_.empty() && memory_waiters_.front().first <= doneTotal()) {
    auto w = std::move(memory_waiters_.front().second);
    memory_waiters_.pop_front();
    w();
  }
  if (!held_waiters_.empty() && (!durable_ || !durable_->heldRecords())) {  // see held_waiters_
    auto waiters = std::exchange(held_waiters_, {});
    for (auto& w : waiters) {
      if (durable_)
        commit_.wait(std::move(w));
      else
        w();  // a queue in memory now: nothing to wait for
    }
    if (durable_) requestSync();
  }
  queued_records.store(queue_->records(), std::memory_order_relaxed);
  queued_bytes.store(queue_->bytes(), std::memory_order_relaxed);
  oldest_enqueued_ms.store(queue_->oldestMs(), std::memory_order_relaxed);
  durable.store(durable_ != nullptr, std::memory_order_relaxed);
  if (durable_) {
    corrupt_bytes.store(durable_->log().corruptBytes(), std::memory_order_relaxed);
    write_failures.store(durable_->writeFailures(), std::memory_order_relaxed);
    held_in_memory.store(durable_->heldRecords(), std::memory_order_relaxed);
    if (queue_error_is_refusal_ && !durable_->heldRecords()) {  // all on disk again: over
      queue_error_is_refusal_ = false;
      noteQueueError("");
      logLine(
          fmt::format("edge: {}: the durable queue takes records again (write_failures counts those it "
                      "refused)",
                      label_));
    }
    // Each piece of damage is logged once (several files can be found damaged at once).
    const auto& notes = durable_->log().damageNotes();
    if (told_damage_notes_ < notes.size()) {
      for (; told_damage_notes_ < notes.size(); ++told_damage_notes_)
        logLine(fmt::format("edge: {}: damaged queue data skipped: {}", label_, notes[told_damage_notes_]));
      std::lock_guard lock(error_mutex);
      corruption = durable_->log().corruption();
    }
  }
}

void SinkHost::noteError(std::string what, bool delivery) {
  if (delivery) failures.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(error_mutex);
  last_error = std::move(what);
}

asio::awaitable<void> SinkHost::sleep(int64_t ms, bool for_records) {
  wake_->expires_after(std::chrono::milliseconds(ms));
  waiting_for_records_ = for_records;
  co_await wake_->async_wait(asio::as_tuple(asio::use_awaitable));
  waiting_for_records_ = false;
}

asio::awaitable<SinkHost::Attempt> SinkHost::writeLocal(std::string_view records) {
  if (!tsdb_) {
    auto opened = co_await loop::runBlocking([path = &tsdb_path_] { return TsdbStore::open(*path); });
    if (!opened) {
      noteError(opened.error().message);
      co_return Attempt{};
    }
    tsdb_ = std::move(*opened);
  }
  TsdbStore* store = tsdb_.get();
  auto written = co_await loop::runBlocking([store, records] { return store->write(records); });
  if (!written) {
    noteError(written.error().message);
    co_return Attempt{};
  }
  if (written->unusable)
    noteError(fmt::format("{} records could not be stored and were dropped: {}", written->unusable,
                          written->unusable_reason),
              false);
  const uint64_t max_bytes = config_.max_bytes;
  auto shrunk = co_await loop::runBlocking([store, max_bytes] { return store->shrinkTo(max_bytes); });
  if (shrunk)
    evicted.fetch_add(*shrunk, std::memory_order_relaxed);
  else
    noteError(shrunk.error().message, false);
  if (const int64_t now = steadyMillis(); now - pruned_ms_ >= 60'000) {
    pruned_ms_ = now;
    const int64_t before = wallMillis() - config_.retention.count();
    auto pruned = co_await loop::runBlocking([store, before] { return store->prune(before); });
    if (pruned)
      expired.fetch_add(*pruned, std::memory_order_relaxed);
    else
      noteError(pruned.error().message, false);
  }
  co_return Attempt{End::kDelivered, written->stored + written->duplicates, written->unusable};
}

std::string SinkHost::said(std::string_view refusal) const {
  constexpr std::string_view kRedacted = "<redacted>";
  std::string text = refusalMessage(refusal);
  for (const auto& [name, value] : config_.headers) {
    if (value.size() < 4) continue;
    for (size_t at = text.find(value); at != std::string::npos; at = text.find(value, at + kRedacted.size()))
      text.replace(at, value.size(), kRedacted);
  }
  return text;
}

size_t SinkHost::toMessages(std::string_view records, std::vector<Message>& out, std::string& why) {
  const bool outbox = config_.kind == kOutbox;
  size_t bytes = 0;
  std::string error;
  forEachRecord(
      records,
      [&](std::string_view text, const json::object* record) {
        Message m;
        if (!record) {
          if (why.empty()) why = "it is not a JSON object";
          return;
        }
        if (outbox) {
          if (!outboxMessage(*record, rule_stats_.get(), m, error)) {
            if (why.empty()) why = error;
            return;
          }
        } else {
          m.topic = topicOf(config_.topic, *record, error);
          if (m.topic.empty()) {
            if (why.empty()) why = error;
            return;
          }
          m.payload = text;
          m.qos = static_cast<uint8_t>(config_.qos);
          m.retain = config_.retain;
        }
        bytes += m.topic.size() + m.payload.size();
        out.push_back(std::move(m));
      },
      error);
  if (why.empty()) why = error;
  return bytes;
}

void SinkHost::handOver(const std::shared_ptr<MqttConnector>& connector,
                        const std::shared_ptr<PublishAcks>& acks, bool first_try,
                        std::vector<Message> messages) {
  loop::Worker& home = host_.worker(worker_);
  auto hand_over = [connector, self = shared_from_this(), acks, &home, first_try,
                    messages = std::move(messages)]() mutable {
    for (auto& m : messages) {
      connector->publish(std::move(m.topic), std::move(m.payload), m.qos, m.retain,
                         [self, acks, &home](int reason) {
                           home.post([self, acks, reason] {
                             if (reason == 0) {
                               ++acks->delivered;
                             } else if (refusedForGood(reason)) {
                               ++acks->refused;
                             } else {
                               if (!acks->failed++) acks->reason = reason;
                               if (reason == MqttConnector::kDropped) ++acks->given_up;
                             }
                             if (--acks->waiting == 0)
                               if (auto waiter = acks->waiter.lock(); waiter && waiter->acks_)
                                 waiter->acks_->cancel();
                           });
                         });
      if (m.timed && first_try) m.timed->notePublishLatency(steadyNanos() - m.arrived_ns);
    }
  };
  // An outbox runs on its connector's worker: handed over now, not one turn of the loop later
  // (the acknowledgements are posted either way, so none arrives before the wait below).
  if (&connector->worker() == &home)
    hand_over();
  else
    connector->worker().post(std::move(hand_over));
}

asio::awaitable<SinkHost::Attempt> SinkHost::publishBatch(std::string_view records, uint32_t in_batch) {
  auto connector = connector_;
  const bool outbox = config_.kind == kOutbox;
  if (!connector || (!outbox && !connector->stats()->connected.load(std::memory_order_relaxed))) {
    noteError(fmt::format("connector '{}' is not {}", config_.connector,
                          connector ? "connected to its broker" : "running"));
    co_return Attempt{};
  }
  std::vector<Message> messages;
  std::string unroutable_why;
  const size_t bytes = toMessages(records, messages, unroutable_why);
  if (bytes > MqttConnector::kMaxOutgoingBytes / 2 && in_batch > 1) {  // more than the connector keeps
    batch_limit_ = std::max<uint32_t>(1, in_batch / 2);
    co_return Attempt{End::kSplit};
  }
  uint32_t unroutable = in_batch - static_cast<uint32_t>(messages.size());
  if (messages.empty()) co_return Attempt{End::kDelivered, 0, unroutable};
  auto acks = std::make_shared<PublishAcks>();
  acks->waiting = messages.size();
  acks->waiter = weak_from_this();
  size_t sent = messages.size();
  // Timed at their first hand-off only: a batch sent again is not timed again.
  const bool first_try = failed_in_row_ == 0 && isolate_left_ == 0;
  std::string single_topic = messages.size() == 1 ? messages[0].topic : std::string();
  handOver(connector, acks, first_try, std::move(messages));
  inflight_acks_ = acks;
  // Records queued while the batch waits for the broker (an alarm that fires meanwhile) join
  // it at once instead of waiting that round trip: a first try of an outbox only (a batch
  // sent again, or one message at a time, goes as it is), up to half of what the connector
  // keeps. A failure sends the whole of it again, as any failed batch.
  constexpr uint32_t kMaxRecords = MqttConnector::kMaxOutgoing / 2;
  constexpr uint64_t kMaxBytes = MqttConnector::kMaxOutgoingBytes / 2;
  uint32_t taken = in_batch;
  uint64_t taken_bytes = records.size();
  extending_ = outbox && first_try && taken < kMaxRecords && taken_bytes < kMaxBytes;
  std::string more;
  while (true) {
    records_came_ = false;
    co_await waitFor(*acks);
    if (acks->waiting == 0 || stopped_ || !records_came_ || !queue_) break;
    // With the broker away they wait in the queue (on disk when durable), not in the connector.
    if (!connector->stats()->connected.load(std::memory_order_relaxed)) continue;
    more.clear();
    const uint32_t n = queue_->extend(kMaxRecords - taken, kMaxBytes - taken_bytes, more);
    if (n == 0) continue;
    taken += n;
    taken_bytes += more.size() + 1;
    extending_ = taken < kMaxRecords && taken_bytes < kMaxBytes;
    std::vector<Message> joined;
    toMessages(more, joined, unroutable_why);
    unroutable += n - static_cast<uint32_t>(joined.size());
    if (joined.empty()) continue;
    acks->waiting += joined.size();
    sent += joined.size();
    single_topic.clear();
    this->joined.fetch_add(joined.size(), std::memory_order_relaxed);
    handOver(connector, acks, first_try, std::move(joined));
  }
  extending_ = false;
  inflight_acks_ = nullptr;
  in_batch = taken;
  if (unroutable)
    noteError(fmt::format("{} records could not be published and were dropped: the first because {}",
                          unroutable, unroutable_why),
              false);
  if (acks->waiting > 0) co_return Attempt{};  // stopped: the successor took them over (start())
  if (acks->failed && outbox && acks->given_up == 0) {
    // The broker refused (not authorized, quota exceeded): the batch goes again one message
    // at a time, so that the refused one is alone; past kMaxRefusals in a row, or at the
    // first refusal of a topic that was dropped so within the last minute, it is dropped,
    // so that a message the broker will not take cannot hold every alarm behind it. A
    // quota exceeded is the broker's state, not the message's: it is waited out.
    const std::string why = MqttConnector::publishReasonText(acks->reason);
    if (in_batch > 1) {
      batch_limit_ = 1;
      isolate_left_ = in_batch;
      noteError(fmt::format("the broker refused {} of {} messages ({}): they are sent again one by one",
                            acks->failed, sent, why));
      co_return Attempt{};
    }
    constexpr int kQuotaExceeded = 0x97;
    if (acks->reason != kQuotaExceeded) {
      const bool denied_lately = deniedLately(single_topic);
      if (denied_lately || ++refusals_in_row_ >= kMaxRefusals) {
        noteError(
            denied_lately
                ? fmt::format("the broker refused a message ({}) to a topic it refused {} times in a row "
                              "within the last minute: it was dropped",
                              why, kMaxRefusals)
                : fmt::format("the broker refused a message {} times in a row ({}): it was dropped",
                              refusals_in_row_, why));
        noteDenied(single_topic);
        refusals_in_row_ = 0;
        co_return Attempt{End::kRefused, 0, 1};
      }
    }
    noteError(fmt::format("the broker refused the message ({}): it is sent again", why));
    co_return Attempt{};
  }
  if (acks->failed) {
    noteError(fmt::format("{} of {} messages were not delivered ({}): the batch is sent again", acks->failed,
                          sent, MqttConnector::publishReasonText(acks->reason)));
    co_return Attempt{};
  }
  if (acks->refused)
    noteError(fmt::format("the broker refused {} messages for good: they were dropped", acks->refused));
  co_return Attempt{End::kDelivered, acks->delivered, unroutable + acks->refused};
}

asio::awaitable<SinkHost::Attempt> SinkHost::postBatch(const std::string& body, uint32_t in_batch,
                                                       const LineProtocolBatch* lines) {
  const bool influx = lines != nullptr;
  const uint32_t unwritable = influx ? in_batch - std::min(in_batch, lines->lines) : 0;
  if (unwritable)
    noteError(fmt::format("{} records had nothing line protocol can carry and were left out: the first "
                          "because {}",
                          unwritable, lines->skip_reason.empty() ? "it was not JSON" : lines->skip_reason),
              false);
  if (unwritable == in_batch) co_return Attempt{End::kRefused, 0, unwritable};
  auto up = host_.upstream(worker_, upstream_name_);
  if (!up) {
    noteError("the sink's upstream is not installed yet");
    co_return Attempt{};
  }
  upstream::BufferedRequest req;
  req.method = "POST";
  req.path = config_.path;
  req.headers = config_.headers;
  if (influx) req.content_type = "text/plain; charset=utf-8";
  req.body = body;
  auto answered =
      co_await upstream::exchangeIgnoringBody(host_.worker(worker_), *up, host_header_, req, config_.timeout);
  const int status = answered.status;
  if (!status) {
    noteError(answered.failure);
    co_return Attempt{};
  }
  if (status >= 200 && status < 300) co_return Attempt{End::kDelivered, in_batch - unwritable, unwritable};
  if (status == 413 && in_batch > 1) {
    // Too large for the receiver: the same records again, in halves, at once.
    batch_limit_ = std::max<uint32_t>(1, in_batch / 2);
    noteError(fmt::format("the receiver answered 413 to {} records: batches now hold at most {}", in_batch,
                          batch_limit_));
    co_return Attempt{End::kSplit};
  }
  const std::string message = said(answered.refusal);
  if (status != 413 && !(influx && (status == 400 || status == 422))) {
    noteError(
        fmt::format("the receiver answered {}{}{}", status, answered.refusal.empty() ? "" : ": ", message));
    co_return Attempt{};
  }
  // InfluxDB 1.x writes a batch's good lines and says how many it dropped
  // ("partial write: ... dropped=N"): the rest were stored.
  const uint32_t kept =
      influx ? lines->lines - std::min(lines->lines, droppedOf(message).value_or(lines->lines)) : 0;
  if (kept)
    noteError(fmt::format("InfluxDB stored {} of {} lines and refused {} for good ({}: {})", kept,
                          lines->lines, lines->lines - kept, status, message));
  else
    noteError(fmt::format("the receiver refused {} records for good ({}{}{}): they were dropped", in_batch,
                          status, answered.refusal.empty() ? "" : ": ", message));
  co_return Attempt{End::kRefused, kept, in_batch - kept};
}

asio::awaitable<void> SinkHost::waitFor(const PublishAcks& acks) {
  while (acks.waiting > 0 && !stopped_ && !records_came_) {
    acks_->expires_at(asio::steady_timer::time_point::max());
    co_await acks_->async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

bool SinkHost::deniedLately(const std::string& topic) {
  const int64_t now = steadyMillis();
  while (!denied_topics_.empty() && now - denied_topics_.front().second > 60'000) denied_topics_.pop_front();
  return std::any_of(denied_topics_.begin(), denied_topics_.end(),
                     [&](const auto& d) { return d.first == topic; });
}

void SinkHost::noteDenied(const std::string& topic) {
  constexpr size_t kMaxDeniedTopics = 256;
  denied_topics_.emplace_back(topic, steadyMillis());
  if (denied_topics_.size() > kMaxDeniedTopics) denied_topics_.pop_front();
}

asio::awaitable<void> SinkHost::deliverLoop() {
  const bool http = config_.kind == "http";
  const bool publishes = config_.kind == "mqtt" || config_.kind == kOutbox;
  std::string body, records;
  if (auto inherited = std::exchange(inherited_, nullptr)) {
    // A replaced predecessor's batch is still with the connector: handing it over again
    // would send it twice (and, while the broker is away, pile copies up in the connector).
    inflight_acks_ = inherited;  // replaced in turn: the next one waits for them
    co_await waitFor(*inherited);
    inflight_acks_ = nullptr;
    if (inherited->waiting > 0) co_return;
    // The queue it was taken from came over as it was: it still holds the batch in flight.
    if (inherited_queue_ && queue_) {
      const bool gone = inherited->failed == 0;
      queue_->finish(gone);
      if (gone) {
        delivered.fetch_add(inherited->delivered, std::memory_order_relaxed);
        rejected.fetch_add(inherited->refused, std::memory_order_relaxed);
      }
      publish();
    }
  }
  while (!stopped_) {
    const uint64_t live = queue_->records();
    if (live == 0 || paused_ || (publishes && !connector_)) {  // bindConnector(), setPaused() wake it
      co_await sleep(3'600'000, true);
      continue;
    }
    // A record queued "later" than now (the wall clock stepped back) has waited long enough.
    int64_t age = wallMillis() - queue_->oldestMs();
    if (age < 0) age = config_.batch.max_delay.count();
    if (live < config_.batch.max_records && age < config_.batch.max_delay.count()) {
      co_await sleep(
          std::min<int64_t>(config_.batch.max_delay.count() - age, config_.batch.max_delay.count()), true);
      continue;
    }
    // The batch: the first max_records records (fewer once the receiver said 413), in order.
    uint32_t limit = std::min(config_.batch.max_records, batch_limit_);
    // An mqtt batch waits in its connector's outgoing queue: at most half of what it keeps.
    if (publishes) limit = std::min<uint32_t>(limit, MqttConnector::kMaxOutgoing / 2);
    uint32_t in_batch = 0;
    if (http) {  // the records go out as they are: straight into the body
      body.assign("{\"records\":[");
      in_batch = queue_->take(limit, body);
      body += "]}";
    } else {
      records.clear();
      in_batch = queue_->take(limit, records);
    }
    if (in_batch == 0) {
      queue_->finish(true);
      publish();
      continue;
    }
    Attempt a;
    if (http) {
      a = co_await postBatch(body, in_batch, nullptr);
    } else if (config_.kind == "influxdb") {
      body.clear();
      const LineProtocolBatch lines = appendLineProtocol(records, config_.precision, body);
      a = co_await postBatch(body, in_batch, &lines);
    } else if (publishes) {
      a = co_await publishBatch(records, in_batch);
    } else {
      a = co_await writeLocal(records);
    }
    if (stopped_ && !queue_) co_return;  // replaced while in flight: the successor owns the queue
    const bool gone = a.end == End::kDelivered || a.end == End::kRefused;
    queue_->finish(gone);
    publish();
    if (gone) {
      // The receiver answered: the next batch owes no backoff.
      failed_in_row_ = 0;
      if (a.end == End::kDelivered) refusals_in_row_ = 0;
      // An outbox sends a refused batch again one message at a time, then batches as before.
      if (isolate_left_ && --isolate_left_ == 0) batch_limit_ = UINT32_MAX;
      delivered.fetch_add(a.delivered, std::memory_order_relaxed);
      rejected.fetch_add(a.rejected, std::memory_order_relaxed);
      if (a.end == End::kDelivered) batches.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (a.end == End::kSplit) continue;  // the same records again at once, fewer at a time
    ++failed_in_row_;
    co_await sleep(
        doublingBackoffMs(config_.retry.initial.count(), config_.retry.max.count(), failed_in_row_), false);
  }
}

bool SinkHost::refusedForGood(int reason) {
  return reason == 0x90 || reason == 0x95 || reason == 0x99 || reason == MqttConnector::kLostTooOften;
}

uint64_t SinkHost::runToken() {
  static const uint64_t token = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32 | rd()) >> 11;  // exact as a JSON number (53 bits)
  }();
  return token;
}

std::string SinkHost::outboxRecord(std::string_view topic, std::string_view payload, uint32_t qos,
                                   bool retain, std::string_view rule, int64_t arrived_ns) {
  std::string out;
  out.reserve(payload.size() + payload.size() / 8 + topic.size() + rule.size() + 96);
  out += "{\"topic\":\"";
  appendJsonEscaped(out, topic);
  fmt::format_to(std::back_inserter(out), "\",\"qos\":{},\"retain\":{},\"payload\":\"", qos, retain);
  appendJsonEscaped(out, payload);
  out += '"';
  if (!rule.empty()) {
    out += ",\"rule\":\"";
    appendJsonEscaped(out, rule);
    fmt::format_to(std::back_inserter(out), "\",\"run\":{},\"arrived_ns\":{}", runToken(), arrived_ns);
  }
  out += '}';
  return out;
}

bool SinkHost::outboxMessage(const json::object& record, const RuleStatsList* stats, Message& m,
                             std::string& why) {
  const json::value* topic = record.if_contains("topic");
  const json::value* payload = record.if_contains("payload");
  const json::value* qos = record.if_contains("qos");
  const json::value* retain = record.if_contains("retain");
  if (!topic || !topic->is_string() || topic->get_string().empty() || !payload || !payload->is_string() ||
      !qos || !qos->is_int64() || qos->get_int64() < 0 || qos->get_int64() > 2 || !retain ||
      !retain->is_bool()) {
    why = "it is not an outbox message (topic, qos, retain, payload)";
    return false;
  }
  m.topic = topic->get_string();
  m.payload = payload->get_string();
  m.qos = static_cast<uint8_t>(qos->get_int64());
  m.retain = retain->get_bool();
  // Timed only when this process queued it: an earlier run's steady clock is not this one's.
  const json::value* rule = record.if_contains("rule");
  const json::value* run = record.if_contains("run");
  const json::value* arrived = record.if_contains("arrived_ns");
  if (rule && rule->is_string() && run && run->is_int64() &&
      static_cast<uint64_t>(run->get_int64()) == runToken() && arrived && arrived->is_int64() && stats)
    for (const auto& [name, counters] : *stats)
      if (name == rule->get_string()) {
        m.timed = counters;
        m.arrived_ns = arrived->get_int64();
      }
  return true;
}

}  // namespace ganglion::edge
