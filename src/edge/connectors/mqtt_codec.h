// MQTT 3.1.1 and 5.0 packets as a client sends and receives them: encoding of what a client
// sends (CONNECT, SUBSCRIBE, PUBLISH, the acknowledgements, PINGREQ, DISCONNECT) and an
// incremental decoder of what a broker sends (CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL,
// PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT, AUTH). Pure functions over bytes: no I/O,
// so the decoder is fuzzed alone. The connector (docs/design/edge.md, "MQTT client over
// Asio") drives them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/result.h"

namespace ganglion::edge::mqtt {

enum class Version : uint8_t { k311 = 4, k5 = 5 };

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,
};

/// The MQTT 5 properties a client acts on; the others are checked for form and skipped.
struct Properties {
  std::optional<uint32_t> session_expiry;
  std::optional<uint16_t> receive_maximum;
  std::optional<uint32_t> maximum_packet_size;
  std::optional<uint16_t> topic_alias_maximum;
  std::optional<uint16_t> topic_alias;
  std::optional<uint16_t> server_keep_alive;
  std::optional<uint8_t> maximum_qos;
  std::optional<uint8_t> payload_format;  ///< 1: UTF-8 text
  /// CONNACK: 0 when the broker takes no Subscription Identifiers (absent: it does).
  std::optional<uint8_t> subscription_ids_available;
  /// PUBLISH: the identifiers of the subscriptions this copy was sent for (at most 32 kept).
  std::vector<uint32_t> subscription_ids;
  std::string assigned_client_id;
  std::string reason_string;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> user;
};

struct Connect {
  Version version = Version::k311;
  std::string client_id;
  bool clean_start = true;  ///< 3.1.1: clean session
  uint16_t keep_alive_s = 30;
  std::optional<std::string> username;
  std::optional<std::string> password;
  Properties properties;  ///< 5: session expiry, receive maximum, maximum packet size
};

struct Connack {
  bool session_present = false;
  uint8_t code = 0;  ///< 0: accepted (3.1.1 return code or 5 reason code)
  Properties properties;
};

struct Publish {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;  ///< qos > 0
  Properties properties;
};

/// PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK's id and code.
struct Ack {
  PacketType type = PacketType::kPuback;
  uint16_t packet_id = 0;
  uint8_t code = 0;  ///< 5: reason code (0: success); 3.1.1: always 0
};

struct Suback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> codes;  ///< granted QoS, or >= 0x80 for a refused filter
};

struct Subscription {
  std::string filter;
  uint8_t qos = 0;
  /// MQTT 5: 0 sends retained messages at every subscribe, 1 only when the subscription is new,
  /// 2 never. 3.1.1 always sends them.
  uint8_t retain_handling = 0;
};

struct Pingresp {};

struct Disconnect {
  uint8_t code = 0;
  Properties properties;
};

struct Auth {
  uint8_t code = 0;
};

/// A PUBLISH larger than the decoder's limit: its head only (the rest is skipped as it
/// arrives), so that the client can acknowledge it and move on instead of dropping the
/// connection and having the same message sent again forever.
struct Oversized {
  std::string topic;
  uint8_t qos = 0;
  uint16_t packet_id = 0;
  uint64_t size = 0;  ///< the whole packet's bytes
};

using Incoming = std::variant<Connack, Publish, Ack, Suback, Pingresp, Disconnect, Auth, Oversized>;

// ---- encoding (what a client sends); append to `out`

void encodeConnect(const Connect& c, std::string& out);
/// `subscription_id` (MQTT 5, 1 to 268,435,455; 0: none) marks every filter of the packet:
/// the broker puts it on each message it sends for them.
void encodeSubscribe(Version v, uint16_t packet_id, const std::vector<Subscription>& subs, std::string& out,
                     uint32_t subscription_id = 0);
void encodeUnsubscribe(Version v, uint16_t packet_id, const std::vector<std::string>& filters,
                       std::string& out);
void encodePublish(Version v, const Publish& p, std::string& out);
/// PUBACK, PUBREC, PUBREL (flags 0010 as required), PUBCOMP.
void encodeAck(Version v, PacketType type, uint16_t packet_id, uint8_t code, std::string& out);
void encodePingreq(std::string& out);
void encodeDisconnect(Version v, std::string& out);

// ---- decoding (what a broker sends)

/// Takes bytes as they arrive and returns whole packets. Malformed input is an error, after
/// which the connection must be closed (MQTT has no resynchronisation).
class Decoder {
 public:
  /// `max_packet`: a packet larger than this is an error (the client advertises it as its
  /// Maximum Packet Size in MQTT 5).
  Decoder(Version version, size_t max_packet) : version_(version), max_packet_(max_packet) {}
  void setVersion(Version v) { version_ = v; }
  /// Appends received bytes.
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  /// The next whole packet; nullopt when more bytes are needed; an error for a malformed
  /// packet, one a broker must not send to a client, or an oversized one other than PUBLISH
  /// (an oversized PUBLISH comes out as Oversized once its head is in, and its body is skipped).
  Result<std::optional<Incoming>> next();
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  Version version_;
  size_t max_packet_;
  void consume(size_t n);
  std::string buffer_;
  size_t consumed_ = 0;
  uint64_t skip_ = 0;  ///< bytes of an oversized packet still to discard
};

/// Decodes one packet body of `type` with `flags` (the low nibble of the first byte). Used by
/// Decoder; exposed for tests.
Result<Incoming> decodePacket(Version v, uint8_t type, uint8_t flags, std::string_view body);

// ---- topics

/// Whether `topic` (a PUBLISH's topic name) matches `filter` ('+' one level, '#' the rest;
/// topics starting with '$' match only filters that name that first level).
bool topicMatches(std::string_view filter, std::string_view topic);
/// The level of `topic` that the first '+' of `filter` stands for; empty when there is none.
std::string_view plusLevel(std::string_view filter, std::string_view topic);
/// A filter a client may subscribe to: not empty, UTF-8 without NUL, '#' only last and alone
/// in its level, '+' alone in its level. Empty string: fine; else the reason.
std::string checkFilter(std::string_view filter);
/// Whether `filter` is a shared subscription, `$share/<group>/<filter>` (MQTT 5, and brokers
/// such as mosquitto 2 with 3.1.1 too): the broker hands each message to one client of the group.
bool isSharedFilter(std::string_view filter);
/// The filter topics are matched against: `<filter>` of a shared subscription, else `filter`
/// itself; empty for a shared one without a group or filter.
std::string_view matchFilter(std::string_view filter);
/// Whether some topic matches both filters (each as matchFilter gives it): a broker may then
/// send a message once per subscription (MQTT 5 brokers do).
bool filtersOverlap(std::string_view a, std::string_view b);
/// A topic name a client may publish to: no wildcards, not empty, UTF-8 without NUL.
std::string checkTopicName(std::string_view topic);

}  // namespace ganglion::edge::mqtt
