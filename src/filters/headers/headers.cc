// headers: sets and removes request headers before forwarding and response headers before
// answering, as a filter so it composes in order with the others.
#include "filters/registry.h"

namespace ganglion::filters {

namespace {

class HeadersFilter final : public http::Filter {
 public:
  HeadersFilter(config::HeaderOps request, config::HeaderOps response)
      : request_(std::move(request)), response_(std::move(response)) {}

  http::FilterStatus onRequest(http::FilterContext& ctx) const override {
    for (const auto& name : request_.remove) ctx.request.headers.remove(name);
    for (const auto& [name, value] : request_.add) ctx.request.headers.set(name, value);
    return http::FilterStatus::kContinue;
  }
  void onResponse(http::FilterContext&, http::ResponseHead& head) const override {
    for (const auto& name : response_.remove) head.headers.remove(name);
    for (const auto& [name, value] : response_.add) head.headers.set(name, value);
  }
  std::string_view kind() const override { return "headers"; }

 private:
  config::HeaderOps request_;
  config::HeaderOps response_;
};

}  // namespace

FilterPtr buildHeaders(const config::Node& node, config::Reader& r, const config::Config&) {
  if (!node.IsMap()) {
    r.fail(node, "headers takes a map: { request: {add, remove}, response: {add, remove} }");
    return nullptr;
  }
  r.checkKeys(node, {"request", "response"}, "headers");
  config::HeaderOps request, response;
  if (auto v = node["request"]; v.IsDefined()) request = r.headerOps(v, "headers.request");
  if (auto v = node["response"]; v.IsDefined()) response = r.headerOps(v, "headers.response");
  for (const auto& [name, value] : request.add) {
    if (iequals(name, "content-length") || iequals(name, "transfer-encoding"))
      r.fail(node["request"], fmt::format("headers filter may not set '{}'", name));
  }
  return std::make_shared<HeadersFilter>(std::move(request), std::move(response));
}

}  // namespace ganglion::filters
