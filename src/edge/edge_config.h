// The edge sections as read: `connectors:`, `pipelines:`, `sinks:` and `edge:` (docs/edge.md,
// docs/configuration.md). Declared once in edge_config.cc; immutable once loaded. Readers and
// schemas run on the main thread (config load) or the blocking pool (POST /config/check).
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "config/config.h"
#include "config/reader.h"
#include "config/schema.h"
#include "edge/connectors/modbus_decode.h"
#include "edge/connectors/mqtt_codec.h"
#include "edge/connectors/payload.h"
#include "edge/pipeline.h"
#include "edge/sinks/line_protocol.h"
#include "net/tls.h"
#include "upstream/upstream_config.h"

namespace ganglion::edge {

using config::Millis;

/// One `subscribe:` entry of an MQTT connector.
struct MqttSubscription {
  std::string topic;  ///< a filter; its first '+' names the device
  uint32_t qos = 1;
  std::optional<PayloadFormat> format;  ///< unset: the connector's
  std::string metric;                   ///< empty: the connector's
  std::string device;                   ///< for a topic without '+'; empty: the payload names it
  config::Place at;
};

/// One value a Modbus connector polls (`registers:`).
struct ModbusRegister {
  std::string name;  ///< the reading's metric
  ModbusTable table = ModbusTable::kHolding;
  uint32_t address = 0;  ///< 0-based, as on the wire
  RegisterLayout layout;
  double scale = 1;
  double offset = 0;
  std::string unit;  ///< an attribute of each reading
  bool writable = false;
  config::Place at;
};

/// How often a lost connection is tried again: `initial`, doubling up to `max`.
struct ReconnectConfig {
  Millis initial{1000};
  Millis max{30'000};
};

/// A southbound connector. Built: `http` (readings POSTed to a route whose target is
/// `ingest: <connector>`) and `mqtt` (a client of a broker, docs/edge.md "MQTT").
/// A resource a coap connector observes (RFC 7641): its notifications become readings.
struct CoapObserve {
  std::string uri;                      ///< coap://host[:5683]/path[?query] or coaps://host[:5684]/...
  std::string device;                   ///< the readings' device (SenML base names may name their own)
  std::string metric;                   ///< "" = the connector's
  std::optional<PayloadFormat> format;  ///< unset: the connector's (a Content-Format says first)
  std::string identity;                 ///< coaps: the PSK identity the gateway presents
  std::string key;                      ///< coaps: its pre-shared key (secret)
  // From `uri`:
  bool secure = false;  ///< coaps (DTLS with a pre-shared key)
  std::string host;
  uint16_t port = 5683;
  std::vector<std::string> path, query;
  config::Place at;
};

/// A pre-shared key a coap endpoint takes (DTLS): the identity a device presents, its key,
/// and the devices whose readings it may send.
struct CoapPsk {
  std::string identity;
  std::string key;                   ///< secret
  std::vector<std::string> devices;  ///< empty: the identity's own; {"*"}: any
  config::Place at;
  /// Whether this identity may send readings of `device`.
  bool allows(std::string_view device) const;
};

/// A coap endpoint's certificates (DTLS with certificates): its own, and the CA that signs
/// the devices'. PEM files, read at config load and when the connector starts.
struct CoapDtlsFiles {
  std::string cert;
  std::string key;
  std::string ca;
  bool empty() const { return cert.empty(); }
};

/// An mqtt connector's `outbox`: where the messages of rules' `publish` and `summarize` wait
/// until the broker acknowledges them (docs/edge.md "Rules' outbox").
struct ConnectorOutboxConfig {
  bool durable = false;             ///< on disk in edge.data_dir/outbox/<connector>
  uint64_t max_bytes = 8ull << 20;  ///< past it the oldest readings go first, alarms last
};

struct ConnectorConfig {
  std::string name;
  std::string kind;
  PayloadFormat format = PayloadFormat::kJson;  ///< http: when the Content-Type does not say; mqtt: default
  std::string metric;                           ///< for json and number payloads
  bool payload_names_device = true;             ///< SenML base names, line protocol `device` tags
  uint64_t max_body = 1u << 20;                 ///< http: request body; mqtt: packet
  Millis max_future{5 * 60 * 1000};
  Millis max_past{30LL * 24 * 3600 * 1000};
  TimePrecision time_precision = TimePrecision::kNanoseconds;
  // kind mqtt:
  std::string url;  ///< mqtt://host[:1883] or mqtts://host[:8883]
  std::string client_id;
  std::string username;
  std::string password;  ///< secret
  mqtt::Version protocol = mqtt::Version::k5;
  Millis keep_alive{30'000};
  bool clean_start = false;
  Millis session_expiry{24LL * 3600 * 1000};
  uint32_t receive_maximum = 256;
  Millis connect_timeout{10'000};
  ReconnectConfig reconnect;
  std::vector<MqttSubscription> subscribe;
  std::shared_ptr<net::TlsClientContext> tls;  ///< mqtts: null means the system store
  ConnectorOutboxConfig outbox;                ///< rules' messages waiting for the broker
  // kind modbus_tcp and modbus_rtu:
  config::HostPort address;  ///< modbus_tcp
  std::string serial_port;   ///< modbus_rtu: /dev/ttyUSB0
  uint32_t baud = 9600;
  std::string parity = "none";
  uint32_t data_bits = 8;
  uint32_t stop_bits = 1;
  uint32_t unit_id = 1;
  Millis poll{1000};
  Millis timeout{1000};  ///< a response; the device counts as not answering past it
  std::string device;    ///< the readings' device; empty: the connector's name
  std::vector<ModbusRegister> registers;
  // kind coap:
  bool listens = false;           ///< `listen` was given
  config::HostPort listen;        ///< the UDP endpoint devices post to
  std::string path = "readings";  ///< the endpoint's resource: /<path>/<device>
  std::vector<std::string> path_segments{"readings"};
  std::vector<CoapObserve> observe;
  std::vector<CoapPsk> psk;  ///< non-empty: the endpoint speaks DTLS (coaps) only
  CoapDtlsFiles dtls;        ///< set: the endpoint speaks DTLS, devices present certificates
  bool speaksDtls() const { return !psk.empty() || !dtls.empty(); }
  // From `url`:
  bool secure = false;
  std::string host;
  uint16_t port = 1883;
  config::Place at;

  /// What decoding a payload of this connector needs: its time bounds and naming rules, the
  /// device and metric the arrival names, now as the arrival time.
  PayloadContext payloadContext(std::string_view device, std::string_view metric) const;
};

struct SinkBatchConfig {
  uint32_t max_records = 500;
  Millis max_delay{1000};
};

struct SinkQueueConfig {
  bool durable = false;
  uint64_t max_bytes = 64ull << 20;
};

/// A topic with `{device}`-style placeholders, split once at load.
struct TopicTemplate {
  struct Piece {
    bool placeholder = false;
    std::string text;  ///< literal text, or the placeholder's name
  };
  std::string text;
  std::vector<Piece> pieces;
};

struct SinkRetryConfig {
  Millis initial{500};
  Millis max{30'000};
};

/// A northbound sink. Built today: `http` (JSON batches `{"records": [...]}`, any 2xx delivers),
/// `influxdb` (line protocol batches to a write URL) and `mqtt` (each record a message through
/// an mqtt connector; delivered when the broker acknowledged all of a batch) and `tsdb` (a
/// SQLite file in edge.data_dir, read through the admin API).
struct SinkConfig {
  std::string name;
  std::string kind;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  ///< values are secrets (tokens)
  Millis timeout{10'000};
  SinkBatchConfig batch;
  SinkQueueConfig queue;
  SinkRetryConfig retry;
  // From `url`:
  bool https = false;
  std::string host;
  uint16_t port = 80;
  std::string path = "/";
  TimePrecision precision = TimePrecision::kNanoseconds;  ///< influxdb: the URL's `precision`
  // kind mqtt (no url):
  std::string connector;  ///< an mqtt connector: its broker gets the records
  TopicTemplate topic;
  uint32_t qos = 1;
  bool retain = false;
  // kind tsdb (no url): records older than this (by ts) are deleted.
  Millis retention{7LL * 24 * 3600 * 1000};
  uint64_t max_bytes = 1ull << 30;  ///< tsdb: what its records may take in the file
  /// How the gateway reaches it: an upstream named "sink:<name>" with one target, pooled
  /// like any other (TLS verified against the system store for https).
  upstream::UpstreamConfig upstream;
  config::Place at;
};

/// The raw settings of a window stage (WindowSpec is what runs).
struct WindowConfig {
  Millis tumbling{0};
  Millis hopping{0};
  Millis hop{0};
  Millis session{0};
  Millis max_length{0};
  Millis allowed_lateness{0};
  std::vector<std::string> by{"device", "metric"};
  std::vector<std::string> aggregates;
};

/// The raw settings of a deadband (or change_only) stage.
struct DeadbandConfig {
  std::optional<double> absolute;
  std::optional<double> percent;
  Millis heartbeat{0};
};

/// The raw settings of a downsample stage.
struct DownsampleConfig {
  Millis every{0};
  uint64_t nth = 0;
};

/// A pipeline's `device_limit`: readings per second each device may send (0: no limit).
struct DeviceLimitConfig {
  uint64_t rate = 0;
  uint64_t burst = 0;  ///< the bucket; 0: one second of `rate`
};

struct PipelineConfig {
  std::string name;
  std::vector<std::string> from;  ///< connector names
  std::vector<std::string> to;    ///< sink names
  uint64_t max_series = 100'000;
  Millis forget_idle{3'600'000};
  DeviceLimitConfig device_limit;  ///< applied live: not part of the fingerprint
  PipelineSpec spec;               ///< the stages, checked by building the pipeline once
  std::string fingerprint;         ///< the pipeline's settings as JSON: equal means unchanged
  config::Place at;
};

/// `publish: { connector, topic, qos, retain }`: the record as JSON to an MQTT connector's broker.
struct RulePublish {
  std::string connector;
  TopicTemplate topic;
  uint32_t qos = 1;
  bool retain = false;
};

/// `forward: { to }`: the record to a sink.
struct RuleForward {
  std::string to;
};

/// `summarize: { model, prompt, to, connector, topic }`: asks a model of the gateway's LLM
/// router to summarise the firing record and the device's recent records; the answer goes
/// to a sink and/or an MQTT topic as a `summary` record.
struct RuleSummarize {
  std::string model;
  std::string prompt;
  std::string to;         ///< a sink; empty: none
  std::string connector;  ///< an mqtt connector for `topic`; empty: none
  TopicTemplate topic;
  uint32_t qos = 1;
  uint32_t context = 10;      ///< recent records of the device sent with the prompt
  uint32_t max_tokens = 400;  ///< of the answer
  Millis timeout{30'000};
};

/// `webhook: { url, headers, timeout, retries }`: the record as JSON, POSTed to a URL; any
/// 2xx is delivered, anything else is tried again (`retries` more times, waits doubling from
/// 200 ms), then counted as a failed action.
struct RuleWebhook {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  ///< values are secrets (tokens)
  Millis timeout{5'000};
  uint32_t retries = 3;
  // From `url`:
  bool https = false;
  std::string host;
  uint16_t port = 80;
  std::string path = "/";
  /// An upstream named "webhook:<rule>/<action index>" with one target (TLS verified against
  /// the system store for https).
  upstream::UpstreamConfig upstream;
};

/// `write: { connector, register, value }`: writes a value computed from the record (an
/// expression) to a register of a Modbus connector that its config marks `writable`.
struct RuleWrite {
  std::string connector;
  std::string register_name;
  std::string value;                                   ///< the expression's text
  std::shared_ptr<const expr::Program> value_program;  ///< compiled at load
  size_t register_index = 0;                           ///< in the connector's registers
};

using RuleAction = std::variant<RulePublish, RuleForward, RuleSummarize, RuleWebhook, RuleWrite>;

/// A rule: when `when` holds for a record leaving one of its pipelines, its actions run, at most
/// once per `hold_off` per key, and with `clear_when` not again until that holds (hysteresis).
struct RuleConfig {
  std::string name;
  std::vector<std::string> from;  ///< pipelines; empty: all
  std::string when;
  std::string clear_when;
  Millis hold_off{0};
  std::string per = "device";  ///< device, series or rule: what a rule's state is kept for
  std::vector<RuleAction> actions;
  std::shared_ptr<const expr::Program> when_program;
  std::shared_ptr<const expr::Program> clear_program;  ///< null: no hysteresis
  std::string fingerprint;
  config::Place at;
};

struct EdgeSettings {
  std::string data_dir = "edge-data";  ///< relative: to the config file's directory
  Millis state_every{10'000};          ///< how often detector and rule state is saved
};

struct EdgeConfig {
  std::vector<ConnectorConfig> connectors;
  std::vector<SinkConfig> sinks;
  std::vector<PipelineConfig> pipelines;
  std::vector<RuleConfig> rules;
  /// A rule asks for `summarize` (even one refused for another mistake): the providers serve it.
  bool rules_summarize = false;
  EdgeSettings settings;
  /// The field names its pipelines and rules use: the gateway's table when it was read, with
  /// its joined fields added (null: the gateway's table). Becomes the gateway's table when
  /// the config is installed (commitFieldNames), not before: a refused config adds nothing.
  std::shared_ptr<const FieldNames> names;
  /// Connectors and sinks that were written with errors: references to them are not errors
  /// of their own (one mistake, one message).
  std::vector<std::string> refused_names;
  bool refused(std::string_view name) const {
    return std::find(refused_names.begin(), refused_names.end(), name) != refused_names.end();
  }
  /// Every connector's, sink's, pipeline's and rule's name as read, refused or not: a second
  /// part of one kind and name is an error even when the first was refused for another.
  std::vector<std::pair<std::string_view, std::string>> names_read;
  /// Notes a part's name as read; true when a part of that kind and name was read before.
  bool readBefore(std::string_view kind, const std::string& name) {
    const auto entry = std::make_pair(kind, name);
    if (std::find(names_read.begin(), names_read.end(), entry) != names_read.end()) return true;
    names_read.push_back(entry);
    return false;
  }
  bool empty() const { return connectors.empty() && sinks.empty() && pipelines.empty(); }
};

/// Splits `text` at its `{placeholders}` into `out`; false (with the error in `r`, at `v`) when
/// it is not a topic. A sink's topic (`sink`) is filled from a record's JSON, which does not
/// name its pipeline. Config load.
bool parseTopicTemplate(config::Reader& r, const config::Node& v, std::string_view text, TopicTemplate& out,
                        bool sink = false);
/// The subscription of connector `connector` in `cfg` that would read what is published to
/// `topic` (each message would come back as a reading: a loop), or nullptr. Config load.
const MqttSubscription* subscriptionReading(const EdgeConfig& cfg, const std::string& connector,
                                            const TopicTemplate& topic);

/// Fails at `n["name"]` when `name` is empty, or `.` or `..`: the admin API addresses a pipeline,
/// connector or sink by its name as one path segment, and a client or proxy folds those two
/// away (`/edge/sinks/../stop`); or when it is longer than kMaxPartName bytes. `kind` is
/// "pipeline", "connector" or "sink". Config load.
inline constexpr size_t kMaxPartName = 256;
void checkPartName(config::Reader& r, const config::Node& n, std::string_view kind, const std::string& name);

void readConnectors(config::Reader& r, const config::Node& list, EdgeConfig& out);
void readSinks(config::Reader& r, const config::Node& list, EdgeConfig& out);
/// After connectors and sinks: `from` and `to` must name them.
void readPipelines(config::Reader& r, const config::Node& list, EdgeConfig& out);
/// After pipelines: `from` names pipelines, actions name connectors, sinks and `models`.
void readRules(config::Reader& r, const config::Node& list, EdgeConfig& out,
               const std::vector<std::string>& model_names);
void readEdgeSettings(config::Reader& r, const config::Node& map, EdgeConfig& out);

const config::Schema<ConnectorConfig>& connectorSchema();
const config::Schema<MqttSubscription>& mqttSubscriptionSchema();
const config::Schema<ReconnectConfig>& reconnectSchema();
const config::Schema<ConnectorOutboxConfig>& connectorOutboxSchema();
const config::Schema<ModbusRegister>& modbusRegisterSchema();
const config::Schema<CoapObserve>& coapObserveSchema();
const config::Schema<CoapPsk>& coapPskSchema();
const config::Schema<CoapDtlsFiles>& coapDtlsSchema();
/// A connector's settings as JSON, secrets included (never shown): equal means unchanged.
std::string connectorFingerprint(const ConnectorConfig& c);
const config::Schema<SinkConfig>& sinkSchema();
const config::Schema<SinkBatchConfig>& sinkBatchSchema();
const config::Schema<SinkQueueConfig>& sinkQueueSchema();
const config::Schema<SinkRetryConfig>& sinkRetrySchema();
const config::Schema<PipelineConfig>& pipelineSchema();
const config::Schema<WindowConfig>& windowSchema();
const config::Schema<DeviceLimitConfig>& deviceLimitSchema();
const config::Schema<DetectSpec>& detectSchema();
const config::Schema<MapSpec>& mapSchema();
const config::Schema<DeadbandConfig>& deadbandSchema();
const config::Schema<DedupSpec>& dedupSchema();
const config::Schema<DownsampleConfig>& downsampleSchema();
const config::Schema<FftSpec>& fftSchema();
const config::Schema<JoinSpec>& joinSchema();
const config::Schema<JoinPartner>& joinPartnerSchema();
const config::Schema<EdgeSettings>& edgeSettingsSchema();
const config::Schema<RuleConfig>& ruleSchema();
const config::Schema<RulePublish>& rulePublishSchema();
const config::Schema<RuleSummarize>& ruleSummarizeSchema();
const config::Schema<RuleWebhook>& ruleWebhookSchema();
const config::Schema<RuleWrite>& ruleWriteSchema();

/// An http(s) URL split for an upstream (`what` names it in errors): false and `error` when it
/// is not one (credentials and fragments are refused: a token goes in headers).
bool splitHttpUrl(const std::string& url, bool& https, std::string& host, uint16_t& port, std::string& path,
                  std::string& error);
/// `headers: { name: value }` a sink or webhook sends (values are secrets); the headers the
/// gateway sets itself are refused. And the same for GET /config, values redacted.
void readHeaderMap(config::Reader& r, const config::Node& v,
                   std::vector<std::pair<std::string, std::string>>& out);
boost::json::value showHeaderMap(const std::vector<std::pair<std::string, std::string>>& headers);
/// A TLS client context with the system's CA store, shared while the store's files stay
/// the same (made again when they changed: a reload then picks up an added CA). Config load.
Result<std::shared_ptr<net::TlsClientContext>> systemTlsContext();
/// The upstream of one http(s) target for a sink or webhook; TLS against the system store.
Result<void> makeTargetUpstream(std::string name, const std::string& host, uint16_t port, bool https,
                                Millis timeout, config::Place at, upstream::UpstreamConfig& out);

/// Helpers shared by the edge sections' readers: a list of names (`from: plant` is a list of
/// one), and the same for GET /config.
std::vector<std::string> readNames(config::Reader& r, const config::Node& v, std::string_view what);
boost::json::value namesToJson(const std::vector<std::string>& names);
/// A number from `min` to `max` (an error naming `what` otherwise).
std::optional<double> readNumber(config::Reader& r, const config::Node& v, std::string_view what, double min,
                                 double max);
/// A pipeline's `stages` (stage_config.cc), and the same for GET /config.
void readStages(config::Reader& r, const config::Node& v, PipelineConfig& p);
boost::json::value showStages(const PipelineConfig& p);

/// The sections for GET /config.
boost::json::value connectorsToJson(const EdgeConfig& c);
boost::json::value sinksToJson(const EdgeConfig& c);
boost::json::value pipelinesToJson(const EdgeConfig& c);
boost::json::value rulesToJson(const EdgeConfig& c);

/// The field names records may carry: the standard ones and every joined field the configs
/// installed since start named. The table only grows (a new one is a copy with names added),
/// so a field id means the same in a pipeline built against an older table, which a reload
/// kept, and in a rule compiled against the newest. Any thread (guarded).
std::shared_ptr<const FieldNames> edgeFieldNames();
/// `cfg`'s names (edgeFieldNames() when it has none of its own).
std::shared_ptr<const FieldNames> configFieldNames(const EdgeConfig& cfg);
/// `base` with `extra` number fields added (`base` itself when it holds them all); an error
/// past kMaxFieldNames. Changes nothing shared. Config load.
Result<std::shared_ptr<const FieldNames>> fieldNamesWith(const std::shared_ptr<const FieldNames>& base,
                                                         const std::vector<std::string>& extra);
/// Makes `names` (a config's, being installed) the gateway's table. False, changing nothing,
/// when it does not extend the current one (a config read before another was installed).
/// Main thread.
bool commitFieldNames(const std::shared_ptr<const FieldNames>& names);
inline constexpr size_t kMaxFieldNames = 4096;

}  // namespace ganglion::edge
