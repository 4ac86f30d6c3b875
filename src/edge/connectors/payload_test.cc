#include "edge/connectors/payload.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "edge/expr/expr.h"

namespace ganglion::edge {
namespace {

struct Got {
  std::string device, metric, attrs;
  int64_t ts;
  double value;
  Quality quality;
};

constexpr int64_t kNow = 1'764'460'800'000;

struct Decoded {
  Result<void> result;
  std::vector<Got> readings;
  DecodeReport report;
};

Decoded decode(PayloadFormat f, std::string_view payload, PayloadContext ctx = {}) {
  if (ctx.now_ms == 0) ctx.now_ms = kNow;
  Decoded d{Result<void>(), {}, {}};
  d.result = decodePayload(
      f, payload, ctx,
      [&](const DecodedReading& r) {
        d.readings.push_back(
            {std::string(r.device), std::string(r.metric), std::string(r.attrs), r.ts, r.value, r.quality});
      },
      d.report);
  return d;
}

PayloadContext at(std::string_view device, std::string_view metric) {
  PayloadContext c;
  c.device = device;
  c.metric = metric;
  return c;
}

TEST(EdgePayload, JsonObjectNumberAndArray) {
  auto d = decode(PayloadFormat::kJson, R"({"value": 0.12, "ts": 1764460800123, "site": "north", "line": 3})",
                  at("pump-1", "vibration"));
  ASSERT_TRUE(d.result.ok());
  ASSERT_EQ(d.readings.size(), 1u);
  EXPECT_EQ(d.readings[0].device, "pump-1");
  EXPECT_EQ(d.readings[0].metric, "vibration");
  EXPECT_EQ(d.readings[0].ts, 1764460800123);
  EXPECT_EQ(d.readings[0].value, 0.12);
  EXPECT_EQ(expr::findAttr(d.readings[0].attrs, "site").view(), "north");
  EXPECT_EQ(expr::findAttr(d.readings[0].attrs, "line").number, 3);

  d = decode(PayloadFormat::kJson, "21.5", at("d", "t"));
  ASSERT_EQ(d.readings.size(), 1u);
  EXPECT_EQ(d.readings[0].value, 21.5);
  EXPECT_EQ(d.readings[0].ts, kNow);  // arrival time

  d = decode(PayloadFormat::kJson, R"([1, {"value": true}, {"value": 2, "quality": "bad"}])", at("d", "t"));
  ASSERT_EQ(d.readings.size(), 3u);
  EXPECT_EQ(d.readings[1].value, 1);
  EXPECT_EQ(d.readings[2].quality, Quality::kBad);
}

TEST(EdgePayload, JsonEntriesRefusedOneByOne) {
  auto d = decode(
      PayloadFormat::kJson,
      R"([{"value": "x"}, {"novalue": 1}, {"value": 1, "ts": "yesterday"}, {"value": 1, "quality": "meh"},
                      {"value": 1, "ts": 99999999999999}, {"value": 1, "ts": 1000}, "s", {"value": 5}])",
      at("d", "t"));
  ASSERT_TRUE(d.result.ok());
  ASSERT_EQ(d.readings.size(), 1u);
  EXPECT_EQ(d.readings[0].value, 5);
  EXPECT_EQ(d.report.rejected, 7u);
  EXPECT_EQ(d.report.first_reason, "a 'value' that is not a number");
}

TEST(EdgePayload, JsonWholePayloadErrors) {
  EXPECT_EQ(decode(PayloadFormat::kJson, "{\"value\": ").result.error().message.substr(0, 16),
            "not JSON at byte");
  EXPECT_EQ(decode(PayloadFormat::kJson, "[]").result.error().message, "an empty array holds no readings");
  EXPECT_EQ(decode(PayloadFormat::kJson, "\"str\"").result.error().message,
            "JSON payloads are an object with 'value', a number, or an array of those");
  EXPECT_EQ(
      decode(PayloadFormat::kJson, std::string(100, '[') + std::string(100, ']')).result.error().message,
      "the JSON nests too deep");
  PayloadContext small = at("d", "t");
  small.max_readings = 2;
  auto d = decode(PayloadFormat::kJson, "[1,2,3]", small);
  EXPECT_EQ(d.result.error().message, "more than 2 readings in one payload");
  EXPECT_TRUE(d.readings.empty());  // nothing emitted from a refused payload
}

