// The host of a config address (a listener's, the admin API's) as the IP address to bind:
// an IP address as written, or `localhost` as 127.0.0.1. Any thread.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace ganglion::net {

/// nullopt for a host that is neither (names are not resolved for binding).
inline std::optional<boost::asio::ip::address> bindAddressOf(std::string_view host) {
  boost::system::error_code ec;
  auto addr =
      boost::asio::ip::make_address(host == "localhost" ? std::string("127.0.0.1") : std::string(host), ec);
  if (ec) return std::nullopt;
  return addr;
}

}  // namespace ganglion::net
