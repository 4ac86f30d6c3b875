// A pipeline's `stages:` (docs/configuration.md "Edge: connectors, pipelines, sinks"): the
// stage kinds, their schemas, their reading and GET /config. Main thread (config load) or the
// blocking pool (POST /config/check).
#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cmath>

#include "edge/edge_config.h"

namespace ganglion::edge {

namespace json = boost::json;
using config::FieldKind;
using config::Reader;
using config::Schema;

namespace {

// ---- pipelines and their stages

constexpr std::string_view kStageKinds =
    "filter, map, deadband, change_only, dedup, downsample, window, detect, fft, join";

std::optional<StageSpec> readWindowStage(Reader& r, const config::Node& v) {
  if (!v.IsMap()) {
    r.fail(v, "window is a map: { tumbling: 1s, by: [device, metric], aggregates: [count, mean] }");
    return std::nullopt;
  }
  const size_t errors = r.errors.size();
  WindowConfig w;
  readFields(windowSchema(), v, w, r);
  if (r.errors.size() != errors) return std::nullopt;
  const int kinds = (w.tumbling.count() > 0) + (w.hopping.count() > 0) + (w.session.count() > 0);
  if (kinds != 1) {
    r.fail(v, "a window is one of tumbling: 1s, hopping: 10s (with hop: 2s) or session: 30s");
    return std::nullopt;
  }
  WindowSpec spec;
  if (w.hopping.count() > 0) {
    spec.kind = WindowKind::kHopping;
    spec.size_ms = w.hopping.count();
    spec.hop_ms = w.hop.count();
    if (spec.hop_ms <= 0 || spec.hop_ms > spec.size_ms || spec.size_ms / spec.hop_ms > kMaxHopsPerWindow) {
      r.fail(
          v[v["hop"].IsDefined() ? "hop" : "hopping"],
          fmt::format("a hopping window needs hop: from its length / {} to its length", kMaxHopsPerWindow));
      return std::nullopt;
    }
  } else if (w.session.count() > 0) {
    spec.kind = WindowKind::kSession;
    spec.size_ms = w.session.count();
    spec.max_length_ms =
        w.max_length.count() > 0 ? w.max_length.count() : std::max<int64_t>(3'600'000, spec.size_ms);
    if (spec.max_length_ms < spec.size_ms) {
      r.fail(v["max_length"], "a session's max_length must be at least its gap");
      return std::nullopt;
    }
  } else {
    spec.size_ms = w.tumbling.count();
  }
  for (std::string_view only : {"hop", "max_length"}) {
    const bool fits = only == "hop" ? spec.kind == WindowKind::kHopping : spec.kind == WindowKind::kSession;
    if (v[only].IsDefined() && !fits) {
      r.fail(v[only], fmt::format("{} belongs to {} windows", only, only == "hop" ? "hopping" : "session"));
      return std::nullopt;
    }
  }
  spec.allowed_lateness_ms = w.allowed_lateness.count();
  spec.by_source = spec.by_device = spec.by_metric = false;
  for (size_t i = 0; i < w.by.size(); ++i) {
    const std::string& key = w.by[i];
    if (std::find(w.by.begin(), w.by.begin() + static_cast<ptrdiff_t>(i), key) !=
        w.by.begin() + static_cast<ptrdiff_t>(i))
      r.fail(v["by"], fmt::format("window.by lists '{}' twice", key));
    else if (key == "source")
      spec.by_source = true;
    else if (key == "device")
      spec.by_device = true;
    else if (key == "metric")
      spec.by_metric = true;
    else
      r.fail(v["by"], fmt::format("window.by lists source, device or metric, got '{}'", key));
  }
  for (const auto& name : w.aggregates) {
    auto a = aggregateFromName(name);
    if (!a) {
      r.fail(v["aggregates"], fmt::format("unknown aggregate '{}' (known: {})", name, aggregateNames()));
      continue;
    }
    if (std::find(spec.aggregates.begin(), spec.aggregates.end(), *a) != spec.aggregates.end()) {
      r.fail(v["aggregates"], fmt::format("aggregate '{}' is listed twice", name));
      continue;
    }
    spec.aggregates.push_back(*a);
  }
  if (spec.kind == WindowKind::kHopping && spec.allowed_lateness_ms > spec.size_ms)
    r.fail(v["allowed_lateness"], "a hopping window's allowed_lateness may be at most its length");
  else if (spec.allowed_lateness_ms > 16 * spec.size_ms)
    r.fail(v["allowed_lateness"], spec.kind == WindowKind::kSession
                                      ? "allowed_lateness may be at most 16 gaps"
                                      : "allowed_lateness may be at most 16 window lengths");
  if (r.errors.size() != errors) return std::nullopt;
  return spec;
}

std::optional<StageSpec> readDetectStage(Reader& r, const config::Node& v) {
  if (!v.IsMap()) {
    r.fail(v, "detect is a map: { name: vib, method: robust_zscore, field: rms, threshold: 6 }");
    return std::nullopt;
  }
  const size_t errors = r.errors.size();
  DetectSpec d;
  readFields(detectSchema(), v, d, r);
  if (r.errors.size() != errors) return std::nullopt;
  if (d.method == "hst" && !v["history"].IsDefined()) d.history = 1024;
  if (d.method == "hst" && v["field"].IsDefined()) {
    r.fail(v["field"], "hst judges several features: list them in 'fields: [rms, p2p]'");
    return std::nullopt;
  }
  for (std::string_view only : {"fields", "trees", "depth"})
    if (d.method != "hst" && v[only].IsDefined()) {
      r.fail(v[only], fmt::format("'{}' belongs to the hst method (this detector judges one 'field')", only));
      return std::nullopt;
    }
  return d;
}

std::optional<StageSpec> readMapStage(Reader& r, const config::Node& v) {
  if (!v.IsMap()) {
    r.fail(v, "map is a map: { value: \"value * 0.1\", metric: flow, unit: m3/h, set: { zone: \"'a'\" } }");
    return std::nullopt;
  }
  const size_t errors = r.errors.size();
  MapSpec m;
  readFields(mapSchema(), v, m, r);
  if (r.errors.size() != errors) return std::nullopt;
  for (std::string_view key : {"metric", "unit"}) {
    const std::string& text = key == "metric" ? m.metric : m.unit;
    if (v[key].IsDefined() && (text.empty() || text.size() > 256)) {
      r.fail(v[key], fmt::format("map.{} must be 1 to 256 bytes", key));
      return std::nullopt;
    }
  }
  if (m.value.empty() && m.metric.empty() && m.unit.empty() && m.set.empty()) {
    r.fail(v, "a map changes something: value, metric, unit or set");
    return std::nullopt;
  }
  return m;
}

std::optional<StageSpec> readDeadbandStage(Reader& r, const config::Node& v, bool change_only) {
  const std::string_view kind = change_only ? "change_only" : "deadband";
  if (v.IsNull() && change_only) return DeadbandSpec{.change_only = true};  // `change_only:` alone
  if (!v.IsMap()) {
    r.fail(v, change_only ? "change_only is a map: {} or { heartbeat: 5m }"
                          : "deadband is a map: { absolute: 0.5 } or { percent: 2, heartbeat: 5m }");
    return std::nullopt;
  }
  const size_t errors = r.errors.size();
  DeadbandConfig c;
  readFields(deadbandSchema(), v, c, r);
  if (r.errors.size() != errors) return std::nullopt;
  DeadbandSpec spec{.absolute = c.absolute.value_or(0),
                    .percent = c.percent.value_or(0),
                    .heartbeat_ms = c.heartbeat.count(),
                    .change_only = change_only};
  if (change_only && (c.absolute || c.percent)) {
    r.fail(v, "change_only has no band (any change passes): use deadband for absolute or percent");
    return std::nullopt;
  }
  if (!change_only && c.absolute.has_value() == c.percent.has_value()) {
    r.fail(v, fmt::format("a {} has one band: absolute or percent", kind));
    return std::nullopt;
  }
  return spec;
}

std::optional<StageSpec> readDedupStage(Reader& r, const config::Node& v) {
  if (v.IsNull()) return DedupSpec{};  // `dedup:` alone
  if (!v.IsMap()) {
    r.fail(v, "dedup is a map: {} or { remember: 32 }");
    return std::nullopt;
  }
  const size_t errors = r.errors.size();
  DedupSpec d;
  readFields(dedupSchema(), v, d, r);
  if (r.errors.size() != errors) return std::nullopt;
  return d;
}

std::optional<StageSpec> readDownsampleStage(Reader& r, const config::Node& v) {
  if (!v.IsMap()) {
    r.fail(v, "downsample is a map: { every: 10s } or { nth: 10 }");
    return std::nullopt;
  }
  const size_t errors = r.errors.size();
  DownsampleConfig c;
  readFields(downsampleSchema(), v, c, r);
  if (r.errors.size() != errors) return std::nullopt;
  if ((c.every.count() > 0) == (c.nth > 0)) {
    r.fail(v, "a downsample keeps one reading per interval or one in n: every (above 0) or nth, one of them");
    return std::nullopt;
  }
  return DownsampleSpec{.every_ms = c.every.count(), .nth = static_cast<uint32_t>(c.nth)};
}

std::optional<StageSpec> readFftStage(Reader& r, const config::Node& v) {
  if (!v.IsMap()) {
    r.fail(v, "fft is a map: { size: 1024, sample_rate: 10000, bands: [[10, 100], [100, 1000]] }");
    return std::nullopt;
  }
  const size_t errors = r.errors.size();
  FftSpec f;
  readFields(fftSchema(), v, f, r);
  if (r.errors.size() != errors) return std::nullopt;
  return f;
}

std::optional<StageSpec> readJoinStage(Reader& r, const config::Node& v) {
  if (!v.IsMap()) {
    r.fail(
        v,
        "join is a map: { on: temperature, with: [occupancy, { metric: outside_temp, device: weather }] }");
    return std::nullopt;
  }
  const size_t errors = r.errors.size();
  JoinSpec j;
  readFields(joinSchema(), v, j, r);
  if (r.errors.size() != errors) return std::nullopt;
  return j;
}

json::value stageToJson(const StageSpec& stage) {
  json::object o;
  if (const auto* f = std::get_if<FilterSpec>(&stage)) {
    o["filter"] = f->condition;
  } else if (const auto* w = std::get_if<WindowSpec>(&stage)) {
    json::object m;
    if (w->kind == WindowKind::kTumbling) {
      m["tumbling"] = config::durationText(Millis(w->size_ms));
    } else if (w->kind == WindowKind::kHopping) {
      m["hopping"] = config::durationText(Millis(w->size_ms));
      m["hop"] = config::durationText(Millis(w->hop_ms));
    } else {
      m["session"] = config::durationText(Millis(w->size_ms));
      m["max_length"] = config::durationText(Millis(w->max_length_ms));
    }
    m["allowed_lateness"] = config::durationText(Millis(w->allowed_lateness_ms));
    json::array by;
    if (w->by_source) by.emplace_back("source");
    if (w->by_device) by.emplace_back("device");
    if (w->by_metric) by.emplace_back("metric");
    m["by"] = std::move(by);
    json::array aggs;
    for (Aggregate a : w->aggregates) aggs.emplace_back(aggregateName(a));
    m["aggregates"] = std::move(aggs);
    o["window"] = std::move(m);
  } else if (const auto* d = std::get_if<DetectSpec>(&stage)) {
    o["detect"] = config::fieldsToJson(detectSchema(), *d);
  } else if (const auto* m = std::get_if<MapSpec>(&stage)) {
    o["map"] = config::fieldsToJson(mapSchema(), *m);
  } else if (const auto* b = std::get_if<DeadbandSpec>(&stage)) {
    json::object m;
    if (!b->change_only) {
      if (b->absolute > 0 || b->percent == 0)
        m["absolute"] = b->absolute;
      else
        m["percent"] = b->percent;
    }
    m["heartbeat"] = config::durationText(Millis(b->heartbeat_ms));
    o[b->change_only ? "change_only" : "deadband"] = std::move(m);
  } else if (const auto* dd = std::get_if<DedupSpec>(&stage)) {
    o["dedup"] = config::fieldsToJson(dedupSchema(), *dd);
  } else if (const auto* ds = std::get_if<DownsampleSpec>(&stage)) {
    json::object m;
    if (ds->nth)
      m["nth"] = ds->nth;
    else
      m["every"] = config::durationText(Millis(ds->every_ms));
    o["downsample"] = std::move(m);
  } else if (const auto* f = std::get_if<FftSpec>(&stage)) {
    o["fft"] = config::fieldsToJson(fftSchema(), *f);
  } else if (const auto* j = std::get_if<JoinSpec>(&stage)) {
    o["join"] = config::fieldsToJson(joinSchema(), *j);
  }
  return o;
}

}  // namespace

json::value showStages(const PipelineConfig& p) {
  json::array a;
  for (const auto& s : p.spec.stages) a.push_back(stageToJson(s));
  return a;
}

void readStages(Reader& r, const config::Node& v, PipelineConfig& p) {
  r.forEach(v, "stages", [&](const config::Node& n) {
    if (!n.IsMap() || n.size() != 1)
      return r.fail(n, fmt::format("a stage is a map with one key: {}", kStageKinds));
    const std::string kind = n.begin()->first.Scalar();
    const config::Node body = n.begin()->second;
    if (kind == "filter") {
      if (auto s = r.str(body, "filter")) p.spec.stages.push_back(FilterSpec{*s});
    } else if (kind == "window") {
      if (auto s = readWindowStage(r, body)) p.spec.stages.push_back(std::move(*s));
    } else if (kind == "detect") {
      if (auto s = readDetectStage(r, body)) p.spec.stages.push_back(std::move(*s));
    } else if (kind == "map") {
      if (auto s = readMapStage(r, body)) p.spec.stages.push_back(std::move(*s));
    } else if (kind == "deadband" || kind == "change_only") {
      if (auto s = readDeadbandStage(r, body, kind == "change_only")) p.spec.stages.push_back(std::move(*s));
    } else if (kind == "dedup") {
      if (auto s = readDedupStage(r, body)) p.spec.stages.push_back(std::move(*s));
    } else if (kind == "downsample") {
      if (auto s = readDownsampleStage(r, body)) p.spec.stages.push_back(std::move(*s));
    } else if (kind == "fft") {
      if (auto s = readFftStage(r, body)) p.spec.stages.push_back(std::move(*s));
    } else if (kind == "join") {
      if (auto s = readJoinStage(r, body)) p.spec.stages.push_back(std::move(*s));
    } else {
      r.fail(n.begin()->first, fmt::format("unknown stage '{}' (built: {})", kind, kStageKinds));
    }
  });
}

const Schema<WindowConfig>& windowSchema() {
  using W = WindowConfig;
  static const Schema<WindowConfig> schema{
      "window",
      {
          {.name = "tumbling",
           .kind = FieldKind::kDuration,
           .member = &W::tumbling,
           .default_text = "—",
           .doc = "Windows of this length, one after the other, aligned to the epoch (`1s` windows start on "
                  "whole seconds). One of `tumbling`, `hopping` and `session`.",
           .min = 1},
          {.name = "hopping",
           .kind = FieldKind::kDuration,
           .member = &W::hopping,
           .default_text = "—",
           .doc = "Windows of this length starting every `hop` (aligned to the epoch): they overlap, and a "
                  "reading counts in each window it falls in.",
           .min = 1},
          {.name = "hop",
           .kind = FieldKind::kDuration,
           .member = &W::hop,
           .default_text = "—",
           .doc = "With `hopping`: how often a window starts, from its length / 64 to its length.",
           .min = 1},
          {.name = "session",
           .kind = FieldKind::kDuration,
           .member = &W::session,
           .default_text = "—",
           .doc = "Session windows with this gap: readings less than a gap apart share a window, which ends "
                  "one gap after its last reading; `window_ms` is from its first reading to that end.",
           .min = 1},
          {.name = "max_length",
           .kind = FieldKind::kDuration,
           .member = &W::max_length,
           .default_text = "`1h` (or the gap)",
           .doc = "With `session`: a session that reaches this length closes at its last reading and the "
                  "next reading starts another.",
           .min = 1},
          {.name = "allowed_lateness",
           .kind = FieldKind::kDuration,
           .member = &W::allowed_lateness,
           .default_text = "`0`",
           .doc = "How far behind a group's newest reading a window stays open for out-of-order readings (at "
                  "most 16 window lengths or gaps; a hopping window's: its length)."},
          {.name = "by",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`[device, metric]`",
           .doc = "Which of `source`, `device`, `metric` separate groups; the others are left empty on the "
                  "window's record.",
           .type_text = "list",
           .read = [](Reader& r, const config::Node& v, W& w) { w.by = readNames(r, v, "window.by"); },
           .show = [](const W& w) { return namesToJson(w.by); }},
          {.name = "aggregates",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc =
               "One field per aggregate on the window's record: `count`, `sum`, `min`, `max`, `mean`, "
               "`stddev`, `variance`, `rms`, `peak_to_peak`, `crest_factor`, `skewness`, `kurtosis`, `rate`, "
               "`first`, `last`, `p50`, `p90`, `p95`, `p99` ([meanings](edge.md#window)).",
           .required = true,
           .missing = "a window needs aggregates: [count, mean, ...]",
           .type_text = "list",
           .read = [](Reader& r, const config::Node& v,
                      W& w) { w.aggregates = readNames(r, v, "window.aggregates"); },
           .show = [](const W& w) { return namesToJson(w.aggregates); }},
      },
      {}};
  return schema;
}

namespace {

void readJoinPartners(Reader& r, const config::Node& v, JoinSpec& j) {
  auto one = [&](const config::Node& n) {
    JoinPartner p;
    if (n.IsScalar()) {  // `occupancy`: that metric of the same device
      if (auto s = r.str(n, "join.with")) p.metric = *s;
    } else if (n.IsMap()) {
      readFields(joinPartnerSchema(), n, p, r);
    } else {
      return r.fail(n, "a partner is a metric's name or { metric, device, as }");
    }
    j.with.push_back(std::move(p));
  };
  if (v.IsScalar()) return one(v);  // `with: occupancy` reads as a list of one
  r.forEach(v, "join.with", one);
}

json::value showJoinPartners(const JoinSpec& j) {
  json::array a;
  for (const auto& p : j.with) a.push_back(config::fieldsToJson(joinPartnerSchema(), p));
  return a;
}

void readJoinDuration(Reader& r, const config::Node& v, int64_t& out, std::string_view what) {
  if (auto ms = r.duration(v, what)) out = ms->count();
}

void readFftBands(Reader& r, const config::Node& v, FftSpec& f) {
  r.forEach(v, "fft.bands", [&](const config::Node& band) {
    if (!band.IsSequence() || band.size() != 2) return r.fail(band, "a band is [low, high] in Hz: [10, 100]");
    const auto low = readNumber(r, band.items()[0], "band low", 0, 1e9);
    const auto high = readNumber(r, band.items()[1], "band high", 0, 1e9);
    if (low && high) f.bands.emplace_back(*low, *high);
  });
}

void readUtcOffset(Reader& r, const config::Node& v, DetectSpec& d) {
  auto s = r.str(v, "utc_offset");
  if (!s) return;
  const std::string& t = *s;
  const bool shaped =
      t.size() == 6 && (t[0] == '+' || t[0] == '-') && t[3] == ':' &&
      std::isdigit(static_cast<unsigned char>(t[1])) && std::isdigit(static_cast<unsigned char>(t[2])) &&
      std::isdigit(static_cast<unsigned char>(t[4])) && std::isdigit(static_cast<unsigned char>(t[5]));
  const int hours = shaped ? (t[1] - '0') * 10 + (t[2] - '0') : 0;
  const int minutes = shaped ? (t[4] - '0') * 10 + (t[5] - '0') : 0;
  if (!shaped || hours > 14 || minutes > 59)
    return r.fail(v, fmt::format("utc_offset is +HH:MM or -HH:MM (at most 14 hours), got '{}'", t));
  d.utc_offset_min = (t[0] == '-' ? -1 : 1) * (hours * 60 + minutes);
}

void readHorizon(Reader& r, const config::Node& v, DetectSpec& d) {
  auto ms = r.duration(v, "horizon");
  if (!ms) return;
  if (ms->count() <= 0) return r.fail(v, "horizon must be above 0 (168h, 30m)");
  d.horizon_ms = ms->count();
}

}  // namespace

const Schema<DetectSpec>& detectSchema() {
  using D = DetectSpec;
  static const Schema<DetectSpec> schema{
      "detect",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &D::name,
           .default_text = "—",
           .doc =
               "The events' `detector` (rules match on it); their ids start with `<pipeline>.<name>`. Unique "
               "within the pipeline.",
           .required = true,
           .missing = "a detector needs a 'name'"},
          {.name = "method",
           .kind = FieldKind::kString,
           .member = &D::method,
           .default_text = "`robust_zscore`",
           .doc =
               "`robust_zscore`, `ewma`, `seasonal`, `trend` or `hst` ([how each scores](edge.md#detect))."},
          {.name = "field",
           .kind = FieldKind::kString,
           .member = &D::field,
           .default_text = "`value`",
           .doc = "The feature judged: `value`, or a number field that reaches this stage (`rms` of a window "
                  "before it)."},
          {.name = "fields",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "`hst`: the features judged together, 1 to 8 number fields that reach this stage (`[rms, "
                  "p2p, crest_factor]`); required for `hst`, refused for the others.",
           .type_text = "list",
           .read = [](Reader& r, const config::Node& v,
                      D& d) { d.fields = readNames(r, v, "detect.fields"); },
           .show = [](const D& d) -> json::value {
             if (d.fields.empty()) return nullptr;
             return namesToJson(d.fields);
           }},
          {.name = "metric",
           .kind = FieldKind::kString,
           .member = &D::metric,
           .default_text = "all",
           .doc = "Only records of this metric are judged; the others pass through."},
          {.name = "history",
           .kind = FieldKind::kInteger,
           .member = &D::history,
           .default_text = "`120`; `hst`: `1024`",
           .doc = "Values kept per series; `hst`: the values in its reference window (256 to 4096).",
           .min = 3,
           .max = 100'000},
          {.name = "warmup",
           .kind = FieldKind::kInteger,
           .member = &D::warmup,
           .default_text = "smaller of `history` and 30; `hst`: `history`",
           .doc = "Values a series must have before it is judged (at most `history`).",
           .min = 0,
           .max = 100'000},
          {.name = "threshold",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`3.5`; `ewma`: `3`; `trend`: `1`; `hst`: `7`",
           .doc = "An event is raised when the score is at least this.",
           .type_text = "number",
           .read = [](Reader& r, const config::Node& v,
                      D& d) { d.threshold = readNumber(r, v, "threshold", 0, 1e9).value_or(d.threshold); },
           .show = [](const D& d) -> json::value { return thresholdOf(d); }},
          {.name = "min_scale",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "automatic",
           .doc =
               "The smallest spread a score is measured in (for series that are constant most of the time); "
               "`0`: 10⁻⁹ of the median's size.",
           .type_text = "number",
           .read = [](Reader& r, const config::Node& v,
                      D& d) { d.min_scale = readNumber(r, v, "min_scale", 0, 1e300).value_or(d.min_scale); },
           .show = [](const D& d) -> json::value { return d.min_scale; }},
          {.name = "lambda",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`0.2`",
           .doc = "`ewma`: the newest value's weight in the control statistic (above 0, at most 1; smaller "
                  "finds smaller shifts, later).",
           .type_text = "number",
           .read = [](Reader& r, const config::Node& v,
                      D& d) { d.lambda = readNumber(r, v, "lambda", 1e-6, 1).value_or(d.lambda); },
           .show = [](const D& d) -> json::value {
             if (d.method != "ewma") return nullptr;
             return d.lambda;
           }},
          {.name = "season",
           .kind = FieldKind::kString,
           .member = &D::season,
           .default_text = "`day`",
           .doc = "`seasonal`: `day` (a baseline per hour of the day) or `week` (per hour of the week, from "
                  "Monday 00:00)."},
          {.name = "utc_offset",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`+00:00`",
           .doc = "`seasonal`: local time's offset from UTC, `+HH:MM` or `-HH:MM`, for the hours of the "
                  "buckets (fixed: a daylight-saving change shifts the hours by one).",
           .type_text = "string",
           .read = readUtcOffset,
           .show = [](const D& d) -> json::value {
             if (d.method != "seasonal") return nullptr;
             const int32_t m = std::abs(d.utc_offset_min);
             return json::value(
                 fmt::format("{}{:02}:{:02}", d.utc_offset_min < 0 ? '-' : '+', m / 60, m % 60));
           }},
          {.name = "limit",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "`trend`: the value the feature must not reach (above or below it: the trend's direction "
                  "says which).",
           .type_text = "number",
           .read = [](Reader& r, const config::Node& v,
                      D& d) { d.limit = readNumber(r, v, "limit", -1e300, 1e300).value_or(d.limit); },
           .show = [](const D& d) -> json::value {
             if (std::isnan(d.limit)) return nullptr;
             return d.limit;
           }},
          {.name = "horizon",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "`trend`: an event when the limit is nearer than this (`168h`, `12h`); the event's `rul_s` "
                  "says how near.",
           .type_text = "duration",
           .read = readHorizon,
           .show = [](const D& d) -> json::value {
             if (d.horizon_ms <= 0) return nullptr;
             return json::value(config::durationText(Millis(d.horizon_ms)));
           }},
          {.name = "min_t",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`5`",
           .doc = "`trend`: how significant the fitted slope must be (its t-statistic) before a time is "
                  "estimated: noise alone must not predict a failure.",
           .type_text = "number",
           .read = [](Reader& r, const config::Node& v,
                      D& d) { d.min_t = readNumber(r, v, "min_t", 0, 1e6).value_or(d.min_t); },
           .show = [](const D& d) -> json::value {
             if (d.method != "trend") return nullptr;
             return d.min_t;
           }},
          {.name = "trees",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`16`",
           .doc = "`hst`: trees in the ensemble, 1 to 32 (more: steadier scores, more memory and time).",
           .type_text = "integer",
           .read = [](Reader& r, const config::Node& v,
                      D& d) { d.trees = r.integer<uint32_t>(v, "trees", 1, 32).value_or(d.trees); },
           .show = [](const D& d) -> json::value {
             if (d.method != "hst") return nullptr;
             return d.trees;
           }},
          {.name = "depth",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`10`",
           .doc = "`hst`: halvings per tree, 1 to 10 (deeper: finer boxes, more memory: a series costs "
                  "trees × 3 × 2^depth × 2 bytes, 96 kB at the defaults).",
           .type_text = "integer",
           .read = [](Reader& r, const config::Node& v,
                      D& d) { d.depth = r.integer<uint32_t>(v, "depth", 1, 10).value_or(d.depth); },
           .show = [](const D& d) -> json::value {
             if (d.method != "hst") return nullptr;
             return d.depth;
           }},
      },
      {}};
  return schema;
}

namespace {

void readMapSet(Reader& r, const config::Node& v, MapSpec& m) {
  if (!v.IsMap()) return r.fail(v, "map.set is a map of attribute: expression");
  for (const auto& kv : v) {
    const std::string name = kv.first.Scalar();
    auto text = r.str(kv.second, fmt::format("map.set '{}'", name));
    const bool plain =
        !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        });
    if (!plain)
      r.fail(kv.first,
             fmt::format("attribute name '{}' must be 1 to 64 letters, digits, '_', '-' or '.'", name));
    else if (std::any_of(m.set.begin(), m.set.end(), [&](const auto& e) { return e.first == name; }))
      r.fail(kv.first, fmt::format("attribute '{}' is set twice", name));
    else if (m.set.size() >= 32)
      r.fail(kv.first, "a map sets at most 32 attributes");
    else if (text)
      m.set.emplace_back(name, *text);
  }
}