TEST(EdgePayload, AKeyGivenTwiceRefusesThePayload) {
  // Which value was meant is not known: the whole payload is refused, nothing emitted.
  auto d = decode(PayloadFormat::kJson, R"({"value": 1, "ts": 5, "value": 2})", at("d", "t"));
  ASSERT_FALSE(d.result.ok());
  EXPECT_EQ(d.result.error().message, "the JSON is ambiguous: key 'value' is given twice ($.value)");
  EXPECT_TRUE(d.readings.empty());
  d = decode(PayloadFormat::kJson, R"([{"value": 1}, {"value": 2, "attrs": 1, "line": {"a": 1, "a": 2}}])",
             at("d", "t"));
  ASSERT_FALSE(d.result.ok());
  EXPECT_NE(d.result.error().message.find("$[1].line.a"), std::string::npos) << d.result.error().message;
  d = decode(PayloadFormat::kSenml, R"([{"n": "a", "v": 1, "v": 2}])", at("d", "t"));
  ASSERT_FALSE(d.result.ok());
  EXPECT_NE(d.result.error().message.find("key 'v' is given twice"), std::string::npos);
  // Colons and escaped quotes inside strings are not keys.
  d = decode(PayloadFormat::kJson, R"({"value": 1, "note": "a:b \":\" c", "x:y": "z"})", at("d", "t"));
  EXPECT_TRUE(d.result.ok()) << d.result.error().message;
}

TEST(EdgePayload, NamesAreChecked) {
  auto d = decode(PayloadFormat::kJson, "1", at("", "t"));
  EXPECT_EQ(d.report.first_reason, "no device (the topic or URL names none)");
  d = decode(PayloadFormat::kJson, "1", at(std::string_view("a\x01", 2), "t"));
  EXPECT_EQ(d.report.first_reason, "a device name that is not allowed");
  d = decode(PayloadFormat::kJson, "1", at("\xff\xfe", "t"));
  EXPECT_EQ(d.report.rejected, 1u);
  const std::string long_name(300, 'x');
  d = decode(PayloadFormat::kJson, "1", at(long_name, "t"));
  EXPECT_EQ(d.report.rejected, 1u);
}

TEST(EdgePayload, Number) {
  auto d = decode(PayloadFormat::kNumber, " -3.5e1\n", at("d", "t"));
  ASSERT_EQ(d.readings.size(), 1u);
  EXPECT_EQ(d.readings[0].value, -35);
  EXPECT_FALSE(decode(PayloadFormat::kNumber, "nan", at("d", "t")).result.ok());
  EXPECT_FALSE(decode(PayloadFormat::kNumber, "1 2", at("d", "t")).result.ok());
  EXPECT_FALSE(decode(PayloadFormat::kNumber, "", at("d", "t")).result.ok());
}

TEST(EdgePayload, SenmlResolvesBaseFields) {
  // RFC 8428's multiple-datapoints example, shortened (its times are from 2011).
  PayloadContext ctx;
  ctx.max_past_ms = INT64_MAX / 4;
  auto d = decode(PayloadFormat::kSenml,
                  R"([{"bn":"urn:dev:ow:10e2073a01080063:","bt":1.320067464e+09,"bu":"%RH","v":20},
                      {"u":"lon","v":24.30621},{"n":"temp","u":"Cel","t":60,"v":23.1},{"n":"open","vb":true},
                      {"n":"label","vs":"hello"}])",
                  ctx);
  ASSERT_TRUE(d.result.ok()) << d.result.error().message;
  ASSERT_EQ(d.readings.size(), 2u);
  EXPECT_EQ(d.readings[0].device, "urn:dev:ow:10e2073a01080063");
  EXPECT_EQ(d.readings[0].metric, "temp");
  EXPECT_EQ(d.readings[0].ts, 1320067524000);
  EXPECT_EQ(d.readings[0].value, 23.1);
  EXPECT_EQ(expr::findAttr(d.readings[0].attrs, "unit").view(), "Cel");
  EXPECT_EQ(d.readings[1].value, 1);
  EXPECT_EQ(expr::findAttr(d.readings[1].attrs, "unit").view(), "%RH");  // the base unit
  EXPECT_EQ(d.report.rejected, 3u);  // two without a name (no default metric), one string value
  EXPECT_EQ(d.report.first_reason, "no metric");
  // With a default metric (the subscription's), unnamed records are readings of it.
  ctx.metric = "humidity";
  d = decode(PayloadFormat::kSenml, R"([{"bn":"dev-1/","bt":1.320067464e+09,"v":20}])", ctx);
  ASSERT_EQ(d.readings.size(), 1u);
  EXPECT_EQ(d.readings[0].device, "dev-1");
  EXPECT_EQ(d.readings[0].metric, "humidity");
}

