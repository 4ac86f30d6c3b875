#include "server/welcome_page.h"

#include <gtest/gtest.h>

namespace ganglion::server {

using namespace ganglion::config;  // the composition reads every section
using namespace ganglion::upstream;
using namespace ganglion::llm;
namespace {

TEST(WelcomePage, ShowsNoControlCharactersOrSecrets) {
  Config c;
  ListenerConfig l;
  l.name = "evil\x1b[31m\r\nname";
  l.address = HostPort{"127.0.0.1", 8080};
  c.listeners.push_back(l);
  RouteConfig r;
  r.name = "welcome";
  r.welcome = true;
  c.routes.push_back(r);
  c.admin.enabled = true;
  c.admin.token = "admin-token-never-shown-123";
  std::string page = renderWelcomePage(c);
  EXPECT_EQ(page.find('\x1b'), std::string::npos);
  EXPECT_EQ(page.find("\r"), std::string::npos);
  EXPECT_NE(page.find("evil?[31m??name"), std::string::npos);
  EXPECT_EQ(page.find("admin-token-never-shown"), std::string::npos);
  EXPECT_NE(page.find("LLM API is off"), std::string::npos);
}

TEST(WelcomePage, WarnsWhenACatchAllRouteHidesTheLlmApi) {
  Config c;
  ProviderConfig p;
  p.name = "openai";
  p.kind = "openai";
  c.providers.push_back(p);
  RouteConfig welcome;
  welcome.name = "welcome";
  welcome.welcome = true;
  welcome.match.path_prefix = "/";
  RouteConfig api;
  api.name = "llm-api";
  api.llm.emplace();
  api.match.path_prefix = "/v1/";
  c.routes = {welcome, api};
  EXPECT_NE(renderWelcomePage(c).find("route 'welcome' catches /v1/"), std::string::npos);
  c.routes = {api, welcome};
  EXPECT_EQ(renderWelcomePage(c).find("Warning"), std::string::npos);
}

}  // namespace
}  // namespace ganglion::server
