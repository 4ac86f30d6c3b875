#include "base/strings.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>

namespace ganglion {
namespace {

std::string escaped(std::string_view s) {
  std::string out;
  appendJsonEscaped(out, s);
  return out;
}

TEST(JsonEscape, ControlsAndQuotes) {
  EXPECT_EQ(escaped("a\"b\\c\n\r\t\x01"), "a\\\"b\\\\c\\n\\r\\t\\u0001");
}

TEST(Utf8, WellFormedOnly) {
  for (std::string_view ok :
       {"", "plain", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"})
    EXPECT_TRUE(isValidUtf8(ok)) << ok;
  for (std::string_view bad : {"\xff", "\x80", "\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
                               "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "a\xe2\x82"})
    EXPECT_FALSE(isValidUtf8(bad)) << testing::PrintToString(std::string(bad));
}

TEST(JsonEscape, WellFormedUtf8IsKept) {
  EXPECT_EQ(escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST(JsonEscape, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  // A raw byte in a request path made the error body and the access-log line invalid JSON.
  EXPECT_EQ(escaped("/a\xff"
                    "b"),
            "/a\\ufffdb");
  EXPECT_EQ(escaped("\xc0\x80"), "\\ufffd\\ufffd");                        // overlong NUL
  EXPECT_EQ(escaped("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");             // a UTF-16 surrogate
  EXPECT_EQ(escaped("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");  // above U+10FFFF
  EXPECT_EQ(escaped("x\xe2\x82"), "x\\ufffd\\ufffd");                      // cut short
  EXPECT_EQ(escaped("\x80"
                    "a"),
            "\\ufffda");  // a lone continuation byte
}

TEST(JsonEscape, AnyBytesMakeParseableJson) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  all += "\xe2\x82\xac\xf0\x9f";
  std::string doc = "\"";
  doc += escaped(all);
  doc += '"';
  boost::system::error_code ec;
  auto v = boost::json::parse(doc, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(v.is_string());
}

TEST(PrintableText, ControlsShownAndLongTextCutAtACharacter) {
  EXPECT_EQ(printableText("a\x1b[31m\nb"), "a?[31m?b");
  EXPECT_EQ(printableText("abcdef", 4), "abcd...");
  EXPECT_EQ(printableText("ab\xC3\xA9z", 3), "ab...");  // not half of the é
  // Always valid UTF-8: stray, overlong, surrogate and truncated sequences, and C1 controls.
  EXPECT_EQ(printableText("a\xFF\\\xC0\xAF b\xED\xA0\x80 c\xE2\x82 \xC2\x9B[2J \xC3\xA9\xF0\x9F\x98\x80"),
            "a?\\?? b??? c?? ?[2J \xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_TRUE(isValidUtf8(printableText("\xF4\x90\x80\x80\xF8")));
  EXPECT_FALSE(hasControlOrNoncharacter("pump-\xC3\xA9"));
  EXPECT_TRUE(hasControlOrNoncharacter("x\xC2\x9F"));
  EXPECT_TRUE(hasControlOrNoncharacter("x\xEF\xBF\xBE"));
}

TEST(ParseDouble, WholeTextOnly) {
  EXPECT_EQ(parseDouble("-3.5e1"), -35.0);
  EXPECT_EQ(parseDouble("0.25"), 0.25);
  EXPECT_FALSE(parseDouble(""));
  EXPECT_FALSE(parseDouble(" 1"));
  EXPECT_FALSE(parseDouble("1 "));
  EXPECT_FALSE(parseDouble("+1"));
  EXPECT_FALSE(parseDouble("12abc"));
  EXPECT_FALSE(parseDouble("1e999"));
  EXPECT_TRUE(std::isinf(*parseDouble("inf")));
}

TEST(ByteSize, UnitsAreBinaryWithOrWithoutB) {
  EXPECT_EQ(parseByteSize("1024"), 1024u);
  EXPECT_EQ(parseByteSize("64k"), 65536u);
  EXPECT_EQ(parseByteSize("64KB"), 65536u);
  EXPECT_EQ(parseByteSize("64KiB"), 65536u);
  EXPECT_EQ(parseByteSize("10M"), 10u << 20);
  EXPECT_EQ(parseByteSize("1GiB"), 1ull << 30);
  EXPECT_EQ(parseByteSize("2TiB"), 2ull << 40);
  EXPECT_FALSE(parseByteSize("B"));
  EXPECT_FALSE(parseByteSize("1iB"));
  EXPECT_FALSE(parseByteSize("KiB"));
  EXPECT_FALSE(parseByteSize("1XB"));
  EXPECT_FALSE(parseByteSize("99999999999T"));
}

}  // namespace
}  // namespace ganglion
