#include "edge/connectors/mqtt_codec.h"

#include <fmt/format.h>

#include "base/strings.h"

namespace ganglion::edge::mqtt {

namespace {

// ---- encoding

void putU8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
void putU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
void putU32(std::string& out, uint32_t v) {
  putU16(out, static_cast<uint16_t>(v >> 16));
  putU16(out, static_cast<uint16_t>(v & 0xffff));
}
void putVarint(std::string& out, uint32_t v) {
  do {
    uint8_t b = v % 128;
    v /= 128;
    if (v) b |= 0x80;
    putU8(out, b);
  } while (v);
}
/// A length-prefixed string; callers keep strings under 65,536 bytes (checked at config load).
void putString(std::string& out, std::string_view s) {
  putU16(out, static_cast<uint16_t>(std::min<size_t>(s.size(), 0xffff)));
  out.append(s.substr(0, 0xffff));
}

void putProperties(std::string& out, const Properties& p) {
  std::string props;
  if (p.payload_format) {
    putU8(props, 0x01);
    putU8(props, *p.payload_format);
  }
  if (!p.content_type.empty()) {
    putU8(props, 0x03);
    putString(props, p.content_type);
  }
  if (p.session_expiry) {
    putU8(props, 0x11);
    putU32(props, *p.session_expiry);
  }
  if (p.receive_maximum) {
    putU8(props, 0x21);
    putU16(props, *p.receive_maximum);
  }
  if (p.topic_alias_maximum) {
    putU8(props, 0x22);
    putU16(props, *p.topic_alias_maximum);
  }
  if (p.maximum_packet_size) {
    putU8(props, 0x27);
    putU32(props, *p.maximum_packet_size);
  }
  for (const auto& [k, v] : p.user) {
    putU8(props, 0x26);
    putString(props, k);
    putString(props, v);
  }
  putVarint(out, static_cast<uint32_t>(props.size()));
  out += props;
}

void putPacket(std::string& out, uint8_t first, std::string_view body) {
  putU8(out, first);
  putVarint(out, static_cast<uint32_t>(body.size()));
  out.append(body);
}

// ---- decoding

/// Reads a packet body; the first failure sticks (`error`), later reads return zeroes.
struct Reader {
  explicit Reader(std::string_view text) : s(text) {}
  std::string_view s;
  size_t at = 0;
  std::string error;

  bool ok() const { return error.empty(); }
  size_t left() const { return s.size() - at; }
  void fail(std::string why) {
    if (error.empty()) error = std::move(why);
  }
  uint8_t u8() {
    if (left() < 1) return fail("packet ends early"), 0;
    return static_cast<uint8_t>(s[at++]);
  }
  uint16_t u16() {
    if (left() < 2) return fail("packet ends early"), 0;
    const uint16_t v =
        static_cast<uint16_t>((static_cast<uint8_t>(s[at]) << 8) | static_cast<uint8_t>(s[at + 1]));
    at += 2;
    return v;
  }
  uint32_t u32() {
    const uint32_t hi = u16();
    return (hi << 16) | u16();
  }
  uint32_t varint() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const uint8_t b = u8();
      if (!ok()) return 0;
      v |= static_cast<uint32_t>(b & 0x7f) << (7 * i);
      if (!(b & 0x80)) return v;
    }
    fail("a variable byte integer longer than 4 bytes");
    return 0;
  }
  std::string_view bytes(size_t n) {
    if (left() < n) return fail("packet ends early"), std::string_view();
    std::string_view v = s.substr(at, n);
    at += n;
    return v;
  }
  std::string_view binary() { return bytes(u16()); }
  /// A UTF-8 string (MQTT's: well-formed, no U+0000).
  std::string_view utf8() {
    std::string_view v = binary();
    if (ok() && (!isValidUtf8(v) || v.find('\0') != std::string_view::npos))
      fail("a string that is not UTF-8");
    return v;
  }
};

enum class PropType : uint8_t { kNone, kByte, kU16, kU32, kVarint, kUtf8, kBinary, kPair };

