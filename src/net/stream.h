// A connection's byte stream: plain TCP, or TLS over TCP. Each operation takes one branch,
// so plain connections keep a direct socket call on the hot path. Satisfies Asio's
// AsyncReadStream/AsyncWriteStream, so asio::async_write and friends work on it.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <optional>

namespace ganglion::net {

using TcpSocket = boost::asio::ip::tcp::socket;
using TlsStream = boost::asio::ssl::stream<TcpSocket>;

/// Owned by one connection on one worker thread.
class Stream {
 public:
  using executor_type = TcpSocket::executor_type;

  explicit Stream(TcpSocket socket) : tcp_(std::move(socket)) {}
  explicit Stream(boost::asio::io_context& io) : tcp_(io) {}

  /// Wraps the TCP socket in TLS with `ctx`; the handshake is the caller's next step.
  void startTls(boost::asio::ssl::context& ctx) { tls_.emplace(std::move(tcp_), ctx); }
  bool isTls() const { return tls_.has_value(); }
  TlsStream& tls() { return *tls_; }
  TcpSocket& socket() { return tls_ ? tls_->next_layer() : tcp_; }
  executor_type get_executor() { return tcp_.get_executor(); }

  template <typename Buffers, typename Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    if (tls_) return tls_->async_read_some(buffers, std::forward<Token>(token));
    return tcp_.async_read_some(buffers, std::forward<Token>(token));
  }
  template <typename Buffers, typename Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    if (tls_) return tls_->async_write_some(buffers, std::forward<Token>(token));
    return tcp_.async_write_some(buffers, std::forward<Token>(token));
  }

 private:
  TcpSocket tcp_;  ///< moved into tls_ by startTls(); its executor stays valid
  std::optional<TlsStream> tls_;
};

}  // namespace ganglion::net