json::value showMapSet(const MapSpec& m) {
  if (m.set.empty()) return nullptr;
  json::object o;
  for (const auto& [name, text] : m.set) o[name] = text;
  return o;
}

}  // namespace

const Schema<MapSpec>& mapSchema() {
  using M = MapSpec;
  static const Schema<MapSpec> schema{
      "map",
      {
          {.name = "when",
           .kind = FieldKind::kString,
           .member = &M::when,
           .default_text = "every record",
           .doc = "A condition ([expression](edge.md#expressions)): records for which it is not true pass "
                  "unchanged."},
          {.name = "value",
           .kind = FieldKind::kString,
           .member = &M::value,
           .default_text = "unchanged",
           .doc = "The new value, an expression of the record as it came in: `\"value * 0.1\"`, "
                  "`\"(value - 32) / 1.8\"`. A result that is not a number leaves the record without a value "
                  "(counted as `no_value`)."},
          {.name = "metric",
           .kind = FieldKind::kString,
           .member = &M::metric,
           .default_text = "unchanged",
           .doc = "Renames the metric: the record moves to the series of the new name."},
          {.name = "unit",
           .kind = FieldKind::kString,
           .member = &M::unit,
           .default_text = "unchanged",
           .doc = "Sets the `unit` attribute."},
          {.name = "set",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "Computed attributes, `name: expression` (at most 32): numbers, text, or `1`/`0` for a "
                  "condition; a null result removes the attribute. Later stages read them as "
                  "`attrs.<name>`; sinks receive them in `attrs`.",
           .type_text = "map",
           .read = readMapSet,
           .show = showMapSet},
      },
      {}};
  return schema;
}

