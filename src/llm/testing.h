// Helpers for the LLM unit tests: golden transcripts from tests/fixtures/llm.
#pragma once

#include <boost/json.hpp>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "llm/provider.h"

namespace ganglion::llm::testing {

/// The bytes of tests/fixtures/llm/<path>, exactly as stored.
inline std::string fixture(const std::string& path) {
  std::ifstream in(std::string(GANGLION_SOURCE_DIR) + "/tests/fixtures/llm/" + path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// What a stream decoder made of some bytes.
struct Decoded {
  std::vector<boost::json::object> chunks;
  Usage usage;
  bool finished = false;
  ApiResult error;
};

/// Decodes `bytes` with a fresh decoder of `codec`, fed in two parts split at `split`. The
/// clock-made fields (`created`, and `id` where the provider sends none) are blanked, so
/// decodings can be compared.
inline Decoded decodeSplit(const ProviderCodec& codec, std::string_view bytes, size_t split) {
  Decoded d;
  auto dec = codec.chatStream();
  for (auto part : {bytes.substr(0, split), bytes.substr(split)})
    if (d.error.ok()) d.error = dec->feed(part, d.chunks, d.usage);
  d.finished = dec->finished();
  for (auto& c : d.chunks) {
    c["created"] = 0;
    c["id"] = "";
  }
  return d;
}

}  // namespace ganglion::llm::testing
