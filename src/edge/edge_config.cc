#include "edge/edge_config.h"

#include <fmt/format.h>
#include <openssl/x509.h>

#include <boost/json.hpp>
#include <cmath>
#include <filesystem>
#include <mutex>

#include "net/tls.h"
#include "upstream/http_url.h"

namespace ganglion::edge {

namespace json = boost::json;
using config::FieldKind;
using config::Reader;
using config::Schema;

// ---- shared custom fields

std::vector<std::string> readNames(Reader& r, const config::Node& v, std::string_view what) {
  std::vector<std::string> out;
  if (v.IsScalar()) {  // `from: plant` reads as a list of one
    if (auto s = r.str(v, what)) out.push_back(*s);
    return out;
  }
  r.forEach(v, what, [&](const config::Node& n) {
    if (auto s = r.str(n, what)) out.push_back(*s);
  });
  return out;
}

json::value namesToJson(const std::vector<std::string>& names) {
  json::array a;
  for (const auto& n : names) a.emplace_back(n);
  return a;
}

std::optional<double> readNumber(Reader& r, const config::Node& v, std::string_view what, double min,
                                 double max) {
  auto s = r.str(v, what);
  if (!s) return std::nullopt;
  const auto d = parseDouble(*s);
  if (!d || !std::isfinite(*d) || *d < min || *d > max) {
    r.fail(v, fmt::format("{} must be a number from {} to {}, got '{}'", what, min, max, *s));
    return std::nullopt;
  }
  return d;
}

namespace {

// ---- sinks

void readSinkKind(Reader& r, const config::Node& v, SinkConfig& c) {
  auto s = r.str(v, "sink kind");
  if (!s) return;
  if (*s == "http" || *s == "influxdb" || *s == "mqtt" || *s == "tsdb")
    c.kind = *s;
  else
    r.fail(v, fmt::format("unknown sink kind '{}' (known: http, influxdb, mqtt, tsdb)", *s));
}

void readSinkHeaders(Reader& r, const config::Node& v, SinkConfig& c) { readHeaderMap(r, v, c.headers); }
json::value showSinkHeaders(const SinkConfig& c) { return showHeaderMap(c.headers); }

bool parseSinkUrl(SinkConfig& c, std::string& error) {
  if (!splitHttpUrl(c.url, c.https, c.host, c.port, c.path, error)) return false;
  if (c.kind != "influxdb") return true;
  const auto precision = precisionOfUrl(c.path, error);
  if (precision) c.precision = *precision;
  return precision.has_value();
}

}  // namespace

// ---- http targets (sinks, webhooks)

bool splitHttpUrl(const std::string& text, bool& https, std::string& host, uint16_t& port, std::string& path,
                  std::string& error) {
  auto url = upstream::parseHttpUrl(text, "url", /*allow_query=*/true,
                                    "may not have credentials or a fragment (put a token in headers)");
  if (!url) {
    error = url.error().message;
    return false;
  }
  https = url->https;
  host = std::move(url->host);
  port = url->port;
  path = url->path.empty() ? "/" : std::move(url->path);
  if (url->has_query) path += "?" + url->query;
  return true;
}

void readHeaderMap(Reader& r, const config::Node& v, std::vector<std::pair<std::string, std::string>>& out) {
  if (!v.IsMap()) return r.fail(v, "headers must be a map of header: value");
  for (const auto& kv : v) {
    const std::string name = kv.first.Scalar();
    auto value = r.str(kv.second, fmt::format("header '{}' value", name));
    if (!config::isToken(name))
      r.fail(kv.first, fmt::format("'{}' is not a valid header name", name));
    else if (iequals(name, "content-length") || iequals(name, "host") || iequals(name, "transfer-encoding") ||
             iequals(name, "content-type") || iequals(name, "connection"))
      r.fail(kv.first, fmt::format("header '{}' is set by the gateway", name));
    else if (value)
      out.emplace_back(name, *value);
  }
}

json::value showHeaderMap(const std::vector<std::pair<std::string, std::string>>& headers) {
  if (headers.empty()) return nullptr;
  json::object o;
  for (const auto& [name, value] : headers) o[name] = "<redacted>";
  return o;
}

Result<void> makeTargetUpstream(std::string name, const std::string& host, uint16_t port, bool https,
                                Millis timeout, config::Place at, upstream::UpstreamConfig& up) {
  up.name = std::move(name);
  up.targets.push_back({{host, port}, 1});
  up.connect_timeout = std::min(timeout, Millis(5000));
  up.keepalive = 4;
  up.at = std::move(at);
  if (https) {
    auto ctx = systemTlsContext();
    if (!ctx) return ctx.error();
    up.tls = *ctx;
  }
  return {};
}

namespace {

/// When the system's CA bundle and directory last changed (0 when absent): a context made
/// before a change is made again (an operator who added a CA reloads and expects it used).
std::pair<int64_t, int64_t> systemCaStamp() {
  auto stamp = [](const char* path) -> int64_t {
    std::error_code ec;
    const auto t = std::filesystem::last_write_time(path, ec);
    return ec ? 0 : static_cast<int64_t>(t.time_since_epoch().count());
  };
  const char* file = std::getenv(X509_get_default_cert_file_env());
  const char* dir = std::getenv(X509_get_default_cert_dir_env());
  return {stamp(file && *file ? file : X509_get_default_cert_file()),
          stamp(dir && *dir ? dir : X509_get_default_cert_dir())};
}

}  // namespace

Result<std::shared_ptr<net::TlsClientContext>> systemTlsContext() {
  static std::mutex mutex;  // one context with the system's CAs while they stay the same
  static std::shared_ptr<net::TlsClientContext> system_tls;
  static std::pair<int64_t, int64_t> made_at;
  std::lock_guard lock(mutex);
  const auto now = systemCaStamp();
  if (!system_tls || now != made_at) {
    auto ctx = net::TlsClientContext::create({});
    if (!ctx) return ctx.error();
    system_tls = *ctx;
    made_at = now;
  }
  return system_tls;
}

// ---- schemas

const Schema<SinkBatchConfig>& sinkBatchSchema() {
  using B = SinkBatchConfig;
  static const Schema<SinkBatchConfig> schema{
      "sink batch",
      {
          {.name = "max_records",
           .kind = FieldKind::kInteger,
           .member = &B::max_records,
           .default_text = "`500`",
           .doc = "A batch is sent when it holds this many records...",
           .min = 1,
           .max = 100'000},
          {.name = "max_delay",
           .kind = FieldKind::kDuration,
           .member = &B::max_delay,
           .default_text = "`1s`",
           .doc = "...or when its oldest record has waited this long.",
           .min = 1},
      },
      {}};
  return schema;
}

const Schema<SinkQueueConfig>& sinkQueueSchema() {
  using Q = SinkQueueConfig;
  static const Schema<SinkQueueConfig> schema{
      "sink queue",
      {
          {.name = "durable",
           .kind = FieldKind::kBool,
           .member = &Q::durable,
           .default_text = "`false`",
           .doc = "Keep undelivered records on disk in `edge.data_dir` (`queues/<sink>/`): they survive a "
                  "restart or `kill -9` and are delivered in order when the receiver is back. Synced to "
                  "disk in batches (group commit); with `false` they wait in memory."},
          {.name = "max_bytes",
           .kind = FieldKind::kSize,
           .member = &Q::max_bytes,
           .default_text = "`64MiB`",
           .doc = "Records waiting for delivery past this are dropped, oldest readings first, then oldest "
                  "windows; events and summaries last. Counted in "
                  "`ganglion_edge_sink_dropped_total`. Durable: the queue's files on disk, dropped by "
                  "segment (1/32 of this); the segment being written and the one being delivered may "
                  "pass it.",
           .min = 4096},
      },
      {}};
  return schema;
}

const Schema<SinkRetryConfig>& sinkRetrySchema() {
  using R = SinkRetryConfig;
  static const Schema<SinkRetryConfig> schema{
      "sink retry",
      {
          {.name = "initial",
           .kind = FieldKind::kDuration,
           .member = &R::initial,
           .default_text = "`500ms`",
           .doc =
               "The wait after a failed delivery (no answer, or not `2xx`); it doubles with each failure in "
               "a row...",
           .min = 10},
          {.name = "max",
           .kind = FieldKind::kDuration,
           .member = &R::max,
           .default_text = "`30s`",
           .doc = "...up to this. The same batch is sent again (its records keep their ids), in order.",
           .min = 10},
      },
      {}};
  return schema;
}

const Schema<SinkConfig>& sinkSchema() {
  using S = SinkConfig;
  static const Schema<SinkConfig> schema{
      "sink",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &S::name,
           .default_text = "—",
           .doc = "Pipelines name it in `to`.",
           .required = true,
           .missing = "a sink needs a 'name'"},
          {.name = "kind",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc =
               "`http`: batches POSTed as `{\"records\": [...]}`; any `2xx` delivers them. `influxdb`: "
               "batches POSTed as InfluxDB line protocol to the write URL (1.x `/write?db=`, 2.x "
               "`/api/v2/write?org=&bucket=`, 3.x `/api/v3/write_lp?db=`); `2xx` delivers, `400` and `422` "
               "(points InfluxDB will never take) drop the batch, counted as rejected, `413` halves it "
               "([InfluxDB sink](edge.md#influxdb-sink)). `mqtt`: each record as a JSON message to `topic` "
               "through "
               "an mqtt `connector`; a batch is delivered when the broker acknowledged all of it "
               "([MQTT sink](edge.md#mqtt-sink)). `tsdb`: records kept in a SQLite file in `edge.data_dir` "
               "(`tsdb/<name>.sqlite`) for `retention`, read through the admin API "
               "([local store](edge.md#tsdb-sink)).",
           .required = true,
           .missing = "a sink needs a 'kind' (http, influxdb, mqtt or tsdb)",
           .type_text = "name",
           .read = readSinkKind,
           .show = [](const S& c) -> json::value { return json::string(c.kind); }},
          {.name = "url",
           .kind = FieldKind::kString,
           .member = &S::url,
           .default_text = "—",
           .doc =
               "`http` and `influxdb`, required: `http://` or `https://` (verified against the system's CA "
               "store) host, port, path and query. For `influxdb`, the query's `precision` (`ns` when "
               "absent, "
               "`us`, `ms`, `s`) is the unit the lines' timestamps are written in."},
          {.name = "connector",
           .kind = FieldKind::kString,
           .member = &S::connector,
           .default_text = "—",
           .doc =
               "`mqtt`, required: an `mqtt` connector (one without `subscribe` only publishes); each record "
               "goes to its broker as a message."},
          {.name = "topic",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc =
               "`mqtt`, required: the topic, with placeholders filled from the record: `{device}`, "
               "`{metric}`, `{source}`, `{kind}`, `{rule}`, or a text field such as `{detector}` (a missing "
               "one is empty). A record whose values would make the topic invalid is dropped, counted as "
               "rejected.",
           .type_text = "template",
           .read =
               [](Reader& r, const config::Node& v, S& c) {
                 if (auto t = r.str(v, "topic")) parseTopicTemplate(r, v, *t, c.topic, /*sink=*/true);
               },
           .show = [](const S& c) -> json::value {
             if (c.topic.text.empty()) return nullptr;
             return json::string(c.topic.text);
           }},
          {.name = "qos",
           .kind = FieldKind::kInteger,
           .member = &S::qos,
           .default_text = "`1`",
           .doc = "`mqtt`: 0, 1 or 2. A batch is delivered once the broker acknowledged each of its messages "
                  "(QoS 0: once written).",
           .max = 2},
          {.name = "retain",
           .kind = FieldKind::kBool,
           .member = &S::retain,
           .default_text = "`false`",
           .doc = "`mqtt`: the broker keeps each topic's last message for new subscribers."},
          {.name = "retention",
           .kind = FieldKind::kDuration,
           .member = &S::retention,
           .default_text = "`168h` (7 days)",
           .doc = "`tsdb`: records whose `ts` is older than this are deleted (checked once a minute).",
           .min = 60'000},
          {.name = "max_bytes",
           .kind = FieldKind::kSize,
           .member = &S::max_bytes,
           .default_text = "`1GiB`",
           .doc =
               "`tsdb`: what the records may take in the file: past it, the oldest go, readings first, then "
               "windows, events and summaries last, counted as `evicted` (the file keeps its size and reuses "
               "the space).",
           .min = 1u << 20,
           .max = 1ull << 40},
          {.name = "headers",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "Extra request headers (`{ authorization: \"Bearer ${UPLINK_TOKEN}\" }`); shown redacted.",
           .secret = true,
           .type_text = "map header: value",
           .read = readSinkHeaders,
           .show = showSinkHeaders},
          {.name = "timeout",
           .kind = FieldKind::kDuration,
           .member = &S::timeout,
           .default_text = "`10s`",
           .doc = "How long one delivery may take, connecting included, before it counts as failed.",
           .min = 10},
          {.name = "batch",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "see below",
           .doc = "When a batch is sent: [`batch`](#sink-batch).",
           .type_text = "map",
           .read = config::readSection<S, SinkBatchConfig, &S::batch, sinkBatchSchema>,
           .show = config::showSection<S, SinkBatchConfig, &S::batch, sinkBatchSchema>},
          {.name = "queue",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "see below",
           .doc = "Where records wait for delivery: [`queue`](#sink-queue).",
           .type_text = "map",
           .read = config::readSection<S, SinkQueueConfig, &S::queue, sinkQueueSchema>,
           .show = config::showSection<S, SinkQueueConfig, &S::queue, sinkQueueSchema>},
          {.name = "retry",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "see below",
           .doc = "The backoff after failed deliveries: [`retry`](#sink-retry).",
           .type_text = "map",
           .read = config::readSection<S, SinkRetryConfig, &S::retry, sinkRetrySchema>,
           .show = config::showSection<S, SinkRetryConfig, &S::retry, sinkRetrySchema>},
      },
      {}};
  return schema;
}

const Schema<PipelineConfig>& pipelineSchema() {
  using P = PipelineConfig;
  static const Schema<PipelineConfig> schema{
      "pipeline",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &P::name,
           .default_text = "—",
           .doc = "Metrics, the admin API and record ids name it.",
           .required = true,
           .missing = "a pipeline needs a 'name'"},
          {.name = "from",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "The connectors whose readings it takes.",
           .required = true,
           .missing = "a pipeline needs 'from': the connectors it reads",
           .type_text = "list",
           .read = [](Reader& r, const config::Node& v, P& p) { p.from = readNames(r, v, "from"); },
           .show = [](const P& p) { return namesToJson(p.from); }},
          {.name = "stages",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "Each a map with one key: `filter`, [`map`](#map), [`deadband`](#deadband), `change_only`, "
                  "[`dedup`](#dedup), [`downsample`](#downsample), [`window`](#window), [`fft`](#fft), "
                  "[`join`](#join), [`detect`](#detect) "
                  "([stages](edge.md#stages)). Records leave the last stage for the sinks.",
           .type_text = "list",
           .read = readStages,
           .show = showStages},
          {.name = "to",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "The sinks that get every record leaving the last stage.",
           .type_text = "list",
           .read = [](Reader& r, const config::Node& v, P& p) { p.to = readNames(r, v, "to"); },
           .show = [](const P& p) { return namesToJson(p.to); }},
          {.name = "max_series",
           .kind = FieldKind::kInteger,
           .member = &P::max_series,
           .default_text = "`100000`",
           .doc =
               "Series (source, device, metric; a window's groups count too) the pipeline keeps state for; "
               "readings of new series past it are dropped and counted.",
           .min = 1,
           .max = 10'000'000},
          {.name = "device_limit",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "Readings per second each device (of each source) may send through the pipeline; more are "
                  "dropped and counted, and the devices limited lately are listed "
                  "([device_limit](#pipeline-device_limit), [flood limits](edge.md#flood-limits)).",
           .type_text = "map",
           .read = config::readSection<P, DeviceLimitConfig, &P::device_limit, deviceLimitSchema>,
           .show = [](const P& p) -> json::value {
             if (!p.device_limit.rate) return nullptr;
             return config::fieldsToJson(deviceLimitSchema(), p.device_limit);
           }},
          {.name = "forget_idle",
           .kind = FieldKind::kDuration,
           .member = &P::forget_idle,
           .default_text = "`1h`",
           .doc =
               "Once the pipeline holds 90% of `max_series`, series not heard from for this long are "
               "forgotten (checked at most every 10 s), with what its stages kept for them, so new devices "
               "are taken again after a flood of invented names. Never less than the stages' reach (a "
               "window's length plus `allowed_lateness`, a join's `within` plus `wait`, a downsample's "
               "`every`, an fft block's span); series with an open window or a held reading stay "
               "([forgetting idle series](edge.md#forgetting-idle-series)).",
           .min = 1000},
      },
      {}};
  return schema;
}

