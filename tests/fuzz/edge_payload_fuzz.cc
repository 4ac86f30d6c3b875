// Device payloads as a connector receives them (edge/connectors/payload.h): JSON, bare
// numbers, SenML and InfluxDB line protocol, with the context a topic or URL gives.
//
// Input: byte 0 picks the format and context flags, byte 1 the line-protocol precision and
// max_readings; the rest is the payload. Checks: a refused payload hands on nothing; every
// reading handed on has a finite value, a device and metric that are non-empty, at most 256
// bytes, UTF-8 without control bytes, and a time inside the allowed window; the count agrees
// with the report; attributes parse back entry by entry.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/strings.h"
#include "edge/connectors/payload.h"
#include "edge/expr/expr.h"

using namespace ganglion;
using namespace ganglion::edge;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool goodName(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameBytes || !isValidUtf8(s)) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0], extra = data[1];
  const std::string_view payload(reinterpret_cast<const char*>(data + 2), size - 2);
  PayloadContext ctx;
  static constexpr PayloadFormat kFormats[] = {PayloadFormat::kJson, PayloadFormat::kNumber,
                                               PayloadFormat::kSenml, PayloadFormat::kLineProtocol};
  const PayloadFormat format = kFormats[flags & 3];
  ctx.device = (flags & 4) ? "pump-1" : "";
  ctx.metric = (flags & 8) ? "vibration" : "";
  ctx.payload_names_device = flags & 16;
  ctx.now_ms = 1'764'460'800'000;
  static constexpr TimePrecision kPrecisions[] = {TimePrecision::kNanoseconds, TimePrecision::kMicroseconds,
                                                  TimePrecision::kMilliseconds, TimePrecision::kSeconds};
  ctx.line_precision = kPrecisions[extra & 3];
  ctx.max_readings = (extra & 4) ? 3 : 10'000;
  size_t handed = 0;
  DecodeReport report;
  auto result = decodePayload(
      format, payload, ctx,
      [&](const DecodedReading& r) {
        ++handed;
        check(std::isfinite(r.value));
        check(goodName(r.device));
        check(goodName(r.metric));
        check(r.ts <= ctx.now_ms + ctx.max_future_ms && r.ts >= ctx.now_ms - ctx.max_past_ms);
        // Attributes: key \0 kind value \0 entries, each found again by its key.
        size_t at = 0, entries = 0;
        while (at < r.attrs.size()) {
          const size_t key_end = r.attrs.find('\0', at);
          check(key_end != std::string_view::npos && key_end + 1 < r.attrs.size());
          const char kind = r.attrs[key_end + 1];
          check(kind == 's' || kind == 'n');
          const size_t value_end = r.attrs.find('\0', key_end + 2);
          check(value_end != std::string_view::npos);
          const auto v = expr::findAttr(r.attrs, r.attrs.substr(at, key_end - at));
          check(v.type != expr::Type::kNull || kind == 'n');
          at = value_end + 1;
          ++entries;
        }
        check(entries <= kMaxAttrs);
      },
      report);
  if (!result.ok()) {
    check(handed == 0);
    check(!result.error().message.empty());
  } else {
    check(handed == report.readings);
    check(handed <= ctx.max_readings);
  }
  return 0;
}
