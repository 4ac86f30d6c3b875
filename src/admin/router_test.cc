#include "admin/router.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace ganglion::admin {
namespace {

Endpoint named(std::string name) {
  return [name](Request&) -> boost::asio::awaitable<Reply> { co_return Reply{200, "text/plain", name}; };
}

TEST(AdminRouter, LiteralsParamsAndMethods) {
  Router router;
  router.add("GET", "/llm/keys", named("list"));
  router.add("GET", "/llm/keys/{name}", named("one"));
  router.add("DELETE", "/llm/keys/{name}", named("delete"));
  router.add("POST", "/reload", named("reload"));
  router.add("GET", "/healthz", named("health"), /*open=*/true);
  Params params;
  auto m = router.match("GET", "/llm/keys/team%20a", params);
  ASSERT_TRUE(m.endpoint);
  EXPECT_FALSE(m.open);
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0], (std::pair<std::string, std::string>{"name", "team a"}));
  EXPECT_TRUE(router.match("HEAD", "/llm/keys", params).endpoint);  // HEAD takes a GET endpoint
  EXPECT_TRUE(router.match("GET", "/healthz", params).open);
  // The path exists, the method does not: the methods it takes, for 405 and Allow.
  m = router.match("PUT", "/llm/keys/x", params);
  EXPECT_FALSE(m.endpoint);
  EXPECT_EQ(m.allow, "GET, HEAD, DELETE");
  EXPECT_EQ(router.match("GET", "/reload", params).allow, "POST");
  // A wrong method on an open path is answered (405) without the token; elsewhere not.
  m = router.match("PUT", "/healthz", params);
  EXPECT_FALSE(m.endpoint);
  EXPECT_TRUE(m.open);
  EXPECT_EQ(m.allow, "GET, HEAD");
  EXPECT_FALSE(router.match("PUT", "/llm/keys/x", params).open);
  // No such path: nothing allowed.
  m = router.match("GET", "/llm/keys/x/y", params);
  EXPECT_FALSE(m.endpoint);
  EXPECT_TRUE(m.allow.empty());
  EXPECT_FALSE(m.open);
  EXPECT_FALSE(router.match("GET", "/llm", params).endpoint);
  EXPECT_FALSE(router.match("GET", "/llm/keysx", params).endpoint);
}

TEST(AdminPage, LimitAfterAndNext) {
  boost::json::array items;
  for (const char* n : {"a", "b", "c", "d", "e"}) items.push_back(boost::json::object{{"name", n}});
  Request r;
  r.query = "limit=2";
  auto want = readPage(r);
  ASSERT_TRUE(want);
  auto p = page(items, "keys", "name", *want);
  EXPECT_EQ(boost::json::serialize(p), R"({"next":"b","keys":[{"name":"a"},{"name":"b"}]})");
  r.query = "limit=2&after=d";
  p = page(items, "keys", "name", *readPage(r));
  EXPECT_EQ(boost::json::serialize(p), R"({"keys":[{"name":"e"}]})");
  r.query = "after=%61";  // decoded: after "a"
  p = page(items, "keys", "name", *readPage(r));
  EXPECT_EQ(p.at("keys").as_array().size(), 4u);
  EXPECT_FALSE(p.contains("next"));
  for (const char* bad : {"limit=0", "limit=1001", "limit=x", "limit=", "limit=-1", "limit=99999999999"}) {
    r.query = bad;
    auto err = readPage(r);
    ASSERT_FALSE(err) << bad;
    EXPECT_EQ(err.error().status, 400);
    EXPECT_NE(err.error().message.find("limit"), std::string::npos);
  }
}

TEST(AdminRequest, JsonBodyErrorsSayWhere) {
  Request r;
  EXPECT_FALSE(r.jsonBody());
  r.body = R"({"a": 1,})";
  auto bad = r.jsonBody();
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("at byte"), std::string::npos);
  r.body = "[1]";
  EXPECT_FALSE(r.jsonBody());
  r.body = R"({"a": [1, 2]})";
  ASSERT_TRUE(r.jsonBody());
}

}  // namespace
}  // namespace ganglion::admin