PropType propType(uint32_t id) {
  switch (id) {
    case 0x01:
    case 0x17:
    case 0x19:
    case 0x24:
    case 0x25:
    case 0x28:
    case 0x29:
    case 0x2A:
      return PropType::kByte;
    case 0x13:
    case 0x21:
    case 0x22:
    case 0x23:
      return PropType::kU16;
    case 0x02:
    case 0x11:
    case 0x18:
    case 0x27:
      return PropType::kU32;
    case 0x0B:
      return PropType::kVarint;
    case 0x03:
    case 0x08:
    case 0x12:
    case 0x15:
    case 0x1A:
    case 0x1C:
    case 0x1F:
      return PropType::kUtf8;
    case 0x09:
    case 0x16:
      return PropType::kBinary;
    case 0x26:
      return PropType::kPair;
    default:
      return PropType::kNone;
  }
}

void readProperties(Reader& r, Properties& p) {
  const uint32_t length = r.varint();
  if (!r.ok()) return;
  if (length > r.left()) return r.fail("properties longer than the packet");
  Reader props{r.s.substr(r.at, length)};
  r.at += length;
  uint64_t seen = 0;
  while (props.ok() && props.left()) {
    const uint32_t id = props.varint();
    const PropType type = propType(id);
    if (type == PropType::kNone) return r.fail(fmt::format("unknown property 0x{:02x}", id));
    if (id != 0x26 && id != 0x0B) {
      if (seen & (1ull << id)) return r.fail(fmt::format("property 0x{:02x} twice", id));
      seen |= 1ull << id;
    }
    switch (type) {
      case PropType::kByte: {
        const uint8_t v = props.u8();
        if (id == 0x24) p.maximum_qos = v;
        if (id == 0x29) p.subscription_ids_available = v;
        if (id == 0x01) p.payload_format = v;
        break;
      }
      case PropType::kU16: {
        const uint16_t v = props.u16();
        if (id == 0x13) p.server_keep_alive = v;
        if (id == 0x21) p.receive_maximum = v;
        if (id == 0x22) p.topic_alias_maximum = v;
        if (id == 0x23) p.topic_alias = v;
        break;
      }
      case PropType::kU32: {
        const uint32_t v = props.u32();
        if (id == 0x11) p.session_expiry = v;
        if (id == 0x27) p.maximum_packet_size = v;
        break;
      }
      case PropType::kVarint: {
        const uint32_t v = props.varint();
        if (id == 0x0B && p.subscription_ids.size() < 32) p.subscription_ids.push_back(v);
        break;
      }
      case PropType::kUtf8: {
        const std::string_view v = props.utf8();
        if (id == 0x12) p.assigned_client_id = std::string(v);
        if (id == 0x1F) p.reason_string = std::string(v);
        if (id == 0x03) p.content_type = std::string(v);
        break;
      }
      case PropType::kBinary:
        props.binary();
        break;
      case PropType::kPair: {
        const std::string_view k = props.utf8();
        const std::string_view v = props.utf8();
        if (p.user.size() < 64) p.user.emplace_back(k, v);
        break;
      }
      case PropType::kNone:
        break;
    }
  }
  if (!props.ok()) r.fail(props.error);
}

Error malformed(std::string why) { return Error("malformed MQTT packet: " + why, "mqtt_protocol"); }

}  // namespace

// ---- encoders

void encodeConnect(const Connect& c, std::string& out) {
  std::string body;
  putString(body, "MQTT");
  putU8(body, static_cast<uint8_t>(c.version));
  uint8_t flags = 0;
  if (c.clean_start) flags |= 0x02;
  if (c.password) flags |= 0x40;
  if (c.username) flags |= 0x80;
  putU8(body, flags);
  putU16(body, c.keep_alive_s);
  if (c.version == Version::k5) putProperties(body, c.properties);
  putString(body, c.client_id);
  if (c.username) putString(body, *c.username);
  if (c.password) putString(body, *c.password);
  putPacket(out, 0x10, body);
}

void encodeSubscribe(Version v, uint16_t packet_id, const std::vector<Subscription>& subs, std::string& out,
                     uint32_t subscription_id) {
  std::string body;
  putU16(body, packet_id);
  if (v == Version::k5 && subscription_id) {
    std::string props;
    putVarint(props, 0x0B);
    putVarint(props, subscription_id);
    putVarint(body, static_cast<uint32_t>(props.size()));
    body += props;
  } else if (v == Version::k5) {
    putVarint(body, 0);  // no properties
  }
  for (const auto& s : subs) {
    putString(body, s.filter);
    uint8_t options = s.qos & 3;
    if (v == Version::k5) options |= static_cast<uint8_t>((s.retain_handling & 3) << 4);
    putU8(body, options);
  }
  putPacket(out, 0x82, body);
}

