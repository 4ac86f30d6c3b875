#include "edge/connectors/mqtt_codec.h"

#include <gtest/gtest.h>

namespace ganglion::edge::mqtt {
namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

/// Feeds `wire` one byte at a time and returns every packet (or the first error).
Result<std::vector<Incoming>> decodeAll(Version v, std::string_view wire, size_t max = 1 << 20) {
  Decoder d(v, max);
  std::vector<Incoming> out;
  for (char c : wire) {
    d.feed(std::string_view(&c, 1));
    while (true) {
      auto next = d.next();
      if (!next) return next.error();
      if (!*next) break;
      out.push_back(std::move(**next));
    }
  }
  return out;
}

TEST(MqttCodec, ConnectMatchesTheSpec) {
  Connect c;
  c.client_id = "a";
  c.keep_alive_s = 30;
  std::string out;
  encodeConnect(c, out);
  EXPECT_EQ(out, bytes({0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30, 0, 1, 'a'}));
  Connect v5;
  v5.version = Version::k5;
  v5.client_id = "gw";
  v5.clean_start = false;
  v5.username = "u";
  v5.password = "p";
  v5.properties.session_expiry = 3600;
  v5.properties.receive_maximum = 64;
  out.clear();
  encodeConnect(v5, out);
  EXPECT_EQ(out, bytes({0x10, 29,   0,    4, 'M', 'Q', 'T', 'T', 5,   0xC0, 0, 30,  8, 0x11, 0,  0,
                        0x0E, 0x10, 0x21, 0, 64,  0,   2,   'g', 'w', 0,    1, 'u', 0, 1,    'p'}));
}

TEST(MqttCodec, SubscribePublishAndAcks) {
  std::string out;
  encodeSubscribe(Version::k311, 7, {{"plant/+/vibration", 1}}, out);
  EXPECT_EQ(out.substr(0, 4), bytes({0x82, 22, 0, 7}));
  EXPECT_EQ(out.back(), 1);
  out.clear();
  // MQTT 5: a properties length, and the retain handling in bits 4-5 of the options.
  encodeSubscribe(Version::k5, 8, {{"a/#", 2, 1}}, out);
  EXPECT_EQ(out, bytes({0x82, 9, 0, 8, 0, 0, 3, 'a', '/', '#', 0x12}));
  out.clear();
  encodeUnsubscribe(Version::k311, 9, {"a/+", "b"}, out);
  EXPECT_EQ(out, bytes({0xA2, 10, 0, 9, 0, 3, 'a', '/', '+', 0, 1, 'b'}));
  out.clear();
  encodeAck(Version::k311, PacketType::kPuback, 0x1234, 0, out);
  EXPECT_EQ(out, bytes({0x40, 2, 0x12, 0x34}));
  out.clear();
  encodeAck(Version::k311, PacketType::kPubrel, 9, 0, out);
  EXPECT_EQ(out, bytes({0x62, 2, 0, 9}));
  out.clear();
  encodeAck(Version::k5, PacketType::kPubrec, 9, 0x80, out);
  EXPECT_EQ(out, bytes({0x50, 3, 0, 9, 0x80}));
  out.clear();
  Publish p;
  p.topic = "alarms/pump-1";
  p.payload = "{}";
  p.qos = 1;
  p.packet_id = 3;
  encodePublish(Version::k311, p, out);
  EXPECT_EQ(out.substr(0, 2), bytes({0x32, 19}));
  // What a client encodes, a broker would send back the same way: decode it.
  auto back = decodeAll(Version::k311, out);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->size(), 1u);
  const auto& got = std::get<Publish>((*back)[0]);
  EXPECT_EQ(got.topic, "alarms/pump-1");
  EXPECT_EQ(got.payload, "{}");
  EXPECT_EQ(got.qos, 1);
  EXPECT_EQ(got.packet_id, 3);
  out.clear();
  encodePingreq(out);
  encodeDisconnect(Version::k5, out);
  EXPECT_EQ(out, bytes({0xC0, 0, 0xE0, 0}));
}

