// Device payloads → readings: the formats every connector shares (MQTT messages, HTTP ingest
// bodies, CoAP posts). Pure functions over bytes, so they are fuzzed on their own.
//
//   json           {"value": 0.12, "ts": 1764460800123, "quality": "good", "site": "north"},
//                  a bare number or boolean, or an array of those (other scalar members of an
//                  object become attributes)
//   number         the payload is one number in text ("21.5")
//   senml          RFC 8428 JSON: [{"bn": "pump-1/", "bt": 1.7e9, "n": "flow", "u": "m3/h", "v": 3.2}]
//   line_protocol  InfluxDB line protocol: flow,device=pump-1,site=north value=3.2,temp=41i
//   1764460800123000000
//
// Devices are named by where a payload arrives (the MQTT topic's '+', the ingest URL) unless
// the format carries its own names (SenML's base name, line protocol's `device` tag) and the
// connector lets it. Timestamps far from the arrival time are refused per reading.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "edge/record.h"

namespace ganglion::edge {

enum class PayloadFormat : uint8_t { kJson, kNumber, kSenml, kLineProtocol };
std::optional<PayloadFormat> payloadFormatFromName(std::string_view name);
std::string_view payloadFormatName(PayloadFormat f);
inline constexpr std::string_view kPayloadFormatNames = "json, number, senml, line_protocol";

enum class TimePrecision : uint8_t { kNanoseconds, kMicroseconds, kMilliseconds, kSeconds };

/// Where a payload came from and what it means where it says nothing.
struct PayloadContext {
  std::string_view device;                        ///< from the topic or URL; empty: the payload must name it
  std::string_view metric;                        ///< from the subscription; json and number payloads use it
  int64_t now_ms = 0;                             ///< arrival time (epoch ms): readings without a time get it
  int64_t max_future_ms = 5 * 60 * 1000;          ///< later than now + this: refused
  int64_t max_past_ms = 30LL * 24 * 3600 * 1000;  ///< earlier than now - this: refused
  TimePrecision line_precision = TimePrecision::kNanoseconds;  ///< line protocol timestamps
  bool payload_names_device = true;  ///< SenML base names and `device` tags may name the device
  size_t max_readings = 10'000;      ///< per payload; more: the payload is refused
};

/// One decoded reading. Views are valid only during the callback.
struct DecodedReading {
  std::string_view device;
  std::string_view metric;
  int64_t ts = 0;
  double value = 0;
  Quality quality = Quality::kGood;
  std::string_view attrs;  ///< expr::appendAttr entries; empty: none
};

/// What a payload held besides its readings.
struct DecodeReport {
  size_t readings = 0;
  size_t rejected = 0;       ///< entries refused one by one (a string value, a time far out)
  std::string first_reason;  ///< why the first refused entry was
  void reject(std::string reason) {
    if (rejected++ == 0) first_reason = std::move(reason);
  }
};

using ReadingSink = std::function<void(const DecodedReading&)>;

/// Decodes `payload`, calling `sink` for each reading in order. An error refuses the whole
/// payload (bad syntax, no readings where one was required, too many): nothing was passed to
/// `sink` then. Per-entry problems are counted in `report` and the rest goes on. Any thread.
Result<void> decodePayload(PayloadFormat format, std::string_view payload, const PayloadContext& ctx,
                           const ReadingSink& sink, DecodeReport& report);

/// The payload format a media type names (HTTP's Content-Type, CoAP's Content-Format as its
/// media type): application/json (and +json other than SenML) → json, application/senml+json
/// → senml, text/plain → line_protocol (number when that is `fallback`); empty or
/// application/octet-stream → `fallback`; anything else → nullopt (415).
std::optional<PayloadFormat> formatOfContentType(std::string_view content_type, PayloadFormat fallback);

/// What an ingest answers for a payload refused whole, and for one without an acceptable
/// reading (the first reason, and how many were refused).
std::string payloadRefusal(PayloadFormat format, const Error& error);
std::string noReadingsRefusal(const DecodeReport& report);

/// Limits on attributes: at most this many per reading, keys and text values this long; more
/// are left out.
inline constexpr size_t kMaxAttrs = 16;
inline constexpr size_t kMaxAttrKey = 64;
inline constexpr size_t kMaxAttrValue = 256;
inline constexpr size_t kMaxNameBytes = 256;  ///< device and metric names; longer: refused

}  // namespace ganglion::edge
