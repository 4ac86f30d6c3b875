// ip_filter: allow and deny lists of addresses and CIDR ranges (IPv4 and IPv6) matched on the
// client's address. Deny wins; a non-empty allow list refuses everyone not on it.
#include <boost/asio/ip/address.hpp>

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
    ctx.reply.status = 403;
    ctx.reply.type = "ip_not_allowed";
    ctx.reply.message = "the client address is not allowed";
    return http::FilterStatus::kReply;
  }
  std::string_view kind() const override { return "ip_filter"; }

 private:
  std::vector<Cidr> allow_;
  std::vector<Cidr> deny_;
};

}  // namespace

FilterPtr buildIpFilter(const config::Node& node, config::Reader& r, const config::Config&) {
  if (!node.IsMap()) {
    r.fail(node, "ip_filter takes a map: { allow: [..], deny: [..] }");
    return nullptr;
  }
  r.checkKeys(node, {"allow", "deny"}, "ip_filter");
  std::vector<Cidr> allow, deny;
  bool ok = true;
  auto read = [&](const char* field, std::vector<Cidr>& out) {
    r.forEach(node[field], field, [&](const config::Node& n) {
      auto s = r.str(n, "address");
      if (!s) return;
      auto c = Cidr::parse(*s);
      if (!c) {
        r.fail(n, fmt::format("'{}' is not an IP address or CIDR range", *s));
        ok = false;
      } else {
        out.push_back(*c);
      }
    });
  };
  read("allow", allow);
  read("deny", deny);
  if (allow.empty() && deny.empty()) r.fail(node, "ip_filter needs 'allow' or 'deny'");
  if (!ok) return nullptr;
  return std::make_shared<IpFilter>(std::move(allow), std::move(deny));
}

}  // namespace ganglion::filters
