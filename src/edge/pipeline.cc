#include "edge/pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "base/time.h"
#include "edge/stages/filter.h"
#include "edge/stages/map.h"
#include "edge/state/state_codec.h"

namespace ganglion::edge {

Pipeline::Pipeline(std::string name, std::shared_ptr<const FieldNames> names, size_t max_series)
    : name_(std::move(name)), names_(std::move(names)), series_(max_series) {}

uint16_t Pipeline::origin(std::string_view name) {
  for (size_t i = 0; i < origins_.size(); ++i)
    if (origins_[i] == name) return static_cast<uint16_t>(i);
  origins_.emplace_back(name);
  return static_cast<uint16_t>(origins_.size() - 1);
}

namespace {

/// Runs `work` and adds the time it took to the stage's counters (two reads of the steady
/// clock per stage and batch: a few tens of nanoseconds, spread over the batch's records).
template <typename Work>
void timed(Stage& stage, Work&& work) {
  const int64_t start = steadyNanos();
  work();
  stage.counters.busy_ns += static_cast<uint64_t>(steadyNanos() - start);
  ++stage.counters.batches;
}

}  // namespace

void Pipeline::runFrom(size_t first_stage, Batch& batch, StageContext& ctx) {
  for (size_t i = first_stage; i < stages_.size() && !batch.empty(); ++i)
    timed(*stages_[i], [&] { stages_[i]->process(batch, ctx); });
  if (batch.empty()) return;
  records_out_ += batch.size();
  if (output_) output_(batch, *this);
}

void Pipeline::push(Batch& batch, int64_t wall_ms) {
  series_.setClock(wall_ms);
  StageContext ctx{series_, *names_, evaluator_, wall_ms};
  runFrom(0, batch, ctx);
}

void Pipeline::tick(int64_t wall_ms) {
  series_.setClock(wall_ms);
  StageContext ctx{series_, *names_, evaluator_, wall_ms};
  for (size_t i = 0; i < stages_.size(); ++i) {
    tick_batch_.clear();
    const int64_t start = steadyNanos();
    stages_[i]->tick(tick_batch_, ctx);
    stages_[i]->counters.busy_ns += static_cast<uint64_t>(steadyNanos() - start);
    if (!tick_batch_.empty()) ++stages_[i]->counters.batches;  // a tick that found work
    if (!tick_batch_.empty()) runFrom(i + 1, tick_batch_, ctx);
  }
}

void Pipeline::flush(int64_t wall_ms) {
  StageContext ctx{series_, *names_, evaluator_, wall_ms};
  for (size_t i = 0; i < stages_.size(); ++i) {
    tick_batch_.clear();
    timed(*stages_[i], [&] { stages_[i]->flush(tick_batch_, ctx); });
    if (!tick_batch_.empty()) runFrom(i + 1, tick_batch_, ctx);
  }
}

// The state: u32 stages with state, then per stage its key and its state (both strings).
std::string Pipeline::saveState() const {
  std::string out;
  if (stateful_.empty()) return out;
  StateEncoder e(out);
  e.u32(static_cast<uint32_t>(stateful_.size()));
  std::string state;
  for (const auto& [stage, key] : stateful_) {
    state.clear();
    stage->saveState(state, series_);
    e.str(key);
    e.str(state);
  }
  return out;
}

size_t Pipeline::forgetIdle(int64_t wall_ms) {
  if (series_.size() * 10 < series_.maxSeries() * 9 || wall_ms < next_sweep_ms_) return 0;
  next_sweep_ms_ = wall_ms + std::min<int64_t>(forget_after_ms_, 10'000);
  const int64_t idle_before = wall_ms - forget_after_ms_;
  keep_.assign(series_.idLimit(), 0);
  for (SeriesId id = 0; id < series_.idLimit(); ++id)
    keep_[id] = series_.inUse(id) && series_.lastSeen(id) >= idle_before;
  for (const auto& stage : stages_) stage->keepSeries(keep_);
  const Forgetting f{keep_, series_, idle_before};
  for (const auto& stage : stages_) stage->forgetSeries(f);
  const size_t n = series_.forgetAllBut(keep_);
  forgotten_ += n;
  return n;
}

Result<size_t> Pipeline::restoreState(std::string_view state, int64_t now_ms, bool warmed_only) {
  if (state.empty()) return size_t{0};
  if (now_ms != INT64_MAX) series_.setClock(now_ms);  // restored series count as seen now
  StateDecoder d(state);
  const uint32_t count = d.u32();
  std::vector<std::pair<std::string_view, std::string_view>> parts;
  for (uint32_t i = 0; i < count && d.ok(); ++i) {
    const std::string_view key = d.str();
    const std::string_view body = d.str();
    parts.emplace_back(key, body);
  }
  if (!d.ok() || !d.done()) return Error("the state does not parse");
  size_t restored = 0;
  std::vector<bool> used(parts.size());
  for (const auto& [stage, key] : stateful_) {
    for (size_t i = 0; i < parts.size(); ++i) {
      if (used[i] || parts[i].first != key) continue;
      used[i] = true;
      auto one = stage->restoreState(parts[i].second, series_, now_ms, warmed_only);
      if (!one) return one.error();
      restored += *one;
      break;
    }
  }
  return restored;
}

std::string settingsGeneration(std::string_view settings) {
  uint32_t h = 2166136261u;
  for (unsigned char c : settings) h = (h ^ c) * 16777619u;
  return fmt::format("{:08x}", h);
}

void internStandardFields(FieldNames& names) {
  names.intern("window_ms", FieldNames::Type::kNumber);
  for (size_t i = 0; i < kAggregateCount; ++i)
    names.intern(aggregateName(static_cast<Aggregate>(i)), FieldNames::Type::kNumber);
  names.intern("detector", FieldNames::Type::kText);
  names.intern("score", FieldNames::Type::kNumber);
  names.intern("verdict", FieldNames::Type::kText);
  names.intern("reason", FieldNames::Type::kText);
  names.intern("baseline", FieldNames::Type::kNumber);
  names.intern("rul_s", FieldNames::Type::kNumber);
  names.intern("peak_hz", FieldNames::Type::kNumber);
  for (size_t b = 1; b <= kMaxFftBands; ++b)
    names.intern("band_" + std::to_string(b), FieldNames::Type::kNumber);
  names.intern("attrs", FieldNames::Type::kText);
}

namespace {

/// What the records at one point of a pipeline may carry, for compiling expressions there.
struct Visible {
  std::vector<FieldId> fields;
  void add(const FieldNames& names, std::string_view name) {
    const FieldId id = names.find(name);
    if (id != FieldNames::kNoField && std::find(fields.begin(), fields.end(), id) == fields.end())
      fields.push_back(id);
  }
};

/// Names a joined value's field may not take: the record's own members, the expression
/// language's words, and the fields the gateway gives records itself.
bool reservedFieldName(std::string_view name) {
  static const FieldNames standard = [] {
    FieldNames n;
    internStandardFields(n);
    return n;
  }();
  if (expr::isReservedName(name)) return true;
  // Members a record's JSON has besides its fields.
  for (std::string_view member : {"id", "seq", "rule", "text", "pipeline"})
    if (name == member) return true;
  return standard.find(name) != FieldNames::kNoField;
}

bool identifier(std::string_view s) {
  if (s.empty() || s.size() > 64 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

/// The metrics a join takes in.
std::vector<std::string> joinedMetrics(const JoinSpec& j) {
  std::vector<std::string> out{j.on};
  for (const auto& p : j.with) out.push_back(p.metric);
  return out;
}

Result<void> checkJoin(const JoinSpec& j, const FieldNames& names) {
  if (j.on.empty() || j.on.size() > 256) return Error("on names the driving metric (1 to 256 bytes)");
  if (j.with.empty() || j.with.size() > kMaxJoinPartners)
    return Error(
        fmt::format("with lists 1 to {} partner metrics: with: [occupancy, {{ metric: outside_temp, "
                    "device: weather }}]",
                    kMaxJoinPartners));
  if (!(j.within_ms > 0)) return Error("within must be above 0");
  if (j.wait_ms < 0 || j.wait_ms > kMaxJoinWaitMs) return Error("wait is at most 10m");
  if (j.metric.size() > 256) return Error("metric is at most 256 bytes");
  std::vector<std::string> fields;
  auto name_field = [&](const std::string& field, const std::string& metric, bool own_as) -> Result<void> {
    if (!identifier(field))
      return Error(own_as ? fmt::format("as: '{}' is not a field name (letters, digits and _, 1 to 64, not "
                                        "starting with a digit)",
                                        field)
                          : fmt::format("metric '{}' is not a field name (letters, digits and _): name its "
                                        "field with as",
                                        metric));
    if (reservedFieldName(field))
      return Error(fmt::format("'{}' is a name records already use: name this field with as", field));
    if (std::find(fields.begin(), fields.end(), field) != fields.end())
      return Error(fmt::format("two joined values are named '{}': name one with as", field));
    if (names.find(field) == FieldNames::kNoField)
      return Error(fmt::format("field '{}' was not registered with the config's names", field));
    fields.push_back(field);
    return {};
  };
  if (auto r = name_field(j.field(), j.on, !j.as.empty()); !r) return r;
  for (size_t p = 0; p < j.with.size(); ++p) {
    const JoinPartner& partner = j.with[p];
    if (partner.metric.empty() || partner.metric.size() > 256)
      return Error(fmt::format("with[{}]: a partner names its metric (1 to 256 bytes)", p));
    if (partner.device.size() > 256) return Error(fmt::format("with[{}]: device is at most 256 bytes", p));
    if (partner.metric == j.on && partner.device.empty())
      return Error(fmt::format("with[{}]: {} is the driving metric; a partner of it names another device", p,
                               partner.metric));
    for (size_t q = 0; q < p; ++q)
      if (j.with[q].metric == partner.metric && j.with[q].device == partner.device)
        return Error(fmt::format("with[{}]: {}{} is listed twice", p, partner.metric,
                                 partner.device.empty() ? "" : " of " + partner.device));
    if (auto r = name_field(partner.field(), partner.metric, !partner.as.empty()); !r) return r;
  }
  return {};
}

/// A map's expressions compiled against what reaches it; its metric interned.
Result<MapStage::Compiled> buildMap(const MapSpec& spec, const FieldNames& names,
                                    const std::vector<FieldId>& visible, StringPool& strings) {
  expr::Scope scope{.names = &names, .fields = visible, .attrs_field = names.find("attrs")};
  MapStage::Compiled c;
  if (!spec.when.empty()) {
    auto p = expr::compile(spec.when, scope, /*want_bool=*/true);
    if (!p) return Error(fmt::format("when: {}", p.error().message));
    c.when = std::move(*p);
  }
  if (!spec.value.empty()) {
    auto p = expr::compile(spec.value, scope);
    if (!p) return Error(fmt::format("value: {}", p.error().message));
    if (p->resultType() != expr::Type::kNumber && p->resultType() != expr::Type::kAny)
      return Error(
          fmt::format("value: the expression gives {}, not a number", expr::typeName(p->resultType())));
    c.value = std::move(*p);
  }
  for (const auto& [name, text] : spec.set) {
    auto p = expr::compile(text, scope);
    if (!p) return Error(fmt::format("set.{}: {}", name, p.error().message));
    c.set.emplace_back(name, std::move(*p));
  }
  if (!spec.unit.empty() &&
      std::any_of(spec.set.begin(), spec.set.end(), [](const auto& e) { return e.first == "unit"; }))
    return Error("unit is given twice: by `unit` and by `set.unit`");
  if (!spec.metric.empty()) c.metric = strings.intern(spec.metric);
  c.unit = spec.unit;
  return c;
}

}  // namespace

std::vector<std::string> pipelineFieldNames(const PipelineSpec& spec) {
  std::vector<std::string> out;
  for (const auto& stage : spec.stages)
    if (const auto* join = std::get_if<JoinSpec>(&stage))
      for (std::string& f : joinFieldNames(*join))
        if (identifier(f) && !reservedFieldName(f)) out.push_back(std::move(f));
  return out;
}

namespace {

/// How far back in time the stages' per-series state matters: a series idle for less is not
/// forgotten (a window could still take a late reading, a join a driving reading that needs
/// the partner's value, a downsample interval could let a second reading through).
int64_t stagesReachMs(const PipelineSpec& spec) {
  int64_t reach = 0;
  auto sum = [](int64_t a, int64_t b) {
    int64_t out;
    return __builtin_add_overflow(a, b, &out) ? INT64_MAX : out;
  };
  for (const StageSpec& stage : spec.stages) {
    if (const auto* w = std::get_if<WindowSpec>(&stage)) {
      // A session's size is its gap: an open session keeps its group however long it runs.
      reach = std::max(reach, sum(w->size_ms, w->allowed_lateness_ms));
    } else if (const auto* j = std::get_if<JoinSpec>(&stage))
      reach = std::max(reach, sum(j->within_ms, j->wait_ms));
    else if (const auto* d = std::get_if<DownsampleSpec>(&stage))
      reach = std::max(reach, d->every_ms);
    else if (const auto* t = std::get_if<FftSpec>(&stage); t && t->sample_rate > 0)  // a block's span
      reach = std::max(reach, static_cast<int64_t>(std::min(t->size * 1000.0 / t->sample_rate, 9e18)));
  }
  return reach;
}

}  // namespace

Result<std::unique_ptr<Pipeline>> buildPipeline(const PipelineSpec& spec,
                                                std::shared_ptr<const FieldNames> names,
                                                std::vector<StageError>* stage_errors) {
  auto pipeline = std::make_unique<Pipeline>(spec.name, names, spec.max_series);
  pipeline->forget_after_ms_ = std::max<int64_t>(spec.forget_idle_ms, stagesReachMs(spec));
  Visible visible;
  visible.add(*names, "attrs");
  // A window or fft consumes the readings it takes: one after it that wants the same ones
  // would get none. A window takes every reading; an fft those of its metric (all without one).
  std::string consumed_all;                                          // the stage that took every reading
  std::vector<std::pair<std::string, std::string>> consumed_metric;  // (metric, stage) of ffts
  std::optional<Error> first_error;
  for (size_t i = 0; i < spec.stages.size(); ++i) {
    const StageSpec& stage = spec.stages[i];
    auto where = [i](std::string_view kind) { return fmt::format("stages[{}].{}", i, kind); };
    auto built = [&]() -> Result<void> {
      if (const auto* filter = std::get_if<FilterSpec>(&stage)) {
        expr::Scope scope{
            .names = names.get(), .fields = visible.fields, .attrs_field = names->find("attrs")};
        auto program = expr::compile(filter->condition, scope, /*want_bool=*/true);
        if (!program) return Error(fmt::format("{}: {}", where("filter"), program.error().message));
        pipeline->addStage(std::make_unique<FilterStage>(std::move(*program)));
      } else if (const auto* map = std::get_if<MapSpec>(&stage)) {
        auto built = buildMap(*map, *names, visible.fields, pipeline->series().strings());
        if (!built) return Error(fmt::format("{}: {}", where("map"), built.error().message));
        pipeline->addStage(std::make_unique<MapStage>(std::move(*built), names->find("attrs")));
      } else if (const auto* deadband = std::get_if<DeadbandSpec>(&stage)) {
        pipeline->addStage(std::make_unique<DeadbandStage>(*deadband));
      } else if (const auto* dedup = std::get_if<DedupSpec>(&stage)) {
        pipeline->addStage(std::make_unique<DedupStage>(*dedup));
      } else if (const auto* downsample = std::get_if<DownsampleSpec>(&stage)) {
        pipeline->addStage(std::make_unique<DownsampleStage>(*downsample));
      } else if (const auto* window = std::get_if<WindowSpec>(&stage)) {
        if (!consumed_all.empty())
          return Error(
              fmt::format("{}: the {} before it consumes the readings, so this window would get none "
                          "(a window aggregates readings, not other windows' records)",
                          where("window"), consumed_all));
        if (window->size_ms <= 0)
          return Error(fmt::format("{}: the window's length must be positive", where("window")));
        if (window->kind == WindowKind::kHopping &&
            (window->hop_ms <= 0 || window->hop_ms > window->size_ms ||
             window->size_ms / window->hop_ms > kMaxHopsPerWindow))
          return Error(fmt::format("{}: a hopping window's hop is from its length / {} to its length",
                                   where("window"), kMaxHopsPerWindow));
        if (window->aggregates.empty())
          return Error(fmt::format("{}: a window needs at least one aggregate ({})", where("window"),
                                   aggregateNames()));
        const uint16_t origin = pipeline->origin(
            spec.generation.empty() ? fmt::format("{}.{}", spec.name, where("window"))
                                    : fmt::format("{}.{}@{}", spec.name, where("window"), spec.generation));
        pipeline->addStage(std::make_unique<WindowStage>(*window, *names, origin));
      } else if (const auto* fft = std::get_if<FftSpec>(&stage)) {
        std::string by = consumed_all;
        for (const auto& [metric, stage_at] : consumed_metric)
          if (by.empty() && !fft->metric.empty() && metric == fft->metric) by = stage_at;
        if (!by.empty())
          return Error(fmt::format("{}: the {} before it consumes the readings{}, so this fft would get none",
                                   where("fft"), by, fft->metric.empty() ? "" : " of " + fft->metric));
        const uint32_t n = fft->size;
        if (n < 16 || n > kMaxFftSize || (n & (n - 1)))
          return Error(fmt::format("{}: size is a power of two from 16 to {}", where("fft"), kMaxFftSize));
        if (!(fft->sample_rate > 0 && fft->sample_rate <= 1000.0 * n))
          return Error(
              fmt::format("{}: sample_rate (Hz) must be above 0 and a block must last at least 1 ms "
                          "(sample_rate at most 1000 × size)",
                          where("fft")));
        if (fft->bands.empty() || fft->bands.size() > kMaxFftBands)
          return Error(
              fmt::format("{}: 1 to {} bands: bands: [[10, 100], [100, 1000]]", where("fft"), kMaxFftBands));
        for (size_t b = 0; b < fft->bands.size(); ++b) {
          const auto [low, high] = fft->bands[b];
          if (!(low >= 0 && low < high && high <= fft->sample_rate / 2))
            return Error(
                fmt::format("{}: band {} must be [low, high) Hz with 0 <= low < high <= sample_rate / 2 ({})",
                            where("fft"), b + 1, fft->sample_rate / 2));
        }
        const StringId metric =
            fft->metric.empty() ? StringPool::kNotFound : pipeline->series().strings().intern(fft->metric);
        const uint16_t origin = pipeline->origin(
            spec.generation.empty() ? fmt::format("{}.{}", spec.name, where("fft"))
                                    : fmt::format("{}.{}@{}", spec.name, where("fft"), spec.generation));
        pipeline->addStage(std::make_unique<FftStage>(*fft, *names, metric, origin));
      } else if (const auto* join = std::get_if<JoinSpec>(&stage)) {
        if (!consumed_all.empty())
          return Error(fmt::format("{}: the {} before it consumes the readings, so this join would get none",
                                   where("join"), consumed_all));
        for (const std::string& metric : joinedMetrics(*join))
          for (const auto& [taken, stage_at] : consumed_metric)
            if (taken == metric)
              return Error(
                  fmt::format("{}: the {} before it consumes the readings of {}, so this join would "
                              "get none",
                              where("join"), stage_at, metric));
        if (auto checked = checkJoin(*join, *names); !checked)
          return Error(fmt::format("{}: {}", where("join"), checked.error().message));
        const uint16_t origin = pipeline->origin(
            spec.generation.empty() ? fmt::format("{}.{}", spec.name, where("join"))
                                    : fmt::format("{}.{}@{}", spec.name, where("join"), spec.generation));
        pipeline->addStage(std::make_unique<JoinStage>(*join, *names, pipeline->series().strings(), origin));
      } else if (const auto* detect = std::get_if<DetectSpec>(&stage)) {
        // Before the detector is made: hst sizes its trees by the fields (past 8 it overran them).
        const bool multivariate = detect->method == "hst";
        if (multivariate && (detect->fields.empty() || detect->fields.size() > kMaxHstFields))
          return Error(fmt::format("{}: hst judges 1 to {} features together: fields: [rms, p2p]",
                                   where("detect"), kMaxHstFields));
        auto detector = makeDetector(*detect);
        if (!detector)
          return Error(fmt::format("{}: unknown method '{}' (known: {})", where("detect"), detect->method,
                                   kDetectMethods));
        if (detect->method == "trend" && (std::isnan(detect->limit) || detect->horizon_ms <= 0))
          return Error(
              fmt::format("{}: a trend detector needs a limit and a horizon: {{ limit: 8, horizon: 168h }}",
                          where("detect")));
        if (detect->method == "seasonal" && detect->season != "day" && detect->season != "week")
          return Error(fmt::format("{}: season is day or week, got '{}'", where("detect"), detect->season));
        if (!(detect->lambda > 0 && detect->lambda <= 1))
          return Error(fmt::format("{}: lambda must be above 0 and at most 1", where("detect")));
        if (!multivariate && !detect->fields.empty())
          return Error(fmt::format("{}: only hst judges several fields; this method judges one 'field'",
                                   where("detect")));
        std::vector<std::string_view> features(detect->fields.begin(), detect->fields.end());
        if (!multivariate) features.push_back(detect->field);
        for (size_t f = 0; f < features.size(); ++f) {
          if (std::find(features.begin(), features.begin() + static_cast<ptrdiff_t>(f), features[f]) !=
              features.begin() + static_cast<ptrdiff_t>(f))
            return Error(fmt::format("{}: field '{}' is listed twice", where("detect"), features[f]));
          if (features[f] == "value") continue;
          const FieldId id = names->find(features[f]);
          if (id == FieldNames::kNoField ||
              std::find(visible.fields.begin(), visible.fields.end(), id) == visible.fields.end() ||
              names->type(id) != FieldNames::Type::kNumber)
            return Error(
                fmt::format("{}: no number field '{}' reaches this stage (a window before it makes the "
                            "aggregates)",
                            where("detect"), features[f]));
        }
        if (detect->history < 3) return Error(fmt::format("{}: history must be at least 3", where("detect")));
        // Fewer than kMinHstHistory: the densest and emptiest boxes of so few values are too few
        // halvings apart for even a far outlier's score to pass the threshold.
        if (multivariate && (detect->history < kMinHstHistory || detect->history > kMaxHstHistory))
          return Error(
              fmt::format("{}: an hst detector's history (its reference window) is {} to {} values "
                          "(with fewer, even a far outlier scores no higher than normal values)",
                          where("detect"), kMinHstHistory, kMaxHstHistory));
        if (multivariate && detect->warmup != 0 && detect->warmup < kMinHstHistory)
          return Error(fmt::format("{}: an hst detector warms up on at least {} values (its first reference)",
                                   where("detect"), kMinHstHistory));
        if (detect->warmup > detect->history)
          return Error(fmt::format("{}: warmup ({}) must not exceed history ({})", where("detect"),
                                   detect->warmup, detect->history));
        const StringId metric = detect->metric.empty() ? StringPool::kNotFound
                                                       : pipeline->series().strings().intern(detect->metric);
        // Origins are per pipeline: two pipelines' detectors of one name make different ids.
        for (size_t j = 0; j < i; ++j)
          if (const auto* other = std::get_if<DetectSpec>(&spec.stages[j]);
              other && other->name == detect->name)
            return Error(fmt::format("{}: another detector of this pipeline is named '{}'", where("detect"),
                                     detect->name));
        const uint16_t origin =
            pipeline->origin(detect->name.empty() ? fmt::format("{}.{}", spec.name, where("detect"))
                                                  : fmt::format("{}.{}", spec.name, detect->name));
        pipeline->addStage(
            std::make_unique<DetectStage>(*detect, std::move(detector), *names, metric, origin));
      }
      return {};
    }();
    if (!built) {
      if (stage_errors) stage_errors->push_back({i, built.error().message});
      if (!first_error) first_error = built.error();
    }
    // What the stage makes and consumes counts whether it was built or not: the stages after a
    // wrong one are checked as if it were right, so that one error does not bring others.
    if (const auto* window = std::get_if<WindowSpec>(&stage)) {
      if (consumed_all.empty()) consumed_all = where("window");
      visible.add(*names, "window_ms");
      for (Aggregate a : window->aggregates) visible.add(*names, aggregateName(a));
    } else if (const auto* fft = std::get_if<FftSpec>(&stage)) {
      if (!fft->metric.empty())
        consumed_metric.emplace_back(fft->metric, where("fft"));
      else if (consumed_all.empty())
        consumed_all = where("fft");
      for (std::string_view f : {"window_ms", "count", "rms", "peak_hz"}) visible.add(*names, f);
      for (size_t b = 1; b <= fft->bands.size(); ++b) visible.add(*names, "band_" + std::to_string(b));
    } else if (const auto* join = std::get_if<JoinSpec>(&stage)) {
      for (const auto& p : join->with) consumed_metric.emplace_back(p.metric, where("join"));
      // What it makes is there for the stages after it (a second join on the joined metric).
      const std::string& made = join->metric.empty() ? join->on : join->metric;
      std::erase_if(consumed_metric, [&](const auto& c) { return c.first == made; });
      for (const std::string& f : joinFieldNames(*join)) visible.add(*names, f);
    } else if (std::holds_alternative<DetectSpec>(stage)) {
      for (std::string_view f : {"detector", "score", "verdict", "reason", "baseline", "rul_s"})
        visible.add(*names, f);
    }
  }
  if (first_error) return *first_error;
  return pipeline;
}

}  // namespace ganglion::edge
