// The admin API listener. Runs on the main thread's event loop, apart from the workers, so
// it answers while they are saturated. Every path but /healthz needs the bearer token.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <string>

#include "base/buffer.h"
#include "control/config.h"

namespace ganglion::control {

/// What the admin API can ask of the gateway. All called on the main thread.
struct AdminApi {
  std::function<bool()> ready;
  std::function<std::string()> metrics;
  std::function<std::string()> config_json;
  /// Reloads from the config file; returns {HTTP status, JSON body}. The admin API goes on
  /// answering other connections while it runs.
  std::function<boost::asio::awaitable<std::pair<int, std::string>>()> reload;
  /// JSON: every key with LLM limits, its limits and its spend in the current period.
  std::function<std::string()> llm_keys;
};

class AdminServer {
 public:
  AdminServer(boost::asio::io_context& io, AdminApi api);
  /// Binds and starts accepting. Returns an error message or "". Main thread.
  /// `inherited_fd` ≥ 0: a listening socket handed down by a binary upgrade, adopted as is.
  std::string start(const HostPort& address, std::string token, int inherited_fd = -1);
  /// The listening socket, to hand down in a binary upgrade.
  int nativeHandle() { return acceptor_.is_open() ? acceptor_.native_handle() : -1; }
  void setToken(std::string token) { token_ = std::move(token); }
  void stop();

 private:
  boost::asio::awaitable<void> acceptLoop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);
  struct Reply {
    int status = 0;
    std::string content_type;
    std::string body;
  };
  boost::asio::awaitable<Reply> dispatch(std::string_view method, std::string_view path,
                                         std::string_view authorization);

  boost::asio::io_context& io_;
  AdminApi api_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::string token_;
  BufferPool buffers_{16};
};

}  // namespace ganglion::control