const Schema<DeviceLimitConfig>& deviceLimitSchema() {
  using D = DeviceLimitConfig;
  static const Schema<DeviceLimitConfig> schema{
      "pipeline device_limit",
      {
          {.name = "rate",
           .kind = FieldKind::kInteger,
           .member = &D::rate,
           .default_text = "required",
           .doc = "Readings per second of wall time, per source and device (a token bucket).",
           .min = 1,
           .max = 100'000'000,
           .required = true},
          {.name = "burst",
           .kind = FieldKind::kInteger,
           .member = &D::burst,
           .default_text = "`rate`",
           .doc = "How many readings a device that was quiet may send at once before `rate` holds it.",
           .min = 1,
           .max = 1'000'000'000},
      },
      {}};
  return schema;
}

const Schema<EdgeSettings>& edgeSettingsSchema() {
  using E = EdgeSettings;
  static const Schema<EdgeSettings> schema{
      "edge",
      {
          {.name = "data_dir",
           .kind = FieldKind::kString,
           .member = &E::data_dir,
           .default_text = "`edge-data`",
           .doc = "Where the edge keeps its state: durable queues (`queues/`), ingest logs (`ingest/`) and "
                  "detector and rule state (`state/`). Relative: to the config file's directory. One gateway "
                  "per directory: a gateway holds `gateway.lock` in it while it runs, and one started while "
                  "another holds it waits up to 5 s for it to let go, then refuses to start. Pipelines "
                  "look at the wall clock every 100 ms (windows without readings close then)."},
          {.name = "state_every",
           .kind = FieldKind::kDuration,
           .member = &E::state_every,
           .default_text = "`10s`",
           .doc =
               "How often a pipeline saves its detectors' histories and its rules' hold-offs and raised "
               "alarms to `state/<pipeline>.state` (only when they changed since), besides at shutdown and "
               "reload. A restart resumes from the last save: no second warm-up, no alarm a hold-off held "
               "back. A pipeline with an ingest log keeps in it every reading the saved state has not "
               "learned, so after a `kill -9` its detectors learn exactly what came after the save: a "
               "shorter interval means a shorter log and less to run again, a longer one fewer writes. A "
               "large state is saved less often, so that saves write at most about 100 KiB/s on average "
               "(a 10 MB state: every 100 s).",
           .min = 100,
           .max = 86'400'000},
      },
      {}};
  return schema;
}

// ---- readers

void checkPartName(Reader& r, const config::Node& n, std::string_view kind, const std::string& name) {
  if (n["name"].IsDefined() && name.empty())
    r.fail(n["name"],
           fmt::format("a {}'s name must not be empty (the admin API, the metrics and its files name "
                       "it by it)",
                       kind));
  if (name == "." || name == "..")
    r.fail(n["name"],
           fmt::format("a {} cannot be named '{}': the admin API addresses it by its name as a path "
                       "segment (/edge/{}s/<name>), and '{}' is not one",
                       kind, name, kind, name));
  // Percent-encoded, 256 bytes are at most 768 characters of a path the admin API reads whole.
  if (name.size() > kMaxPartName)
    r.fail(n["name"],
           fmt::format("a {} name is at most {} bytes (this one has {}): the admin API addresses it "
                       "in a path",
                       kind, kMaxPartName, name.size()));
}

void readSinks(Reader& r, const config::Node& list, EdgeConfig& out) {
  r.forEach(list, "sinks", [&](const config::Node& n) {
    if (!n.IsMap()) return r.fail(n, "a sink is a map: { name, kind, url, batch, queue }");
    SinkConfig s;
    s.at = n.place();
    const size_t errors = r.errors.size();
    readFields(sinkSchema(), n, s, r);
    checkPartName(r, n, "sink", s.name);
    if (s.retry.max < s.retry.initial) r.fail(n["retry"], "retry.max must be at least retry.initial");
    const bool mqtt_sink = s.kind == "mqtt";
    const bool local_sink = s.kind == "tsdb";
    if (mqtt_sink || local_sink) {
      for (const char* http_only : {"url", "headers", "timeout"})
        if (n[http_only].IsDefined())
          r.fail(n[http_only], fmt::format("'{}' is for http and influxdb sinks: {}", http_only,
                                           mqtt_sink ? "an mqtt sink sends through its connector"
                                                     : "a tsdb sink writes a file in edge.data_dir"));
    }
    for (const char* tsdb_only : {"retention", "max_bytes"})
      if (!local_sink && n[tsdb_only].IsDefined())
        r.fail(n[tsdb_only], fmt::format("'{}' is for tsdb sinks", tsdb_only));
    if (!mqtt_sink && !s.kind.empty())
      for (const char* mqtt_only : {"connector", "topic", "qos", "retain"})
        if (n[mqtt_only].IsDefined()) r.fail(n[mqtt_only], fmt::format("'{}' is for mqtt sinks", mqtt_only));
    if (mqtt_sink) {
      if (!n["connector"].IsDefined()) r.fail(n, "an mqtt sink needs a 'connector' (an mqtt connector)");
      if (!n["topic"].IsDefined()) r.fail(n, "an mqtt sink needs a 'topic'");
      const auto c = std::find_if(out.connectors.begin(), out.connectors.end(),
                                  [&](const ConnectorConfig& k) { return k.name == s.connector; });
      if (!s.connector.empty() && c == out.connectors.end() && !out.refused(s.connector))
        r.fail(n["connector"],
               fmt::format("sink '{}' sends through unknown connector '{}'", s.name, s.connector));
      else if (c != out.connectors.end() && c->kind != "mqtt")
        r.fail(n["connector"], fmt::format("sink '{}' sends through connector '{}', which is {}, not mqtt",
                                           s.name, s.connector, c->kind));
      else if (const MqttSubscription* sub = subscriptionReading(out, s.connector, s.topic))
        r.fail(n["topic"], fmt::format("sink '{}' publishes to '{}', which connector '{}' reads ('{}'): each "
                                       "record would come back as a reading",
                                       s.name, s.topic.text, s.connector, sub->topic));
    } else if (!local_sink && !s.kind.empty() && !n["url"].IsDefined()) {
      r.fail(n, fmt::format("an {} sink needs a 'url'", s.kind));
    }
    if (!s.url.empty() && !mqtt_sink && !local_sink) {
      std::string error;
      if (!parseSinkUrl(s, error)) r.fail(n["url"], error);
    }
    if (s.name.empty()) return;
    if (out.readBefore("sink", s.name)) r.fail(n["name"], fmt::format("duplicate sink name '{}'", s.name));
    if (r.errors.size() != errors) return out.refused_names.push_back(s.name);
    if (!mqtt_sink && !local_sink)
      if (auto made =
              makeTargetUpstream("sink:" + s.name, s.host, s.port, s.https, s.timeout, s.at, s.upstream);
          !made)
        return r.fail(n, made.error().message);
    out.sinks.push_back(std::move(s));
  });
}

void readPipelines(Reader& r, const config::Node& list, EdgeConfig& out) {
  auto names = configFieldNames(out);
  r.forEach(list, "pipelines", [&](const config::Node& n) {
    if (!n.IsMap()) return r.fail(n, "a pipeline is a map: { name, from, stages, to }");
    PipelineConfig p;
    p.at = n.place();
    const size_t errors = r.errors.size();
    readFields(pipelineSchema(), n, p, r);
    checkPartName(r, n, "pipeline", p.name);
    const bool fields_read = r.errors.size() == errors;
    if (!p.name.empty() && out.readBefore("pipeline", p.name))
      r.fail(n["name"], fmt::format("duplicate pipeline name '{}'", p.name));
    for (const auto& c : p.from) {
      const auto known = std::find_if(out.connectors.begin(), out.connectors.end(),
                                      [&](const ConnectorConfig& k) { return k.name == c; });
      if (known == out.connectors.end() && !out.refused(c))
        r.fail(n["from"], fmt::format("pipeline '{}' reads unknown connector '{}'", p.name, c));
      else if (known != out.connectors.end() && known->kind == "mqtt" && known->subscribe.empty())
        r.fail(n["from"],
               fmt::format("pipeline '{}' reads connector '{}', which subscribes to nothing (it only "
                           "publishes): give it 'subscribe'",
                           p.name, c));
    }
    if (n["from"].IsDefined() && p.from.empty()) r.fail(n["from"], "from lists at least one connector");
    for (const auto& s : p.to) {
      const bool known =
          std::any_of(out.sinks.begin(), out.sinks.end(), [&](const SinkConfig& k) { return k.name == s; });
      if (!known && !out.refused(s))
        r.fail(n["to"], fmt::format("pipeline '{}' sends to unknown sink '{}'", p.name, s));
    }
    // A wrong `from` or `to` (or a connector or sink refused with its own error) does not hide
    // what is wrong in the stages: they are built whenever they were read.
    const bool parts_known =
        r.errors.size() == errors &&
        std::none_of(p.from.begin(), p.from.end(), [&](const auto& c) { return out.refused(c); }) &&
        std::none_of(p.to.begin(), p.to.end(), [&](const auto& s) { return out.refused(s); });
    const auto refuse = [&] {
      if (!p.name.empty()) out.refused_names.push_back(p.name);  // rules naming it: no second error
    };
    if (!fields_read) return refuse();
    p.spec.name = p.name;
    p.spec.max_series = p.max_series;
    p.spec.forget_idle_ms = p.forget_idle.count();
    // A join's fields become names of the config (the gateway's table takes them when the
    // config is installed: see commitFieldNames).
    auto grown = fieldNamesWith(names, pipelineFieldNames(p.spec));
    if (!grown) {
      refuse();
      return r.fail(n["stages"], fmt::format("pipeline '{}': {}", p.name, grown.error().message));
    }
    // Built once here to check what only building finds (expressions, fields reaching stages).
    std::vector<StageError> stage_errors;
    auto built = buildPipeline(p.spec, *grown, &stage_errors);
    if (!built) {
      const config::Node stages = n["stages"];
      for (const StageError& e : stage_errors) {
        const config::Node at = stages.IsSequence() && e.stage < stages.size() ? stages.items()[e.stage] : n;
        r.fail(at, fmt::format("pipeline '{}': {}", p.name, e.message));
      }
      return refuse();
    }
    if (!parts_known) return refuse();
    names = *grown;
    out.names = names;
    json::object fp = config::fieldsToJson(pipelineSchema(), p);
    // At its default, forget_idle leaves the fingerprint (and so the window ids' generation)
    // what it was before the setting existed: an upgrade does not restart pipelines.
    if (p.forget_idle == PipelineConfig{}.forget_idle) fp.erase("forget_idle");
    fp.erase("device_limit");  // applied to a running pipeline as it is
    p.fingerprint = json::serialize(fp);
    out.pipelines.push_back(std::move(p));
  });
}

void readEdgeSettings(Reader& r, const config::Node& map, EdgeConfig& out) {
  if (config::isSectionMap(r, map, edgeSettingsSchema()))
    readFields(edgeSettingsSchema(), map, out.settings, r);
}

json::value sinksToJson(const EdgeConfig& c) {
  json::array a;
  for (const auto& s : c.sinks) {
    json::object o = config::fieldsToJson(sinkSchema(), s);
    o["url"] = redactUrl(s.url);
    a.push_back(std::move(o));
  }
  return a;
}

json::value pipelinesToJson(const EdgeConfig& c) { return config::listToJson(pipelineSchema(), c.pipelines); }

namespace {

/// The names table of the configs installed so far (see edgeFieldNames), and its guard: configs
/// are read on the blocking pool (reloads, POST /config/check) and installed on the main thread.
struct FieldNamesRegistry {
  std::mutex mutex;
  std::shared_ptr<const FieldNames> current;
};

FieldNamesRegistry& fieldNamesRegistry() {
  static FieldNamesRegistry registry{{}, [] {
                                       auto n = std::make_shared<FieldNames>();
                                       internStandardFields(*n);
                                       return std::shared_ptr<const FieldNames>(std::move(n));
                                     }()};
  return registry;
}

}  // namespace

std::shared_ptr<const FieldNames> edgeFieldNames() {
  auto& registry = fieldNamesRegistry();
  std::lock_guard lock(registry.mutex);
  return registry.current;
}

std::shared_ptr<const FieldNames> configFieldNames(const EdgeConfig& cfg) {
  return cfg.names ? cfg.names : edgeFieldNames();
}

Result<std::shared_ptr<const FieldNames>> fieldNamesWith(const std::shared_ptr<const FieldNames>& base,
                                                         const std::vector<std::string>& extra) {
  std::vector<std::string_view> fresh;
  for (const auto& name : extra)
    if (base->find(name) == FieldNames::kNoField &&
        std::find(fresh.begin(), fresh.end(), name) == fresh.end())
      fresh.push_back(name);
  if (fresh.empty()) return base;
  if (base->size() + fresh.size() > kMaxFieldNames)
    return Error(
        fmt::format("this config names {} joined fields the gateway does not know yet, and with the {} "
                    "it knows that is more than the {} field names that fit (the gateway keeps the "
                    "names of every config it installed until it restarts)",
                    fresh.size(), base->size(), kMaxFieldNames));
  auto grown = std::make_shared<FieldNames>(*base);  // a copy: ids stay, new names come after
  for (std::string_view name : fresh) grown->intern(name, FieldNames::Type::kNumber);
  return std::shared_ptr<const FieldNames>(std::move(grown));
}

bool commitFieldNames(const std::shared_ptr<const FieldNames>& names) {
  if (!names) return true;
  auto& registry = fieldNamesRegistry();
  std::lock_guard lock(registry.mutex);
  const FieldNames& now = *registry.current;
  if (names.get() == &now) return true;
  if (names->size() < now.size()) return false;
  for (size_t id = 0; id < now.size(); ++id)
    if (names->name(static_cast<FieldId>(id)) != now.name(static_cast<FieldId>(id))) return false;
  registry.current = names;
  return true;
}

}  // namespace ganglion::edge
