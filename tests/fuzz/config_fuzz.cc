// libFuzzer target for server::loadConfigText: any text must give either a Config or a
// non-empty error list (never both, never neither), each error naming the file with a line
// >= 0, errors in line order; a Config must render through configToRedactedJson. Text that
// parses as JSON also goes through loadConfigJson (the admin API's POST /config/check): the
// same invariants, every error located by a JSON path ("$..."), never by a line, and ${VAR}
// never expanded into an error.
// Run by scripts/fuzz.sh; a failed check calls __builtin_trap() so libFuzzer saves the input.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config/config.h"
#include "fuzz_check.h"
#include "server/config_loader.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Variables the corpus may expand with ${VAR}; GANGLION_ADMIN_TOKEN stays unset so the
  // ${VAR:-default} form and the "not set" error both get exercised.
  setenv("GANGLION_FUZZ_HOST", "127.0.0.1", 1);
  setenv("GANGLION_FUZZ_PORT", "8080", 1);
  setenv("GANGLION_FUZZ_SECRET", "s3cr3t-token-value", 1);
  unsetenv("GANGLION_ADMIN_TOKEN");
  return 0;
}

namespace {

void checkJson(const std::string& text) {
  boost::json::parse_options options;
  options.max_depth = 200;
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(text, ec, {}, options);
  if (ec) return;
  auto result = ganglion::server::loadConfigJson(value, "body");
  CHECK(result.config.has_value() != !result.errors.empty());
  for (const auto& e : result.errors) {
    CHECK(e.file == "body");
    CHECK(!e.message.empty());
    CHECK(e.line == 0);
    CHECK(e.path.empty() || e.path.front() == '$');
    // ${GANGLION_FUZZ_SECRET} is never expanded: its value appears only if the input has it.
    if (text.find("s3cr3t-token-value") == std::string::npos)
      CHECK(e.text().find("s3cr3t-token-value") == std::string::npos);
  }
  if (result.config) {
    std::string json = ganglion::server::configToRedactedJson(*result.config);
    CHECK(!json.empty() && json.front() == '{' && json.back() == '}');
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16 * 1024) return 0;  // keeps each run fast; real configs are small
  const std::string path = "fuzz.yaml";
  std::string text(reinterpret_cast<const char*>(data), size);
  if (!text.empty() && (text.front() == '{' || text.front() == '[')) checkJson(text);
  auto result = ganglion::server::loadConfigText(text, path);
  CHECK(result.config.has_value() != !result.errors.empty());
  int last_line = 0;
  for (const auto& e : result.errors) {
    CHECK(e.line >= 0);
    CHECK(e.line >= last_line);  // sorted by line
    last_line = e.line;
    CHECK(e.file == path);
    CHECK(!e.message.empty());
    CHECK(!e.text().empty());
  }
  if (result.config) {
    const auto& c = *result.config;
    CHECK(c.workers >= 1);
    CHECK(!c.listeners.empty());
    std::string json = ganglion::server::configToRedactedJson(c);
    CHECK(!json.empty() && json.front() == '{' && json.back() == '}');
    // The admin token is a secret: it must not leak into the rendered config.
    if (c.admin.enabled && c.admin.token == "s3cr3t-token-value")
      CHECK(json.find(c.admin.token) == std::string::npos);
  }
  return 0;
}