const Schema<DeadbandConfig>& deadbandSchema() {
  using D = DeadbandConfig;
  static const Schema<DeadbandConfig> schema{
      "deadband",
      {
          {.name = "absolute",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "A reading passes when its value moved more than this from the last value passed (in the "
                  "value's units).",
           .type_text = "number",
           .read = [](Reader& r, const config::Node& v,
                      D& d) { d.absolute = readNumber(r, v, "deadband.absolute", 0, 1e300); },
           .show = [](const D& d) -> json::value {
             if (!d.absolute) return nullptr;
             return *d.absolute;
           }},
          {.name = "percent",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "Or: when it moved more than this percentage of the last value passed. One of `absolute` "
                  "and `percent` (`change_only` has neither).",
           .type_text = "number",
           .read = [](Reader& r, const config::Node& v,
                      D& d) { d.percent = readNumber(r, v, "deadband.percent", 0, 1e6); },
           .show = [](const D& d) -> json::value {
             if (!d.percent) return nullptr;
             return *d.percent;
           }},
          {.name = "heartbeat",
           .kind = FieldKind::kDuration,
           .member = &D::heartbeat,
           .default_text = "never",
           .doc = "A reading passes anyway once this much event time has gone by since the last one "
                  "passed (a quiet series still shows it is alive)."},
      },
      {}};
  return schema;
}

