#include "edge/sinks/line_protocol.h"

#include <gtest/gtest.h>

namespace ganglion::edge {
namespace {

std::string lines(std::string_view json, TimePrecision p = TimePrecision::kMilliseconds,
                  LineProtocolBatch* got = nullptr) {
  std::string out;
  LineProtocolBatch b = appendLineProtocol(json, p, out);
  if (got) *got = b;
  return out;
}

TEST(LineProtocol, ReadingWindowEventAndSummary) {
  EXPECT_EQ(
      lines(R"({"id":"plant-1","source":"plant","device":"pump-1","metric":"vibration","ts":1764460800123,)"
            R"("kind":"reading","value":0.12,"quality":"good","attrs":{"site":"north","floor":2}})"),
      "vibration,device=pump-1,floor=2,kind=reading,quality=good,site=north,source=plant value=0.12 "
      "1764460800123\n");
  // A window: aggregates as float fields (count too: one type per field, whatever the value).
  EXPECT_EQ(
      lines(R"({"id":"w","source":"plant","device":"p","metric":"vibration","ts":1000,"kind":"window",)"
            R"("quality":"good","window_ms":1000,"count":10,"mean":0.5,"stddev":null})"),
      "vibration,device=p,kind=window,quality=good,source=plant window_ms=1000,count=10,mean=0.5 1000\n");
  // An event: text members as strings, escaped.
  EXPECT_EQ(
      lines(R"({"id":"e","source":"plant","device":"p","metric":"rms","ts":5,"kind":"event",)"
            R"("quality":"good","detector":"vib","score":7.5,"verdict":"anomaly",)"
            R"("reason":"rms 9 is \"far\" out\\here\nnext"})"),
      "rms,device=p,kind=event,quality=good,source=plant detector=\"vib\",score=7.5,verdict=\"anomaly\","
      "reason=\"rms 9 is \\\"far\\\" out\\\\here\\\\nnext\" 5\n");
  // A record without a metric is named by its kind.
  EXPECT_EQ(lines(R"({"id":"s","source":null,"device":null,"metric":null,"ts":7,"kind":"summary",)"
                  R"("quality":"good","text":"ok"})"),
            "summary,kind=summary,quality=good text=\"ok\" 7\n");
}

TEST(LineProtocol, NamesAndTagsEscapeSeparators) {
  EXPECT_EQ(
      lines(R"({"device":"a b,c=d","metric":"m x,y","ts":1,"kind":"reading","value":1,)"
            R"("attrs":{"k ey":"v=1","trail":"x\\","only":"\\\\","":"empty key","nl":"a\nb","kind":"no"}})"),
      "m\\ x\\,y,device=a\\ b\\,c\\=d,k\\ ey=v\\=1,kind=reading,nl=a\\ b,trail=x value=1 1\n");
  // A backslash before an escaped separator is doubled (alone it would escape nothing and
  // `a\ b` would land as `a b`); one before other characters stays as it is.
  EXPECT_EQ(
      lines(R"({"device":"d\\,e","metric":"a\\ b","ts":1,"kind":"reading","value":1,"attrs":{"p":"x\\y"}})"),
      "a\\\\\\ b,device=d\\\\\\,e,kind=reading,p=x\\y value=1 1\n");
  // Field keys escape too; a field named time (InfluxDB's own column) is left out.
  EXPECT_EQ(lines(R"({"metric":"m","ts":1,"kind":"window","a b":1,"time":3,"x=y":true})"),
            "m,kind=window a\\ b=1,x\\=y=true 1\n");
}

TEST(LineProtocol, Precision) {
  const char* rec = R"({"metric":"m","ts":-1500,"value":1})";
  EXPECT_EQ(lines(rec, TimePrecision::kNanoseconds), "m value=1 -1500000000\n");
  EXPECT_EQ(lines(rec, TimePrecision::kMicroseconds), "m value=1 -1500000\n");
  EXPECT_EQ(lines(rec, TimePrecision::kSeconds), "m value=1 -2\n");  // floor, as for positive times
  EXPECT_EQ(lines(R"({"metric":"m","ts":2500,"value":1})", TimePrecision::kSeconds), "m value=1 2\n");
  std::string error;
  EXPECT_EQ(precisionOfUrl("/write?db=x", error), TimePrecision::kNanoseconds);
  EXPECT_EQ(precisionOfUrl("/api/v2/write?org=a&precision=ms&bucket=b", error), TimePrecision::kMilliseconds);
  EXPECT_EQ(precisionOfUrl("/api/v3/write_lp?db=x&precision=microsecond", error),
            TimePrecision::kMicroseconds);
  EXPECT_EQ(precisionOfUrl("/write?precision=u", error), TimePrecision::kMicroseconds);
  EXPECT_EQ(precisionOfUrl("/api/v2/write?precision=us", error), TimePrecision::kMicroseconds);
  EXPECT_EQ(precisionOfUrl("/proxy/influx?precision=second", error), TimePrecision::kSeconds);
  // Each API reads a spelling it does not know as nanoseconds: refused at load.
  EXPECT_FALSE(precisionOfUrl("/write?db=x&precision=us", error));
  EXPECT_EQ(error,
            "precision 'us': /write (InfluxDB 1.x API) takes n, u, ms or s (another spelling is read as "
            "nanoseconds; minutes and hours would merge readings into one point)");
  EXPECT_FALSE(precisionOfUrl("/api/v2/write?precision=u", error));
  EXPECT_FALSE(precisionOfUrl("/api/v3/write_lp?precision=ms", error));
  EXPECT_FALSE(precisionOfUrl("/write?precision=h", error));
  EXPECT_FALSE(precisionOfUrl("/other?precision=h", error));
  EXPECT_NE(error.find("precision 'h' is not one of ns, us, ms, s"), std::string::npos);
}

TEST(LineProtocol, RecordsWithNothingToWriteAreSkippedAndSaid) {
  LineProtocolBatch got;
  // Nanoseconds past int64 (year 2262), no field at all, no name: skipped; the rest written.
  std::string out = lines(R"({"metric":"m","ts":9300000000000,"value":1},)"
                          R"({"metric":"m","ts":1,"value":null,"attrs":{"a":"b"}},)"
                          R"({"ts":1,"value":1},)"
                          R"({"metric":"ok","ts":2,"value":2})",
                          TimePrecision::kNanoseconds, &got);
  EXPECT_EQ(out, "ok value=2 2000000\n");
  EXPECT_EQ(got.lines, 1u);
  EXPECT_EQ(got.skipped, 3u);
  EXPECT_EQ(got.skip_reason, "its ts 9300000000000 is out of line protocol's range");
  // A measurement starting with '#' would make the line a comment: InfluxDB would answer 204
  // and store nothing.
  out = lines(R"({"metric":"#hash","ts":1,"value":1},{"metric":"a#","ts":1,"value":1})",
              TimePrecision::kMilliseconds, &got);
  EXPECT_EQ(out, "a# value=1 1\n");
  EXPECT_EQ(got.skipped, 1u);
  EXPECT_EQ(got.skip_reason, "its measurement '#hash' would read as a comment (a line starting with '#')");
  // Text that is not JSON stops the batch (the rest cannot be split), said as such.
  out = lines(R"({"metric":"a","ts":1,"value":1},{"metric":)", TimePrecision::kMilliseconds, &got);
  EXPECT_EQ(out, "a value=1 1\n");
  EXPECT_EQ(got.skipped, 1u);
  EXPECT_EQ(got.skip_reason.substr(0, 16), "it is not JSON (");
}

}  // namespace
}  // namespace ganglion::edge
