// The MQTT decoder (edge/connectors/mqtt_codec.h) on bytes a broker, or something posing as
// one, sends. Byte 0 picks the protocol version and how the rest is split into reads. Checks:
// no crash or over-read (ASan); once an error is returned the caller stops; every PUBLISH
// decoded re-encodes into a packet that decodes to the same fields; the decoder never holds
// more than one packet's bytes beyond what it was fed; an oversized PUBLISH comes out as its
// head with a QoS and packet id a client may acknowledge.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/strings.h"
#include "edge/connectors/mqtt_codec.h"

using namespace ganglion::edge::mqtt;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Version v = (data[0] & 1) ? Version::k5 : Version::k311;
  const size_t chunk = 1 + (data[0] >> 1);
  const std::string_view wire(reinterpret_cast<const char*>(data + 1), size - 1);
  Decoder decoder(v, 4096);
  for (size_t at = 0; at < wire.size(); at += chunk) {
    decoder.feed(wire.substr(at, chunk));
    for (;;) {
      auto next = decoder.next();
      if (!next) return 0;  // the connection would close here
      if (!*next) break;
      if (const auto* p = std::get_if<Publish>(&**next)) {
        check(p->qos <= 2);
        check(p->qos == 0 || p->packet_id != 0);
        // What the decoder takes from a broker: a topic name, UTF-8, no wildcards. (Control
        // characters are allowed in: checkTopicName refuses them only for what we publish.)
        check(!p->topic.empty() && p->topic.find_first_of("+#") == std::string::npos &&
              ganglion::isValidUtf8(p->topic));
        std::string again;
        encodePublish(v, *p, again);
        Decoder d2(v, 1 << 20);
        d2.feed(again);
        auto back = d2.next();
        check(back.ok() && back->has_value());
        const auto& q = std::get<Publish>(**back);
        check(q.topic == p->topic && q.payload == p->payload && q.qos == p->qos &&
              q.packet_id == p->packet_id && q.retain == p->retain && q.dup == p->dup);
      } else if (const auto* o = std::get_if<Oversized>(&**next)) {
        check(o->qos <= 2 && (o->qos == 0 || o->packet_id != 0) && o->size > 4096);
      }
    }
    check(decoder.buffered() <= wire.size());
  }
  return 0;
}
