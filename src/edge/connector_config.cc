// `connectors:` (docs/configuration.md "Edge: connectors, pipelines, sinks"): the shared
// fields, and those of MQTT connectors with their `subscribe` entries. Main thread (config
// load) or the blocking pool (POST /config/check).
#include <fmt/format.h>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <cmath>
#include <filesystem>

#include "base/strings.h"
#include "base/time.h"
#include "edge/edge_config.h"
#include "net/tls_config.h"

namespace ganglion::edge {

namespace json = boost::json;
using config::FieldKind;
using config::Reader;
using config::Schema;

namespace {

/// The fields that only some kinds of connector have: one written for another kind is an error
/// (a `url` on a modbus connector would otherwise be ignored).
struct KindField {
  std::string_view field;
  std::string_view kinds;  ///< space-separated
};
constexpr KindField kKindFields[] = {
    {"format", "http mqtt coap"},
    {"metric", "http mqtt coap"},
    {"payload_names_device", "http mqtt coap"},
    {"max_body", "http mqtt coap"},
    {"max_future", "http mqtt coap"},
    {"max_past", "http mqtt coap"},
    {"time_precision", "http mqtt coap"},
    {"url", "mqtt"},
    {"client_id", "mqtt"},
    {"username", "mqtt"},
    {"password", "mqtt"},
    {"protocol", "mqtt"},
    {"keep_alive", "mqtt"},
    {"clean_start", "mqtt"},
    {"session_expiry", "mqtt"},
    {"receive_maximum", "mqtt"},
    {"connect_timeout", "mqtt"},
    {"reconnect", "mqtt modbus_tcp modbus_rtu coap"},
    {"subscribe", "mqtt"},
    {"tls", "mqtt"},
    {"outbox", "mqtt"},
    {"address", "modbus_tcp"},
    {"serial_port", "modbus_rtu"},
    {"baud", "modbus_rtu"},
    {"parity", "modbus_rtu"},
    {"data_bits", "modbus_rtu"},
    {"stop_bits", "modbus_rtu"},
    {"unit_id", "modbus_tcp modbus_rtu"},
    {"poll", "modbus_tcp modbus_rtu"},
    {"timeout", "modbus_tcp modbus_rtu"},
    {"device", "modbus_tcp modbus_rtu"},
    {"registers", "modbus_tcp modbus_rtu"},
    {"listen", "coap"},
    {"path", "coap"},
    {"observe", "coap"},
    {"psk", "coap"},
    {"dtls", "coap"},
};

std::vector<std::string_view> splitKinds(std::string_view kinds) {
  std::vector<std::string_view> out;
  size_t at = 0;
  while (at < kinds.size()) {
    const size_t end = std::min(kinds.find(' ', at), kinds.size());
    out.push_back(kinds.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

/// "mqtt", "http or mqtt", "http, mqtt or coap".
std::string kindList(const std::vector<std::string_view>& kinds) {
  std::string out;
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i) out += i + 1 == kinds.size() ? " or " : ", ";
    out += kinds[i];
  }
  return out;
}

bool kindHas(std::string_view kinds, std::string_view kind) {
  const auto all = splitKinds(kinds);
  return std::find(all.begin(), all.end(), kind) != all.end();
}

constexpr std::string_view kBuiltConnectorKinds = "http, mqtt, modbus_tcp, modbus_rtu, coap";

void readConnectorKind(Reader& r, const config::Node& v, ConnectorConfig& c) {
  auto s = r.str(v, "connector kind");
  if (!s) return;
  if (*s == "http" || *s == "mqtt" || *s == "modbus_tcp" || *s == "modbus_rtu" || *s == "coap") {
    c.kind = *s;
    return;
  }
  if (*s == "opcua") {
    r.fail(v, fmt::format(
                  "connector kind 'opcua' is not available: no OPC UA client library can be had for this "
                  "build (docs/edge.md \"OPC UA\" says why and what to use instead; built: {})",
                  kBuiltConnectorKinds));
    return;
  }
  r.fail(v, fmt::format("unknown connector kind '{}' (built: {})", *s, kBuiltConnectorKinds));
}

void readFormat(Reader& r, const config::Node& v, ConnectorConfig& c) {
  auto s = r.str(v, "format");
  if (!s) return;
  if (auto f = payloadFormatFromName(*s))
    c.format = *f;
  else
    r.fail(v, fmt::format("format must be one of {}, got '{}'", kPayloadFormatNames, *s));
}
json::value showFormat(const ConnectorConfig& c) { return json::string(payloadFormatName(c.format)); }

constexpr std::pair<std::string_view, TimePrecision> kPrecisions[] = {
    {"ns", TimePrecision::kNanoseconds},
    {"us", TimePrecision::kMicroseconds},
    {"ms", TimePrecision::kMilliseconds},
    {"s", TimePrecision::kSeconds},
};

void readPrecision(Reader& r, const config::Node& v, ConnectorConfig& c) {
  auto s = r.str(v, "time_precision");
  if (!s) return;
  for (const auto& [name, p] : kPrecisions) {
    if (*s == name) {
      c.time_precision = p;
      return;
    }
  }
  r.fail(v, fmt::format("time_precision must be ns, us, ms or s, got '{}'", *s));
}
json::value showPrecision(const ConnectorConfig& c) {
  for (const auto& [name, p] : kPrecisions)
    if (p == c.time_precision) return json::string(name);
  return nullptr;
}

void readMqttUrl(Reader& r, const config::Node& v, ConnectorConfig& c) {
  auto s = r.str(v, "url");
  if (!s) return;
  auto url = boost::urls::parse_uri(*s);
  if (!url || (url->scheme() != "mqtt" && url->scheme() != "mqtts") || url->host().empty())
    return r.fail(
        v, fmt::format("url must be mqtt://host[:port] or mqtts://host[:port], got '{}'", redactUrl(*s)));
  if (url->has_userinfo())
    return r.fail(v, "url must not hold credentials: write them in 'username' and 'password'");
  if ((!url->path().empty() && url->path() != "/") || url->has_query() || url->has_fragment())
    return r.fail(v, fmt::format("url '{}' has a path, query or fragment; an MQTT url names only the broker",
                                 redactUrl(*s)));
  c.secure = url->scheme() == "mqtts";
  c.port = c.secure ? 8883 : 1883;
  if (url->has_port()) {
    const auto port = parseUint(url->port());
    if (!port || *port == 0 || *port > 65535)
      return r.fail(v, fmt::format("url '{}' has a bad port", redactUrl(*s)));
    c.port = static_cast<uint16_t>(*port);
  }
  c.host = url->host_type() == boost::urls::host_type::ipv6 ? std::string(url->encoded_host_address())
                                                            : std::string(url->host());
  c.url = *s;
}

void readProtocol(Reader& r, const config::Node& v, ConnectorConfig& c) {
  auto s = r.str(v, "protocol");
  if (!s) return;
  if (*s == "5" || *s == "5.0")
    c.protocol = mqtt::Version::k5;
  else if (*s == "3.1.1")
    c.protocol = mqtt::Version::k311;
  else
    r.fail(v, fmt::format("protocol must be 5 or 3.1.1, got '{}'", *s));
}

/// Reads a list of maps with their own schema: `list_shape` and `entry_shape` say what was
/// expected when it is not a list or an entry not a map. Each entry whose declared fields
/// read cleanly (its place set) goes to `take(node, entry)`, which checks the rest.
template <class T, class Take>
void readEntries(Reader& r, const config::Node& v, std::string_view what, const config::Schema<T>& schema,
                 std::string_view list_shape, std::string_view entry_shape, Take&& take) {
  if (!v.IsSequence()) return r.fail(v, std::string(list_shape));
  r.forEach(v, what, [&](const config::Node& n) {
    if (!n.IsMap()) return r.fail(n, std::string(entry_shape));
    T entry;
    entry.at = n.place();
    const size_t errors = r.errors.size();
    readFields(schema, n, entry, r);
    if (r.errors.size() == errors) take(n, entry);
  });
}

void readSubscriptions(Reader& r, const config::Node& v, ConnectorConfig& c) {
  readEntries(
      r, v, "subscribe", mqttSubscriptionSchema(), "subscribe is a list of { topic, qos, format, metric }",
      "a subscription is a map: { topic, qos, format, metric }",
      [&](const config::Node& n, MqttSubscription& s) {
        if (std::string why = mqtt::checkFilter(s.topic); !why.empty())
          return r.fail(n["topic"], fmt::format("topic '{}': {}", s.topic, why));
        if (mqtt::isSharedFilter(s.topic) && mqtt::matchFilter(s.topic).empty())
          return r.fail(n["topic"],
                        fmt::format("topic '{}': a shared subscription is $share/<group>/<filter>", s.topic));
        for (const auto& other : c.subscribe)
          if (other.topic == s.topic) return r.fail(n["topic"], fmt::format("duplicate topic '{}'", s.topic));
        c.subscribe.push_back(std::move(s));
      });
}

std::optional<double> readDouble(Reader& r, const config::Node& v, std::string_view what) {
  auto s = r.str(v, what);
  if (!s) return std::nullopt;
  const auto d = parseDouble(*s);
  if (!d || !std::isfinite(*d)) {
    r.fail(v, fmt::format("{} must be a finite number, got '{}'", what, *s));
    return std::nullopt;
  }
  return d;
}

/// `big` or `little`, for byte_order and word_order.
void readOrder(Reader& r, const config::Node& v, bool& big, std::string_view what) {
  auto s = r.str(v, what);
  if (!s) return;
  if (*s == "big" || *s == "little")
    big = *s == "big";
  else
    r.fail(v, fmt::format("{} must be big or little, got '{}'", what, *s));
}

/// A Uri-Path or Uri-Query piece: 1 to 255 bytes (CoAP's option limit), no controls.
bool coapOptionText(std::string_view s) {
  return !s.empty() && s.size() <= 255 && !hasControlOrNoncharacter(s);
}

void readCoapPath(Reader& r, const config::Node& v, ConnectorConfig& c) {
  auto s = r.str(v, "path");
  if (!s) return;
  std::string_view p = *s;
  while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  while (!p.empty() && p.back() == '/') p.remove_suffix(1);
  std::vector<std::string> segments;
  size_t at = 0;
  while (at < p.size()) {
    const size_t end = std::min(p.find('/', at), p.size());
    segments.emplace_back(p.substr(at, end - at));
    at = end + 1;
  }
  for (const auto& seg : segments)
    if (!coapOptionText(seg) || seg.find_first_of("?#%") != std::string::npos)
      return r.fail(v,
                    "path is segments of 1 to 255 bytes without controls, '?', '#' or '%': readings or "
                    "api/v1/readings");
  if (!segments.empty() && segments.front() == ".well-known")
    return r.fail(v, "path must not be under .well-known (CoAP's resource discovery lives there)");
  if (segments.size() > 8) return r.fail(v, "path has at most 8 segments");
  c.path = std::string(p);
  c.path_segments = std::move(segments);
}

void readCoapObserve(Reader& r, const config::Node& v, ConnectorConfig& c) {
  readEntries(
      r, v, "observe", coapObserveSchema(), "observe is a list of { uri, device, metric }",
      "an observation is a map: { uri: coap://10.0.0.5/temp, device: boiler-1 }",
      [&](const config::Node& n, CoapObserve& o) {
        auto url = boost::urls::parse_uri(o.uri);
        if (!url || (url->scheme() != "coap" && url->scheme() != "coaps") || url->encoded_host().empty())
          return r.fail(
              n["uri"],
              fmt::format("uri must be coap://host[:port]/path or coaps://host[:port]/path, got '{}'",
                          o.uri));
        if (url->has_userinfo() || url->has_fragment())
          return r.fail(n["uri"], "a coap uri has no user or fragment");
        o.secure = url->scheme() == "coaps";
        if (o.secure) {
          o.port = 5684;
          if (o.identity.empty() || o.key.empty())
            return r.fail(
                n, "a coaps observation needs the 'identity' and 'key' (a pre-shared key) it presents");
        } else if (n["identity"].IsDefined() || n["key"].IsDefined()) {
          return r.fail(n["identity"].IsDefined() ? n["identity"] : n["key"],
                        "identity and key are for coaps:// observations (CoAP over DTLS)");
        }
        o.host = url->host();
        if (url->has_port()) {
          const std::string port(url->port());
          auto number = parseUint(port);
          if (!number || *number == 0 || *number > 65535)
            return r.fail(n["uri"], fmt::format("the uri's port must be 1 to 65535, got '{}'", port));
          o.port = static_cast<uint16_t>(*number);
        }
        // A group cannot be observed: there is no one server to answer the registration.
        const bool v4_multicast = url->host_type() == boost::urls::host_type::ipv4 &&
                                  (url->host_ipv4_address().to_uint() >> 28) == 0xE;
        const bool v6_multicast = url->host_type() == boost::urls::host_type::ipv6 &&
                                  url->host_ipv6_address().to_bytes()[0] == 0xFF;
        if (v4_multicast || v6_multicast)
          return r.fail(n["uri"], "a multicast address cannot be observed: name one device");
        for (auto seg : url->segments()) {
          if (!coapOptionText(seg)) return r.fail(n["uri"], "each path segment of the uri is 1 to 255 bytes");
          o.path.emplace_back(seg);
        }
        if (url->has_query())
          for (auto param : url->params()) {
            std::string q = param.has_value ? param.key + "=" + param.value : param.key;
            if (!coapOptionText(q)) return r.fail(n["uri"], "each query entry of the uri is 1 to 255 bytes");
            o.query.push_back(std::move(q));
          }
        if (o.device.empty() || o.device.size() > 256 || hasControlOrNoncharacter(o.device))
          return r.fail(n["device"].IsDefined() ? n["device"] : n,
                        "an observation names its readings' device: 1 to 256 characters, no controls");
        c.observe.push_back(std::move(o));
      });
}

/// A PSK identity or key: 1 to 64 bytes (libcoap's limit for both).
bool pskText(std::string_view s) { return !s.empty() && s.size() <= 64; }

void readCoapPsk(Reader& r, const config::Node& v, ConnectorConfig& c) {
  // An empty list would leave the endpoint plain CoAP, open to anyone: say so instead.
  if (v.IsSequence() && v.size() == 0)
    return r.fail(v,
                  "psk lists at least one key (without psk the endpoint is plain CoAP: leave it out then)");
  readEntries(
      r, v, "psk", coapPskSchema(), "psk is a list of { identity, key, devices }",
      "a pre-shared key is a map: { identity: boiler-1, key: ${BOILER_1_KEY} }",
      [&](const config::Node& n, CoapPsk& p) {
        if (n["devices"].IsSequence() && n["devices"].size() == 0)
          return r.fail(n["devices"],
                        "devices lists at least one device (leave it out for the identity's own)");
        if (!pskText(p.identity) || hasControlOrNoncharacter(p.identity))
          return r.fail(n["identity"], "an identity is 1 to 64 bytes, no controls");
        // The key is never repeated in a message: config errors may be logged.
        if (!pskText(p.key)) return r.fail(n["key"], "a key is 1 to 64 bytes");
        for (const auto& d : p.devices)
          if (d.empty() || d.size() > 256 || hasControlOrNoncharacter(d))
            return r.fail(n["devices"],
                          "devices names devices (1 to 256 characters, no controls) or is [\"*\"]");
        if (std::find(p.devices.begin(), p.devices.end(), "*") != p.devices.end() && p.devices.size() > 1)
          return r.fail(n["devices"], "\"*\" (any device) stands alone in devices");
        for (const auto& other : c.psk)
          if (other.identity == p.identity)
            return r.fail(n["identity"], fmt::format("identity '{}' is given twice", p.identity));
        c.psk.push_back(std::move(p));
      });
}

json::value showCoapObserve(const ConnectorConfig& c) {
  if (c.observe.empty()) return nullptr;
  return config::listToJson(coapObserveSchema(), c.observe);
}

void readRegisters(Reader& r, const config::Node& v, ConnectorConfig& c) {
  readEntries(
      r, v, "registers", modbusRegisterSchema(), "registers is a list of { name, table, address, type, ... }",
      "a register is a map: { name, table, address, type }", [&](const config::Node& n, ModbusRegister& reg) {
        const bool bits = reg.table == ModbusTable::kCoil || reg.table == ModbusTable::kDiscrete;
        if (bits && !n["type"].IsDefined()) reg.layout.type = RegisterType::kBool;
        if (reg.name.empty() || reg.name.size() > 256 || hasControlOrNoncharacter(reg.name))
          return r.fail(n["name"],
                        "a register's name (its readings' metric) must be 1 to 256 characters, no controls");
        if (n["word_order"].IsDefined() && registerWidth(reg.layout.type) == 1)
          return r.fail(n["word_order"],
                        fmt::format("register '{}': word_order applies to 32- and 64-bit types, not {}",
                                    reg.name, registerTypeName(reg.layout.type)));
        if (reg.layout.type == RegisterType::kBool)
          for (std::string_view k : {"scale", "offset"})
            if (const config::Node v = n[std::string(k)]; v.IsDefined())
              return r.fail(v, fmt::format("register '{}': a bool is 0 or 1, without {}", reg.name, k));
        if (bits && reg.layout.type != RegisterType::kBool)
          return r.fail(n["type"], fmt::format("register '{}': a {} holds one bit: its type is bool",
                                               reg.name, modbusTableName(reg.table)));
        if (reg.address + registerWidth(reg.layout.type) > 65536)
          return r.fail(n["address"], fmt::format("register '{}': a {} at {} runs past address 65535",
                                                  reg.name, registerTypeName(reg.layout.type), reg.address));
        if (reg.writable && (reg.table == ModbusTable::kInput || reg.table == ModbusTable::kDiscrete))
          return r.fail(n["writable"], fmt::format("register '{}': {} registers are read-only in Modbus",
                                                   reg.name, modbusTableName(reg.table)));
        for (const auto& other : c.registers)
          if (other.name == reg.name)
            return r.fail(n["name"], fmt::format("duplicate register name '{}'", reg.name));
        c.registers.push_back(std::move(reg));
      });
}

json::value showRegisters(const ConnectorConfig& c) {
  if (c.registers.empty()) return nullptr;
  return config::listToJson(modbusRegisterSchema(), c.registers);
}

json::value showSubscriptions(const ConnectorConfig& c) {
  if (c.kind != "mqtt") return nullptr;
  return config::listToJson(mqttSubscriptionSchema(), c.subscribe);
}

}  // namespace

const Schema<ConnectorConfig>& connectorSchema() {
  using C = ConnectorConfig;
  static const Schema<ConnectorConfig> schema{
      "connector",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &C::name,
           .default_text = "—",
           .doc = "Pipelines name it in `from`; an `ingest:` route names it.",
           .required = true,
           .missing = "a connector needs a 'name'"},
          {.name = "kind",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc =
               "`http`: readings POSTed to a route whose target is `ingest: <this connector>`. `mqtt`: a "
               "client of an MQTT broker that subscribes to `subscribe` ([MQTT](edge.md#mqtt)). "
               "`modbus_tcp`, "
               "`modbus_rtu`: polls `registers` ([Modbus](edge.md#modbus)). `coap`: a CoAP endpoint devices "
               "post to and observations of device resources ([CoAP](edge.md#coap)). Refused with the "
               "reason: "
               "`opcua` (no client library).",
           .required = true,
           .missing = "a connector needs a 'kind' (built: http, mqtt, modbus_tcp, modbus_rtu, coap)",
           .type_text = "name",
           .read = readConnectorKind,
           .show = [](const C& c) -> json::value { return json::string(c.kind); }},
          {.name = "format",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`json`",
           .doc =
               "The payload format: `json`, `number`, `senml`, `line_protocol` "
               "([formats](edge.md#payload-formats)). `http`: when the request does not say "
               "(`Content-Type: application/json` is `json`, `application/senml+json` `senml`, `text/plain` "
               "`line_protocol`). `mqtt`: for subscriptions that do not name their own.",
           .type_text = "name",
           .read = readFormat,
           .show = showFormat},
          {.name = "metric",
           .kind = FieldKind::kString,
           .member = &C::metric,
           .default_text = "none",
           .doc =
               "The metric of `json` and `number` readings (an ingest route's `?metric=` query parameter "
               "and a subscription's `metric` override it). SenML names and line-protocol fields name their "
               "own."},
          {.name = "payload_names_device",
           .kind = FieldKind::kBool,
           .member = &C::payload_names_device,
           .default_text = "`true`",
           .doc = "Whether a SenML base name or a line-protocol `device` tag may name the device. Off, the "
                  "device is always the one the URL names, so a sender cannot report for another."},
          {.name = "max_body",
           .kind = FieldKind::kSize,
           .member = &C::max_body,
           .default_text = "`1MiB`",
           .doc =
               "`http`: larger request bodies answer `413`. `mqtt`: the largest packet taken from the broker "
               "(advertised as MQTT 5's Maximum Packet Size); a larger message is acknowledged, counted as "
               "refused and dropped, so that the broker does not send it again at every reconnection.",
           .min = 1024,
           .max = 64ull << 20},
          {.name = "max_future",
           .kind = FieldKind::kDuration,
           .member = &C::max_future,
           .default_text = "`5m`",
           .doc =
               "A reading timed later than arrival plus this is refused (a device with a wrong clock would "
               "otherwise push its windows ahead and make every later reading late)."},
          {.name = "max_past",
           .kind = FieldKind::kDuration,
           .member = &C::max_past,
           .default_text = "`720h`",
           .doc = "A reading timed earlier than arrival minus this is refused."},
          {.name = "time_precision",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`ns`",
           .doc = "The unit of line-protocol timestamps: `ns`, `us`, `ms` or `s` (InfluxDB's `precision`).",
           .type_text = "name",
           .read = readPrecision,
           .show = showPrecision},
          {.name = "url",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "`mqtt`, required: the broker, `mqtt://host[:1883]` or `mqtts://host[:8883]` (TLS). "
                  "Credentials go in `username` and `password`, not in the URL.",
           .type_text = "URL",
           .read = readMqttUrl,
           .show = [](const C& c) -> json::value {
             if (c.url.empty()) return nullptr;
             return json::string(c.url);
           }},
          {.name = "client_id",
           .kind = FieldKind::kString,
           .member = &C::client_id,
           .default_text = "`ganglion-<name>`",
           .doc = "`mqtt`: the client identifier; the broker keeps the persistent session under it, so two "
                  "gateways must not share one (the broker would disconnect one for the other)."},
          {.name = "username",
           .kind = FieldKind::kString,
           .member = &C::username,
           .default_text = "none",
           .doc = "`mqtt`: the user name sent in CONNECT."},
          {.name = "password",
           .kind = FieldKind::kString,
           .member = &C::password,
           .default_text = "none",
           .doc = "`mqtt`: the password sent in CONNECT (write `${ENV_VAR}`); never shown or logged.",
           .secret = true},
          {.name = "protocol",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`5`",
           .doc = "`mqtt`: the protocol version, `5` or `3.1.1`. With 5 the broker keeps at most "
                  "`receive_maximum` QoS 1/2 messages unacknowledged; with 3.1.1 the connector stops "
                  "reading while its pipelines are full and TCP holds the broker back.",
           .type_text = "`5` or `3.1.1`",
           .read = readProtocol,
           .show = [](const C& c) -> json::value {
             if (c.kind != "mqtt") return nullptr;
             return json::string(c.protocol == mqtt::Version::k5 ? "5" : "3.1.1");
           }},
          {.name = "keep_alive",
           .kind = FieldKind::kDuration,
           .member = &C::keep_alive,
           .default_text = "`30s`",
           .doc =
               "`mqtt`: PINGREQ after this long without sending; a broker silent for 1.5 times this is "
               "taken as gone and the connection is made again. A broker's Server Keep Alive overrides it.",
           .min = 1000},
          {.name = "clean_start",
           .kind = FieldKind::kBool,
           .member = &C::clean_start,
           .default_text = "`false`",
           .doc = "`mqtt`: `false` keeps a persistent session, so the broker holds QoS 1/2 messages that "
                  "arrive while the gateway is away (restart, lost link) and delivers them when it is back."},
          {.name = "session_expiry",
           .kind = FieldKind::kDuration,
           .member = &C::session_expiry,
           .default_text = "`24h`",
           .doc = "`mqtt` 5: how long the broker keeps the session after the connection is lost (3.1.1 "
                  "brokers keep it until a clean start)."},
          {.name = "receive_maximum",
           .kind = FieldKind::kInteger,
           .member = &C::receive_maximum,
           .default_text = "`256`",
           .doc = "`mqtt` 5: QoS 1 and 2 messages the broker may have unacknowledged at once (flow control).",
           .min = 1,
           .max = 65535},
          {.name = "connect_timeout",
           .kind = FieldKind::kDuration,
           .member = &C::connect_timeout,
           .default_text = "`10s`",
           .doc = "`mqtt`: TCP connect, TLS handshake and CONNACK together; longer is a failed attempt.",
           .min = 100},
          {.name = "reconnect",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`{}`",
           .doc =
               "`mqtt`, `modbus_*`: the pause before a new attempt after a lost connection or a failed one; "
               "`coap`: before an observation is registered again after an error or no answer "
               "([reconnect](#connector-reconnect)).",
           .type_text = "map",
           .read = config::readSection<C, ReconnectConfig, &C::reconnect, reconnectSchema>,
           .show = [](const C& c) -> json::value {
             if (c.kind == "http") return nullptr;
             return config::fieldsToJson(reconnectSchema(), c.reconnect);
           }},
          {.name = "outbox",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`{}`",
           .doc = "`mqtt`: where the messages of rules' `publish` and `summarize` through this connector "
                  "wait until the broker acknowledges them ([outbox](#connector-outbox), [rules' "
                  "outbox](edge.md#rules-outbox)).",
           .type_text = "map",
           .read = config::readSection<C, ConnectorOutboxConfig, &C::outbox, connectorOutboxSchema>,
           .show = [](const C& c) -> json::value {
             if (c.kind != "mqtt") return nullptr;
             return config::fieldsToJson(connectorOutboxSchema(), c.outbox);
           }},
          {.name = "subscribe",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "`mqtt`: the topic filters to take readings from "
                  "([subscribe](#connector-subscribe)); a message is read by the first entry that matches. "
                  "Without it the connector only publishes (rules' `publish`, [`mqtt` "
                  "sinks](edge.md#mqtt-sink)) "
                  "and no pipeline may read it.",
           .type_text = "list",
           .read = readSubscriptions,
           .show = showSubscriptions},
          {.name = "address",
           .kind = FieldKind::kHostPort,
           .member = &C::address,
           .default_text = "—",
           .doc = "`modbus_tcp`, required: the device (or gateway) as host:port (Modbus TCP's port is 502).",
           .type_text = "host:port"},
          {.name = "serial_port",
           .kind = FieldKind::kString,
           .member = &C::serial_port,
           .default_text = "—",
           .doc = "`modbus_rtu`, required: the serial device (`/dev/ttyUSB0`)."},
          {.name = "baud",
           .kind = FieldKind::kInteger,
           .member = &C::baud,
           .default_text = "`9600`",
           .doc = "`modbus_rtu`: the line speed.",
           .min = 50,
           .max = 4'000'000},
          {.name = "parity",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`none`",
           .doc = "`modbus_rtu`: `none`, `even` or `odd`.",
           .type_text = "name",
           .read =
               [](Reader& r, const config::Node& v, C& c) {
                 auto s = r.str(v, "parity");
                 if (!s) return;
                 if (*s != "none" && *s != "even" && *s != "odd")
                   return r.fail(v, fmt::format("parity must be none, even or odd, got '{}'", *s));
                 c.parity = *s;
               },
           .show = [](const C& c) -> json::value {
             if (c.kind != "modbus_rtu") return nullptr;
             return json::string(c.parity);
           }},
          {.name = "data_bits",
           .kind = FieldKind::kInteger,
           .member = &C::data_bits,
           .default_text = "`8`",
           .doc = "`modbus_rtu`: 5 to 8.",
           .min = 5,
           .max = 8},
          {.name = "stop_bits",
           .kind = FieldKind::kInteger,
           .member = &C::stop_bits,
           .default_text = "`1`",
           .doc = "`modbus_rtu`: 1 or 2.",
           .min = 1,
           .max = 2},
          {.name = "unit_id",
           .kind = FieldKind::kInteger,
           .member = &C::unit_id,
           .default_text = "`1`",
           .doc =
               "`modbus_*`: the unit (slave) id polled (0-247; 255 for a Modbus TCP device that ignores it).",
           .max = 255},
          {.name = "poll",
           .kind = FieldKind::kDuration,
           .member = &C::poll,
           .default_text = "`1s`",
           .doc = "`modbus_*`: how often every register is read. Polls that cannot keep up are skipped, not "
                  "queued; while a pipeline is full the next poll waits (backpressure).",
           .min = 10},
          {.name = "timeout",
           .kind = FieldKind::kDuration,
           .member = &C::timeout,
           .default_text = "`1s`",
           .doc =
               "`modbus_*`: how long a response may take; a read past it counts as a timeout of its register "
               "(each connector polls on its own thread: a device that stops answering delays only itself).",
           .min = 10},
          {.name = "device",
           .kind = FieldKind::kString,
           .member = &C::device,
           .default_text = "the connector's name",
           .doc = "`modbus_*`: the device of its readings."},
          {.name = "registers",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "—",
           .doc = "`modbus_*`, required: what is read ([registers](#connector-registers)); each register's "
                  "`name` is its readings' metric.",
           .type_text = "list",
           .read = readRegisters,
           .show = showRegisters},
          {.name = "listen",
           .kind = FieldKind::kHostPort,
           .member = &C::listen,
           .default_text = "none",
           .doc = "`coap`: the UDP address of the endpoint devices post readings to "
                  "(`coap://<listen>/<path>/<device>`); a connector without it only observes. Plain CoAP "
                  "unless `psk` is given: keep a plain endpoint on a device network."},
          {.name = "path",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`readings`",
           .doc =
               "`coap`: the endpoint's resource; a POST or PUT to `/<path>/<device>` (or `/<path>?device=`) "
               "carries that device's readings, `?metric=` their metric.",
           .type_text = "string",
           .read = readCoapPath,
           .show = [](const C& c) -> json::value {
             if (c.kind != "coap") return nullptr;
             return json::string(c.path);
           }},
          {.name = "observe",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`coap`: resources on devices whose notifications become readings "
                  "([connector_observe](#connector-observe)).",
           .type_text = "list",
           .read = readCoapObserve,
           .show = showCoapObserve},
          {.name = "dtls",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc =
               "`coap`: certificates ([connector_dtls](#connector-dtls)); with them the endpoint speaks only "
               "CoAP over DTLS and asks each device for a certificate its `ca` signed (with `psk` too, a "
               "device may use either).",
           .type_text = "map",
           .read = config::readSection<C, CoapDtlsFiles, &C::dtls, coapDtlsSchema>,
           .show = [](const C& c) -> json::value {
             if (c.dtls.empty()) return nullptr;
             return config::fieldsToJson(coapDtlsSchema(), c.dtls);
           }},
          {.name = "psk",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`coap`: pre-shared keys ([connector_psk](#connector-psk)); with them the endpoint speaks "
                  "only CoAP over DTLS (`coaps`, conventionally port 5684), and a device is known by the "
                  "identity it presents.",
           .type_text = "list",
           .read = readCoapPsk,
           .show = [](const C& c) -> json::value {
             if (c.psk.empty()) return nullptr;
             return config::listToJson(coapPskSchema(), c.psk);
           }},
      },
      {{.name = "tls",
        .type_text = "`true` or map",
        .default_text = "with `mqtts://`: the system store",
        .doc = "`mqtt`: TLS settings for an `mqtts://` broker: `ca`, `cert` and `key` (a client "
               "certificate), `verify`, `server_name`, `min_version` "
               "([upstream TLS](#upstream-tls))."}}};
  return schema;
}

const Schema<MqttSubscription>& mqttSubscriptionSchema() {
  using S = MqttSubscription;
  static const Schema<MqttSubscription> schema{
      "subscription",
      {
          {.name = "topic",
           .kind = FieldKind::kString,
           .member = &S::topic,
           .default_text = "—",
           .doc = "A topic filter (`+` one level, `#` the rest; `$share/<group>/<filter>` shares the "
                  "messages among the clients of a group). The level its first `+` stands for names the "
                  "device.",
           .required = true,
           .missing = "a subscription needs a 'topic'"},
          {.name = "qos",
           .kind = FieldKind::kInteger,
           .member = &S::qos,
           .default_text = "`1`",
           .doc = "The highest QoS the broker sends at: 0 (at most once), 1 (at least once), 2 (once per "
                  "connection; at least once across a crash). Messages at 1 and 2 are acknowledged only "
                  "after their readings are taken.",
           .max = 2},
          {.name = "format",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "the connector's",
           .doc = "The payload format of these messages: `json`, `number`, `senml`, `line_protocol`.",
           .type_text = "name",
           .read =
               [](Reader& r, const config::Node& v, S& s) {
                 auto f = r.str(v, "format");
                 if (!f) return;
                 s.format = payloadFormatFromName(*f);
                 if (!s.format)
                   r.fail(v, fmt::format("format must be one of {}, got '{}'", kPayloadFormatNames, *f));
               },
           .show = [](const S& s) -> json::value {
             if (!s.format) return nullptr;
             return json::string(payloadFormatName(*s.format));
           }},
          {.name = "metric",
           .kind = FieldKind::kString,
           .member = &S::metric,
           .default_text = "the connector's",
           .doc = "The metric of `json` and `number` readings from these topics."},
          {.name = "device",
           .kind = FieldKind::kString,
           .member = &S::device,
           .default_text = "none",
           .doc = "The device of readings from a topic without `+` (with none, the payload must name it: "
                  "a SenML base name or a line-protocol `device` tag)."},
      },
      {}};
  return schema;
}

const Schema<CoapObserve>& coapObserveSchema() {
  using O = CoapObserve;
  static const Schema<CoapObserve> schema{
      "observe",
      {
          {.name = "uri",
           .kind = FieldKind::kString,
           .member = &O::uri,
           .default_text = "—",
           .doc = "The resource: `coap://host[:5683]/path[?query]`, or `coaps://host[:5684]/...` (DTLS with "
                  "`identity` and `key`). Registered with Observe; registered again "
                  "when it goes silent past its Max-Age, answers an error or does not answer (backing off "
                  "as `reconnect` says).",
           .required = true,
           .missing = "an observation needs a 'uri': coap://10.0.0.5/sensors/temp"},
          {.name = "device",
           .kind = FieldKind::kString,
           .member = &O::device,
           .default_text = "—",
           .doc = "The device of its readings.",
           .required = true,
           .missing = "an observation names its readings' device: device: boiler-1"},
          {.name = "metric",
           .kind = FieldKind::kString,
           .member = &O::metric,
           .default_text = "the connector's",
           .doc = "The metric of `json` and `number` notifications."},
          {.name = "format",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "the connector's",
           .doc = "The payload format when a notification's Content-Format does not say.",
           .type_text = "name",
           .read =
               [](Reader& r, const config::Node& v, O& o) {
                 auto s = r.str(v, "format");
                 if (!s) return;
                 if (auto f = payloadFormatFromName(*s))
                   o.format = *f;
                 else
                   r.fail(v, fmt::format("format must be one of {}, got '{}'", kPayloadFormatNames, *s));
               },
           .show = [](const O& o) -> json::value {
             if (!o.format) return nullptr;
             return json::string(payloadFormatName(*o.format));
           }},
          {.name = "identity",
           .kind = FieldKind::kString,
           .member = &O::identity,
           .default_text = "none",
           .doc = "`coaps://`, required: the PSK identity the gateway presents (1 to 64 bytes)."},
          {.name = "key",
           .kind = FieldKind::kString,
           .member = &O::key,
           .default_text = "none",
           .doc =
               "`coaps://`, required: its pre-shared key, 1 to 64 bytes (write `${ENV_VAR}`); never shown or "
               "logged.",
           .secret = true},
      },
      {}};
  return schema;
}

const Schema<CoapPsk>& coapPskSchema() {
  using P = CoapPsk;
  static const Schema<CoapPsk> schema{
      "psk",
      {
          {.name = "identity",
           .kind = FieldKind::kString,
           .member = &P::identity,
           .default_text = "—",
           .doc = "The identity a device presents in the DTLS handshake (1 to 64 bytes).",
           .required = true,
           .missing = "a pre-shared key needs the 'identity' devices present"},
          {.name = "key",
           .kind = FieldKind::kString,
           .member = &P::key,
           .default_text = "—",
           .doc = "The key, 1 to 64 bytes as written (write `${ENV_VAR}`); never shown or logged.",
           .required = true,
           .secret = true,
           .missing = "a pre-shared key needs its 'key' (write ${ENV_VAR})"},
          {.name = "devices",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "the identity",
           .doc = "The devices whose readings the identity may send: a request naming another is answered "
                  "4.03, a reading of another (a SenML base name, a line-protocol `device` tag) is rejected. "
                  "`[\"*\"]`: "
                  "any "
                  "(a gateway in front of several devices).",
           .type_text = "list",
           .read = [](Reader& r, const config::Node& v, P& p) { p.devices = readNames(r, v, "psk.devices"); },
           .show = [](const P& p) -> json::value {
             if (p.devices.empty()) return nullptr;
             return namesToJson(p.devices);
           }},
      },
      {}};
  return schema;
}

bool CoapPsk::allows(std::string_view device) const {
  if (devices.empty()) return device == identity;
  for (const auto& d : devices)
    if (d == "*" || d == device) return true;
  return false;
}

const Schema<ModbusRegister>& modbusRegisterSchema() {
  using R = ModbusRegister;
  static const Schema<ModbusRegister> schema{
      "register",
      {
          {.name = "name",
           .kind = FieldKind::kString,
           .member = &R::name,
           .default_text = "—",
           .doc = "The metric of its readings.",
           .required = true,
           .missing = "a register needs a 'name' (its readings' metric)"},
          {.name = "table",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`holding`",
           .doc = "`holding` (function 3), `input` (4), `coil` (1) or `discrete` (2).",
           .type_text = "name",
           .read =
               [](Reader& r, const config::Node& v, R& reg) {
                 auto s = r.str(v, "table");
                 if (!s) return;
                 if (auto t = modbusTableFromName(*s))
                   reg.table = *t;
                 else
                   r.fail(v, fmt::format("table must be one of {}, got '{}'", kModbusTableNames, *s));
               },
           .show = [](const R& reg) -> json::value { return json::string(modbusTableName(reg.table)); }},
          {.name = "address",
           .kind = FieldKind::kInteger,
           .member = &R::address,
           .default_text = "—",
           .doc = "The 0-based address on the wire (register 40001 of the old numbering is holding 0).",
           .max = 65535,
           .required = true,
           .missing = "a register needs an 'address' (0-based)"},
          {.name = "type",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`uint16` (`bool` for coils and discrete inputs)",
           .doc = "`int16`, `uint16`, `int32`, `uint32`, `float32` (2 registers), `float64` (4) or `bool`.",
           .type_text = "name",
           .read =
               [](Reader& r, const config::Node& v, R& reg) {
                 auto s = r.str(v, "type");
                 if (!s) return;
                 if (auto t = registerTypeFromName(*s))
                   reg.layout.type = *t;
                 else
                   r.fail(v, fmt::format("type must be one of {}, got '{}'", kRegisterTypeNames, *s));
               },
           .show = [](const R& reg) -> json::value {
             return json::string(registerTypeName(reg.layout.type));
           }},
          {.name = "byte_order",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`big`",
           .doc = "The byte order within each register: `big` (the Modbus standard) or `little`.",
           .type_text = "`big` or `little`",
           .read = [](Reader& r, const config::Node& v,
                      R& reg) { readOrder(r, v, reg.layout.byte_big, "byte_order"); },
           .show = [](const R& reg) -> json::value {
             return json::string(reg.layout.byte_big ? "big" : "little");
           }},
          {.name = "word_order",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`big`",
           .doc = "For 32- and 64-bit types: `big`, the most significant register first (ABCD), or `little` "
                  "(CDAB, common on PLCs).",
           .type_text = "`big` or `little`",
           .read = [](Reader& r, const config::Node& v,
                      R& reg) { readOrder(r, v, reg.layout.word_big, "word_order"); },
           .show = [](const R& reg) -> json::value {
             return json::string(reg.layout.word_big ? "big" : "little");
           }},
          {.name = "scale",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`1`",
           .doc = "The reading is raw × scale + offset (`scale: 0.1` for tenths of a degree).",
           .type_text = "number",
           .read = [](Reader& r, const config::Node& v,
                      R& reg) { reg.scale = readDouble(r, v, "scale").value_or(1); },
           .show = [](const R& reg) -> json::value { return reg.scale; }},
          {.name = "offset",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "`0`",
           .doc = "Added after scaling.",
           .type_text = "number",
           .read = [](Reader& r, const config::Node& v,
                      R& reg) { reg.offset = readDouble(r, v, "offset").value_or(0); },
           .show = [](const R& reg) -> json::value { return reg.offset; }},
          {.name = "unit",
           .kind = FieldKind::kString,
           .member = &R::unit,
           .default_text = "none",
           .doc = "The unit, as the readings' `unit` attribute (`m3/h`)."},
          {.name = "writable",
           .kind = FieldKind::kBool,
           .member = &R::writable,
           .default_text = "`false`",
           .doc = "Whether rules may write it (holding registers and coils only)."},
      },
      {}};
  return schema;
}

const Schema<CoapDtlsFiles>& coapDtlsSchema() {
  using D = CoapDtlsFiles;
  static const Schema<CoapDtlsFiles> schema{
      "connector dtls",
      {
          {.name = "cert",
           .kind = FieldKind::kString,
           .member = &D::cert,
           .default_text = "—",
           .doc = "The endpoint's certificate chain (PEM).",
           .required = true,
           .missing = "dtls needs 'cert' (the endpoint's certificate, PEM)"},
          {.name = "key",
           .kind = FieldKind::kString,
           .member = &D::key,
           .default_text = "—",
           .doc = "Its private key (PEM).",
           .required = true,
           .missing = "dtls needs 'key' (the endpoint's private key, PEM)"},
          {.name = "ca",
           .kind = FieldKind::kString,
           .member = &D::ca,
           .default_text = "—",
           .doc = "The CA bundle (PEM) devices' certificates must chain to. A device is known by its "
                  "certificate's common name (CN) and sends only that device's readings.",
           .required = true,
           .missing = "dtls needs 'ca' (the CA that signs the devices' certificates, PEM)"},
      },
      {}};
  return schema;
}

const Schema<ReconnectConfig>& reconnectSchema() {
  using R = ReconnectConfig;
  static const Schema<ReconnectConfig> schema{
      "connector reconnect",
      {
          {.name = "initial",
           .kind = FieldKind::kDuration,
           .member = &R::initial,
           .default_text = "`1s`",
           .doc = "The pause after the first failure; it doubles at each failure in a row...",
           .min = 10},
          {.name = "max",
           .kind = FieldKind::kDuration,
           .member = &R::max,
           .default_text = "`30s`",
           .doc = "...up to this. A connection that reached CONNACK starts again from `initial`.",
           .min = 10},
      },
      {}};
  return schema;
}

const Schema<ConnectorOutboxConfig>& connectorOutboxSchema() {
  using O = ConnectorOutboxConfig;
  static const Schema<ConnectorOutboxConfig> schema{
      "connector outbox",
      {
          {.name = "durable",
           .kind = FieldKind::kBool,
           .member = &O::durable,
           .default_text = "`false`",
           .doc = "Keep the messages on disk in `edge.data_dir` (`outbox/<connector>/`) until the broker "
                  "acknowledged them: they survive a broker outage, a restart and `kill -9`, and are sent "
                  "in order. The pipelines whose rules publish through it keep an ingest log, so a reading "
                  "is acknowledged to its device only once on disk, and trimmed only once the alarms it "
                  "fired are in the outbox. With `false` they wait in memory."},
          {.name = "max_bytes",
           .kind = FieldKind::kSize,
           .member = &O::max_bytes,
           .default_text = "`8MiB`",
           .doc = "Messages waiting past this are dropped, the oldest first among records of kind "
                  "`reading`, then windows; events and summaries last. Counted in "
                  "`ganglion_edge_outbox_dropped_total`. Durable: the outbox's files on disk.",
           .min = 4096},
      },
      {}};
  return schema;
}

PayloadContext ConnectorConfig::payloadContext(std::string_view device_name,
                                               std::string_view metric_name) const {
  PayloadContext ctx;
  ctx.device = device_name;
  ctx.metric = metric_name;
  ctx.now_ms = wallMillis();
  ctx.max_future_ms = max_future.count();
  ctx.max_past_ms = max_past.count();
  ctx.line_precision = time_precision;
  ctx.payload_names_device = payload_names_device;
  return ctx;
}

std::string connectorFingerprint(const ConnectorConfig& c) {
  json::object o = config::fieldsToJson(connectorSchema(), c);
  o["password"] = c.password;  // a changed secret is a change
  o.erase("outbox");           // the outbox is the runtime's: no reason to connect again
  json::array keys;
  for (const auto& p : c.psk) keys.push_back(json::string(p.key));
  for (const auto& x : c.observe) keys.push_back(json::string(x.key));
  o["keys"] = std::move(keys);
  // Certificates replaced in place (a renewal) make a reload start the endpoint again.
  if (!c.dtls.empty()) {
    json::array files;
    for (const std::string* path : {&c.dtls.cert, &c.dtls.key, &c.dtls.ca}) {
      std::error_code ec;
      const auto when = std::filesystem::last_write_time(*path, ec);
      const auto size = std::filesystem::file_size(*path, ec);
      files.push_back(
          json::string(ec ? std::string("?") : fmt::format("{}:{}", when.time_since_epoch().count(), size)));
    }
    o["dtls_files"] = std::move(files);
  }
  if (c.tls) o["tls"] = config::fieldsToJson(net::tlsClientSchema(), c.tls->settings());
  return json::serialize(o);
}

void readConnectors(Reader& r, const config::Node& list, EdgeConfig& out) {
  r.forEach(list, "connectors", [&](const config::Node& n) {
    if (!n.IsMap()) return r.fail(n, "a connector is a map: { name, kind, ... }");
    ConnectorConfig c;
    c.at = n.place();
    const size_t errors = r.errors.size();
    readFields(connectorSchema(), n, c, r);
    checkPartName(r, n, "connector", c.name);
    if (c.kind == "mqtt") {
      if (!n["url"].IsDefined()) r.fail(n, "an mqtt connector needs 'url': mqtt://host:1883");
      // Without `subscribe` it only publishes (rules' publish, mqtt sinks); a pipeline cannot read it.
      if (n["subscribe"].IsDefined() && c.subscribe.empty() && r.errors.size() == errors)
        r.fail(n["subscribe"],
               "subscribe lists at least one topic (leave it out for a connector that only publishes)");
      if (n["client_id"].IsDefined() && c.client_id.empty())
        r.fail(n["client_id"], "client_id must not be empty (leave it out for ganglion-<name>)");
      if (c.client_id.empty()) c.client_id = "ganglion-" + c.name;
      if (c.protocol == mqtt::Version::k311)
        for (std::string_view five : {"session_expiry", "receive_maximum"})
          if (const config::Node v = n[std::string(five)]; v.IsDefined())
            r.fail(v, fmt::format("'{}' is an MQTT 5 setting, and protocol is 3.1.1", five));
      for (const auto& sub : c.subscribe) {
        const PayloadFormat format = sub.format.value_or(c.format);
        if (format != PayloadFormat::kJson && format != PayloadFormat::kNumber) continue;
        // json and number payloads name neither device nor metric: the config must.
        if (sub.metric.empty() && c.metric.empty())
          r.failAt(sub.at,
                   fmt::format("subscription '{}' reads {} payloads but no metric is set ('metric' on it or "
                               "on the connector)",
                               sub.topic, payloadFormatName(format)));
        if (sub.device.empty() && mqtt::matchFilter(sub.topic).find('+') == std::string_view::npos)
          r.failAt(sub.at,
                   fmt::format("subscription '{}' reads {} payloads, and its topic has no '+' to name the "
                               "device: set 'device'",
                               sub.topic, payloadFormatName(format)));
      }
      if (c.client_id.size() > 65535) r.fail(n["client_id"], "client_id is longer than 65535 bytes");
      if (c.keep_alive.count() > 65535 * 1000LL) r.fail(n["keep_alive"], "keep_alive must be at most 65535s");
      if (c.session_expiry.count() / 1000 > 0xFFFFFFFFLL)
        r.fail(n["session_expiry"], "session_expiry is too long");
      if (c.reconnect.max < c.reconnect.initial)
        r.fail(n["reconnect"], "reconnect.max must be at least reconnect.initial");
      if (!c.password.empty() && c.username.empty() && c.protocol == mqtt::Version::k311)
        r.fail(n["password"], "MQTT 3.1.1 sends a password only with a username: set 'username'");
      if (const config::Node tls = n["tls"]; tls.IsDefined()) {
        if (!c.secure && r.errors.size() == errors)
          r.fail(tls, "tls needs an mqtts:// url");
        else
          c.tls = net::readTlsClient(r, tls);
      }
      if (c.secure && !c.tls && r.errors.size() == errors) {
        auto ctx = net::TlsClientContext::create({});
        if (ctx)
          c.tls = *ctx;
        else
          r.fail(n["url"], ctx.error().message);
      }
    } else if (c.kind == "coap") {
      c.listens = n["listen"].IsDefined();
      if (!c.listens && c.observe.empty() && r.errors.size() == errors)
        r.fail(n, "a coap connector needs 'listen' (an endpoint devices post to) or 'observe' (or both)");
      if (!c.psk.empty() && !c.listens)
        r.fail(n["psk"],
               "psk is for the endpoint devices post to: give 'listen' too (coaps observations take "
               "their own identity and key)");
      if (!c.dtls.empty() && !c.listens)
        r.fail(n["dtls"], "dtls is for the endpoint devices post to: give 'listen' too");
      if (!c.dtls.empty() && r.errors.size() == errors) {
        // The files are read now, so that a missing or mismatched one is a config error.
        net::TlsServerSettings check;
        check.certificates.push_back({c.dtls.cert, c.dtls.key, {}});
        check.client_ca = c.dtls.ca;
        if (auto loaded = net::TlsServerContext::create(check); !loaded)
          r.fail(n["dtls"], "dtls: " + loaded.error().message);
      }
      if (c.reconnect.max < c.reconnect.initial)
        r.fail(n["reconnect"], "reconnect.max must be at least reconnect.initial");
      for (const auto& o : c.observe) {
        const PayloadFormat format = o.format.value_or(c.format);
        if ((format == PayloadFormat::kJson || format == PayloadFormat::kNumber) && o.metric.empty() &&
            c.metric.empty())
          r.failAt(o.at,
                   fmt::format("observation '{}' reads {} payloads but no metric is set ('metric' on it "
                               "or on the connector)",
                               o.uri, payloadFormatName(format)));
      }
    } else if (c.kind == "modbus_tcp" || c.kind == "modbus_rtu") {
      if (c.kind == "modbus_tcp" && !n["address"].IsDefined())
        r.fail(n, "a modbus_tcp connector needs 'address': host:port");
      if (c.kind == "modbus_rtu" && !n["serial_port"].IsDefined())
        r.fail(n, "a modbus_rtu connector needs 'serial_port': /dev/ttyUSB0");
      if (!n["registers"].IsDefined())
        r.fail(n, fmt::format("a {} connector needs 'registers': what it reads", c.kind));
      else if (c.registers.empty() && r.errors.size() == errors)
        r.fail(n["registers"], "registers lists at least one register");
      if (c.device.empty()) c.device = c.name;
    }
    if (!c.kind.empty()) {
      for (const auto& kf : kKindFields)
        if (const config::Node v = n[std::string(kf.field)]; v.IsDefined() && !kindHas(kf.kinds, c.kind))
          r.fail(v, fmt::format("'{}' is a field of {} connectors, not {} ones", kf.field,
                                kindList(splitKinds(kf.kinds)), c.kind));
    }
    if (c.name.empty()) return;
    if (out.readBefore("connector", c.name))
      r.fail(n["name"], fmt::format("duplicate connector name '{}'", c.name));
    if (r.errors.size() != errors) return out.refused_names.push_back(c.name);
    for (const auto& other : out.connectors) {
      // The same port on the same address, or on every address (0.0.0.0, ::) and one of them.
      auto wildcard = [](const std::string& host) {
        return host == "0.0.0.0" || host == "::" || host == "[::]";
      };
      if (c.listens && other.listens && other.listen.port == c.listen.port &&
          (other.listen.host == c.listen.host || wildcard(other.listen.host) || wildcard(c.listen.host)))
        return r.fail(n["listen"],
                      fmt::format("connector '{}' listens on {} already", other.name, other.listen.text()));
    }
    out.connectors.push_back(std::move(c));
  });
}

json::value connectorsToJson(const EdgeConfig& c) {
  json::array a;
  for (const auto& x : c.connectors) {
    json::object o = config::fieldsToJson(connectorSchema(), x);
    if (x.tls) o["tls"] = config::fieldsToJson(net::tlsClientSchema(), x.tls->settings());
    a.push_back(std::move(o));
  }
  return a;
}

}  // namespace ganglion::edge