void encodeUnsubscribe(Version v, uint16_t packet_id, const std::vector<std::string>& filters,
                       std::string& out) {
  std::string body;
  putU16(body, packet_id);
  if (v == Version::k5) putVarint(body, 0);  // no properties
  for (const auto& f : filters) putString(body, f);
  putPacket(out, 0xA2, body);
}

void encodePublish(Version v, const Publish& p, std::string& out) {
  std::string body;
  putString(body, p.topic);
  if (p.qos) putU16(body, p.packet_id);
  if (v == Version::k5) putProperties(body, p.properties);
  body += p.payload;
  const uint8_t first =
      static_cast<uint8_t>(0x30 | (p.dup ? 0x08 : 0) | ((p.qos & 3) << 1) | (p.retain ? 0x01 : 0));
  putPacket(out, first, body);
}

void encodeAck(Version v, PacketType type, uint16_t packet_id, uint8_t code, std::string& out) {
  std::string body;
  putU16(body, packet_id);
  if (v == Version::k5 && code != 0) putU8(body, code);  // success may be left out
  const uint8_t flags = type == PacketType::kPubrel ? 0x02 : 0x00;
  putPacket(out, static_cast<uint8_t>((static_cast<uint8_t>(type) << 4) | flags), body);
}

void encodePingreq(std::string& out) {
  putU8(out, 0xC0);
  putU8(out, 0x00);
}

void encodeDisconnect(Version v, std::string& out) {
  (void)v;  // 5: a normal disconnection may leave out its reason code and properties
  putU8(out, 0xE0);
  putU8(out, 0x00);
}

// ---- decoder

Result<Incoming> decodePacket(Version v, uint8_t type, uint8_t flags, std::string_view body) {
  Reader r{body};
  const bool v5 = v == Version::k5;
  switch (static_cast<PacketType>(type)) {
    case PacketType::kConnack: {
      if (flags) return malformed("CONNACK with flags");
      Connack c;
      const uint8_t ack = r.u8();
      if (ack & 0xfe) return malformed("CONNACK with reserved bits set");
      c.session_present = ack & 1;
      c.code = r.u8();
      if (v5 && r.ok() && r.left()) readProperties(r, c.properties);
      if (!r.ok()) return malformed(r.error);
      if (r.left()) return malformed("CONNACK longer than its fields");
      return Incoming(std::move(c));
    }
    case PacketType::kPublish: {
      Publish p;
      p.dup = flags & 0x08;
      p.qos = (flags >> 1) & 3;
      p.retain = flags & 1;
      if (p.qos == 3) return malformed("PUBLISH with QoS 3");
      if (p.qos == 0 && p.dup) return malformed("PUBLISH with QoS 0 and DUP");
      p.topic = std::string(r.utf8());
      if (p.qos) {
        p.packet_id = r.u16();
        if (r.ok() && p.packet_id == 0) return malformed("PUBLISH with packet id 0");
      }
      if (v5) readProperties(r, p.properties);
      if (!r.ok()) return malformed(r.error);
      if (p.properties.topic_alias) return malformed("a topic alias (the client allows none)");
      if (p.topic.empty()) return malformed("PUBLISH without a topic");
      if (p.topic.find_first_of("+#") != std::string::npos) return malformed("PUBLISH to a wildcard topic");
      p.payload = std::string(r.bytes(r.left()));
      return Incoming(std::move(p));
    }
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: {
      const auto t = static_cast<PacketType>(type);
      if (flags != (t == PacketType::kPubrel ? 2 : 0))
        return malformed("an acknowledgement with wrong flags");
      Ack a{t, r.u16(), 0};
      if (r.ok() && a.packet_id == 0) return malformed("an acknowledgement of packet id 0");
      if (v5 && r.ok() && r.left()) {
        a.code = r.u8();
        if (r.ok() && r.left()) {
          Properties ignored;
          readProperties(r, ignored);
        }
      }
      if (!r.ok()) return malformed(r.error);
      if (r.left()) return malformed("an acknowledgement longer than its fields");
      return Incoming(a);
    }
    case PacketType::kSuback: {
      if (flags) return malformed("SUBACK with flags");
      Suback s;
      s.packet_id = r.u16();
      if (v5) {
        Properties ignored;
        readProperties(r, ignored);
      }
      if (!r.ok()) return malformed(r.error);
      if (!r.left()) return malformed("SUBACK without return codes");
      for (char c : r.bytes(r.left())) s.codes.push_back(static_cast<uint8_t>(c));
      return Incoming(std::move(s));
    }
    case PacketType::kUnsuback: {
      if (flags) return malformed("UNSUBACK with flags");
      Ack a{PacketType::kUnsuback, r.u16(), 0};
      if (v5) {
        Properties ignored;
        readProperties(r, ignored);
        if (r.ok() && r.left()) a.code = static_cast<uint8_t>(r.bytes(r.left())[0]);
      }
      if (!r.ok()) return malformed(r.error);
      if (r.left()) return malformed("UNSUBACK longer than its fields");
      return Incoming(a);
    }
    case PacketType::kPingresp:
      if (flags || !body.empty()) return malformed("PINGRESP with flags or a body");
      return Incoming(Pingresp{});
    case PacketType::kDisconnect: {
      if (!v5) return malformed("DISCONNECT from a 3.1.1 broker");
      if (flags) return malformed("DISCONNECT with flags");
      Disconnect d;
      if (r.left()) d.code = r.u8();
      if (r.ok() && r.left()) readProperties(r, d.properties);
      if (!r.ok()) return malformed(r.error);
      if (r.left()) return malformed("DISCONNECT longer than its fields");
      return Incoming(std::move(d));
    }
    case PacketType::kAuth: {
      if (!v5) return malformed("AUTH from a 3.1.1 broker");
      if (flags) return malformed("AUTH with flags");
      Auth a;
      if (r.left()) a.code = r.u8();
      if (r.ok() && r.left()) {
        Properties ignored;
        readProperties(r, ignored);
      }
      if (!r.ok()) return malformed(r.error);
      return Incoming(a);
    }
    default:
      return malformed(fmt::format("packet type {} is not sent to clients", type));
  }
}