TEST(EdgePayload, SenmlRelativeTimeAndTopicDevice) {
  PayloadContext ctx = at("pump-7", "flow");
  ctx.payload_names_device = false;
  auto d = decode(PayloadFormat::kSenml, R"([{"bn":"other/","n":"flow","v":3,"t":-5},{"n":"p","v":1}])", ctx);
  ASSERT_EQ(d.readings.size(), 2u);
  EXPECT_EQ(d.readings[0].device, "pump-7");  // the topic wins when payloads may not name devices
  EXPECT_EQ(d.readings[0].ts, kNow - 5000);
  EXPECT_EQ(d.readings[1].ts, kNow);
  // Nowhere named, a base name still may not name the device (an outside review found it did).
  PayloadContext unnamed = at("", "flow");
  unnamed.payload_names_device = false;
  auto spoofed = decode(PayloadFormat::kSenml, R"([{"bn":"spoofed/","n":"flow","v":3}])", unnamed);
  EXPECT_TRUE(spoofed.readings.empty());
  EXPECT_EQ(spoofed.report.first_reason, "no device (the topic or URL names none)");
  EXPECT_FALSE(decode(PayloadFormat::kSenml, R"({"v":1})").result.ok());
  EXPECT_FALSE(decode(PayloadFormat::kSenml, R"([{"n":1,"v":1}])").result.ok());
  EXPECT_FALSE(decode(PayloadFormat::kSenml, R"([{"n":"a","v":"1"}])").result.ok());
  EXPECT_FALSE(decode(PayloadFormat::kSenml, R"([5])").result.ok());
  EXPECT_EQ(decode(PayloadFormat::kSenml, R"([{"n":"a","v":1,"foo_":1}])").result.error().message,
            "SenML field 'foo_' must be understood, and is not");
  EXPECT_EQ(decode(PayloadFormat::kSenml, R"([{"bver":11,"n":"a","v":1}])").result.error().message,
            "SenML version above 10 (bver)");
  EXPECT_TRUE(decode(PayloadFormat::kSenml, R"([{"bver":10,"n":"a","v":1}])", ctx).result.ok());
  // One value per record (RFC 8428 4.2): two are rejected, not read as the first; a sum
  // beside a value is no second value.
  auto two = decode(PayloadFormat::kSenml,
                    R"([{"n":"a","v":1,"vs":"x"},{"n":"b","vb":true,"v":2},{"n":"c","v":1,"vd":"AA"},
                        {"n":"d","v":4,"s":5}])",
                    ctx);
  ASSERT_TRUE(two.result.ok());
  ASSERT_EQ(two.readings.size(), 1u);
  EXPECT_EQ(two.readings[0].value, 4);
  EXPECT_EQ(two.report.rejected, 3u);
  EXPECT_EQ(two.report.first_reason, "a SenML record with more than one value (v, vs, vb, vd)");
}

