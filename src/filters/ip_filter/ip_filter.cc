// ip_filter: allow and deny lists of addresses and CIDR ranges (IPv4 and IPv6) matched on the
// client's address. Deny wins; a non-empty allow list refuses everyone not on it.
#include <boost/asio/ip/address.hpp>
#include <boost/json.hpp>

#include "filters/ip_filter/cidr.h"
#include "filters/registry.h"

namespace ganglion::filters {

namespace {

class IpFilter final : public http::Filter {
 public:
  IpFilter(std::vector<Cidr> allow, std::vector<Cidr> deny)
      : allow_(std::move(allow)), deny_(std::move(deny)) {}

  http::FilterStatus onRequest(http::FilterContext& ctx) const override {
    auto addr = parseAddress(ctx.client_ip);
    bool denied = !addr;
    if (addr) {
      for (const auto& c : deny_) denied = denied || c.contains(*addr);
      if (!denied && !allow_.empty()) {
        bool allowed = false;
        for (const auto& c : allow_) allowed = allowed || c.contains(*addr);
        denied = !allowed;
      }
    }
    if (!denied) return http::FilterStatus::kContinue;
    return http::replyWith(ctx, 403, "ip_not_allowed", "the client address is not allowed");
  }
  std::string_view kind() const override { return "ip_filter"; }

 private:
  std::vector<Cidr> allow_;
  std::vector<Cidr> deny_;
};

/// The settings as written, read with ipFilterSchema().
struct IpFilterSettings {
  std::vector<std::string> allow, deny;  ///< as written, for GET /config
  std::vector<Cidr> allow_ranges, deny_ranges;
};

template <std::vector<std::string> IpFilterSettings::*Text, std::vector<Cidr> IpFilterSettings::*Ranges,
          const char* What>
void readRanges(config::Reader& r, const config::Node& v, IpFilterSettings& s) {
  r.forEach(v, What, [&](const config::Node& n) {
    auto text = r.str(n, "address");
    if (!text) return;
    if (auto range = Cidr::parse(*text)) {
      (s.*Ranges).push_back(*range);
      (s.*Text).push_back(*text);
    } else {
      r.fail(n, fmt::format("'{}' is not an IP address or CIDR range", *text));
    }
  });
}

constexpr char kAllow[] = "allow";
constexpr char kDeny[] = "deny";

const config::Schema<IpFilterSettings>& ipFilterSchema() {
  using config::FieldKind;
  static const config::Schema<IpFilterSettings> schema{
      "ip_filter",
      {
          {.name = "allow",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "IPv4 or IPv6 addresses and CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`). When not empty, "
                  "clients outside it are refused.",
           .type_text = "list",
           .read = &readRanges<&IpFilterSettings::allow, &IpFilterSettings::allow_ranges, kAllow>,
           .show = &config::showStrings<IpFilterSettings, &IpFilterSettings::allow>},
          {.name = "deny",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "Clients inside are refused; `deny` wins over `allow`.",
           .type_text = "list",
           .read = &readRanges<&IpFilterSettings::deny, &IpFilterSettings::deny_ranges, kDeny>,
           .show = &config::showStrings<IpFilterSettings, &IpFilterSettings::deny>},
      },
      {},
      "ip_filter takes a map: { allow: [..], deny: [..] }"};
  return schema;
}

}  // namespace

FilterPtr buildIpFilter(const config::Node& node, config::Reader& r, const FilterInputs&,
                        boost::json::object& shown) {
  IpFilterSettings s;
  if (!readSettings(ipFilterSchema(), node, s, r)) return nullptr;
  if (s.allow.empty() && s.deny.empty()) {
    r.fail(node, "ip_filter needs 'allow' or 'deny'");
    return nullptr;
  }
  shown = config::fieldsToJson(ipFilterSchema(), s);
  return std::make_shared<IpFilter>(std::move(s.allow_ranges), std::move(s.deny_ranges));
}

std::string ipFilterDocsTable() { return config::docsTable(ipFilterSchema()); }

}  // namespace ganglion::filters