void Decoder::consume(size_t n) {
  consumed_ += n;
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ > 64 * 1024 && consumed_ * 2 > buffer_.size()) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
}

Result<std::optional<Incoming>> Decoder::next() {
  if (skip_) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(skip_, buffer_.size() - consumed_));
    skip_ -= n;
    consume(n);
    if (skip_) return std::optional<Incoming>();
  }
  const std::string_view pending = std::string_view(buffer_).substr(consumed_);
  if (pending.size() < 2) return std::optional<Incoming>();
  uint32_t remaining = 0;
  size_t header = 1;
  for (int i = 0;; ++i) {
    if (i == 4) return malformed("a remaining length longer than 4 bytes");
    if (header >= pending.size()) return std::optional<Incoming>();
    const uint8_t b = static_cast<uint8_t>(pending[header++]);
    remaining |= static_cast<uint32_t>(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) break;
  }
  const uint8_t first = static_cast<uint8_t>(pending[0]);
  if (header + remaining > max_packet_) {
    if ((first >> 4) != static_cast<uint8_t>(PacketType::kPublish))
      return Error(
          fmt::format("an MQTT packet of {} bytes, over the limit of {}", header + remaining, max_packet_),
          "mqtt_packet_too_large");
    // Its head (topic and packet id), then the rest is skipped as it comes.
    Oversized o;
    o.qos = (first >> 1) & 3;
    if (o.qos == 3) return malformed("PUBLISH with QoS 3");
    if (remaining < 2) return malformed("a PUBLISH without a topic");
    if (pending.size() < header + 2) return std::optional<Incoming>();
    const size_t topic_len =
        (static_cast<uint8_t>(pending[header]) << 8) | static_cast<uint8_t>(pending[header + 1]);
    const size_t head = 2 + topic_len + (o.qos ? 2 : 0);
    if (head > remaining) return malformed("a PUBLISH whose topic runs past its end");
    if (pending.size() < header + head) return std::optional<Incoming>();
    o.topic.assign(pending.substr(header + 2, topic_len));
    if (o.qos)
      o.packet_id = static_cast<uint16_t>((static_cast<uint8_t>(pending[header + 2 + topic_len]) << 8) |
                                          static_cast<uint8_t>(pending[header + 3 + topic_len]));
    if (o.qos && o.packet_id == 0) return malformed("PUBLISH with packet id 0");
    o.size = header + remaining;
    skip_ = o.size;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(skip_, pending.size()));
    skip_ -= n;
    consume(n);
    return std::optional<Incoming>(std::move(o));
  }
  if (pending.size() < header + remaining) return std::optional<Incoming>();
  auto packet = decodePacket(version_, first >> 4, first & 0x0f, pending.substr(header, remaining));
  consume(header + remaining);
  if (!packet) return packet.error();
  return std::optional<Incoming>(std::move(*packet));
}

