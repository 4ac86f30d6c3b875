// libFuzzer target for control::loadConfigText: any text must give either a Config or a
// non-empty error list (never both, never neither), each error naming the file with a line
// >= 0, errors in line order; a Config must render through configToRedactedJson.
// Run by scripts/fuzz.sh; a failed check calls __builtin_trap() so libFuzzer saves the input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "control/config.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Variables the corpus may expand with ${VAR}; GANGLION_ADMIN_TOKEN stays unset so the
  // ${VAR:-default} form and the "not set" error both get exercised.
  setenv("GANGLION_FUZZ_HOST", "127.0.0.1", 1);
  setenv("GANGLION_FUZZ_PORT", "8080", 1);
  setenv("GANGLION_FUZZ_SECRET", "s3cr3t-token-value", 1);
  unsetenv("GANGLION_ADMIN_TOKEN");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16 * 1024) return 0;  // keeps each run fast; real configs are small
  const std::string path = "fuzz.yaml";
  std::string text(reinterpret_cast<const char*>(data), size);
  auto result = ganglion::control::loadConfigText(text, path);
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
    std::string json = ganglion::control::configToRedactedJson(c);
    CHECK(!json.empty() && json.front() == '{' && json.back() == '}');
    // The admin token is a secret: it must not leak into the rendered config.
    if (c.admin.enabled && c.admin.token == "s3cr3t-token-value")
      CHECK(json.find(c.admin.token) == std::string::npos);
  }
  return 0;
}
