#include "admin/reply.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <boost/url/parse_query.hpp>

#include "base/bounded_json.h"
#include "base/json_text.h"
#include "http/headers.h"

namespace ganglion::admin {

namespace json = boost::json;

std::string_view Request::param(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return {};
}

std::optional<std::string> Request::queryParam(std::string_view name) const {
  if (query.empty()) return std::nullopt;
  auto parsed = boost::urls::parse_query(query);
  if (!parsed) return std::nullopt;
  for (const auto& p : *parsed)
    if (p.key.decode() == name) return p.value.decode();
  return std::nullopt;
}

Result<json::value> parseJsonBody(std::string_view body, const JsonBounds& bounds) {
  BoundedJson parsed = parseBoundedJson(body, bounds, json::storage_ptr());
  switch (parsed.fault) {
    case JsonFault::kNone:
      return std::move(parsed.value);
    case JsonFault::kSyntax:
      return Error(fmt::format("the body is not valid JSON: {} at byte {}", parsed.reason, parsed.at),
                   "invalid_json", 400);
    default:
      return Error(
          fmt::format("the body nests deeper than {} levels or holds too many values", bounds.max_depth),
          "invalid_json", 400);
  }
}

Result<json::object> Request::jsonBody() const {
  if (body.empty()) return Error("the request needs a JSON object body", "invalid_json", 400);
  auto parsed = parseJsonBody(body, JsonBounds{10'000, 100'000, 32});
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return Error("the body must be a JSON object", "invalid_json", 400);
  return std::move(parsed->get_object());
}

Reply errorReply(int status, std::string_view type, std::string_view message) {
  return Reply{status, "application/json", http::jsonErrorBody(status, type, message)};
}

Reply errorReply(const Error& error) {
  const int status = error.status ? error.status : 500;
  return errorReply(status, error.code.empty() ? "internal_error" : error.code, error.message);
}

Reply jsonReply(const json::value& value, int status) {
  return Reply{status, "application/json", jsonText(value) + "\n"};
}

Result<PageRequest> readPage(const Request& request) {
  PageRequest page;
  if (auto limit = request.queryParam("limit")) {
    size_t n = 0;
    bool digits = !limit->empty() && limit->size() <= 6 &&
                  std::all_of(limit->begin(), limit->end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) n = std::stoul(*limit);
    if (!digits || n < 1 || n > kMaxPageLimit)
      return Error(fmt::format("limit must be a whole number from 1 to {}", kMaxPageLimit),
                   "invalid_parameter", 400);
    page.limit = n;
  }
  if (auto after = request.queryParam("after")) page.after = std::move(*after);
  return page;
}

json::object page(json::array items, std::string_view field, std::string_view cursor_field,
                  const PageRequest& request) {
  auto cursorOf = [&](const json::value& v) -> std::string_view {
    const auto* o = v.if_object();
    const auto* c = o ? o->if_contains(cursor_field) : nullptr;
    return c && c->is_string() ? std::string_view(c->get_string()) : std::string_view();
  };
  auto first = items.begin();
  if (!request.after.empty())
    first = std::find_if(items.begin(), items.end(),
                         [&](const json::value& v) { return cursorOf(v) > request.after; });
  const size_t available = static_cast<size_t>(items.end() - first);
  const size_t take = std::min(available, request.limit);
  json::array out;
  out.reserve(take);
  for (auto it = first; it != first + static_cast<std::ptrdiff_t>(take); ++it) out.push_back(std::move(*it));
  json::object o;
  if (take < available) o["next"] = cursorOf(out.back());
  o[field] = std::move(out);
  return o;
}

}  // namespace ganglion::admin
