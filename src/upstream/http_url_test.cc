#include "upstream/http_url.h"

#include <gtest/gtest.h>

namespace ganglion::upstream {
namespace {

std::string error(std::string_view url, bool allow_query = false) {
  auto r = parseHttpUrl(url, "url", allow_query, "may not have that");
  return r.ok() ? "ok" : r.error().message;
}

TEST(HttpUrl, SplitsAndDefaults) {
  auto u = parseHttpUrl("https://api.example.com/v1/", "base_url", false, "");
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->https);
  EXPECT_EQ(u->host, "api.example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path, "/v1/");
  EXPECT_FALSE(u->has_query);
  u = parseHttpUrl("http://[::1]:9100/ingest?site=a", "url", true, "");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 9100);
  EXPECT_EQ(u->path, "/ingest");
  EXPECT_TRUE(u->has_query);
  EXPECT_EQ(u->query, "site=a");
  u = parseHttpUrl("http://h?", "url", true, "");
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->has_query);
  EXPECT_EQ(u->query, "");
}

TEST(HttpUrl, Errors) {
  EXPECT_EQ(error("not a url"), "url 'not a url' is not a URL");
  EXPECT_EQ(error("ftp://h/"), "url 'ftp://h/' must use http or https");
  EXPECT_EQ(error("http://h/?q=1"),
            "url 'http://h/?q=<redacted>' may not have that");  // query values redacted
  EXPECT_EQ(error("http://h/?q=1", true), "ok");
  EXPECT_EQ(error("http://h/#f", true), "url 'http://h/#<redacted>' may not have that");
  EXPECT_EQ(error("http://u:secret@h/", true).find("secret"), std::string::npos);
  EXPECT_EQ(error("http:///p"), "url 'http:///p' has no host");
  EXPECT_EQ(error("http://h:0/"), "url 'http://h:0/' has an invalid port");
  EXPECT_EQ(error("http://h:70000/"), "url 'http://h:70000/' has an invalid port");
}

}  // namespace
}  // namespace ganglion::upstream
