// Helpers for the LLM unit tests: golden transcripts from tests/fixtures/llm.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace ganglion::llm::testing {

/// The bytes of tests/fixtures/llm/<path>, exactly as stored.
inline std::string fixture(const std::string& path) {
  std::ifstream in(std::string(GANGLION_SOURCE_DIR) + "/tests/fixtures/llm/" + path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace ganglion::llm::testing
