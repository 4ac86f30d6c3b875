#include "edge/edge_runtime.h"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "base/hash.h"
#include "base/log.h"
#include "base/strings.h"
#include "base/time.h"
#include "edge/connectors/coap_connector.h"
#include "edge/connectors/modbus_poller.h"
#include "edge/connectors/mqtt_connector.h"
#include "edge/device_limit.h"
#include "edge/ingest_log.h"
#include "edge/queue/log_syncer.h"
#include "edge/queue/record_queue.h"
#include "edge/record_json.h"
#include "edge/rules/rule_runner.h"
#include "edge/sinks/line_protocol.h"
#include "edge/sinks/record_batch.h"
#include "edge/sinks/sink_host.h"
#include "edge/sinks/tsdb.h"
#include "edge/state/state_file.h"
#include "loop/pools.h"
#include "upstream/exchange.h"
#include "upstream/http_url.h"

namespace ganglion::edge {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

size_t workerFor(std::string_view name, size_t workers) {
  return std::hash<std::string_view>{}(name) % workers;
}

/// A name as a file name: letters, digits, '_', '-' and '.' (not first) kept, any other byte
/// as %XX, so that no name reaches outside its directory or collides with another. Past 128
/// bytes (file systems stop at 255) the first 100 are kept with `~` and a hash of the whole.
std::string fileName(std::string_view name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (std::isalnum(c) || c == '_' || c == '-' || (c == '.' && i > 0))
      out.push_back(static_cast<char>(c));
    else
      fmt::format_to(std::back_inserter(out), "%{:02X}", c);
  }
  if (out.size() > 128) out = fmt::format("{}~{:016x}", out.substr(0, 100), consistentHash(name));
  return out.empty() ? "%" : out;
}

/// Whether a rule publishes or summarizes through connector `name`.
bool rulesPublishThrough(const EdgeConfig& cfg, std::string_view name) {
  for (const auto& rc : cfg.rules)
    for (const auto& a : rc.actions) {
      if (const auto* p = std::get_if<RulePublish>(&a); p && p->connector == name) return true;
      if (const auto* s = std::get_if<RuleSummarize>(&a); s && s->connector == name) return true;
    }
  return false;
}

/// Whether pipeline `pc`'s records reach a disk that its ingest log must wait for: a durable
/// sink it feeds or its rules forward to, or a durable outbox its rules publish through.
bool feedsDisk(const EdgeConfig& cfg, const PipelineConfig& pc) {
  auto durableSink = [&](std::string_view name) {
    return std::any_of(cfg.sinks.begin(), cfg.sinks.end(),
                       [&](const SinkConfig& s) { return s.name == name && s.queue.durable; });
  };
  if (std::any_of(pc.to.begin(), pc.to.end(), durableSink)) return true;
  for (const auto& rc : cfg.rules) {
    if (!rc.from.empty() && std::find(rc.from.begin(), rc.from.end(), pc.name) == rc.from.end()) continue;
    for (const auto& a : rc.actions) {
      if (const auto* f = std::get_if<RuleForward>(&a); f && durableSink(f->to)) return true;
      if (const auto* p = std::get_if<RulePublish>(&a))
        for (const auto& c : cfg.connectors)
          if (c.name == p->connector && c.kind == "mqtt" && c.outbox.durable) return true;
    }
  }
  return false;
}

}  // namespace

void IncomingReadings::add(const DecodedReading& r) {
  Item item{};
  auto put = [&](std::string_view s, uint32_t& at, uint32_t& len) {
    at = static_cast<uint32_t>(text.size());
    len = static_cast<uint32_t>(s.size());
    text.append(s);
  };
  put(r.device, item.device_at, item.device_len);
  put(r.metric, item.metric_at, item.metric_len);
  put(r.attrs, item.attrs_at, item.attrs_len);
  item.ts = r.ts;
  item.value = r.value;
  item.quality = r.quality;
  items.push_back(item);
}

// ---------------------------------------------------------------- pipelines

/// Counters of one stage, mirrored from the worker for the main thread.
struct StageStats {
  std::atomic<uint64_t> in{0}, out{0}, filtered{0}, late{0}, series_limit{0}, no_value{0}, events{0},
      replayed{0}, suppressed{0}, duplicates{0}, incomplete{0};
  std::atomic<uint64_t> busy_ns{0}, batches{0};
};

class PipelineHost : public std::enable_shared_from_this<PipelineHost> {
 public:
  PipelineHost(PipelineConfig config, size_t worker) : config_(std::move(config)), worker_(worker) {}
  const PipelineConfig& config() const { return config_; }
  size_t worker() const { return worker_; }

  /// Builds the pipeline (main thread, before it is handed to its worker).
  Result<void> build() {
    PipelineSpec spec = config_.spec;
    spec.generation = settingsGeneration(config_.fingerprint);
    auto built = buildPipeline(spec, edgeFieldNames());
    if (!built) return built.error();
    pipeline_ = std::move(*built);
    stages_ = std::make_unique<StageStats[]>(pipeline_->stages().size());
    attrs_field_ = pipeline_->fieldNames().find("attrs");
    pipeline_->setOutput([this](const Batch& b, const Pipeline& p) { emit(b, p); });
    setDeviceLimit(config_.device_limit);
    return {};
  }

  /// Sets (or lifts, rate 0) the per-device flood limit; an unchanged one keeps its buckets.
  /// Main thread before the pipeline is handed to its worker, then on its worker.
  void setDeviceLimit(const DeviceLimitConfig& limit) {
    if (limit.rate == device_limit_.rate && limit.burst == device_limit_.burst && (limiter_ || !limit.rate))
      return;
    device_limit_ = limit;
    limiter_ = limit.rate ? std::make_unique<DeviceLimiter>(limit.rate, limit.burst) : nullptr;
    std::lock_guard lock(limited_mutex_);
    limited_list_.clear();
  }
  /// The devices its limit dropped readings of within the last minute (as of the last tick).
  /// Any thread.
  std::vector<DeviceLimiter::Limited> limitedDevices() const {
    std::lock_guard lock(limited_mutex_);
    return limited_list_;
  }

  /// Sets the sinks its records go to. On its worker.
  void setSinks(std::vector<std::shared_ptr<SinkHost>> sinks) { sinks_ = std::move(sinks); }

  /// A rule bound to what its actions reach (parallel to its config's actions; null: the
  /// target is gone, the action counts as failed).
  struct RuleBinding {
    std::shared_ptr<RuleRunner> runner;
    /// Per action: the outbox of a publish's (or a summary's) mqtt connector.
    std::vector<std::shared_ptr<SinkHost>> outboxes;
    std::vector<std::shared_ptr<SinkHost>> sinks;
    std::vector<std::shared_ptr<ModbusPoller>> pollers;  ///< per action: a write's connector
    std::shared_ptr<std::atomic<size_t>> summaries_in_flight = std::make_shared<std::atomic<size_t>>(0);
    std::shared_ptr<std::atomic<size_t>> webhooks_in_flight = std::make_shared<std::atomic<size_t>>(0);
  };
  /// Sets the rules that see its output. On its worker.
  void setRules(std::vector<RuleBinding> rules) {
    rules_ = std::move(rules);
    rules_set_ = true;
    if (!awaiting_state_) restorePendingRules();
    keep_recent_ = std::any_of(rules_.begin(), rules_.end(), [](const RuleBinding& b) {
      const auto& actions = b.runner->config().actions;
      return std::any_of(actions.begin(), actions.end(),
                         [](const RuleAction& a) { return std::holds_alternative<RuleSummarize>(a); });
    });
    if (!keep_recent_) recent_.clear();
  }

  /// Gives the rules the state saved under their keys (once, at start or takeover: a rule
  /// added later starts empty). On its worker.
  void restorePendingRules() {
    size_t keys = 0;
    for (const auto& [key, body] : pending_rules_) {
      for (const auto& rule : rules_) {
        size_t restored = 0;
        if (rule.runner->stateKey() != key) continue;
        if (rule.runner->restoreState(body, restored)) keys += restored;
        break;
      }
    }
    if (keys)
      logLine(fmt::format("edge: pipeline '{}': its rules resume {} hold-offs and raised alarms",
                          config_.name, keys));
    pending_rules_.clear();
  }

  /// Records the pipeline emitted lately, for the context of summaries.
  static constexpr size_t kRecentRecords = 1024;
  /// Summaries one rule may wait for at once on one pipeline; more fail (counted).
  static constexpr size_t kMaxSummariesInFlight = 8;
  static constexpr size_t kMaxWebhooksInFlight = 64;  ///< per rule: calls waiting or retrying

  /// Queues readings for the pipeline's worker, in the order the calls happen (an ingest
  /// request calls it before it answers, so a sender's next payload comes after). Posting
  /// each payload on its own would not keep that order: a post from the pipeline's own
  /// thread waits in that thread's private queue until its handler returns, while the
  /// answer may already be out and the next payload posted from another worker. Any thread.
  void enqueue(std::shared_ptr<const IncomingReadings> readings,
               const std::shared_ptr<DeliveryTicket>& ticket) {
    bool schedule = false;
    {
      std::unique_lock lock(inbox_mutex_);
      if (auto next = successor_.lock()) {  // replaced: the successor runs them (and logs them)
        lock.unlock();
        return next->enqueue(std::move(readings), ticket);
      }
      Inbound in{std::move(readings), {}, false};
      if (ingest_) {
        // Under the inbox lock: the log's order is the order the pipeline runs.
        auto end = ingest_->append(*in.readings, ticket);
        if (!end) {
          // The sender is told they were not stored (503, no PUBACK) and sends them again:
          // running them now would count them twice.
          not_stored.fetch_add(in.readings->items.size(), std::memory_order_relaxed);
          return;
        }
        in.end = *end;
        in.logged = true;
      } else if (ingest_unusable_ && ticket) {
        // The sender would be told "stored" for readings a crash loses: it is told not (503,
        // no PUBACK) and keeps them. Readings nobody acknowledges (Modbus, QoS 0) still run.
        not_stored.fetch_add(in.readings->items.size(), std::memory_order_relaxed);
        ticket->complete(false);
        return;
      } else if (ticket) {
        ticket->complete(true);
      }
      waiting.fetch_add(in.readings->items.size(), std::memory_order_relaxed);
      inbox_.push_back(std::move(in));
      schedule = !drain_scheduled_;
      drain_scheduled_ = true;
    }
    if (schedule) host_->worker(worker_).post([self = shared_from_this()] { self->drainInbox(); });
  }

  /// How long the oldest readings waiting for its worker have waited (ns; 0: none waits,
  /// or they were run again from the ingest log, whose arrival is not known). Any thread.
  int64_t oldestWaitNs() {
    std::lock_guard lock(inbox_mutex_);
    if (inbox_.empty() || !inbox_.front().readings->arrived_ns) return 0;
    return std::max<int64_t>(0, steadyNanos() - inbox_.front().readings->arrived_ns);
  }

  /// Whether readings handed to it wait for its ingest log (deliver() makes a ticket part).
  bool logsIngest() {
    std::lock_guard lock(inbox_mutex_);
    return ingest_ != nullptr || ingest_unusable_ || !successor_.expired();
  }

  /// Its ingest log could not be opened: readings whose sender waits for an acknowledgement
  /// are refused (not_stored) rather than acknowledged from memory. Main thread, before it runs.
  void refuseAcknowledgedReadings() {
    std::lock_guard lock(inbox_mutex_);
    ingest_unusable_ = true;
  }

  /// Opens its ingest log (or takes over `previous`'s: same name, changed settings) and
  /// queues what the log holds to run first: readings a crash or the predecessor left before
  /// their records reached the sinks' queues. Returns the largest record number seen (0:
  /// none). Main thread, before the pipeline runs.
  Result<uint64_t> openIngest(const std::filesystem::path& dir, PipelineHost* previous) {
    // Its own inbox lock is held from before the predecessor forwards to it until the log is
    // its own and replayed: a payload forwarded meanwhile waits, then is logged after what the
    // replay read. (Taken later, a forwarded payload found no log: acknowledged unlogged, and
    // run before the sinks were set, its records went nowhere.)
    std::lock_guard own(inbox_mutex_);
    std::shared_ptr<IngestLog> log;
    if (previous) {
      std::lock_guard lock(previous->inbox_mutex_);
      if (previous->ingest_ && previous->ingest_->dir() == dir) {
        log = std::move(previous->ingest_);
        previous->successor_ = weak_from_this();
      }
    }
    if (!log) {
      auto opened = IngestLog::open(dir);
      if (!opened) return opened.error();
      log = std::move(*opened);
    }
    uint64_t max_seq = 0;
    auto entries = log->replay(max_seq);
    ingest_ = std::move(log);
    replayed = 0;
    for (auto& e : entries) {
      replayed += e.readings->items.size();
      waiting.fetch_add(e.readings->items.size(), std::memory_order_relaxed);
      inbox_.push_back(Inbound{std::move(e.readings), e.end, true});
    }
    return max_seq;
  }

