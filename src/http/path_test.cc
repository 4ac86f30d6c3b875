#include "http/path.h"

#include <gtest/gtest.h>

namespace ganglion::http {
namespace {

std::string normal(std::string target) {
  normalisePath(target);
  return target;
}

TEST(NormalisePath, NormalPathsAreLeftAlone) {
  for (const char* p : {"/", "/a", "/a/b/", "/a.b/.c/..d/", "/a?x=/../y", "/v1/chat/completions", "*"}) {
    std::string t = p;
    EXPECT_FALSE(normalisePath(t)) << p;
    EXPECT_EQ(t, p);
  }
}

TEST(NormalisePath, DotSegmentsAreRemoved) {
  EXPECT_EQ(normal("/api/../admin"), "/admin");
  EXPECT_EQ(normal("/a/./b/../c"), "/a/c");
  EXPECT_EQ(normal("/a/b/.."), "/a/");
  EXPECT_EQ(normal("/a/b/."), "/a/b/");
  EXPECT_EQ(normal("/.."), "/");
  EXPECT_EQ(normal("/../../etc/passwd"), "/etc/passwd");  // never above the root
  EXPECT_EQ(normal("/a/..?q=1"), "/?q=1");
}

TEST(NormalisePath, SlashRunsAreMerged) {
  EXPECT_EQ(normal("//admin"), "/admin");
  EXPECT_EQ(normal("/a//b///c/"), "/a/b/c/");
}

TEST(NormalisePath, UnreservedPercentEncodingsAreDecoded) {
  EXPECT_EQ(normal("/%61dmin"), "/admin");
  EXPECT_EQ(normal("/api/%2e%2e/admin"), "/admin");  // encoded dots are dots
  EXPECT_EQ(normal("/a%2fb"), "/a%2Fb");             // an encoded slash stays one
  EXPECT_EQ(normal("/a%20b%7e"), "/a%20b~");
  EXPECT_EQ(normal("/50%"), "/50%25");  // not an encoding: the '%' itself is encoded
  EXPECT_EQ(normal("/a%zz"), "/a%25zz");
  EXPECT_EQ(normal("/%%3304"), "/%25304");              // found by the fuzzer: it was "/%304", then "/04"
  EXPECT_EQ(normal("/x?%61=%2e%2e"), "/x?%61=%2e%2e");  // the query is not touched
}

TEST(NormalisePath, IsIdempotent) {
  for (const char* p :
       {"/a/../../b//c/./%2e%2E/d%2f/", "//%2e/", "/%2E%2E%2F..", "/a/b/c/../../../..", "/C%%%%%%3304%%49"}) {
    std::string once = normal(p);
    std::string twice = once;
    EXPECT_FALSE(normalisePath(twice)) << p << " -> " << once;
  }
}

}  // namespace
}  // namespace ganglion::http
