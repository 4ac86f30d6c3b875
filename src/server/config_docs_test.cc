#include "server/config_docs.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace ganglion::server {

namespace {

// docs/configuration.md's field tables are generated from the schema: this fails when the
// checked-in file differs. GANGLION_UPDATE_DOCS=1 rewrites the tables instead.
TEST(ConfigSchema, DocsTablesMatchTheSchema) {
  const std::string path = std::string(GANGLION_SOURCE_DIR) + "/docs/configuration.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream buf;
  buf << in.rdbuf();
  std::string doc = buf.str();
  const bool update = std::getenv("GANGLION_UPDATE_DOCS") != nullptr;
  for (const auto& t : schemaDocsTables()) {
    const std::string open = fmt::format("<!-- schema:{}:", t.marker);
    size_t start = doc.find(open);
    ASSERT_NE(start, std::string::npos) << "no " << open << " marker in " << path;
    start = doc.find('\n', start) + 1;
    const size_t end = doc.find("<!-- /schema -->", start);
    ASSERT_NE(end, std::string::npos) << "no end marker after " << open;
    if (update)
      doc.replace(start, end - start, t.table);
    else
      EXPECT_EQ(doc.substr(start, end - start), t.table)
          << "docs/configuration.md's " << t.marker
          << " table differs from the schema: run GANGLION_UPDATE_DOCS=1 build/ganglion_unit_tests "
             "--gtest_filter=ConfigSchema.*";
  }
  if (update) std::ofstream(path) << doc;
}

}  // namespace
}  // namespace ganglion::server
