// A request held whole in memory, as the buffered exchange (upstream/exchange.h) sends it:
// LLM provider calls and the edge's sink posts. Kept apart from the exchange so that codecs
// build requests without the connection headers.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ganglion::upstream {

struct BufferedRequest {
  std::string method = "POST";
  std::string path;                                          ///< origin-form, query included
  std::vector<std::pair<std::string, std::string>> headers;  ///< credentials, versions
  std::string body;
  std::string content_type = "application/json";
};

}  // namespace ganglion::upstream