const Schema<DedupSpec>& dedupSchema() {
  using D = DedupSpec;
  static const Schema<DedupSpec> schema{
      "dedup",
      {
          {.name = "remember",
           .kind = FieldKind::kInteger,
           .member = &D::remember,
           .default_text = "`32`",
           .doc = "Readings remembered per series: a reading with the time stamp and value of one of them "
                  "is a duplicate.",
           .min = 1,
           .max = 1024},
      },
      {}};
  return schema;
}

const Schema<DownsampleConfig>& downsampleSchema() {
  using D = DownsampleConfig;
  static const Schema<DownsampleConfig> schema{
      "downsample",
      {
          {.name = "every",
           .kind = FieldKind::kDuration,
           .member = &D::every,
           .default_text = "—",
           .doc = "One reading per series per interval of event time passes: the first (intervals are "
                  "aligned to the epoch)."},
          {.name = "nth",
           .kind = FieldKind::kInteger,
           .member = &D::nth,
           .default_text = "—",
           .doc = "Or: the first reading and then every nth of the series pass. One of `every` and `nth`.",
           .min = 1,
           .max = 1'000'000},
      },
      {}};
  return schema;
}

const Schema<FftSpec>& fftSchema() {
  using F = FftSpec;
  static const Schema<FftSpec> schema{
      "fft",
      {
          {.name = "size",
           .kind = FieldKind::kInteger,
           .member = &F::size,
           .default_text = "`1024`",
           .doc = "Readings per block (a power of two from 16 to 16384): one window record per full block.",
           .min = 16,
           .max = kMaxFftSize},
          {.name = "sample_rate",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc =
               "The readings' rate in Hz (timestamps in milliseconds cannot tell it). A block lasts size / "
               "sample_rate, at least 1 ms.",
           .required = true,
           .missing = "an fft needs the readings' sample_rate in Hz",
           .type_text = "number",
           .read = [](Reader& r, const config::Node& v,
                      F& f) { f.sample_rate = readNumber(r, v, "sample_rate", 1e-6, 1e9).value_or(0); },
           .show = [](const F& f) -> json::value { return f.sample_rate; }},
          {.name = "bands",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc =
               "1 to 8 frequency bands `[low, high]` in Hz (from low, below high; high at most sample_rate "
               "/ 2): the record's `band_1` ... `band_8` are the signal's RMS within each.",
           .required = true,
           .missing = "an fft needs bands: [[10, 100], [100, 1000]]",
           .type_text = "list",
           .read = readFftBands,
           .show = [](const F& f) -> json::value {
             json::array a;
             for (const auto& [low, high] : f.bands) a.push_back(json::array{low, high});
             return a;
           }},
          {.name = "metric",
           .kind = FieldKind::kString,
           .member = &F::metric,
           .default_text = "all",
           .doc = "Only readings of this metric are transformed; the others pass through."},
      },
      {}};
  return schema;
}