TEST(EdgePayload, LineProtocol) {
  auto d = decode(PayloadFormat::kLineProtocol,
                  "# comment\n"
                  "flow,device=pump-1,site=north value=3.2,temp=41i 1764460800123000000\n"
                  "\n"
                  "  weather,site=a\\ b\\,c temp=-1.5,ok=t,name=\"x y\",n=7u\r\n",
                  at("default", ""));
  ASSERT_TRUE(d.result.ok()) << d.result.error().message;
  ASSERT_EQ(d.readings.size(), 5u);
  EXPECT_EQ(d.readings[0].device, "pump-1");
  EXPECT_EQ(d.readings[0].metric, "flow");
  EXPECT_EQ(d.readings[0].ts, 1764460800123);
  EXPECT_EQ(expr::findAttr(d.readings[0].attrs, "site").view(), "north");
  EXPECT_EQ(d.readings[1].metric, "flow.temp");
  EXPECT_EQ(d.readings[1].value, 41);
  EXPECT_EQ(d.readings[2].device, "default");
  EXPECT_EQ(d.readings[2].metric, "weather.temp");
  EXPECT_EQ(expr::findAttr(d.readings[2].attrs, "site").view(), "a b,c");
  EXPECT_EQ(d.readings[3].value, 1);
  EXPECT_EQ(d.readings[4].value, 7);
  EXPECT_EQ(d.readings[2].ts, kNow);
  EXPECT_EQ(d.report.rejected, 1u);  // the string field
}

TEST(EdgePayload, LineProtocolErrorsRefuseTheBatch) {
  auto err = [](std::string_view text) {
    auto d = decode(PayloadFormat::kLineProtocol, text, at("d", ""));
    EXPECT_TRUE(d.readings.empty()) << text;
    return d.result.ok() ? std::string("ok") : d.result.error().message;
  };
  EXPECT_EQ(err("m v=1\nm v=x\n"), "line 2: field 'v' is not a number");
  EXPECT_EQ(err("m"), "line 1: no fields after the measurement");
  EXPECT_EQ(err("m,t v=1"), "line 1: a tag without '='");
  EXPECT_EQ(err("m,t= v=1"), "line 1: tag 't' has no value");
  EXPECT_EQ(err("m v"), "line 1: a field without '='");
  EXPECT_EQ(err("m v=\"abc"), "line 1: field 'v': string not closed");
  EXPECT_EQ(err("m v=1 12x"), "line 1: the timestamp is not an integer");
  EXPECT_EQ(err("m v=-5u"), "line 1: field 'v' is not an unsigned 64-bit integer");
  EXPECT_EQ(err("m v=99999999999999999999i"), "line 1: field 'v' is not a 64-bit integer");
  EXPECT_EQ(err("m v=1.5i"), "line 1: field 'v' is not a 64-bit integer");
  EXPECT_EQ(err("\n\n# only comments\n"), "no lines in the payload");
  EXPECT_EQ(err(",t=1 v=1"), "line 1: no measurement");
  // A key twice: which was meant is not known (JSON's duplicates are refused the same way).
  EXPECT_EQ(err("m v=1\nm value=1,x=2,value=3\n"), "line 2: field 'value' is given twice");
  EXPECT_EQ(err("m,site=a,line=2,site=b v=1"), "line 1: tag 'site' is given twice");
  EXPECT_EQ(err("m,device=a,device=b v=1"), "line 1: tag 'device' is given twice");
  EXPECT_EQ(err("m v=1 99999999999999999999"),
            "line 1: the timestamp is out of range (a signed 64-bit integer)");
  EXPECT_EQ(err("m v=1 -99999999999999999999"),
            "line 1: the timestamp is out of range (a signed 64-bit integer)");
  {
    // Many fields, one repeated at the end: found without comparing every pair.
    std::string many = "m ";
    for (int i = 0; i < 20000; ++i) many += fmt::format("f{}=1,", i);
    many += "f7=2";
    EXPECT_EQ(err(many), "line 1: field 'f7' is given twice");
  }
  {
    auto d = decode(PayloadFormat::kLineProtocol, "m,a=1,b=2 x=1,y=2,value=3", at("d", ""));
    ASSERT_TRUE(d.result.ok());
    EXPECT_EQ(d.readings.size(), 3u);
  }
  PayloadContext ctx = at("d", "");
  ctx.line_precision = TimePrecision::kSeconds;
  auto d = decode(PayloadFormat::kLineProtocol, "m v=1 1764460800", ctx);
  ASSERT_EQ(d.readings.size(), 1u);
  EXPECT_EQ(d.readings[0].ts, 1764460800000);
  d = decode(PayloadFormat::kLineProtocol, "m v=1 9223372036854775807", ctx);
  EXPECT_EQ(d.report.first_reason, "a time too far in the future");
}

}  // namespace
}  // namespace ganglion::edge