  std::shared_ptr<IngestLog> ingestLog() {
    std::lock_guard lock(inbox_mutex_);
    return ingest_;
  }

  /// The directory of its ingest log ("" when none). Any thread.
  std::string ingestDir() {
    auto log = ingestLog();
    return log ? log->dir().string() : std::string();
  }

  /// A retired pipeline's log, unless a successor took it over, goes with its files: its
  /// readings were meant for a pipeline that no longer exists. On its worker, after retire().
  void dropIngest() {
    std::shared_ptr<IngestLog> log;
    {
      std::lock_guard lock(inbox_mutex_);
      log = std::move(ingest_);
    }
    if (!log) return;
    std::error_code ec;
    std::filesystem::remove_all(log->dir(), ec);
  }

  /// Keeps its state (detector histories, its rules' hold-offs) in `path`, saved every
  /// `every`. With `from_predecessor` the state comes from the pipeline it replaces
  /// (handOverTo(), once that one retired) and nothing runs before it; otherwise from the
  /// file. Main thread, before it runs.
  void openState(std::filesystem::path path, std::chrono::milliseconds every, bool from_predecessor) {
    state_path_ = std::move(path);
    state_every_ = every;
    state_gap_ms_ = every.count();
    state_saved_at_ = wallMillis();
    if (from_predecessor) {
      awaiting_state_ = true;
      return;
    }
    std::error_code ec;  // a save a crash interrupted
    std::filesystem::remove(state_path_.string() + ".tmp", ec);
    auto body = readStateFile(state_path_);
    auto state = body ? decodePipelineState(*body) : Result<SavedPipelineState>(body.error());
    if (state && !state->empty() && state->pipeline != config_.name)
      state = Error(fmt::format("it holds pipeline '{}'s state, not this one's", state->pipeline));
    auto restored = restore(std::move(state), /*warmed_only=*/true);
    if (!restored) {
      logLine(
          fmt::format("edge: pipeline '{}': state in {} not used, detectors warm up again and rules start "
                      "without hold-offs: {}",
                      config_.name, state_path_.string(), restored.error().message));
      return;
    }
    if (*restored)
      logLine(fmt::format("edge: pipeline '{}' resumes the saved state of {} series from {}", config_.name,
                          *restored, state_path_.string()));
  }

  /// Restores a saved state into its stages and keeps the rules' part for setRules().
  /// `warmed_only`: from the file at start (series that had not warmed up stay out), not a
  /// predecessor's hand-over (all of them). Returns the series restored, or why the state
  /// was not used. Main thread before it runs, or on its worker.
  Result<size_t> restore(Result<SavedPipelineState> state, bool warmed_only) {
    if (!state) return state.error();
    auto restored = pipeline_->restoreState(state->stages, wallMillis(), warmed_only);
    if (restored) pending_rules_ = std::move(state->rules);
    return restored;
  }

  /// Its state (after retire(): what a successor adopts); "" when it has none. On its worker.
  std::string stateBytes() const {
    SavedPipelineState state;
    state.pipeline = config_.name;
    if (pipeline_->hasState()) state.stages = pipeline_->saveState();
    for (const auto& rule : rules_) {
      if (!rule.runner->stateful()) continue;
      std::string body;
      rule.runner->saveState(body);
      state.rules.emplace_back(rule.runner->stateKey(), std::move(body));
    }
    return state.empty() ? std::string() : encodePipelineState(state);
  }
  const std::filesystem::path& statePath() const { return state_path_; }

  /// The state of the pipeline it replaced: restored, then the readings waiting run. On its
  /// worker.
  void adoptState(const std::string& bytes) {
    if (!awaiting_state_) return;
    awaiting_state_ = false;
    if (auto restored = restore(decodePipelineState(bytes), /*warmed_only=*/false); !restored)
      logLine(fmt::format("edge: pipeline '{}': its predecessor's state not used: {}", config_.name,
                          restored.error().message));
    else if (rules_set_)
      restorePendingRules();
    kick();
  }

  /// Saves its state when `every` has passed and it changed since (`now`: at once). Written
  /// on the state writer's thread; once written, the ingest log may be trimmed past what the
  /// state has learned (a crash replays only what came after the save). On its worker.
  void saveState(bool now) {
    if (state_path_.empty() || retired_ || awaiting_state_) return;
    uint64_t changes = 0;
    for (const auto& st : pipeline_->statefulStages()) changes += st.stage->counters.in;
    for (const auto& rule : rules_) changes += rule.runner->changes();
    changes += pipeline_->seriesForgotten();  // forgotten series leave the saved state
    if (changes == state_changes_) {
      // Nothing learned since the last save: once that is on disk it covers all that ran.
      if (!state_writes_.load(std::memory_order_relaxed)) saved_total_ = ran_total_;
      return;
    }
    const int64_t wall = wallMillis();
    if (!now && (wall - state_saved_at_ < state_gap_ms_ || state_writes_.load(std::memory_order_relaxed)))
      return;
    state_saved_at_ = wall;
    state_changes_ = changes;
    std::string bytes = stateBytes();
    // A large state is saved less often than state_every: the whole file is written each
    // time, and an edge box's flash wears by what is written (10,000 series' histories are
    // about 10 MB: every 10 s that would be 86 GB a day).
    state_gap_ms_ = std::max<int64_t>(state_every_.count(),
                                      static_cast<int64_t>(bytes.size() * 1000 / kStateBytesPerSecond));
    if (bytes.empty() && !state_written_) {  // nothing to keep, and no file to bring up to date
      saved_total_ = ran_total_;
      return;
    }
    state_written_ = true;
    state_writes_.fetch_add(1, std::memory_order_relaxed);
    auto self = shared_from_this();
    StateWriter::shared().write(state_path_, std::move(bytes), [this, self, covers = ran_total_](bool) {
      // Written or not (the writer logs a failure): the log must not grow without end.
      host_->worker(worker_).post([this, self, covers] {
        saved_total_ = std::max(saved_total_, covers);
        // The trim starts before the write stops counting: drain() reads savingState()
        // then trimming(), and must not see neither in between.
        trimIngest();
        state_writes_.fetch_sub(1);
      });
    });
  }

  /// A state write is on its way (shutdown waits for it and the trim after it). Any thread.
  bool savingState() const { return state_writes_.load() > 0; }

  /// Stops (true) or starts again (false) running readings, through the admin API. A stopped
  /// pipeline keeps taking readings, up to kMaxWaitingReadings (then deliver() refuses more:
  /// backpressure), and runs them once started; its windows, detectors and rules wait, and
  /// the time it was stopped does not count as the devices' silence. Main thread before it
  /// is handed to its worker, then on its worker.
  void setPaused(bool paused) {
    if (paused == paused_) return;
    paused_ = paused;
    auto log = ingestLog();
    const int64_t stalled = log ? log->stalledMs() : 0;  // senders keep waiting on fsyncs meanwhile
    if (paused) {
      paused_since_ = wallMillis();
      stalled_at_pause_ = stalled;
      return;
    }
    // idleClock() leaves out the stall already: the stop counts once.
    paused_ms_ += std::max<int64_t>(0, wallMillis() - paused_since_ - (stalled - stalled_at_pause_));
    resumed_ns_ = steadyNanos();  // readings held through the stop are not timed as rule latency
    if (pipeline_ && host_ && rules_set_) kick();
  }

  /// Starts running what openIngest() queued. On its worker.
  void kick() {
    {
      std::lock_guard lock(inbox_mutex_);
      if (inbox_.empty() || drain_scheduled_) return;
      drain_scheduled_ = true;
    }
    drainInbox();
  }