// ---- topics

namespace {

/// Splits at '/' one level at a time.
struct Levels {
  std::string_view rest;
  bool done = false;
  std::string_view next() {
    const size_t slash = rest.find('/');
    std::string_view level = rest.substr(0, slash);
    if (slash == std::string_view::npos) {
      done = true;
      rest = {};
    } else {
      rest.remove_prefix(slash + 1);
    }
    return level;
  }
};

}  // namespace

bool topicMatches(std::string_view filter, std::string_view topic) {
  if (topic.empty() || filter.empty()) return false;
  if (topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) return false;
  Levels f{filter}, t{topic};
  while (!f.done) {
    const std::string_view fl = f.next();
    if (fl == "#") return true;  // also matches the parent level ("a/#" matches "a")
    if (t.done) return false;
    const std::string_view tl = t.next();
    if (fl != "+" && fl != tl) return false;
  }
  return t.done;
}

bool filtersOverlap(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return false;
  // A '$' topic is matched only by filters naming its first level: a wildcard there and a
  // '$' level elsewhere share no topic.
  const bool a_wild = a.front() == '+' || a.front() == '#', b_wild = b.front() == '+' || b.front() == '#';
  if ((a_wild && b.front() == '$') || (b_wild && a.front() == '$')) return false;
  Levels x{a}, y{b};
  while (!x.done && !y.done) {
    const std::string_view xl = x.next(), yl = y.next();
    if (xl == "#" || yl == "#") return true;
    if (xl != "+" && yl != "+" && xl != yl) return false;
  }
  if (x.done && y.done) return true;
  // One is longer: only its '#' next ("a/#" matches "a") meets the shorter one's topics.
  Levels& longer = x.done ? y : x;
  return longer.next() == "#";
}

std::string_view plusLevel(std::string_view filter, std::string_view topic) {
  Levels f{filter}, t{topic};
  while (!f.done && !t.done) {
    const std::string_view fl = f.next();
    const std::string_view tl = t.next();
    if (fl == "+") return tl;
    if (fl == "#") return {};
  }
  return {};
}

std::string checkFilter(std::string_view filter) {
  if (filter.empty()) return "an empty topic filter";
  if (filter.size() > 0xffff) return "a topic filter longer than 65535 bytes";
  if (!isValidUtf8(filter) || filter.find('\0') != std::string_view::npos)
    return "a topic filter that is not UTF-8";
  Levels f{filter};
  while (!f.done) {
    const std::string_view level = f.next();
    if (level.find('#') != std::string_view::npos && (level != "#" || !f.done))
      return "'#' must be the whole last level of a topic filter";
    if (level.find('+') != std::string_view::npos && level != "+")
      return "'+' must be a whole level of a topic filter";
  }
  return {};
}

bool isSharedFilter(std::string_view filter) { return filter.starts_with("$share/"); }

std::string_view matchFilter(std::string_view filter) {
  if (!isSharedFilter(filter)) return filter;
  std::string_view rest = filter.substr(7);
  const size_t slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos || slash + 1 == rest.size()) return {};
  const std::string_view group = rest.substr(0, slash);
  if (group.find_first_of("+#") != std::string_view::npos) return {};
  return rest.substr(slash + 1);
}

std::string checkTopicName(std::string_view topic) {
  if (topic.empty()) return "an empty topic";
  if (topic.size() > 0xffff) return "a topic longer than 65535 bytes";
  if (topic.find_first_of("+#") != std::string_view::npos) return "a topic name with a wildcard ('+' or '#')";
  if (!isValidUtf8(topic) || topic.find('\0') != std::string_view::npos) return "a topic that is not UTF-8";
  if (hasControlOrNoncharacter(topic)) return "a topic with a control character or a Unicode non-character";
  return {};
}

}  // namespace ganglion::edge::mqtt
