#include "filters/ip_filter/cidr.h"

#include <boost/asio/ip/address.hpp>
#include <string>

#include "base/strings.h"

namespace ganglion::filters {

namespace {

/// The bits of byte `i` that a /`prefix` range fixes.
uint8_t maskByte(unsigned prefix, unsigned i) {
  unsigned keep = prefix > i * 8 ? std::min(8u, prefix - i * 8) : 0;
  return static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
}

}  // namespace

std::optional<Address16> parseAddress(std::string_view text) {
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  if (addr.is_v4()) {
    auto v6 = boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, addr.to_v4());
    return v6.to_bytes();
  }
  auto v6 = addr.to_v6();
  return v6.to_bytes();
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  size_t slash = text.find('/');
  auto addr = parseAddress(text.substr(0, slash));
  if (!addr) return std::nullopt;
  bool v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  Cidr c;
  c.base = *addr;
  c.prefix = 128;
  if (slash != std::string_view::npos) {
    auto bits = parseUint(text.substr(slash + 1));
    unsigned max = v4 ? 32 : 128;
    if (!bits || *bits > max) return std::nullopt;
    c.prefix = static_cast<unsigned>(*bits) + (v4 ? 96 : 0);
  }
  // Clear host bits so contains() compares prefixes only.
  for (unsigned i = 0; i < 16; ++i) c.base[i] &= maskByte(c.prefix, i);
  return c;
}

bool Cidr::contains(const Address16& a) const {
  for (unsigned i = 0; i < 16; ++i)
    if ((a[i] & maskByte(prefix, i)) != base[i]) return false;
  return true;
}

}  // namespace ganglion::filters