TEST(MqttCodec, DecodesWhatABrokerSends) {
  std::string wire = bytes({0x20, 2, 1, 0});                      // CONNACK, session present
  wire += bytes({0x34, 9, 0, 3, 'a', '/', 'b', 0, 5, 'h', 'i'});  // PUBLISH qos 2 id 5
  wire += bytes({0x62, 2, 0, 5});                                 // PUBREL 5
  wire += bytes({0x90, 4, 0, 1, 1, 0x80});                        // SUBACK: 1 granted, 1 refused
  wire += bytes({0xD0, 0});                                       // PINGRESP
  wire += bytes({0x31, 7, 0, 3, 'x', '/', 'y', '4', '2'});        // PUBLISH qos 0, retained
  auto got = decodeAll(Version::k311, wire);
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_EQ(got->size(), 6u);
  EXPECT_TRUE(std::get<Connack>((*got)[0]).session_present);
  const auto& p = std::get<Publish>((*got)[1]);
  EXPECT_EQ(p.qos, 2);
  EXPECT_EQ(p.packet_id, 5);
  EXPECT_EQ(p.payload, "hi");
  EXPECT_EQ(std::get<Ack>((*got)[2]).type, PacketType::kPubrel);
  EXPECT_EQ(std::get<Suback>((*got)[3]).codes, (std::vector<uint8_t>{1, 0x80}));
  EXPECT_TRUE(std::holds_alternative<Pingresp>((*got)[4]));
  EXPECT_TRUE(std::get<Publish>((*got)[5]).retain);
  EXPECT_EQ(std::get<Publish>((*got)[5]).payload, "42");
}

TEST(MqttCodec, DecodesMqtt5Properties) {
  // CONNACK with receive maximum 10, maximum packet size 1000, assigned client id "z",
  // a user property and a reason string.
  std::string props = bytes({0x21, 0, 10, 0x27, 0, 0, 0x03, 0xE8, 0x12, 0, 1,   'z',
                             0x26, 0, 1,  'k',  0, 1, 'v',  0x1F, 0,    2, 'o', 'k'});
  std::string body = bytes({0, 0});
  body.push_back(static_cast<char>(props.size()));
  body += props;
  std::string wire = bytes({0x20, static_cast<int>(body.size())}) + body;
  auto got = decodeAll(Version::k5, wire);
  ASSERT_TRUE(got.ok()) << got.error().message;
  const auto& c = std::get<Connack>((*got)[0]);
  EXPECT_EQ(c.properties.receive_maximum, 10);
  EXPECT_EQ(c.properties.maximum_packet_size, 1000u);
  EXPECT_EQ(c.properties.assigned_client_id, "z");
  EXPECT_EQ(c.properties.reason_string, "ok");
  ASSERT_EQ(c.properties.user.size(), 1u);
  // PUBACK with a reason code and no properties; DISCONNECT with a reason.
  got = decodeAll(Version::k5, bytes({0x40, 3, 0, 7, 0x10, 0xE0, 1, 0x8B}));
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(std::get<Ack>((*got)[0]).code, 0x10);
  EXPECT_EQ(std::get<Disconnect>((*got)[1]).code, 0x8B);
}

TEST(MqttCodec, MalformedPacketsAreErrors) {
  auto err = [](Version v, std::string wire, size_t max = 1 << 20) {
    auto got = decodeAll(v, wire, max);
    return got.ok() ? std::string("ok") : got.error().message;
  };
  EXPECT_EQ(err(Version::k311, bytes({0x36, 5, 0, 1, 'a', 0, 1})),
            "malformed MQTT packet: PUBLISH with QoS 3");
  EXPECT_EQ(err(Version::k311, bytes({0x38, 3, 0, 1, 'a'})),
            "malformed MQTT packet: PUBLISH with QoS 0 and DUP");
  EXPECT_EQ(err(Version::k311, bytes({0x32, 5, 0, 1, 'a', 0, 0})),
            "malformed MQTT packet: PUBLISH with packet id 0");
  EXPECT_EQ(err(Version::k311, bytes({0x30, 3, 0, 1, '#'})),
            "malformed MQTT packet: PUBLISH to a wildcard topic");
  EXPECT_EQ(err(Version::k311, bytes({0x30, 2, 0, 0})), "malformed MQTT packet: PUBLISH without a topic");
  EXPECT_EQ(err(Version::k311, bytes({0x30, 4, 0, 2, 0xC0, 0x80})),
            "malformed MQTT packet: a string that is not UTF-8");
  EXPECT_EQ(err(Version::k311, bytes({0x30, 3, 0, 5, 'a'})), "malformed MQTT packet: packet ends early");
  EXPECT_EQ(err(Version::k311, bytes({0x60, 2, 0, 1})),
            "malformed MQTT packet: an acknowledgement with wrong flags");
  EXPECT_EQ(err(Version::k311, bytes({0x10, 0})),
            "malformed MQTT packet: packet type 1 is not sent to clients");
  EXPECT_EQ(err(Version::k311, bytes({0x00, 0})),
            "malformed MQTT packet: packet type 0 is not sent to clients");
  EXPECT_EQ(err(Version::k311, bytes({0xE0, 0})), "malformed MQTT packet: DISCONNECT from a 3.1.1 broker");
  EXPECT_EQ(err(Version::k311, bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F})),
            "malformed MQTT packet: a remaining length longer than 4 bytes");
  EXPECT_EQ(err(Version::k311, bytes({0x90, 0x80, 0x80, 0x01}), 1000),
            "an MQTT packet of 16388 bytes, over the limit of 1000");
  EXPECT_EQ(err(Version::k311, bytes({0x36, 0x80, 0x80, 0x01}), 1000),
            "malformed MQTT packet: PUBLISH with QoS 3");
  EXPECT_EQ(err(Version::k311, bytes({0x32, 0x80, 0x80, 0x01, 0xFF, 0xFF}), 1000),
            "malformed MQTT packet: a PUBLISH whose topic runs past its end");
  EXPECT_EQ(err(Version::k5, bytes({0x40, 4, 0, 1, 0, 5})),
            "malformed MQTT packet: properties longer than the packet");
  EXPECT_EQ(err(Version::k5, bytes({0x40, 6, 0, 1, 0, 2, 0x7F, 0})),
            "malformed MQTT packet: unknown property 0x7f");
  EXPECT_EQ(err(Version::k5, bytes({0x40, 10, 0, 1, 0, 6, 0x21, 0, 1, 0x21, 0, 1})),
            "malformed MQTT packet: property 0x21 twice");
  EXPECT_EQ(err(Version::k5, bytes({0x30, 7, 0, 1, 'a', 3, 0x23, 0, 1})),
            "malformed MQTT packet: a topic alias (the client allows none)");
  EXPECT_EQ(err(Version::k311, bytes({0x20, 3, 0, 0, 0})),
            "malformed MQTT packet: CONNACK longer than its fields");
  EXPECT_EQ(err(Version::k311, bytes({0x90, 2, 0, 1})), "malformed MQTT packet: SUBACK without return codes");
}

