#include "http/static_site.h"

#include <gtest/gtest.h>

namespace ganglion::http {
namespace {

StaticPath resolve(std::string_view path, bool dotfiles = false) { return resolveStaticPath(path, dotfiles); }

TEST(StaticPath, MapsPathsOntoRelativeNames) {
  EXPECT_EQ(resolve("/a/b.css").relative, "a/b.css");
  EXPECT_EQ(resolve("/a/b.css").kind, StaticPath::Kind::kFile);
  EXPECT_EQ(resolve("//a/./b//c").relative, "a/b/c");
  EXPECT_EQ(resolve("/a/").kind, StaticPath::Kind::kDirectory);
  EXPECT_EQ(resolve("/a/").relative, "a");
  EXPECT_EQ(resolve("/").relative, ".");
  EXPECT_EQ(resolve("/").kind, StaticPath::Kind::kDirectory);
  EXPECT_EQ(resolve("").kind, StaticPath::Kind::kDirectory);
  EXPECT_EQ(resolve("/a%20b/%41").relative, "a b/A");
  EXPECT_EQ(resolve("/a%2fb").relative, "a/b");                   // a decoded '/' separates like any other
  EXPECT_EQ(resolve("/a/.").kind, StaticPath::Kind::kDirectory);  // never the file a
  EXPECT_EQ(resolve("/a/.").relative, "a");
  EXPECT_EQ(resolve("/a/./").kind, StaticPath::Kind::kDirectory);
  EXPECT_EQ(resolve("/a/.b").kind, StaticPath::Kind::kHidden);
}

TEST(StaticPath, RefusesClimbingAndBadEncodings) {
  for (const char* bad : {"/..", "/../etc/passwd", "/a/../../b", "/%2e%2e/x", "/%2E%2E", "/a/..%2f..%2fb",
                          "/a%2f..%2fb", "/a%00.html", "/%", "/%4", "/%zz", "/a%g1"}) {
    const auto p = resolve(bad);
    EXPECT_EQ(p.kind, StaticPath::Kind::kBad) << bad;
    EXPECT_FALSE(p.problem.empty()) << bad;
    EXPECT_TRUE(p.relative.empty()) << bad;
  }
  EXPECT_EQ(resolve("/a/..b/c..", true).relative, "a/..b/c..");  // dots inside a name are a name
  EXPECT_EQ(resolve("/a/b..c").relative, "a/b..c");
}

TEST(StaticPath, HidesDotfilesUnlessAllowed) {
  EXPECT_EQ(resolve("/.env").kind, StaticPath::Kind::kHidden);
  EXPECT_EQ(resolve("/a/.git/config").kind, StaticPath::Kind::kHidden);
  EXPECT_EQ(resolve("/%2egit/config").kind, StaticPath::Kind::kHidden);
  EXPECT_EQ(resolve("/.well-known/acme").relative, ".well-known/acme");
  EXPECT_EQ(resolve("/a/.well-known/x").kind, StaticPath::Kind::kHidden);  // only at the top
  EXPECT_EQ(resolve("/.env", true).relative, ".env");
  EXPECT_EQ(resolve("/../x", true).kind, StaticPath::Kind::kBad);  // dotfiles never allow climbing
}

TEST(ByteRanges, ReadsOneRange) {
  ByteRange r;
  EXPECT_EQ(parseByteRange("bytes=0-9", 100, r), RangeAsk::kRange);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 9u);
  EXPECT_EQ(parseByteRange("bytes=90-", 100, r), RangeAsk::kRange);
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(r.last, 99u);
  EXPECT_EQ(parseByteRange("bytes=-10", 100, r), RangeAsk::kRange);
  EXPECT_EQ(r.first, 90u);
  EXPECT_EQ(parseByteRange("bytes=-1000", 100, r), RangeAsk::kRange);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(parseByteRange("bytes=50-1000", 100, r), RangeAsk::kRange);
  EXPECT_EQ(r.last, 99u);
  EXPECT_EQ(parseByteRange(" Bytes=1-1 ", 100, r), RangeAsk::kRange);
  EXPECT_EQ(r.last, 1u);
}

TEST(ByteRanges, UnsatisfiableAndIgnored) {
  ByteRange r;
  EXPECT_EQ(parseByteRange("bytes=100-", 100, r), RangeAsk::kUnsatisfiable);
  EXPECT_EQ(parseByteRange("bytes=-0", 100, r), RangeAsk::kUnsatisfiable);
  EXPECT_EQ(parseByteRange("bytes=0-", 0, r), RangeAsk::kUnsatisfiable);
  // Positions past any file are positions: the first byte is past the end, the last is clipped.
  EXPECT_EQ(parseByteRange("bytes=18446744073709551615-", 100, r), RangeAsk::kUnsatisfiable);
  EXPECT_EQ(parseByteRange("bytes=99999999999999999999999-", 100, r), RangeAsk::kUnsatisfiable);
  EXPECT_EQ(parseByteRange("bytes=0-99999999999999999999999", 100, r), RangeAsk::kRange);
  EXPECT_EQ(r.last, 99u);
  EXPECT_EQ(parseByteRange("bytes=-99999999999999999999999", 100, r), RangeAsk::kRange);
  EXPECT_EQ(r.first, 0u);
  for (const char* ignored : {"", "bytes", "bytes=", "bytes=-", "bytes=5-1", "bytes=0-1,5-6", "items=0-1",
                              "bytes=a-b", "bytes=1-2x", "bytes=+1-2", "bytes=99999999999999999999-5"})
    EXPECT_EQ(parseByteRange(ignored, 100, r), RangeAsk::kWhole) << ignored;
}

TEST(EntityTags, ComparesWeakAndStrong) {
  const std::string tag = "\"abc-1\"";
  EXPECT_TRUE(entityTagListMatches("\"abc-1\"", tag, true));
  EXPECT_TRUE(entityTagListMatches("W/\"abc-1\"", tag, true));
  EXPECT_FALSE(entityTagListMatches("W/\"abc-1\"", tag, false));
  EXPECT_TRUE(entityTagListMatches("\"x\", \"abc-1\"", tag, false));
  EXPECT_TRUE(entityTagListMatches(" * ", tag, false));
  EXPECT_FALSE(entityTagListMatches("\"abc\"", tag, true));
  EXPECT_FALSE(entityTagListMatches("abc-1", tag, true));
  EXPECT_FALSE(entityTagListMatches("\"x\" \"abc-1\"", tag, true));  // not a list
  EXPECT_FALSE(entityTagListMatches("\"abc-1", tag, true));
  EXPECT_FALSE(entityTagListMatches("", tag, true));
  EXPECT_FALSE(entityTagListMatches("\"abc-1\"", "W/\"abc-1\"", false));
}

TEST(EntityTags, FileTagsChangeWithSizeAndTime) {
  EXPECT_EQ(fileEntityTag(12, 0x6b0dc7a3, 5).view(), "\"6b0dc7a3.5-c\"");
  EXPECT_NE(fileEntityTag(12, 1, 5).view(), fileEntityTag(13, 1, 5).view());
  EXPECT_NE(fileEntityTag(12, 1, 5).view(), fileEntityTag(12, 1, 6).view());
  EXPECT_EQ(fileEntityTag(~0ull, -1, 999999999).view(), "\"ffffffffffffffff.3b9ac9ff-ffffffffffffffff\"");
}

}  // namespace
}  // namespace ganglion::http