  /// Runs queued readings through the pipeline, oldest first, in pieces of at most 1,024
  /// readings; after 2 ms it lets the worker's other work (its connections) run and comes back,
  /// so a backlog, or a slow pipeline, does not stall the worker. On its worker.
  /// `to_the_end`: all of it at once, stopped or not (flush() at shutdown).
  void drainInbox(bool to_the_end = false) {
    if (!to_the_end && (awaiting_state_ || paused_)) {  // adoptState() and setPaused() kick it
      std::lock_guard lock(inbox_mutex_);
      drain_scheduled_ = false;
      return;
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
    do {
      std::shared_ptr<const IncomingReadings> next;
      LogPosition end;
      bool logged = false;
      {
        std::lock_guard lock(inbox_mutex_);
        if (inbox_.empty()) {
          drain_scheduled_ = false;
          return;
        }
        next = inbox_.front().readings;
        end = inbox_.front().end;
        logged = inbox_.front().logged;
      }
      const size_t from = inbox_offset_;
      const size_t to = std::min(next->items.size(), from + 1024);
      ingest(*next, from, to);
      if (to == next->items.size()) {
        inbox_offset_ = 0;
        if (logged && !retired_)
          ran_.push_back(RanFrame{end, next->items.empty() ? 0 : next->first_seq + next->items.size() - 1});
        if (logged && !retired_) ++ran_total_;
        std::lock_guard lock(inbox_mutex_);
        inbox_.pop_front();
      } else {
        inbox_offset_ = to;
      }
    } while (to_the_end || std::chrono::steady_clock::now() < until);
    trimIngest();  // soon, not only at the next tick: less for a crash to run twice
    host_->worker(worker_).post([self = shared_from_this()] { self->drainInbox(); });
  }

  /// Runs readings [from, to) of `in` through the pipeline. On its worker.
  void ingest(const IncomingReadings& in, size_t from, size_t to) {
    waiting.fetch_sub(to - from, std::memory_order_relaxed);
    if (retired_) return;
    batch_.clear();
    const uint16_t origin = pipeline_->origin(in.connector);
    SeriesTable& series = pipeline_->series();
    const int64_t now = idleClock();
    series.setClock(now);
    uint64_t refused = 0, limited = 0;
    for (size_t i = from; i < to; ++i) {
      const auto& item = in.items[i];
      if (limiter_ && !limiter_->admit(in.connector, in.view(item.device_at, item.device_len), now)) {
        ++limited;  // before the series table: a flood takes no series either
        continue;
      }
      const SeriesId id = series.intern(in.connector, in.view(item.device_at, item.device_len),
                                        in.view(item.metric_at, item.metric_len));
      if (id == kNoSeries) {
        ++refused;
        continue;
      }
      Record r;
      r.series = id;
      r.ts = item.ts;
      r.value = item.value;
      r.quality = item.quality;
      r.origin = origin;
      r.seq = in.first_seq + i;
      batch_.push(r);
      if (item.attrs_len) batch_.addText(attrs_field_, in.view(item.attrs_at, item.attrs_len));
    }
    readings_in.fetch_add(to - from, std::memory_order_relaxed);
    series_refused.fetch_add(refused, std::memory_order_relaxed);
    if (limited) {
      device_limited.fetch_add(limited, std::memory_order_relaxed);
      if (now - told_limited_ms_ >= 60'000) {
        told_limited_ms_ = now;
        logLine(
            fmt::format("edge: pipeline '{}': a device sends more than device_limit.rate ({}/s): its "
                        "readings over it are "
                        "dropped (GET /edge limited_devices; "
                        "ganglion_edge_pipeline_dropped_total{{reason=\"device_limit\"}})",
                        config_.name, device_limit_.rate));
      }
    }
    if (refused && !told_full_) {
      told_full_ = true;
      told_full_ms_ = now;
      logLine(
          fmt::format("edge: pipeline '{}' holds {} series (max_series): readings of new series are dropped "
                      "(ganglion_edge_pipeline_dropped_total{{reason=\"series_limit\"}})",
                      config_.name, series.size()));
    }
    // What the rules fired by these readings measure from (not readings a stop held).
    arrived_ns_ = in.arrived_ns > resumed_ns_ ? in.arrived_ns : 0;
    pipeline_->push(batch_, now);
    arrived_ns_ = 0;
    mirror();
  }

  void tick() {
    if (retired_ || awaiting_state_ || paused_) return;
    const int64_t now = idleClock();
    pipeline_->tick(now);
    if (limiter_ && now - listed_ms_ >= 1000) {
      listed_ms_ = now;
      auto listed = limiter_->limitedLately(now);
      std::lock_guard lock(limited_mutex_);
      limited_list_ = std::move(listed);
    }
    if (const size_t forgotten = pipeline_->forgetIdle(now)) {
      // Full again later is said again, at most once a minute (a flood refills it at once).
      if (now - told_full_ms_ >= 60'000) told_full_ = false;
      logLine(
          fmt::format("edge: pipeline '{}' forgot {} series idle for {} s or more ({} of max_series {} held)",
                      config_.name, forgotten, pipeline_->forgetAfterMs() / 1000, pipeline_->series().size(),
                      pipeline_->series().maxSeries()));
    }
    mirror();
    trimIngest();
    saveState(false);
  }

  /// The clock windows measure idleness by: the wall clock less the time senders waited on
  /// the ingest log's fsyncs (a slow disk holds the readings back; it does not mean the
  /// devices went quiet). On its worker.
  int64_t idleClock() {
    auto log = ingestLog();
    return wallMillis() - (log ? log->stalledMs() : 0) - paused_ms_;
  }

  /// Trims the ingest log: frames the pipeline has run whose readings no open window holds,
  /// once what their records became is on disk in every sink queue they went to. One trim
  /// in flight at a time. On its worker.
  void trimIngest() {
    if (trim_in_flight_) return;
    trim_in_flight_ = true;
    if (!startTrim()) trim_in_flight_ = false;
  }

  /// trimIngest()'s work: whether a trim is now in flight. A trim that completes starts the
  /// next without clearing the flag between (drain() must not see a gap). On its worker.
  bool startTrim() {
    if (ran_.empty()) return false;
    std::shared_ptr<IngestLog> log;
    {
      std::lock_guard lock(inbox_mutex_);
      log = ingest_;
    }
    if (!log) {
      trimmed_total_ += ran_.size();
      ran_.clear();
      return false;
    }
    saveState(false);  // brings saved_total_ up to date when nothing was learned since
    const uint64_t held = pipeline_->oldestSeq();
    // Frames whose effect on the detectors and rules is on disk (the state file) only.
    const size_t saved =
        saved_total_ > trimmed_total_ ? static_cast<size_t>(saved_total_ - trimmed_total_) : 0;
    size_t frames = 0;
    while (frames < ran_.size() && frames < saved && ran_[frames].last_seq < held) ++frames;
    if (!frames) return false;
    trimmed_total_ += frames;
    const LogPosition upto = ran_[frames - 1].end;
    ran_.erase(ran_.begin(), ran_.begin() + static_cast<ptrdiff_t>(frames));
    // The sinks this pipeline's records reach: its own, those its rules forward to, and the
    // outboxes its rules publish through.
    std::vector<std::shared_ptr<SinkHost>> sinks = sinks_;
    for (const auto& rule : rules_)
      for (const auto* list : {&rule.sinks, &rule.outboxes})
        for (const auto& s : *list)
          if (s && std::find(sinks.begin(), sinks.end(), s) == sinks.end()) sinks.push_back(s);
    auto remaining = std::make_shared<size_t>(sinks.size() + 1);
    auto self = shared_from_this();
    auto one_done = [self, remaining, log, upto, frames] {
      if (--*remaining) return;
      log->trim(upto, frames, self->next_seq_->load(std::memory_order_relaxed));
      // A save that landed meanwhile may cover more: trimmed before shutdown sees none in flight.
      if (!self->startTrim()) self->trim_in_flight_ = false;
    };
    for (const auto& sink : sinks) {
      // Posted after the records emitted so far: the sink has appended them when it runs.
      host_->worker(sink->worker()).post([this, self, sink, one_done] {
        sink->whenSynced([this, self, one_done] { host_->worker(worker_).post(one_done); });
      });
    }
    one_done();
    return true;
  }

  /// Closes open windows (their records go out) and stops taking readings. On its worker.
  void retire() {
    if (retired_) return;
    // A successor that took its ingest log over runs the readings held back (a join's wait)
    // again, with what it knows by then: released here they would go out early, and again.
    bool replayed_by_successor;
    {
      std::lock_guard lock(inbox_mutex_);
      replayed_by_successor = !successor_.expired();
    }
    if (replayed_by_successor)
      for (const auto& stage : pipeline_->stages()) stage->abandonHeld();
    uint64_t before = 0, after = 0;
    for (const auto& stage : pipeline_->stages()) before += stage->counters.suppressed;
    pipeline_->flush(wallMillis());
    for (const auto& stage : pipeline_->stages()) after += stage->counters.suppressed;
    left_at_reload.fetch_add(after - before, std::memory_order_relaxed);
    mirror();
    retired_ = true;
  }

  /// After retire(): hands the pipeline replacing it the readings it took but had not run
  /// (ahead of what that one received since; those in its ingest log are there already: a
  /// successor that took the log over runs them again from it), then its state, which lets
  /// that one run. One name hashes to one worker, so both are on this worker, and the
  /// retirements of a burst of reloads run in order: this one had its own predecessor's
  /// state before it retired. On its worker.
  void handOverTo(PipelineHost& next) {
    next.left_at_reload.fetch_add(left_at_reload.load(), std::memory_order_relaxed);
    passInboxTo(next);
    next.adoptState(stateBytes());
  }

  /// handOverTo()'s first half: its inbox, less what `next`'s ingest log replays. On its worker.
  void passInboxTo(PipelineHost& next) {
    const bool next_logs = next.logsIngest();
    std::deque<Inbound> left;
    {
      std::lock_guard lock(inbox_mutex_);
      for (size_t i = 0; i < inbox_.size(); ++i) {
        Inbound& in = inbox_[i];
        if (in.logged && next_logs) continue;
        if (i == 0 && inbox_offset_ > 0) {
          auto rest = std::make_shared<IncomingReadings>(*in.readings);
          rest->items.erase(rest->items.begin(), rest->items.begin() + static_cast<ptrdiff_t>(inbox_offset_));
          rest->first_seq += inbox_offset_;
          in.readings = std::move(rest);
        }
        left.push_back(std::move(in));
      }
      inbox_.clear();
      inbox_offset_ = 0;
    }
    if (left.empty()) return;
    uint64_t n = 0;
    for (const auto& in : left) n += in.readings->items.size();
    waiting.fetch_sub(std::min(n, waiting.load()), std::memory_order_relaxed);
    std::lock_guard lock(next.inbox_mutex_);
    for (auto it = left.rbegin(); it != left.rend(); ++it) {
      it->logged = false;  // not in the successor's log
      next.inbox_.push_front(std::move(*it));
    }
    next.waiting.fetch_add(n, std::memory_order_relaxed);
  }

  void flush() {
    if (retired_) return;
    if (awaiting_state_) adoptState({});  // shutdown before the predecessor handed it over
    // Stopped, with readings acknowledged and held in memory only: they run now (its rules
    // still do not act) rather than die with the process. An ingest log keeps them instead.
    if (paused_ && !logsIngest()) drainInbox(true);
    pipeline_->flush(wallMillis());
    mirror();
    trimIngest();  // every window closed: what ran is done once the sinks have it on disk
    saveState(true);
  }

  bool trimming() const { return trim_in_flight_.load(); }

  std::atomic<uint64_t> waiting{0};  ///< readings posted, not yet run
  uint64_t replayed = 0;             ///< readings the ingest log gave back at start (main thread)
  std::atomic<uint64_t> readings_in{0}, series_refused{0}, records_out{0}, series{0}, series_forgotten{0};
  std::atomic<uint64_t> device_limited{0};  ///< readings its device_limit dropped
  std::atomic<uint64_t> not_stored{0};      ///< readings the ingest log could not take (not run)
  /// Readings this pipeline's earlier versions left out when a reload replaced them (a partial
  /// fft block): their stages' counters went with them.
  std::atomic<uint64_t> left_at_reload{0};

  json::array stageStatus() const {
    json::array out;
    for (size_t i = 0; i < config_.spec.stages.size(); ++i) {
      const StageStats& s = stages_[i];
      json::object o;
      o["kind"] = pipeline_->stages()[i]->kind();  // fixed at build: any thread may read it
      o["in"] = s.in.load();
      o["out"] = s.out.load();
      o["filtered"] = s.filtered.load();
      o["late"] = s.late.load();
      o["series_limit"] = s.series_limit.load();
      o["no_value"] = s.no_value.load();
      o["events"] = s.events.load();
      o["replayed"] = s.replayed.load();
      o["suppressed"] = s.suppressed.load();
      o["duplicates"] = s.duplicates.load();
      o["incomplete"] = s.incomplete.load();
      o["batches"] = s.batches.load();
      o["busy_ms"] = static_cast<double>(s.busy_ns.load() / 1000) / 1000.0;
      out.push_back(std::move(o));
    }
    return out;
  }
  const StageStats& stage(size_t i) const { return stages_[i]; }
  /// Stage i's kind (`window`, `detect`, ...): fixed at build, any thread.
  std::string_view stageKind(size_t i) const { return pipeline_->stages()[i]->kind(); }

 private:
  void mirror() {
    const auto& stages = pipeline_->stages();
    for (size_t i = 0; i < stages.size(); ++i) {
      const StageCounters& c = stages[i]->counters;
      StageStats& s = stages_[i];
      s.in.store(c.in, std::memory_order_relaxed);
      s.out.store(c.out, std::memory_order_relaxed);
      s.filtered.store(c.filtered, std::memory_order_relaxed);
      s.late.store(c.late, std::memory_order_relaxed);
      s.series_limit.store(c.series_limit, std::memory_order_relaxed);
      s.no_value.store(c.no_value, std::memory_order_relaxed);
      s.events.store(c.events, std::memory_order_relaxed);
      s.replayed.store(c.replayed, std::memory_order_relaxed);
      s.suppressed.store(c.suppressed, std::memory_order_relaxed);
      s.duplicates.store(c.duplicates, std::memory_order_relaxed);
      s.incomplete.store(c.incomplete, std::memory_order_relaxed);
      s.busy_ns.store(c.busy_ns, std::memory_order_relaxed);
      s.batches.store(c.batches, std::memory_order_relaxed);
    }
    records_out.store(pipeline_->recordsOut(), std::memory_order_relaxed);
    series.store(pipeline_->series().size(), std::memory_order_relaxed);
    series_forgotten.store(pipeline_->seriesForgotten(), std::memory_order_relaxed);
  }

  /// Runs the rules on one record leaving the last stage.
  void runRules(const Record& r, const Batch& batch, const Pipeline& p) {
    for (auto& rule : rules_) {
      if (!rule.runner->fires(evaluator_, r, batch, p)) continue;
      const std::string payload = rule.runner->payload(r, batch, p);
      const auto& actions = rule.runner->config().actions;
      RuleStats& stats = rule.runner->stats();
      for (size_t i = 0; i < actions.size(); ++i) {
        if (const auto* publish = std::get_if<RulePublish>(&actions[i])) {
          std::string topic = rule.runner->topic(publish->topic, r, batch, p);
          if (!rule.outboxes[i]) {
            stats.fail(fmt::format("connector '{}' is not running", publish->connector));
          } else if (topic.empty()) {
            stats.fail(fmt::format("the record's values make topic '{}' invalid", publish->topic.text));
          } else {
            publishVia(rule.outboxes[i], topic, payload, publish->qos, publish->retain, dropClass(r.kind),
                       arrived_ns_ ? rule.runner->config().name : std::string_view(), arrived_ns_);
          }
        } else if (const auto* forward = std::get_if<RuleForward>(&actions[i])) {
          if (!rule.sinks[i]) {
            stats.fail(fmt::format("sink '{}' is not running", forward->to));
            continue;
          }
          std::vector<QueuedRecord> one(1);
          one[0].json = payload;
          one[0].drop_class = dropClass(r.kind);
          enqueueTo(rule.sinks[i], std::move(one));
        } else if (const auto* sum = std::get_if<RuleSummarize>(&actions[i])) {
          summarize(rule, i, *sum, r, batch, p, payload);
        } else if (const auto* hook = std::get_if<RuleWebhook>(&actions[i])) {
          callWebhook(rule, i, *hook, payload);
        } else if (const auto* wr = std::get_if<RuleWrite>(&actions[i])) {
          writeRegister(rule, i, *wr, r, batch, p);
        }
      }
    }
  }

  /// Queues a message in a connector's outbox, timed (`rule` set) when its reading arrived
  /// in this process.
  void publishVia(const std::shared_ptr<SinkHost>& outbox, std::string_view topic, std::string_view payload,
                  uint32_t qos, bool retain, uint8_t drop_class, std::string_view rule = {},
                  int64_t arrived_ns = 0) {
    std::vector<QueuedRecord> one(1);
    one[0].json = SinkHost::outboxRecord(topic, payload, qos, retain, rule, arrived_ns);
    one[0].drop_class = drop_class;
    enqueueTo(outbox, std::move(one));
  }

  void writeRegister(RuleBinding& rule, size_t action, const RuleWrite& wr, const Record& r,
                     const Batch& batch, const Pipeline& p) {
    RuleStats& stats = rule.runner->stats();
    const auto& poller = rule.pollers[action];
    if (!poller) return stats.fail(fmt::format("connector '{}' is not running", wr.connector));
    const expr::Value v = evaluator_.run(*wr.value_program, expr::Input{&r, &batch, &p.series()});
    if (v.type != expr::Type::kNumber && v.type != expr::Type::kBool)
      return stats.fail(fmt::format("write to '{}': its value '{}' gave no number for this record",
                                    wr.register_name, wr.value));
    auto shared = rule.runner->statsPtr();
    const bool queued = poller->write(wr.register_index, v.number, [shared](std::string error) {
      if (error.empty())
        shared->writes.fetch_add(1, std::memory_order_relaxed);
      else
        shared->fail(std::move(error));
    });
    if (!queued)
      stats.fail(fmt::format("write to '{}': connector '{}' is stopped", wr.register_name, wr.connector));
  }

  /// A webhook call: the record POSTed, tried again on failure.
  struct WebhookJob {
    std::shared_ptr<RuleRunner> runner;
    std::shared_ptr<std::atomic<size_t>> in_flight;
    const RuleWebhook* hook = nullptr;  // the rule's config, kept alive by `runner`
    std::string upstream, host_header, body;
  };

  void callWebhook(RuleBinding& rule, size_t action, const RuleWebhook& hook, const std::string& payload) {
    if (*rule.webhooks_in_flight >= kMaxWebhooksInFlight)
      return rule.runner->stats().fail(fmt::format(
          "more than {} calls wait for webhook {}://{}{}: this one was not made", kMaxWebhooksInFlight,
          hook.https ? "https" : "http", upstream::hostHeader(hook.host, hook.port, hook.https),
          hook.path.substr(0, hook.path.find('?'))));
    auto job = std::make_shared<WebhookJob>();
    job->runner = rule.runner;
    job->in_flight = rule.webhooks_in_flight;
    job->hook = &hook;
    job->upstream = fmt::format("webhook:{}/{}", rule.runner->config().name, action);
    job->host_header = upstream::hostHeader(hook.host, hook.port, hook.https);
    job->body = payload;
    ++*job->in_flight;
    asio::co_spawn(host_->worker(worker_).io(), runWebhook(shared_from_this(), std::move(job)),
                   asio::detached);
  }

  static http::Task<void> runWebhook(std::shared_ptr<PipelineHost> self, std::shared_ptr<WebhookJob> job) {
    const RuleWebhook& hook = *job->hook;
    loop::Worker& worker = self->host_->worker(self->worker_);
    std::string why;
    for (uint32_t attempt = 0; attempt <= hook.retries; ++attempt) {
      if (attempt) {
        asio::steady_timer wait(worker.io());
        wait.expires_after(std::chrono::milliseconds(doublingBackoffMs(200, 10'000, attempt)));
        co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      auto up = self->host_->upstream(self->worker_, job->upstream);
      if (!up) {
        why = "its upstream is not installed (the config changed)";
        break;
      }
      upstream::BufferedRequest req;
      req.method = "POST";
      req.path = hook.path;
      req.headers = hook.headers;
      req.body = job->body;
      auto answered =
          co_await upstream::exchangeIgnoringBody(worker, *up, job->host_header, req, hook.timeout);
      if (answered.status >= 200 && answered.status < 300) {
        job->runner->stats().webhooks.fetch_add(1, std::memory_order_relaxed);
        --*job->in_flight;
        co_return;
      }
      why = answered.status ? fmt::format("it answered {}", answered.status) : answered.failure;
    }
    --*job->in_flight;
    job->runner->stats().fail(fmt::format("webhook {}://{}{} failed after {} call(s): {}",
                                          hook.https ? "https" : "http", job->host_header,
                                          hook.path.substr(0, hook.path.find('?')), hook.retries + 1, why));
  }

  /// A summary to ask for: what the model gets and where its answer goes.
  struct SummaryJob {
    std::shared_ptr<RuleRunner> runner;
    std::shared_ptr<std::atomic<size_t>> in_flight;
    std::string model, system, user;
    uint32_t max_tokens = 0;
    Millis timeout{0};
    std::string id, source, device;
    int64_t ts = 0;
    std::shared_ptr<SinkHost> sink;
    std::shared_ptr<SinkHost> outbox;  ///< of the mqtt connector the summary goes to
    std::string topic;
    uint32_t qos = 1;
  };

  void summarize(RuleBinding& rule, size_t action, const RuleSummarize& sum, const Record& r,
                 const Batch& batch, const Pipeline& p, const std::string& payload) {
    RuleStats& stats = rule.runner->stats();
    if (*rule.summaries_in_flight >= kMaxSummariesInFlight)
      return stats.fail(fmt::format("more than {} summaries wait for model '{}': this one was not asked for",
                                    kMaxSummariesInFlight, sum.model));
    auto job = std::make_shared<SummaryJob>();
    job->runner = rule.runner;
    job->in_flight = rule.summaries_in_flight;
    job->model = sum.model;
    job->system = sum.prompt;
    job->max_tokens = sum.max_tokens;
    job->timeout = sum.timeout;
    appendRecordId(job->id, r, p);
    if (r.series != kNoSeries) {
      job->source = std::string(p.series().source(r.series));
      job->device = std::string(p.series().device(r.series));
    }
    job->ts = r.ts;
    job->sink = rule.sinks[action];
    if (!sum.to.empty() && !job->sink) return stats.fail(fmt::format("sink '{}' is not running", sum.to));
    if (!sum.connector.empty()) {
      job->outbox = rule.outboxes[action];
      job->topic = rule.runner->topic(sum.topic, r, batch, p);
      job->qos = sum.qos;
      if (!job->outbox) return stats.fail(fmt::format("connector '{}' is not running", sum.connector));
      if (job->topic.empty())
        return stats.fail(fmt::format("the record's values make topic '{}' invalid", sum.topic.text));
    }
    // The user message: the firing record, then the device's recent records, oldest first.
    job->user = "The record that fired rule '" + rule.runner->config().name + "':\n" + payload + "\n";
    std::vector<const std::string*> context;
    for (auto it = recent_.rbegin(); it != recent_.rend() && context.size() < sum.context; ++it)
      if (it->source == job->source && it->device == job->device) context.push_back(&it->json);
    if (!context.empty()) {
      job->user += "Recent records of the same device, oldest first:\n";
      for (auto it = context.rbegin(); it != context.rend(); ++it) (job->user += **it) += '\n';
    }
    ++*job->in_flight;
    asio::co_spawn(host_->worker(worker_).io(), runSummary(shared_from_this(), std::move(job)),
                   asio::detached);
  }

  static http::Task<void> runSummary(std::shared_ptr<PipelineHost> self, std::shared_ptr<SummaryJob> job) {
    SummaryJob* j = job.get();
    auto answer = co_await self->host_->complete(self->worker_, j->model, j->system, j->user, j->max_tokens,
                                                 j->timeout);
    --*j->in_flight;
    RuleStats& stats = j->runner->stats();
    if (!answer) {
      stats.fail(fmt::format("model '{}' gave no summary: {}", j->model, answer.error().message));
      co_return;
    }
    std::string json = "{\"id\":\"";
    appendJsonEscaped(json, j->id + "/" + j->runner->config().name + "/summary");
    json += "\",\"source\":";
    auto str = [&json](std::string_view s) {
      json.push_back('"');
      appendJsonEscaped(json, s);
      json.push_back('"');
    };
    str(j->source);
    json += ",\"device\":";
    str(j->device);
    fmt::format_to(std::back_inserter(json),
                   ",\"metric\":\"summary\",\"ts\":{},\"kind\":\"summary\",\"quality\":\"good\"", j->ts);
    json += ",\"rule\":";
    str(j->runner->config().name);
    json += ",\"about\":";
    str(j->id);
    // Bounded whatever the model sent (max_tokens is the provider's to honour).
    constexpr size_t kMaxSummaryBytes = 32 * 1024;
    const std::string_view text = utf8Prefix(answer->text, kMaxSummaryBytes);
    const bool cut = text.size() < answer->text.size();
    json += ",\"text\":";
    str(text);
    if (cut) json += ",\"truncated\":true";
    json += ",\"model\":";
    str(answer->model);
    json += ",\"provider\":";
    str(answer->provider);
    fmt::format_to(std::back_inserter(json), ",\"prompt_tokens\":{},\"completion_tokens\":{}}}",
                   answer->prompt_tokens, answer->completion_tokens);
    stats.summaries.fetch_add(1, std::memory_order_relaxed);
    if (j->outbox)
      self->publishVia(j->outbox, j->topic, json, j->qos, false, dropClass(RecordKind::kSummary));
    if (j->sink) {
      std::vector<QueuedRecord> one(1);
      one[0].json = std::move(json);
      one[0].drop_class = dropClass(RecordKind::kSummary);
      self->enqueueTo(j->sink, std::move(one));
    }
  }

  void enqueueTo(const std::shared_ptr<SinkHost>& sink, std::vector<QueuedRecord> records) {
    if (sink->worker() == worker_) {
      sink->enqueue(std::move(records));
    } else {
      sink->in_transit.fetch_add(1);
      host_->worker(sink->worker()).post([sink, records = std::move(records)]() mutable {
        sink->enqueue(std::move(records));
        sink->in_transit.fetch_sub(1);
      });
    }
  }

  /// Records leaving the last stage: the rules see them one by one, then one JSON text each
  /// goes to every sink (and to the recent records, when a rule summarizes).
  void emit(const Batch& batch, const Pipeline& p) {
    if (rules_.empty() && sinks_.empty()) return;
    std::vector<QueuedRecord> records;
    records.reserve(sinks_.empty() ? 0 : batch.records.size());
    for (const Record& r : batch.records) {
      // Stopped, a pipeline still closes its windows when it is replaced or at shutdown (their
      // records reach the sinks), but its rules act on nothing.
      if (!rules_.empty() && !paused_) runRules(r, batch, p);
      if (sinks_.empty() && !keep_recent_) continue;
      QueuedRecord q;
      appendRecordJson(q.json, r, batch, p);
      q.drop_class = dropClass(r.kind);
      if (keep_recent_) remember(r, p, q.json);
      if (!sinks_.empty()) records.push_back(std::move(q));
    }
    if (sinks_.empty()) return;
    for (size_t i = 0; i < sinks_.size(); ++i) {
      std::vector<QueuedRecord> copy = i + 1 == sinks_.size() ? std::move(records) : records;
      enqueueTo(sinks_[i], std::move(copy));
    }
  }

  friend class EdgeRuntime;
  PipelineConfig config_;
  size_t worker_;
  EdgeHost* host_ = nullptr;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<StageStats[]> stages_;
  FieldId attrs_field_ = FieldNames::kNoField;
  std::vector<std::shared_ptr<SinkHost>> sinks_;
  void remember(const Record& r, const Pipeline& p, const std::string& json) {
    if (recent_.size() == kRecentRecords) recent_.pop_front();
    Recent& e = recent_.emplace_back();
    if (r.series != kNoSeries) {
      e.source = p.series().source(r.series);
      e.device = p.series().device(r.series);
    }
    e.json = json;
  }

  struct Recent {
    std::string source, device, json;
  };
  std::vector<RuleBinding> rules_;
  expr::Evaluator evaluator_;  // the rules'
  bool keep_recent_ = false;
  std::deque<Recent> recent_;
  Batch batch_;
  bool retired_ = false;
  std::mutex inbox_mutex_;
  struct Inbound {
    std::shared_ptr<const IncomingReadings> readings;
    LogPosition end;      ///< where its frame ends in the ingest log
    bool logged = false;  ///< it is in the ingest log
  };
  std::deque<Inbound> inbox_;
  bool drain_scheduled_ = false;
  std::shared_ptr<IngestLog> ingest_;  // null: no durable sink
  bool ingest_unusable_ = false;       // a durable sink, but the log could not be opened
  std::weak_ptr<PipelineHost> successor_;
  size_t inbox_offset_ = 0;  // readings of inbox_.front() already run (worker only)
  /// Frames of the ingest log the pipeline has run, oldest first (worker only).
  struct RanFrame {
    LogPosition end;
    uint64_t last_seq = 0;
  };
  std::deque<RanFrame> ran_;
  std::atomic<bool> trim_in_flight_{false};
  std::atomic<uint64_t>* next_seq_ = nullptr;
  bool told_full_ = false;    // the log said the series table is full...
  int64_t told_full_ms_ = 0;  // ...then (wall ms)
  // The per-device flood limit (device_limit): worker-owned; the list is copied at ticks.
  DeviceLimitConfig device_limit_;
  std::unique_ptr<DeviceLimiter> limiter_;
  int64_t told_limited_ms_ = INT64_MIN / 2, listed_ms_ = 0;
  mutable std::mutex limited_mutex_;
  std::vector<DeviceLimiter::Limited> limited_list_;
  int64_t arrived_ns_ = 0;  // while readings run: when their connector handed them over
  // Detector state (worker only, after openState()).
  std::filesystem::path state_path_;
  std::chrono::milliseconds state_every_{30'000};
  int64_t state_gap_ms_ = 30'000;  // state_every_, longer for a large state (see saveState)
  /// What saving the state writes at most on average (whole files): 100 KiB/s.
  static constexpr uint64_t kStateBytesPerSecond = 100 * 1024;
  int64_t state_saved_at_ = 0;
  uint64_t state_changes_ = 0;    // values the stateful stages had taken + rule changes, at the last save
  bool state_written_ = false;    // a save was asked for (the file then follows the state, even empty)
  bool awaiting_state_ = false;   // a predecessor's state is on its way: nothing runs
  bool rules_set_ = false;        // setRules() ran: pending rule state is applied at once
  bool paused_ = false;           // stopped through the admin API: readings wait in the inbox
  int64_t paused_since_ = 0;      // wall ms when it was stopped
  int64_t paused_ms_ = 0;         // time spent stopped before, left out of idleClock()
  int64_t stalled_at_pause_ = 0;  // the ingest log's stalledMs() when it was stopped
  int64_t resumed_ns_ = 0;        // steady clock when it was last started again
  // Frames of the ingest log run, trimmed, and covered by a state file on disk (counted since
  // start): the log is trimmed only past frames the saved state has learned.
  uint64_t ran_total_ = 0, trimmed_total_ = 0, saved_total_ = 0;
  std::atomic<int> state_writes_{0};                                // state writes asked for, not yet done
  std::vector<std::pair<std::string, std::string>> pending_rules_;  // rule state key → state
};

// ---------------------------------------------------------------- routing

struct ConnectorStats {
  std::string name, kind;
  std::atomic<uint64_t> payloads{0}, readings{0}, rejected{0}, refused{0}, backpressure{0};
};

struct Routing {
  struct Entry {
    std::shared_ptr<ConnectorStats> stats;
    std::vector<std::shared_ptr<PipelineHost>> pipelines;
    bool stopped = false;  ///< through the admin API: deliver() refuses its readings
  };
  std::vector<Entry> connectors;
  const Entry* find(std::string_view name) const {
    for (const auto& e : connectors)
      if (e.stats->name == name) return &e;
    return nullptr;
  }
};

/// Per worker: the pipelines it runs (touched only on that worker).
struct WorkerPipelines {
  std::vector<std::shared_ptr<PipelineHost>> pipelines;
};

// ---------------------------------------------------------------- the runtime

EdgeRuntime::EdgeRuntime(EdgeHost& host)
    : host_(host),
      next_seq_(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count())) {
  routing_.store(std::make_shared<const Routing>());
  for (size_t i = 0; i < host_.workerCount(); ++i) per_worker_.push_back(std::make_unique<WorkerPipelines>());
  for (size_t i = 0; i < host_.workerCount(); ++i) {
    WorkerPipelines* list = per_worker_[i].get();
    loop::Worker* worker = &host_.worker(i);
    worker->post([worker, list] {
      worker->onTick([list] {
        for (auto& p : list->pipelines) p->tick();
      });
    });
  }
}

EdgeRuntime::~EdgeRuntime() {
  // Poll and CoAP threads call deliver(): they end before the runtime does.
  for (auto& c : coap_) c->stop();
  coap_.clear();
  for (auto& m : modbus_) m->stop();
  for (auto& m : retired_modbus_) m->stop();
  // Rules that write hold pollers too, and may outlive this: the threads end here, after
  // the read or write in progress (a silent device: its timeout).
  for (auto& m : modbus_) m->join();
  for (auto& m : retired_modbus_) m->join();
  modbus_.clear();
  retired_modbus_.clear();
}

void EdgeRuntime::install(std::shared_ptr<const EdgeConfig> version, const std::filesystem::path& data_dir) {
  installed_ = std::move(version);
  data_dir_ = data_dir;
  const EdgeConfig& cfg = *installed_;
  stopped_.load(data_dir, cfg);
  // Its joined fields become the gateway's names before its pipelines are built with them.
  // Reloads are read and installed one at a time, so a config extends the table it was read
  // against; if it ever did not, its rules' field ids could mean other fields.
  if (!commitFieldNames(cfg.names))
    logLine(
        "edge: the config's field names do not extend the running ones (a config read before "
        "another was installed): joined fields may be misread until a restart");
  const size_t workers = std::max<size_t>(1, host_.workerCount());
  auto& lists = per_worker_;
  // Sinks first: pipelines point at them.
  // An unchanged sink (or outbox) is kept with its queue; a changed one is started in its
  // predecessor's place and takes its queue over; one no longer named is stopped.
  auto place = [&](const std::vector<std::shared_ptr<SinkHost>>& running,
                   std::vector<std::shared_ptr<SinkHost>>& out, const SinkConfig& sc, std::string queue_dir,
                   std::string tsdb_path, bool paused) {
    std::shared_ptr<SinkHost> previous;
    for (auto& s : running)
      if (s->config().name == sc.name) previous = s;
    auto fresh = std::make_shared<SinkHost>(host_, sc, workerFor(sc.name, workers), std::move(queue_dir),
                                            std::move(tsdb_path));
    if (previous && previous->fingerprint() == fresh->fingerprint() &&
        previous->queueDir() == fresh->queueDir()) {
      host_.worker(previous->worker()).post([previous, paused] { previous->setPaused(paused); });
      return out.push_back(previous);
    }
    fresh->setPaused(paused);
    host_.worker(fresh->worker()).post([fresh, previous] { fresh->start(previous); });
    out.push_back(std::move(fresh));
  };
  auto stopUnnamed = [&](const std::vector<std::shared_ptr<SinkHost>>& running,
                         const std::vector<std::shared_ptr<SinkHost>>& next) {
    for (auto& old : running) {
      const bool named = std::any_of(next.begin(), next.end(),
                                     [&](const auto& s) { return s->config().name == old->config().name; });
      if (!named) host_.worker(old->worker()).post([old] { old->stop(); });
    }
  };
  std::vector<std::shared_ptr<SinkHost>> sinks;
  for (const auto& sc : cfg.sinks)
    place(sinks_, sinks, sc, (data_dir / "queues" / fileName(sc.name)).string(),
          (data_dir / "tsdb" / (fileName(sc.name) + ".sqlite")).string(),
          stopped_.contains("sinks", sc.name));
  stopUnnamed(sinks_, sinks);
  // Rules' outboxes: one per mqtt connector that a rule publishes or summarizes through, on
  // the connector's worker (edge.data_dir/outbox/<connector> when durable).
  std::vector<std::shared_ptr<SinkHost>> outboxes;
  for (const auto& c : cfg.connectors)
    if (c.kind == "mqtt" && rulesPublishThrough(cfg, c.name))
      place(outboxes_, outboxes, SinkHost::outboxConfig(c), (data_dir / "outbox" / fileName(c.name)).string(),
            {}, false);  // a stopped connector holds what its outbox hands it
  stopUnnamed(outboxes_, outboxes);
  auto sinksOf = [&](const PipelineConfig& pc) {
    std::vector<std::shared_ptr<SinkHost>> out;
    for (const auto& name : pc.to)
      for (auto& s : sinks)
        if (s->config().name == name) out.push_back(s);
    return out;
  };
  // A pipeline feeding a durable sink, or whose rules forward to one or publish through a
  // durable outbox, keeps an ingest log (edge.data_dir/ingest/<name>).
  auto ingestDirOf = [&](const PipelineConfig& pc) -> std::string {
    if (feedsDisk(cfg, pc)) return (data_dir / "ingest" / fileName(pc.name)).string();
    return {};
  };
  // Pipelines: unchanged ones stay (with their state), the rest are built anew.
  std::vector<std::shared_ptr<PipelineHost>> pipelines;
  std::vector<std::shared_ptr<PipelineHost>> fresh_ones;
  // A changed pipeline's successor adopts its detectors' state once it has retired.
  std::map<PipelineHost*, std::shared_ptr<PipelineHost>> successors;
  for (const auto& pc : cfg.pipelines) {
    const std::string ingest_dir = ingestDirOf(pc);
    const std::filesystem::path state_path = data_dir / "state" / (fileName(pc.name) + ".state");
    std::shared_ptr<PipelineHost> kept, previous;
    for (auto& p : pipelines_) {
      if (p->config().name != pc.name) continue;
      previous = p;
      if (p->config().fingerprint == pc.fingerprint && p->ingestDir() == ingest_dir &&
          (p->statePath().empty() || p->statePath() == state_path))
        kept = p;
    }
    const bool paused = stopped_.contains("pipelines", pc.name);
    if (kept) {
      host_.worker(kept->worker()).post([kept, s = sinksOf(pc), limit = pc.device_limit, paused]() mutable {
        kept->setSinks(std::move(s));
        kept->setDeviceLimit(limit);
        kept->setPaused(paused);
      });
      pipelines.push_back(std::move(kept));
      continue;
    }
    auto fresh = std::make_shared<PipelineHost>(pc, workerFor(pc.name, workers));
    fresh->host_ = &host_;
    if (auto built = fresh->build(); !built.ok()) {  // checked at load: not expected
      logLine(fmt::format("edge: pipeline '{}' not started: {}", pc.name, built.error().message));
      continue;
    }
    fresh->next_seq_ = &next_seq_;
    fresh->setPaused(paused);
    // Before openIngest links it to its predecessor: from then on readings may be forwarded
    // to it, and it must not run them before it has its sinks and the predecessor's state.
    fresh->openState(state_path, cfg.settings.state_every, previous != nullptr);
    if (!ingest_dir.empty()) {
      auto opened = fresh->openIngest(ingest_dir, previous.get());
      if (!opened) {
        fresh->refuseAcknowledgedReadings();
        logLine(fmt::format(
            "edge: pipeline '{}': ingest log {} unusable: readings whose sender waits for an "
            "acknowledgement are refused (HTTP 503 not_stored, no PUBACK, CoAP 5.03) until a restart finds "
            "it usable; the others run unlogged: {}",
            pc.name, ingest_dir, opened.error().message));
      } else {
        // Record numbers go on past every one the log holds (ids stay unique across restarts).
        uint64_t next = next_seq_.load();
        while (next <= *opened && !next_seq_.compare_exchange_weak(next, *opened + 1)) {
        }
        if (fresh->replayed)
          logLine(fmt::format("edge: pipeline '{}' runs again {} readings from its ingest log", pc.name,
                              fresh->replayed));
        // Damage the replay skipped (its readings are lost), said as a sink queue's is.
        if (auto log = fresh->ingestLog(); log && !previous) {
          const auto st = log->stats();
          for (const auto& note : st.damage_notes)
            logLine(fmt::format("edge: pipeline '{}': damaged ingest log data skipped ({} bytes in all): {}",
                                pc.name, st.corrupt_bytes, note));
        }
      }
    }
    if (previous) successors[previous.get()] = fresh;
    WorkerPipelines* list = lists[fresh->worker()].get();
    host_.worker(fresh->worker()).post([fresh, list, s = sinksOf(pc)]() mutable {
      fresh->setSinks(std::move(s));
      list->pipelines.push_back(fresh);
    });
    fresh_ones.push_back(fresh);
    pipelines.push_back(std::move(fresh));
  }
  for (auto& old : pipelines_) {
    if (std::find(pipelines.begin(), pipelines.end(), old) != pipelines.end()) continue;
    WorkerPipelines* list = lists[old->worker()].get();
    auto it = successors.find(old.get());
    std::shared_ptr<PipelineHost> next = it == successors.end() ? nullptr : it->second;
    const bool keeps_file = std::any_of(pipelines.begin(), pipelines.end(), [&](const auto& p) {
      return !p->statePath().empty() && p->statePath() == old->statePath();
    });
    host_.worker(old->worker()).post([this, old, list, next, keeps_file] {
      if (const uint64_t held = old->waiting.load(); held && !next)
        logLine(fmt::format("edge: pipeline '{}' removed with {} readings waiting: they go with it",
                            old->config().name, held));
      old->retire();
      old->dropIngest();
      if (next) {
        old->handOverTo(*next);
      } else if (!keeps_file) {
        std::error_code ec;  // a removed pipeline's state goes with it
        std::filesystem::remove(old->statePath(), ec);
        std::filesystem::remove(old->statePath().string() + ".tmp", ec);
      }
      std::erase(list->pipelines, old);
    });
  }
  // Routing: connector → the pipelines that read it (counters kept by name across reloads).
  auto routing = std::make_shared<Routing>();
  auto previous = routing_.load();
  for (const auto& c : cfg.connectors) {
    Routing::Entry e;
    e.stopped = stopped_.contains("connectors", c.name);
    if (const auto* old = previous->find(c.name); old && old->stats->kind == c.kind) {
      e.stats = old->stats;
    } else {
      e.stats = std::make_shared<ConnectorStats>();
      e.stats->name = c.name;
      e.stats->kind = c.kind;
    }
    for (auto& p : pipelines)
      if (std::find(p->config().from.begin(), p->config().from.end(), c.name) != p->config().from.end())
        e.pipelines.push_back(p);
    routing->connectors.push_back(std::move(e));
  }
  routing_.store(std::move(routing));
  pipelines_ = std::move(pipelines);
  sinks_ = std::move(sinks);
  outboxes_ = std::move(outboxes);
  installConnectors(cfg, workers);
  // MQTT sinks and rules' outboxes send through this version's connectors (after their own
  // start(), same worker).
  for (const auto* list : {&sinks_, &outboxes_})
    for (auto& s : *list) {
      if (s->config().kind != "mqtt" && s->config().kind != SinkHost::kOutbox) continue;
      std::shared_ptr<MqttConnector> connector;
      for (auto& m : mqtt_)
        if (m->config().name == s->config().connector) connector = m;
      host_.worker(s->worker()).post([s, connector] { s->bindConnector(connector); });
    }
  installRules(cfg);
  // After their sinks and rules are set: what the ingest logs gave back runs first.
  for (auto& p : fresh_ones) host_.worker(p->worker()).post([p] { p->kick(); });
  running_.store(true, std::memory_order_release);
}

void EdgeRuntime::installConnectors(const EdgeConfig& cfg, size_t workers) {
  // After the routing: a connector's first messages find their pipelines. An unchanged
  // connector keeps its connection; a changed one takes over its predecessor's session state
  // (same name, same worker) and the predecessor disconnects.
  std::vector<std::shared_ptr<MqttConnector>> mqtt;
  for (const auto& c : cfg.connectors) {
    if (c.kind != "mqtt") continue;
    std::shared_ptr<MqttConnector> previous;
    for (auto& m : mqtt_)
      if (m->config().name == c.name) previous = m;
    loop::Worker& worker = host_.worker(workerFor(c.name, workers));
    auto fresh = std::make_shared<MqttConnector>(*this, worker, c, previous ? previous->stats() : nullptr);
    const bool stopped = stopped_.contains("connectors", c.name);
    if (previous && previous->fingerprint() == fresh->fingerprint()) {
      worker.post([previous, stopped] { previous->suspend(stopped); });
      mqtt.push_back(std::move(previous));
      continue;
    }
    fresh->suspend(stopped);  // before it runs: a stopped one never connects
    worker.post([fresh, previous] { fresh->start(previous); });
    mqtt.push_back(std::move(fresh));
  }
  for (auto& old : mqtt_) {
    const bool named = std::any_of(mqtt.begin(), mqtt.end(),
                                   [&](const auto& m) { return m->config().name == old->config().name; });
    if (!named) host_.worker(workerFor(old->config().name, workers)).post([old] { old->stop(); });
  }
  mqtt_ = std::move(mqtt);

  // Modbus pollers: an unchanged one keeps polling; a changed or removed one is stopped (its
  // thread ends after the read in progress) and joined at a later install once its thread has
  // ended, or at the end: a read waiting on a silent device (its timeout) never holds up a
  // reload or an admin API stop on the main thread.
  std::erase_if(retired_modbus_, [](const std::shared_ptr<ModbusPoller>& r) {
    if (!r->exited()) return false;
    r->join();
    return true;
  });
  std::vector<std::shared_ptr<ModbusPoller>> modbus;
  for (const auto& c : cfg.connectors) {
    if (c.kind != "modbus_tcp" && c.kind != "modbus_rtu") continue;
    std::shared_ptr<ModbusPoller> previous;
    for (auto& m : modbus_)
      if (m && m->config().name == c.name) previous = std::move(m);
    auto fresh = std::make_shared<ModbusPoller>(*this, c, previous ? previous->stats() : nullptr);
    // A stopped one is kept unstarted (its counters stay; rules' writes through it fail).
    const bool stopped = stopped_.contains("connectors", c.name);
    if (previous && previous->fingerprint() == fresh->fingerprint() && previous->started() == !stopped) {
      modbus.push_back(std::move(previous));
      continue;
    }
    if (previous && previous->started()) {
      previous->stop();
      retired_modbus_.push_back(std::move(previous));
    }
    if (stopped) {
      fresh->stop();
      fresh->stats()->connected.store(false);  // its predecessor's link closes as its thread ends
    } else
      fresh->start();
    modbus.push_back(std::move(fresh));
  }
  for (auto& old : modbus_) {
    if (!old) continue;
    old->stop();
    retired_modbus_.push_back(std::move(old));
  }
  modbus_ = std::move(modbus);

  // CoAP connectors: an unchanged one keeps its endpoint and observations; a changed one is
  // stopped (its thread ends within 100 ms, or after a wait for the disk) before its
  // successor binds the same address.
  std::vector<std::shared_ptr<CoapConnector>> coap;
  for (const auto& c : cfg.connectors) {
    if (c.kind != "coap") continue;
    std::shared_ptr<CoapConnector> previous;
    for (auto& m : coap_)
      if (m && m->config().name == c.name) previous = std::move(m);
    auto fresh = std::make_shared<CoapConnector>(*this, c, previous ? previous->stats() : nullptr,
                                                 previous ? previous->exchanges() : nullptr);
    // A stopped one is kept unstarted, its endpoint closed (its counters stay).
    const bool stopped = stopped_.contains("connectors", c.name);
    if (previous && previous->fingerprint() == fresh->fingerprint() && previous->running() == !stopped) {
      coap.push_back(std::move(previous));
      continue;
    }
    if (previous) previous->stop();
    if (stopped) {
      fresh->stats()->listening = false;
      coap.push_back(std::move(fresh));
      continue;
    }
    if (auto started = fresh->start(); !started) {
      logLine("edge: " + started.error().message);
      std::lock_guard lock(fresh->stats()->error_mutex);
      fresh->stats()->last_error = started.error().message;
    }
    coap.push_back(std::move(fresh));
  }
  for (auto& old : coap_)
    if (old) old->stop();
  coap_ = std::move(coap);
}

Result<void> EdgeRuntime::checkEndpoints(const EdgeConfig& next) const {
  for (const auto& c : next.connectors) {
    if (c.kind != "coap" || !c.listens) continue;
    if (stopped_.contains("connectors", c.name)) continue;  // it will not bind: whoever holds the port may
    // An address one of ours holds is released before its successor binds it.
    const bool held = std::any_of(coap_.begin(), coap_.end(), [&](const auto& running) {
      const auto& r = running->config();
      return running->running() && r.listens && r.listen.host == c.listen.host &&
             r.listen.port == c.listen.port;
    });
    if (held) continue;
    if (auto probe = probeUdpListen(c.listen); !probe)
      return Error(fmt::format("{}: connector '{}': {}", c.at.line, c.name, probe.error().message));
  }
  return {};
}

Result<json::object> EdgeRuntime::setStopped(std::string_view part, std::string_view name, bool stop) {
  const std::string_view kind = StoppedParts::singular(part);
  if (!installed_)
    return Error(
        "the edge is not running yet: this process waits for the one it replaces (a binary upgrade) "
        "to let go of edge.data_dir",
        "edge_starting", 503);
  if (!StoppedParts::configHas(*installed_, part, name))
    return Error(fmt::format("no {} named '{}' in the running config", kind, printableText(name, 200)),
                 fmt::format("{}_not_found", kind), 404);
  json::object out;
  out["name"] = name;
  out["kind"] = kind;
  out["stopped"] = stop;
  const bool changed = stopped_.set(part, name, stop);
  out["changed"] = changed;
  if (!changed) return out;
  if (auto saved = stopped_.save(); !saved) {
    // It holds for this run all the same; the operator hears that a restart would undo it.
    logLine("edge: " + saved.error().message);
    out["warning"] = fmt::format("not kept across restarts: {}", saved.error().message);
  }
  install(installed_, data_dir_);  // every part as installed, this one stopped or started
  logLine(fmt::format("edge: {} '{}' {} through the admin API", kind, name, stop ? "stopped" : "started"));
  return out;
}

void EdgeRuntime::installRules(const EdgeConfig& cfg) {
  // A rule keeps its state (hold-off, raised keys) on a pipeline that was kept, while its
  // settings do not change; its actions are bound again to this version's connectors and sinks.
  std::vector<RuleEntry> entries;
  std::vector<std::pair<std::string, std::shared_ptr<RuleStats>>> stats;
  std::vector<std::vector<PipelineHost::RuleBinding>> bindings(pipelines_.size());
  for (const auto& rc : cfg.rules) {
    std::shared_ptr<RuleStats> counters;
    for (auto& [name, s] : rule_stats_)
      if (name == rc.name) counters = s;
    if (!counters) counters = std::make_shared<RuleStats>();
    stats.emplace_back(rc.name, counters);
    auto config = std::make_shared<const RuleConfig>(rc);
    for (size_t i = 0; i < pipelines_.size(); ++i) {
      const auto& p = pipelines_[i];
      if (!rc.from.empty() && std::find(rc.from.begin(), rc.from.end(), p->config().name) == rc.from.end())
        continue;
      std::shared_ptr<RuleRunner> runner;
      PipelineHost::RuleBinding b;
      for (const auto& e : rules_) {
        if (e.runner->config().name != rc.name || e.pipeline->config().name != p->config().name) continue;
        b.webhooks_in_flight = e.webhooks_in_flight;  // what is still under way counts on
        b.summaries_in_flight = e.summaries_in_flight;
        if (e.pipeline == p && e.runner->config().fingerprint == rc.fingerprint) runner = e.runner;
      }
      if (!runner) runner = std::make_shared<RuleRunner>(config, counters);
      entries.push_back({p, runner, b.webhooks_in_flight, b.summaries_in_flight});
      b.runner = runner;
      for (const auto& action : rc.actions) {
        std::shared_ptr<SinkHost> outbox;
        std::shared_ptr<SinkHost> sink;
        auto findConnector = [&](const std::string& name) {
          for (auto& o : outboxes_)
            if (o->config().name == name) outbox = o;
        };
        auto findSink = [&](const std::string& name) {
          for (auto& s : sinks_)
            if (s->config().name == name) sink = s;
        };
        if (const auto* publish = std::get_if<RulePublish>(&action)) {
          findConnector(publish->connector);
        } else if (const auto* forward = std::get_if<RuleForward>(&action)) {
          findSink(forward->to);
        } else if (const auto* sum = std::get_if<RuleSummarize>(&action)) {
          findConnector(sum->connector);
          findSink(sum->to);
        }
        std::shared_ptr<ModbusPoller> poller;
        if (const auto* wr = std::get_if<RuleWrite>(&action))
          for (auto& m : modbus_)
            if (m->config().name == wr->connector) poller = m;
        b.outboxes.push_back(std::move(outbox));
        b.sinks.push_back(std::move(sink));
        b.pollers.push_back(std::move(poller));
      }
      bindings[i].push_back(std::move(b));
    }
  }
  for (size_t i = 0; i < pipelines_.size(); ++i) {
    auto p = pipelines_[i];
    host_.worker(p->worker()).post([p, b = std::move(bindings[i])]() mutable { p->setRules(std::move(b)); });
  }
  rules_ = std::move(entries);
  rule_stats_ = std::move(stats);
  // Outboxes time the alarms they hand to their connector in their rule's counters.
  auto shared =
      std::make_shared<const std::vector<std::pair<std::string, std::shared_ptr<RuleStats>>>>(rule_stats_);
  for (auto& o : outboxes_) host_.worker(o->worker()).post([o, shared] { o->setRuleStats(shared); });
}

void DeliveryTicket::complete(bool ok) {
  std::function<void(bool)> done;
  bool result = false;
  {
    std::lock_guard lock(mutex_);
    if (!ok) ok_ = false;
    if (--remaining_ > 0 || !done_) return;
    done = std::move(done_);
    result = ok_;
  }
  done(result);
}

void DeliveryTicket::onDone(std::function<void(bool)> done) {
  bool result = false;
  {
    std::lock_guard lock(mutex_);
    if (remaining_ > 0) {
      done_ = std::move(done);
      return;
    }
    result = ok_;
  }
  done(result);
}

asio::awaitable<bool> DeliveryTicket::wait() {
  auto executor = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(bool)>(
      [this, executor](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        onDone([h, executor](bool ok) { asio::post(executor, [h, ok]() mutable { (*h)(ok); }); });
      },
      asio::use_awaitable);
}

int EdgeRuntime::deliver(std::string_view connector, std::shared_ptr<IncomingReadings> readings,
                         std::shared_ptr<DeliveryTicket>* ticket) {
  auto routing = routing_.load();
  const Routing::Entry* entry = routing->find(connector);
  if (!entry) return 0;
  if (entry->stopped) return kStopped;
  const uint64_t n = readings->items.size();
  for (const auto& p : entry->pipelines) {
    if (p->waiting.load(std::memory_order_relaxed) + n > kMaxWaitingReadings) {
      entry->stats->backpressure.fetch_add(1, std::memory_order_relaxed);
      return -1;
    }
  }
  readings->first_seq = next_seq_.fetch_add(n, std::memory_order_relaxed);
  if (!readings->arrived_ns) readings->arrived_ns = steadyNanos();
  std::shared_ptr<const IncomingReadings> shared = std::move(readings);
  std::shared_ptr<DeliveryTicket> waiting;
  if (ticket) {
    int logged = 0;
    for (const auto& p : entry->pipelines) logged += p->logsIngest() ? 1 : 0;
    // A pipeline without a log completes its part at once.
    if (logged) waiting = std::make_shared<DeliveryTicket>(static_cast<int>(entry->pipelines.size()));
    *ticket = waiting;
  }
  for (const auto& p : entry->pipelines) p->enqueue(shared, waiting);
  return static_cast<int>(entry->pipelines.size());
}

bool EdgeRuntime::connectorStopped(std::string_view connector) const {
  const auto routing = routing_.load();
  const Routing::Entry* e = routing->find(connector);
  return e && e->stopped;
}

void EdgeRuntime::countIngest(std::string_view connector, size_t readings, size_t rejected, size_t refused,
                              size_t payloads) {
  auto routing = routing_.load();
  const Routing::Entry* entry = routing->find(connector);
  if (!entry) return;
  auto& s = *entry->stats;
  s.payloads.fetch_add(payloads, std::memory_order_relaxed);
  s.readings.fetch_add(readings, std::memory_order_relaxed);
  s.rejected.fetch_add(rejected, std::memory_order_relaxed);
  s.refused.fetch_add(refused, std::memory_order_relaxed);
}

asio::awaitable<Result<std::string>> EdgeRuntime::sinkRecords(std::string sink, std::string query) {
  std::string path;
  for (const auto& s : sinks_)
    if (s->config().name == sink) {
      if (s->config().kind != "tsdb")
        co_return Error(fmt::format("sink '{}' is a {} sink: only tsdb sinks keep records to read", sink,
                                    s->config().kind),
                        "not_a_tsdb_sink", 404);
      path = s->tsdbPath();
    }
  if (path.empty()) co_return Error(fmt::format("no sink named '{}'", sink), "sink_not_found", 404);
  auto q = parseTsdbQuery(query);
  if (!q) co_return q.error();
  const TsdbQuery* want = &*q;
  const std::string* file = &path;
  auto body = co_await loop::runBlocking([file, want] { return TsdbStore::query(*file, *want); });
  co_return body;
}

namespace {

/// A sink's (or an outbox's) queue and delivery counters, for GET /edge.
void describeQueue(const SinkHost& s, int64_t now, json::object& o) {
  o["worker"] = s.worker();
  // False while a durable queue is still being read at start: its counts are not known yet.
  o["open"] = s.started.load();
  o["queued_records"] = s.queued_records.load();
  o["queued_bytes"] = s.queued_bytes.load();
  o["oldest_age_ms"] = s.oldestAgeMs(now);
  o["delivered"] = s.delivered.load();
  o["batches"] = s.batches.load();
  if (s.config().kind == SinkHost::kOutbox) o["joined"] = s.joined.load();
  o["failures"] = s.failures.load();
  o["rejected"] = s.rejected.load();
  o["dropped"] = s.dropped.load();
  o["durable"] = s.durable.load();
  if (s.durable.load()) {
    o["queue_dir"] = s.queueDir();
    o["corrupt_bytes"] = s.corrupt_bytes.load();
    o["write_failures"] = s.write_failures.load();
    o["held_in_memory"] = s.held_in_memory.load();
  }
  std::lock_guard lock(s.error_mutex);
  if (!s.last_error.empty()) o["last_error"] = s.last_error;
  if (!s.corruption.empty()) o["last_corruption"] = s.corruption;
  if (!s.queue_error.empty()) o["queue_error"] = s.queue_error;
}

}  // namespace

json::object EdgeRuntime::status() const {
  json::object out;
  json::array pipelines;
  for (const auto& p : pipelines_) {
    json::object o;
    o["name"] = p->config().name;
    o["worker"] = p->worker();
    json::array from, to;
    for (const auto& f : p->config().from) from.emplace_back(f);
    for (const auto& t : p->config().to) to.emplace_back(t);
    o["from"] = std::move(from);
    o["to"] = std::move(to);
    o["readings_in"] = p->readings_in.load();
    o["records_out"] = p->records_out.load();
    o["waiting"] = p->waiting.load();
    o["oldest_wait_ms"] = static_cast<double>(p->oldestWaitNs() / 1000) / 1000.0;
    o["series"] = p->series.load();
    o["series_refused"] = p->series_refused.load();
    o["device_limited"] = p->device_limited.load();
    json::array limited;
    for (const auto& l : p->limitedDevices())
      limited.push_back(json::object{{"source", l.source}, {"device", l.device}, {"dropped", l.dropped}});
    o["limited_devices"] = std::move(limited);
    o["series_forgotten"] = p->series_forgotten.load();
    o["not_stored"] = p->not_stored.load();
    o["left_at_reload"] = p->left_at_reload.load();
    o["stopped"] = stopped_.contains("pipelines", p->config().name);
    if (auto log = p->ingestLog()) {
      json::object l;
      l["dir"] = log->dir().string();
      const IngestLog::Stats st = log->stats();
      l["frames"] = st.frames;
      l["bytes"] = st.bytes;
      l["corrupt_bytes"] = st.corrupt_bytes;
      if (!st.corruption.empty()) l["last_corruption"] = st.corruption;
      l["replayed"] = p->replayed;
      o["ingest_log"] = std::move(l);
    }
    o["stages"] = p->stageStatus();
    pipelines.push_back(std::move(o));
  }
  out["pipelines"] = std::move(pipelines);
  json::array sinks;
  const int64_t now = wallMillis();
  for (const auto& s : sinks_) {
    json::object o;
    o["name"] = s->config().name;
    o["kind"] = s->config().kind;
    if (s->config().kind == "mqtt") {
      o["connector"] = s->config().connector;
      o["topic"] = s->config().topic.text;
    } else if (s->config().kind == "tsdb") {
      o["path"] = s->tsdbPath();
      o["expired"] = s->expired.load();
      o["evicted"] = s->evicted.load();
    } else {
      o["url"] = redactUrl(s->config().url);
    }
    describeQueue(*s, now, o);
    o["stopped"] = stopped_.contains("sinks", s->config().name);
    sinks.push_back(std::move(o));
  }
  out["sinks"] = std::move(sinks);
  json::array connectors;
  for (const auto& e : routing_.load()->connectors) {
    json::object o;
    o["name"] = e.stats->name;
    o["kind"] = e.stats->kind;
    o["payloads"] = e.stats->payloads.load();
    o["readings"] = e.stats->readings.load();
    o["rejected"] = e.stats->rejected.load();
    o["refused"] = e.stats->refused.load();
    o["backpressure"] = e.stats->backpressure.load();
    o["stopped"] = e.stopped;
    json::array to;
    for (const auto& p : e.pipelines) to.emplace_back(p->config().name);
    o["pipelines"] = std::move(to);
    for (const auto& m : mqtt_)
      if (m->config().name == e.stats->name) m->describe(o);
    for (const auto& b : outboxes_)
      if (b->config().name == e.stats->name) {
        json::object q;
        describeQueue(*b, now, q);
        o["outbox"] = std::move(q);
      }
    for (const auto& m : modbus_)
      if (m->config().name == e.stats->name) m->describe(o);
    for (const auto& m : coap_)
      if (m->config().name == e.stats->name) m->describe(o);
    connectors.push_back(std::move(o));
  }
  out["connectors"] = std::move(connectors);
  json::array rules;
  for (const auto& [name, s] : rule_stats_) {
    json::object o;
    o["name"] = name;
    json::array on;
    for (const auto& e : rules_)
      if (e.runner->config().name == name) on.emplace_back(e.pipeline->config().name);
    o["pipelines"] = std::move(on);
    o["matched"] = s->matched.load();
    o["fired"] = s->fired.load();
    o["suppressed"] = s->suppressed.load();
    o["cleared"] = s->cleared.load();
    o["failed_actions"] = s->failed_actions.load();
    o["untracked"] = s->untracked.load();
    o["summaries"] = s->summaries.load();
    o["webhooks"] = s->webhooks.load();
    o["writes"] = s->writes.load();
    {
      std::lock_guard lock(s->error_mutex);
      if (!s->last_error.empty()) o["last_error"] = s->last_error;
    }
    rules.push_back(std::move(o));
  }
  out["rules"] = std::move(rules);
  out["running"] = running();  // false: a successor waiting for edge.data_dir (binary upgrade)
  return out;
}

void EdgeRuntime::drain(std::chrono::milliseconds limit) {
  // Connectors first: no readings come in while the windows close. MQTT connectors stay
  // connected until the outboxes and sinks have sent what they can.
  for (auto& m : mqtt_) m->worker().post([m] { m->closeIntake(); });
  for (auto& m : modbus_) m->stop();
  for (auto& c : coap_) c->stop();
  std::atomic<size_t> flushed{0};
  for (auto& p : pipelines_)
    host_.worker(p->worker()).post([p, &flushed] {
      p->flush();
      flushed.fetch_add(1);
    });
  const auto deadline = std::chrono::steady_clock::now() + limit;
  // A stopped sink, or one whose connector is stopped, keeps what it holds: not waited for.
  auto delivers = [&](const SinkHost& s) {
    if (s.config().kind != SinkHost::kOutbox && stopped_.contains("sinks", s.config().name)) return false;
    if (s.config().kind == SinkHost::kOutbox) return !stopped_.contains("connectors", s.config().name);
    if (s.config().kind == "mqtt") return !stopped_.contains("connectors", s.config().connector);
    return true;
  };
  auto pending = [&] {
    if (flushed.load() < pipelines_.size()) return true;
    for (const auto* list : {&sinks_, &outboxes_})
      for (const auto& s : *list)
        if (!s->started.load()) return true;
    for (const auto& p : pipelines_)
      if (p->savingState() || p->trimming()) return true;  // this order: see saveState()
    for (const auto* list : {&sinks_, &outboxes_})
      for (const auto& s : *list)
        if ((s->queued_records.load() || s->in_transit.load()) && delivers(*s)) return true;
    return false;
  };
  while (pending() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  // Then they say DISCONNECT (the broker keeps their sessions) and wait for the broker to close
  // its end: a process that exits with the broker's messages unread resets the connection, and
  // the broker may lose the last acknowledgements (it would send those messages again).
  for (auto& m : mqtt_) m->worker().post([m] { m->stop(); });
  const auto said_bye = std::chrono::steady_clock::now() + std::chrono::milliseconds(1100);
  while (std::any_of(mqtt_.begin(), mqtt_.end(), [](const auto& m) { return !m->ended(); }) &&
         std::chrono::steady_clock::now() < said_bye)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  StateWriter::shared().flush();  // the detectors' state, saved by flush()
  for (const auto& p : pipelines_)
    if (const uint64_t held = p->waiting.load(); held && stopped_.contains("pipelines", p->config().name))
      logLine(
          fmt::format("edge: pipeline '{}' is stopped with {} readings waiting: its ingest log keeps "
                      "them for when it is started",
                      p->config().name, held));
  // The flush lambdas reference `flushed`: wait for them even past the limit; and a sink still
  // opening its durable queue on its worker must finish before the runtime goes.
  while (flushed.load() < pipelines_.size()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (const auto* list : {&sinks_, &outboxes_})
    for (const auto& s : *list)
      while (!s->started.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (const auto* list : {&sinks_, &outboxes_})
    for (const auto& s : *list)
      if (const uint64_t left = s->queued_records.load()) {
        const bool outbox = s->config().kind == SinkHost::kOutbox;
        logLine(s->durable.load()
                    ? fmt::format("edge: {} keeps {} records not yet delivered in {}", s->label(), left,
                                  s->queueDir())
                    : fmt::format("edge: {} had {} records not delivered at shutdown (its queue is in "
                                  "memory: {})",
                                  s->label(), left,
                                  s->config().queue.durable ? "its durable queue could not be opened"
                                  : outbox                  ? "outbox.durable keeps them"
                                                            : "queue.durable keeps them"));
      }
}

void EdgeRuntime::render(std::string& out) const {
  using telemetry::appendFamilyHead;
  using telemetry::labelValue;
  if (pipelines_.empty() && sinks_.empty() && routing_.load()->connectors.empty() && rule_stats_.empty())
    return;
  // A family with one sample per pipeline or sink, labelled by its name.
  auto family = [&](std::string_view name, std::string_view type, std::string_view help, const auto& hosts,
                    std::string_view label, auto value) {
    appendFamilyHead(out, name, type, help);
    for (const auto& h : hosts)
      fmt::format_to(std::back_inserter(out), "{}{{{}=\"{}\"}} {}\n", name, label,
                     labelValue(h->config().name), value(*h));
  };
  family("ganglion_edge_pipeline_readings_total", "counter", "Readings handed to each pipeline.", pipelines_,
         "pipeline", [](const PipelineHost& p) { return p.readings_in.load(); });
  family("ganglion_edge_pipeline_records_out_total", "counter", "Records leaving each pipeline's last stage.",
         pipelines_, "pipeline", [](const PipelineHost& p) { return p.records_out.load(); });
  appendFamilyHead(
      out, "ganglion_edge_pipeline_dropped_total", "counter",
      "Records a pipeline's stages dropped, by reason (filtered, late, series_limit, no_value; "
      "suppressed by a deadband, downsample or fft, duplicate; device_limit: over the pipeline's per-device "
      "rate; reload: left out when a reload "
      "replaced the pipeline).");
  for (const auto& p : pipelines_) {
    uint64_t filtered = 0, late = 0, series_limit = p->series_refused.load(), no_value = 0, suppressed = 0,
             duplicates = 0;
    const uint64_t device_limit = p->device_limited.load();
    for (size_t i = 0; i < p->config().spec.stages.size(); ++i) {
      filtered += p->stage(i).filtered.load();
      late += p->stage(i).late.load();
      series_limit += p->stage(i).series_limit.load();
      no_value += p->stage(i).no_value.load();
      suppressed += p->stage(i).suppressed.load();
      duplicates += p->stage(i).duplicates.load();
    }
    const std::string name = labelValue(p->config().name);
    for (const auto& [reason, n] : {std::pair<std::string_view, uint64_t>{"filtered", filtered},
                                    {"late", late},
                                    {"series_limit", series_limit},
                                    {"no_value", no_value},
                                    {"suppressed", suppressed},
                                    {"duplicate", duplicates},
                                    {"reload", p->left_at_reload.load()},
                                    {"device_limit", device_limit}})
      fmt::format_to(std::back_inserter(out),
                     "ganglion_edge_pipeline_dropped_total{{pipeline=\"{}\",reason=\"{}\"}} {}\n", name,
                     reason, n);
  }
  family("ganglion_edge_pipeline_events_total", "counter", "Detector events raised, per pipeline.",
         pipelines_, "pipeline", [](const PipelineHost& p) {
           uint64_t events = 0;
           for (size_t i = 0; i < p.config().spec.stages.size(); ++i) events += p.stage(i).events.load();
           return events;
         });
  appendFamilyHead(
      out, "ganglion_edge_stage_busy_seconds_total", "counter",
      "Time each stage of a pipeline took over its batches (with ganglion_edge_stage_batches_total: "
      "its latency per batch); stages are numbered from 0 in config order.");
  for (const auto& p : pipelines_)
    for (size_t i = 0; i < p->config().spec.stages.size(); ++i)
      fmt::format_to(
          std::back_inserter(out),
          "ganglion_edge_stage_busy_seconds_total{{pipeline=\"{}\",stage=\"{}\",kind=\"{}\"}} {:.6f}\n",
          labelValue(p->config().name), i, p->stageKind(i), p->stage(i).busy_ns.load() / 1e9);
  appendFamilyHead(
      out, "ganglion_edge_stage_batches_total", "counter",
      "Batches each stage of a pipeline took (and ticks that closed windows or released records).");
  for (const auto& p : pipelines_)
    for (size_t i = 0; i < p->config().spec.stages.size(); ++i)
      fmt::format_to(std::back_inserter(out),
                     "ganglion_edge_stage_batches_total{{pipeline=\"{}\",stage=\"{}\",kind=\"{}\"}} {}\n",
                     labelValue(p->config().name), i, p->stageKind(i), p->stage(i).batches.load());
  family("ganglion_edge_pipeline_series", "gauge", "Series a pipeline holds (at most its max_series).",
         pipelines_, "pipeline", [](const PipelineHost& p) { return p.series.load(); });
  family("ganglion_edge_pipeline_series_forgotten_total", "counter",
         "Idle series a pipeline forgot to make room (its table was 90% full).", pipelines_, "pipeline",
         [](const PipelineHost& p) { return p.series_forgotten.load(); });
  family("ganglion_edge_pipeline_wait_seconds", "gauge",
         "How long the oldest readings waiting for a pipeline's worker have waited (0: none waits).",
         pipelines_, "pipeline",
         [](PipelineHost& p) { return fmt::format("{:.6f}", p.oldestWaitNs() / 1e9); });
  family("ganglion_edge_pipeline_waiting_readings", "gauge",
         "Readings handed to a pipeline and not yet run (its worker's backlog).", pipelines_, "pipeline",
         [](const PipelineHost& p) { return p.waiting.load(); });
  family("ganglion_edge_sink_queued_records", "gauge", "Records waiting for delivery, per sink.", sinks_,
         "sink", [](const SinkHost& s) { return s.queued_records.load(); });
  family("ganglion_edge_sink_queued_bytes", "gauge", "Bytes of records waiting, per sink.", sinks_, "sink",
         [](const SinkHost& s) { return s.queued_bytes.load(); });
  const int64_t now = wallMillis();
  // The age of a queue's oldest record, in seconds (0: none waits).
  auto lag = [now](const SinkHost& s) { return fmt::format("{:.3f}", s.oldestAgeMs(now) / 1000.0); };
  family("ganglion_edge_sink_lag_seconds", "gauge",
         "Age of the oldest record waiting for delivery, per sink (0: none waits).", sinks_, "sink", lag);
  family("ganglion_edge_sink_delivered_total", "counter", "Records the receiver accepted (2xx).", sinks_,
         "sink", [](const SinkHost& s) { return s.delivered.load(); });
  family("ganglion_edge_sink_failures_total", "counter",
         "Deliveries that failed (no answer, or not 2xx); each is retried after a backoff.", sinks_, "sink",
         [](const SinkHost& s) { return s.failures.load(); });
  family("ganglion_edge_sink_rejected_total", "counter",
         "Records the receiver refused for good (413 for one record; influxdb's 400 and 422) or that line "
         "protocol cannot carry: dropped, not retried.",
         sinks_, "sink", [](const SinkHost& s) { return s.rejected.load(); });
  family("ganglion_edge_sink_dropped_total", "counter",
         "Records dropped because the sink's queue was full (queue.max_bytes) or its disk refused them.",
         sinks_, "sink", [](const SinkHost& s) { return s.dropped.load(); });
  family("ganglion_edge_sink_corrupt_bytes_total", "counter",
         "Bytes of a durable queue's files found damaged and skipped (GET /edge names the segment).", sinks_,
         "sink", [](const SinkHost& s) { return s.corrupt_bytes.load(); });
  if (!outboxes_.empty()) {
    family("ganglion_edge_outbox_queued_records", "gauge",
           "Messages of rules' publish and summarize waiting in an MQTT connector's outbox (sent, not yet "
           "acknowledged, included).",
           outboxes_, "connector", [](const SinkHost& s) { return s.queued_records.load(); });
    family("ganglion_edge_outbox_lag_seconds", "gauge",
           "Age of the oldest message waiting in an MQTT connector's outbox (0: none waits).", outboxes_,
           "connector", lag);
    family("ganglion_edge_outbox_delivered_total", "counter",
           "Outbox messages the broker acknowledged (QoS 1, 2) or that were sent (QoS 0).", outboxes_,
           "connector", [](const SinkHost& s) { return s.delivered.load(); });
    family("ganglion_edge_outbox_rejected_total", "counter",
           "Outbox messages dropped without delivery: refused for good by the broker (MQTT 5: topic invalid, "
           "too large, bad payload), refused 5 times in a row (not authorized), or unreadable.",
           outboxes_, "connector", [](const SinkHost& s) { return s.rejected.load(); });
    family("ganglion_edge_outbox_dropped_total", "counter",
           "Outbox messages dropped because the outbox was full (outbox.max_bytes) or its disk refused them.",
           outboxes_, "connector", [](const SinkHost& s) { return s.dropped.load(); });
  }
  appendFamilyHead(out, "ganglion_edge_connector_readings_total", "counter",
                   "Readings a connector accepted, and refused one by one (result=rejected).");
  const auto routing = routing_.load();
  for (const auto& e : routing->connectors) {
    const std::string name = labelValue(e.stats->name);
    fmt::format_to(std::back_inserter(out),
                   "ganglion_edge_connector_readings_total{{connector=\"{}\",result=\"accepted\"}} {}\n"
                   "ganglion_edge_connector_readings_total{{connector=\"{}\",result=\"rejected\"}} {}\n",
                   name, e.stats->readings.load(), name, e.stats->rejected.load());
  }
  appendFamilyHead(out, "ganglion_edge_connector_payloads_total", "counter",
                   "Payloads a connector received, by result (accepted, refused whole, backpressure).");
  for (const auto& e : routing->connectors) {
    const std::string name = labelValue(e.stats->name);
    const uint64_t all = e.stats->payloads.load(), refused = e.stats->refused.load();
    fmt::format_to(std::back_inserter(out),
                   "ganglion_edge_connector_payloads_total{{connector=\"{}\",result=\"accepted\"}} {}\n"
                   "ganglion_edge_connector_payloads_total{{connector=\"{}\",result=\"refused\"}} {}\n"
                   "ganglion_edge_connector_payloads_total{{connector=\"{}\",result=\"backpressure\"}} {}\n",
                   name, all - std::min(all, refused), name, refused, name, e.stats->backpressure.load());
  }
  if (!stopped_.all().empty()) {
    appendFamilyHead(out, "ganglion_edge_stopped", "gauge",
                     "1 for each pipeline, connector or sink stopped through the admin API.");
    for (const auto& [part, name] : stopped_.all())
      fmt::format_to(std::back_inserter(out), "ganglion_edge_stopped{{part=\"{}\",name=\"{}\"}} 1\n",
                     StoppedParts::singular(part), labelValue(name));
  }
  if (!rule_stats_.empty()) {
    appendFamilyHead(
        out, "ganglion_edge_rule_total", "counter",
        "Rule outcomes: matched (the condition held), fired (the actions ran), suppressed "
        "(hold-off or hysteresis), cleared, failed_action, summary (a model's answer sent on), webhook (a "
        "call answered 2xx), write (a Modbus write the device took), untracked (fired without state: the "
        "rule's key table was full).");
    for (const auto& [rule, s] : rule_stats_) {
      const std::string name = labelValue(rule);
      for (const auto& [what, n] : {std::pair<std::string_view, uint64_t>{"matched", s->matched.load()},
                                    {"fired", s->fired.load()},
                                    {"suppressed", s->suppressed.load()},
                                    {"cleared", s->cleared.load()},
                                    {"failed_action", s->failed_actions.load()},
                                    {"summary", s->summaries.load()},
                                    {"webhook", s->webhooks.load()},
                                    {"write", s->writes.load()},
                                    {"untracked", s->untracked.load()}})
        fmt::format_to(std::back_inserter(out), "ganglion_edge_rule_total{{rule=\"{}\",outcome=\"{}\"}} {}\n",
                       name, what, n);
    }
    appendFamilyHead(
        out, "ganglion_edge_rule_publish_latency_seconds", "histogram",
        "From a reading's hand-off by its connector to the hand-off of the alarm it fired to the "
        "MQTT connector that publishes it (readings run again from an ingest log are not timed).");
    for (const auto& [rule, s] : rule_stats_)
      telemetry::appendHistogramSamples(
          out, "ganglion_edge_rule_publish_latency_seconds", fmt::format("rule=\"{}\"", labelValue(rule)),
          RuleStats::kLatencyBoundsUs, [&stats = *s](size_t i) { return stats.publish_latency[i].load(); },
          static_cast<double>(s->publish_latency_ns_sum.load()) / 1e9);
  }
  if (mqtt_.empty()) return;
  family("ganglion_edge_mqtt_connected", "gauge", "1 while an MQTT connector holds an accepted connection.",
         mqtt_, "connector", [](const MqttConnector& m) { return m.stats()->connected.load() ? 1 : 0; });
  family("ganglion_edge_mqtt_messages_total", "counter", "PUBLISH packets an MQTT connector received.", mqtt_,
         "connector", [](const MqttConnector& m) { return m.stats()->messages.load(); });
  family("ganglion_edge_mqtt_connects_total", "counter", "Connections the broker accepted (CONNACK).", mqtt_,
         "connector", [](const MqttConnector& m) { return m.stats()->connects.load(); });
  family("ganglion_edge_mqtt_failed_attempts_total", "counter",
         "Connection attempts that failed (no route, TLS, refused CONNACK, timeout).", mqtt_, "connector",
         [](const MqttConnector& m) { return m.stats()->failed_attempts.load(); });
  family("ganglion_edge_mqtt_disconnects_total", "counter", "Accepted connections that were lost.", mqtt_,
         "connector", [](const MqttConnector& m) { return m.stats()->disconnects.load(); });
  family("ganglion_edge_mqtt_published_total", "counter",
         "Messages rules published through an MQTT connector (QoS 1 and 2: acknowledged by the broker).",
         mqtt_, "connector", [](const MqttConnector& m) { return m.stats()->published.load(); });
  family("ganglion_edge_mqtt_publish_dropped_total", "counter",
         "Messages to publish dropped because too many waited for the broker.", mqtt_, "connector",
         [](const MqttConnector& m) { return m.stats()->publish_dropped.load(); });
  family("ganglion_edge_mqtt_paused_seconds_total", "counter",
         "Time an MQTT connector stopped reading because its pipelines were full (backpressure).", mqtt_,
         "connector",
         [](const MqttConnector& m) { return fmt::format("{:.3f}", m.stats()->paused_ms.load() / 1000.0); });
}

}  // namespace ganglion::edge