TEST(MqttTopics, MatchingAndPlusLevels) {
  EXPECT_TRUE(topicMatches("plant/+/vibration", "plant/pump-1/vibration"));
  EXPECT_FALSE(topicMatches("plant/+/vibration", "plant/pump-1/temp"));
  EXPECT_FALSE(topicMatches("plant/+/vibration", "plant/a/b/vibration"));
  EXPECT_TRUE(topicMatches("plant/#", "plant"));
  EXPECT_TRUE(topicMatches("plant/#", "plant/a/b"));
  EXPECT_TRUE(topicMatches("#", "a/b"));
  EXPECT_FALSE(topicMatches("#", "$SYS/uptime"));
  EXPECT_FALSE(topicMatches("+/uptime", "$SYS/uptime"));
  EXPECT_TRUE(topicMatches("$SYS/#", "$SYS/uptime"));
  EXPECT_TRUE(topicMatches("a/+", "a/"));  // an empty level is a level
  EXPECT_FALSE(topicMatches("a/b", "a/b/c"));
  EXPECT_EQ(plusLevel("plant/+/vibration", "plant/pump-1/vibration"), "pump-1");
  EXPECT_EQ(plusLevel("plant/+/+", "plant/p/v"), "p");
  EXPECT_EQ(plusLevel("plant/#", "plant/p"), "");
  EXPECT_EQ(checkFilter("plant/+/vibration"), "");
  EXPECT_EQ(checkFilter("plant/#"), "");
  EXPECT_EQ(checkFilter("plant/#/x"), "'#' must be the whole last level of a topic filter");
  EXPECT_EQ(checkFilter("plant/a#"), "'#' must be the whole last level of a topic filter");
  EXPECT_EQ(checkFilter("plant/a+"), "'+' must be a whole level of a topic filter");
  EXPECT_EQ(checkFilter(""), "an empty topic filter");
  EXPECT_EQ(checkTopicName("alarms/+"), "a topic name with a wildcard ('+' or '#')");
  EXPECT_EQ(checkTopicName(std::string_view("a\0b", 3)), "a topic that is not UTF-8");
  EXPECT_EQ(checkTopicName("alarms/pump-1"), "");
  // What mosquitto drops a client for: C1 controls and non-characters.
  for (std::string_view bad : {"d\xC2\x85", "d\x7F", "d\xEF\xBF\xBF", "d\xEF\xB7\x90", "d\xF0\x9F\xBF\xBE"})
    EXPECT_EQ(checkTopicName(bad), "a topic with a control character or a Unicode non-character") << bad;
  EXPECT_EQ(checkTopicName("pump-\xC3\xA9/\xE2\x82\xAC"), "");  // é, €
}

