// headers: sets and removes request headers before forwarding and response headers before
// answering, as a filter so it composes in order with the others.
#include <boost/json.hpp>

#include "filters/registry.h"

namespace ganglion::filters {

namespace {

class HeadersFilter final : public http::Filter {
 public:
  HeadersFilter(config::HeaderOps request, config::HeaderOps response)
      : request_(std::move(request)), response_(std::move(response)) {}

  http::FilterStatus onRequest(http::FilterContext& ctx) const override {
    ctx.request.headers.applyOps(request_.remove, request_.add);
    return http::FilterStatus::kContinue;
  }
  void onResponse(http::FilterContext&, http::ResponseHead& head) const override {
    head.headers.applyOps(response_.remove, response_.add);
  }
  std::string_view kind() const override { return "headers"; }

 private:
  config::HeaderOps request_;
  config::HeaderOps response_;
};

/// The settings as written, read with headersSchema().
struct HeadersSettings {
  config::HeaderOps request, response;
};

template <config::HeaderOps HeadersSettings::*Member, const char* What>
void readOps(config::Reader& r, const config::Node& v, HeadersSettings& s) {
  s.*Member = r.headerOps(v, What);
}

template <config::HeaderOps HeadersSettings::*Member>
boost::json::value showOps(const HeadersSettings& s) {
  return config::headerOpsToJson(s.*Member);
}

constexpr char kRequest[] = "headers.request";
constexpr char kResponse[] = "headers.response";

const config::Schema<HeadersSettings>& headersSchema() {
  using config::FieldKind;
  static const config::Schema<HeadersSettings> schema{
      "headers",
      {
          {.name = "request",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`{ add, remove }` applied to the client's request before it is forwarded.",
           .type_text = "map",
           .read = &readOps<&HeadersSettings::request, kRequest>,
           .show = &showOps<&HeadersSettings::request>},
          {.name = "response",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "`{ add, remove }` applied to every response head, local replies and gateway errors "
                  "included.",
           .type_text = "map",
           .read = &readOps<&HeadersSettings::response, kResponse>,
           .show = &showOps<&HeadersSettings::response>},
      },
      {},
      "headers takes a map: { request: {add, remove}, response: {add, remove} }"};
  return schema;
}

}  // namespace

FilterPtr buildHeaders(const config::Node& node, config::Reader& r, const FilterInputs&,
                       boost::json::object& shown) {
  HeadersSettings s;
  if (!readSettings(headersSchema(), node, s, r)) return nullptr;
  bool ok = true;
  for (const auto& [name, value] : s.request.add) {
    if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) {
      r.fail(node["request"], fmt::format("headers filter may not set '{}'", name));
      ok = false;
    }
  }
  if (!ok) return nullptr;
  shown = config::fieldsToJson(headersSchema(), s);
  return std::make_shared<HeadersFilter>(std::move(s.request), std::move(s.response));
}

std::string headersDocsTable() { return config::docsTable(headersSchema()); }

}  // namespace ganglion::filters
