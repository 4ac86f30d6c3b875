// TLS contexts built at config load (main thread) and shared read-only by workers: a server
// context per TLS listener (certificates chosen by SNI, optional client-certificate
// verification) and a client context per HTTPS upstream (peer verification, optional client
// certificate).
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace ganglion::net {

struct CertificateFiles {
  std::string cert;                       ///< PEM chain
  std::string key;                        ///< PEM private key
  std::vector<std::string> server_names;  ///< SNI names ("*.example.com" allowed); first cert is the default
};

struct TlsServerSettings {
  std::vector<CertificateFiles> certificates;
  std::string client_ca;  ///< PEM bundle; set → clients are asked for a certificate
  bool require_client_cert = true;
  std::string min_version = "1.2";  ///< "1.2" or "1.3"
};

class TlsServerContext {
 public:
  /// Loads every file; an error names the file and OpenSSL's reason.
  static Result<std::shared_ptr<TlsServerContext>> create(const TlsServerSettings& settings);
  /// The default context new connections start with; SNI may switch to another.
  boost::asio::ssl::context& context() { return *contexts_.front(); }
  const TlsServerSettings& settings() const { return settings_; }

 private:
  static int onServerName(SSL* ssl, int* alert, void* arg);
  TlsServerSettings settings_;
  std::vector<std::unique_ptr<boost::asio::ssl::context>> contexts_;  ///< parallel to certificates
};

struct TlsClientSettings {
  bool verify = true;
  std::string ca;    ///< PEM bundle; empty = the system store
  std::string cert;  ///< optional client certificate (mTLS to the upstream)
  std::string key;
  std::string server_name;  ///< SNI and the name verified; empty = the target's host
  std::string min_version = "1.2";
};

class TlsClientContext {
 public:
  static Result<std::shared_ptr<TlsClientContext>> create(const TlsClientSettings& settings);
  boost::asio::ssl::context& context() { return ctx_; }
  const TlsClientSettings& settings() const { return settings_; }

 private:
  explicit TlsClientContext(TlsClientSettings s);
  TlsClientSettings settings_;
  boost::asio::ssl::context ctx_;
};

/// OpenSSL's most recent error as text ("" if none), clearing the queue.
std::string lastTlsError();

}  // namespace ganglion::net
