// What an admin endpoint gets and gives: its request (path parameters, query, JSON body) and
// its reply (status, content type, body). JSON errors carry the gateway's error body.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/bounded_json.h"
#include "base/result.h"

namespace ganglion::admin {

/// Path parameters by name, in pattern order.
using Params = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string_view method;
  std::string_view path;
  std::string_view query;  ///< after '?', undecoded; empty when none
  Params params;
  std::string_view body;   ///< the request body (at most the admin API's limit); valid during the request
  std::string media_type;  ///< Content-Type without parameters, lower case; empty when none

  /// The path parameter `name` (empty when the pattern has none).
  std::string_view param(std::string_view name) const;
  /// The query parameter `name`, decoded; nullopt when absent.
  std::optional<std::string> queryParam(std::string_view name) const;
  /// The body as a JSON object; a 400 naming where it broke otherwise.
  Result<boost::json::object> jsonBody() const;
};

/// `body` parsed as JSON within `bounds`; a 400 `invalid_json` saying where it broke, or that
/// it nests too deep or holds too many values, otherwise.
Result<boost::json::value> parseJsonBody(std::string_view body, const JsonBounds& bounds);

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

/// A reply with the gateway's JSON error body: {"error":{"code","type","message"}}.
Reply errorReply(int status, std::string_view type, std::string_view message);
/// The reply for an Error (its status, 500 when it has none; its code as the type).
Reply errorReply(const Error& error);
/// A 200 JSON reply, newline-terminated.
Reply jsonReply(const boost::json::value& value, int status = 200);

/// One endpoint. Runs on the main thread; may await (a reload).
using Endpoint = std::function<boost::asio::awaitable<Reply>(Request&)>;

/// A page of a list, read from `?limit=N&after=CURSOR`: at most `limit` items after the one
/// whose cursor is `after`. The list must be sorted by cursor.
struct PageRequest {
  size_t limit = 100;
  std::string after;  ///< empty: from the start
};
constexpr size_t kMaxPageLimit = 1000;
/// Reads `limit` (1..1000, default 100) and `after`; a 400 naming the parameter otherwise.
Result<PageRequest> readPage(const Request& request);
/// {"<field>": [the page], "next": cursor of its last item, when more follow}. `items` are
/// objects sorted by their string field `cursor_field`.
boost::json::object page(boost::json::array items, std::string_view field, std::string_view cursor_field,
                         const PageRequest& request);

}  // namespace ganglion::admin