const Schema<JoinSpec>& joinSchema() {
  using J = JoinSpec;
  static const Schema<JoinSpec> schema{
      "join",
      {
          {.name = "on",
           .kind = FieldKind::kString,
           .member = &J::on,
           .default_text = "—",
           .doc = "The driving metric: each of its readings becomes one joined record of its device.",
           .required = true,
           .missing = "a join names its driving metric: on: temperature"},
          {.name = "as",
           .kind = FieldKind::kString,
           .member = &J::as,
           .default_text = "`on`",
           .doc = "The field the driving value is written to (letters, digits and `_`)."},
          {.name = "with",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc =
               "1 to 8 partners ([join_with](#join_with)): a metric of the same device (`occupancy`), or "
               "`{ metric, device, as }`, where `device` names the one device whose readings every driving "
               "reading is joined with (a weather station).",
           .required = true,
           .missing = "a join needs partners: with: [occupancy, { metric: outside_temp, device: weather }]",
           .type_text = "list",
           .read = readJoinPartners,
           .show = showJoinPartners},
          {.name = "metric",
           .kind = FieldKind::kString,
           .member = &J::metric,
           .default_text = "`on`",
           .doc = "The joined records' metric."},
          {.name = "within",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`1h`",
           .doc = "A partner's reading is joined when it is at most this much older than the driving reading "
                  "(its newest at or before the driving reading's `ts`).",
           .type_text = "duration",
           .read = [](Reader& r, const config::Node& v,
                      J& j) { readJoinDuration(r, v, j.within_ms, "within"); },
           .show = [](const J& j) -> json::value {
             return json::value(config::durationText(Millis(j.within_ms)));
           }},
          {.name = "wait",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`0s`",
           .doc =
               "Hold a driving reading until every partner has a reading at or past its time, at most this "
               "long (wall time, up to `10m`): for partners that arrive a little behind. `0s`: join at once "
               "with what has arrived.",
           .type_text = "duration",
           .read = [](Reader& r, const config::Node& v, J& j) { readJoinDuration(r, v, j.wait_ms, "wait"); },
           .show = [](const J& j) -> json::value {
             return json::value(config::durationText(Millis(j.wait_ms)));
           }},
          {.name = "missing",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`keep`",
           .doc = "A partner with no reading within reach: `keep` the record without that field (counted as "
                  "`incomplete`) or `drop` it (counted as `no_value`).",
           .type_text = "string",
           .read =
               [](Reader& r, const config::Node& v, J& j) {
                 auto s = r.str(v, "missing");
                 if (!s) return;
                 if (*s != "keep" && *s != "drop")
                   return r.fail(v, fmt::format("missing is keep or drop, got '{}'", *s));
                 j.drop_incomplete = *s == "drop";
               },
           .show = [](const J& j) -> json::value { return j.drop_incomplete ? "drop" : "keep"; }},
      },
      {}};
  return schema;
}

const Schema<JoinPartner>& joinPartnerSchema() {
  using P = JoinPartner;
  static const Schema<JoinPartner> schema{
      "join_with",
      {
          {.name = "metric",
           .kind = FieldKind::kString,
           .member = &P::metric,
           .default_text = "—",
           .doc = "The partner's metric.",
           .required = true,
           .missing = "a partner names its metric: { metric: occupancy }"},
          {.name = "device",
           .kind = FieldKind::kString,
           .member = &P::device,
           .default_text = "the driving reading's",
           .doc =
               "The one device whose readings of `metric` are joined with every driving reading (a weather "
               "station's). When `metric` is the driving metric, that device's readings of it are this "
               "partner's only, not driving readings."},
          {.name = "as",
           .kind = FieldKind::kString,
           .member = &P::as,
           .default_text = "`metric`",
           .doc = "The field the partner's value is written to (letters, digits and `_`)."},
      },
      {}};
  return schema;
}

}  // namespace ganglion::edge
