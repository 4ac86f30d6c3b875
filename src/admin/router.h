// The admin API's request table: method and path pattern → endpoint, with path parameters
// ("/llm/keys/{name}"). Built once at start on the main thread; matched there for every
// admin request.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "admin/reply.h"

namespace ganglion::admin {

class Router {
 public:
  /// Adds an endpoint. `pattern`: literal segments and "{name}" segments, each of which
  /// captures one non-empty segment (percent-decoded). `open`: answered without the token
  /// (/healthz). Main thread, before the first request.
  void add(std::string_view method, std::string_view pattern, Endpoint endpoint, bool open = false);

  struct Match {
    const Endpoint* endpoint = nullptr;  ///< null: no endpoint for this method and path
    /// Answered without the token: the endpoint is open, or (no endpoint for this method)
    /// every endpoint of the path is, so its 405 is too.
    bool open = false;
    std::string allow;  ///< no endpoint but the path exists: the methods it takes ("GET, HEAD")
  };
  /// Finds the endpoint for `method` and the (normalised) `path`, filling `params`. HEAD
  /// matches a GET endpoint. Main thread.
  Match match(std::string_view method, std::string_view path, Params& params) const;

 private:
  struct Entry {
    std::string method;
    std::vector<std::string> segments;  ///< "{x}" captures
    Endpoint endpoint;
    bool open = false;
  };
  static bool matchPath(const Entry& e, const std::vector<std::string_view>& segments, Params* params);
  std::vector<Entry> entries_;
};

}  // namespace ganglion::admin
