// An IP range in CIDR notation ("10.0.0.0/8", "2001:db8::/32", or a single address).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ganglion::filters {

/// An address as 16 bytes; IPv4 is mapped into ::ffff:0:0/96 so one comparison serves both.
using Address16 = std::array<uint8_t, 16>;

std::optional<Address16> parseAddress(std::string_view text);

struct Cidr {
  Address16 base{};
  unsigned prefix = 128;  ///< in the 128-bit space
  static std::optional<Cidr> parse(std::string_view text);
  bool contains(const Address16& a) const;
};

}  // namespace ganglion::filters