TEST(MqttCodec, SubscriptionIdentifiers) {
  // SUBSCRIBE with identifier 200 (a two-byte variable integer: 0xC8 0x01).
  std::string out;
  encodeSubscribe(Version::k5, 8, {{"a/#", 1, 1}}, out, 200);
  EXPECT_EQ(out, bytes({0x82, 12, 0, 8, 3, 0x0B, 0xC8, 0x01, 0, 3, 'a', '/', '#', 0x11}));
  // A PUBLISH sent for two subscriptions carries both identifiers; CONNACK says whether the
  // broker takes them.
  std::string wire = bytes({0x32, 12, 0, 3, 'a', '/', 'b', 0, 5, 4, 0x0B, 1, 0x0B, 2, 'x'});
  wire[1] = static_cast<char>(wire.size() - 2);
  auto got = decodeAll(Version::k5, bytes({0x20, 5, 0, 0, 2, 0x29, 0}) + wire);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(std::get<Connack>((*got)[0]).properties.subscription_ids_available, 0);
  EXPECT_EQ(std::get<Publish>((*got)[1]).properties.subscription_ids, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(std::get<Publish>((*got)[1]).payload, "x");
}

TEST(MqttTopics, OverlappingFilters) {
  EXPECT_TRUE(filtersOverlap("plant/+/v", "plant/#"));
  EXPECT_TRUE(filtersOverlap("plant/#", "plant/+/v"));
  EXPECT_TRUE(filtersOverlap("plant/+/v", "+/pump/+"));
  EXPECT_TRUE(filtersOverlap("a", "a/#"));  // "a/#" matches "a"
  EXPECT_TRUE(filtersOverlap("#", "x/y/z"));
  EXPECT_TRUE(filtersOverlap("a/b", "a/b"));
  EXPECT_FALSE(filtersOverlap("plant/+/v", "plant/+/temp"));
  EXPECT_FALSE(filtersOverlap("a/b", "a"));
  EXPECT_FALSE(filtersOverlap("a/+", "a/b/c"));
  EXPECT_FALSE(filtersOverlap("#", "$SYS/x"));  // wildcards at the first level skip '$' topics
  EXPECT_TRUE(filtersOverlap("$SYS/#", "$SYS/broker/+"));
  EXPECT_FALSE(filtersOverlap("", "a"));
}

TEST(MqttCodec, AnOversizedPublishIsSkippedAfterItsHead) {
  // A QoS 1 PUBLISH of 3,000 bytes to a decoder that takes 1,000, then a PINGRESP: the
  // PUBLISH comes out as its head (to be acknowledged), its body is skipped, and decoding
  // goes on in step.
  Publish big;
  big.topic = "plant/p1/t";
  big.qos = 1;
  big.packet_id = 77;
  big.payload.assign(3000, 'x');
  std::string wire;
  encodePublish(Version::k311, big, wire);
  wire += bytes({0xD0, 0});
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}}) {
    Decoder d(Version::k311, 1000);
    std::vector<Incoming> got;
    for (size_t at = 0; at < wire.size(); at += chunk) {
      d.feed(std::string_view(wire).substr(at, chunk));
      while (true) {
        auto next = d.next();
        ASSERT_TRUE(next.ok()) << next.error().message;
        if (!*next) break;
        got.push_back(std::move(**next));
      }
    }
    ASSERT_EQ(got.size(), 2u) << chunk;
    const auto* o = std::get_if<Oversized>(&got[0]);
    ASSERT_NE(o, nullptr);
    EXPECT_EQ(o->topic, "plant/p1/t");
    EXPECT_EQ(o->qos, 1);
    EXPECT_EQ(o->packet_id, 77);
    EXPECT_EQ(o->size, wire.size() - 2);
    EXPECT_TRUE(std::holds_alternative<Pingresp>(got[1]));
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(MqttCodec, SharedSubscriptions) {
  EXPECT_TRUE(isSharedFilter("$share/g/plant/+"));
  EXPECT_FALSE(isSharedFilter("plant/+"));
  EXPECT_EQ(matchFilter("$share/g/plant/+"), "plant/+");
  EXPECT_EQ(matchFilter("plant/#"), "plant/#");
  EXPECT_EQ(matchFilter("$share//plant"), "");
  EXPECT_EQ(matchFilter("$share/g"), "");
  EXPECT_EQ(matchFilter("$share/g/"), "");
  EXPECT_EQ(matchFilter("$share/+/x"), "");
}

}  // namespace
}  // namespace ganglion::edge::mqtt
