#include "net/tls.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include "base/strings.h"

namespace ganglion::net {

namespace ssl = boost::asio::ssl;

std::string lastTlsError() {
  unsigned long code = ERR_get_error();
  std::string out;
  while (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
    code = ERR_get_error();
  }
  return out;
}

namespace {

Result<int> minVersion(const std::string& v) {
  if (v == "1.2") return TLS1_2_VERSION;
  if (v == "1.3") return TLS1_3_VERSION;
  return Error{fmt::format("min_version must be \"1.2\" or \"1.3\", got '{}'", v)};
}

/// ALPN wire format: we speak HTTP/1.1 only (HTTP/2 would be added here).
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

bool nameMatches(const std::string& pattern, std::string_view host) {
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    std::string_view suffix(pattern.data() + 1, pattern.size() - 1);
    return host.size() > suffix.size() && iequals(host.substr(host.size() - suffix.size()), suffix) &&
           host.substr(0, host.size() - suffix.size()).find('.') == std::string_view::npos;
  }
  return iequals(pattern, host);
}

}  // namespace

int TlsServerContext::onServerName(SSL* ssl, int* /*alert*/, void* arg) {
  auto* self = static_cast<TlsServerContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  for (size_t i = 0; i < self->settings_.certificates.size(); ++i) {
    for (const auto& pattern : self->settings_.certificates[i].server_names) {
      if (!nameMatches(pattern, name)) continue;
      if (i != 0) {
        SSL_CTX* chosen = self->contexts_[i]->native_handle();
        SSL_set_SSL_CTX(ssl, chosen);
        // SSL_set_SSL_CTX swaps the certificate only; keep client verification in step.
        SSL_set_verify(ssl, SSL_CTX_get_verify_mode(chosen), SSL_CTX_get_verify_callback(chosen));
      }
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK;  // unknown name: the default certificate, as nginx does
}

namespace {

/// Why `path` must not be handed to OpenSSL: a FIFO or a device would block the open (and
/// with it a reload or the admin API's config check) until something writes to it.
std::optional<Error> notARegularFile(std::string_view what, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    return Error{fmt::format("{} '{}' is not a regular file", what, path)};
  return std::nullopt;
}

}  // namespace

Result<std::shared_ptr<TlsServerContext>> TlsServerContext::create(const TlsServerSettings& settings) {
  auto out = std::shared_ptr<TlsServerContext>(new TlsServerContext());
  out->settings_ = settings;
  auto version = minVersion(settings.min_version);
  if (!version) return version.error();
  ERR_clear_error();
  for (const auto& files : settings.certificates) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    SSL_CTX* native = ctx->native_handle();
    SSL_CTX_set_min_proto_version(native, *version);
    SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (auto bad = notARegularFile("certificate", files.cert)) return *bad;
    if (auto bad = notARegularFile("private key", files.key)) return *bad;
    if (SSL_CTX_use_certificate_chain_file(native, files.cert.c_str()) != 1)
      return Error{fmt::format("cannot load certificate '{}': {}", files.cert, lastTlsError())};
    if (SSL_CTX_use_PrivateKey_file(native, files.key.c_str(), SSL_FILETYPE_PEM) != 1)
      return Error{fmt::format("cannot load private key '{}': {}", files.key, lastTlsError())};
    if (SSL_CTX_check_private_key(native) != 1)
      return Error{fmt::format("private key '{}' does not match certificate '{}'", files.key, files.cert)};
    SSL_CTX_set_alpn_select_cb(
        native,
        [](SSL*, const unsigned char** out_proto, unsigned char* out_len, const unsigned char* in,
           unsigned int in_len, void*) -> int {
          unsigned char* selected = nullptr;
          if (SSL_select_next_proto(&selected, out_len, kAlpnHttp11, sizeof kAlpnHttp11, in, in_len) !=
              OPENSSL_NPN_NEGOTIATED)
            return SSL_TLSEXT_ERR_NOACK;
          *out_proto = selected;
          return SSL_TLSEXT_ERR_OK;
        },
        nullptr);
    if (!settings.client_ca.empty()) {
      if (auto bad = notARegularFile("client CA", settings.client_ca)) return *bad;
      if (SSL_CTX_load_verify_locations(native, settings.client_ca.c_str(), nullptr) != 1)
        return Error{fmt::format("cannot load client CA '{}': {}", settings.client_ca, lastTlsError())};
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(settings.client_ca.c_str());
      if (names) SSL_CTX_set_client_CA_list(native, names);
      int mode = SSL_VERIFY_PEER | (settings.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
      SSL_CTX_set_verify(native, mode, nullptr);
    }
    // Session tickets on; the id context lets resumed sessions keep client verification.
    static const unsigned char kSessionId[] = "ganglion";
    SSL_CTX_set_session_id_context(native, kSessionId, sizeof kSessionId - 1);
    out->contexts_.push_back(std::move(ctx));
  }
  if (out->contexts_.empty()) return Error{"tls needs at least one certificate"};
  SSL_CTX_set_tlsext_servername_callback(out->contexts_.front()->native_handle(),
                                         &TlsServerContext::onServerName);
  SSL_CTX_set_tlsext_servername_arg(out->contexts_.front()->native_handle(), out.get());
  return out;
}

TlsClientContext::TlsClientContext(TlsClientSettings s)
    : settings_(std::move(s)), ctx_(ssl::context::tls_client) {}

Result<std::shared_ptr<TlsClientContext>> TlsClientContext::create(const TlsClientSettings& settings) {
  auto out = std::shared_ptr<TlsClientContext>(new TlsClientContext(settings));
  SSL_CTX* native = out->ctx_.native_handle();
  auto version = minVersion(settings.min_version);
  if (!version) return version.error();
  SSL_CTX_set_min_proto_version(native, *version);
  ERR_clear_error();
  if (settings.verify) {
    if (!settings.ca.empty()) {
      if (auto bad = notARegularFile("CA", settings.ca)) return *bad;
      if (SSL_CTX_load_verify_locations(native, settings.ca.c_str(), nullptr) != 1)
        return Error{fmt::format("cannot load CA '{}': {}", settings.ca, lastTlsError())};
    } else if (SSL_CTX_set_default_verify_paths(native) != 1) {
      return Error{fmt::format("cannot load the system CA store: {}", lastTlsError())};
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
  }
  if (!settings.cert.empty()) {
    if (auto bad = notARegularFile("client certificate", settings.cert)) return *bad;
    if (auto bad = notARegularFile("client key", settings.key)) return *bad;
    if (SSL_CTX_use_certificate_chain_file(native, settings.cert.c_str()) != 1)
      return Error{fmt::format("cannot load client certificate '{}': {}", settings.cert, lastTlsError())};
    if (SSL_CTX_use_PrivateKey_file(native, settings.key.c_str(), SSL_FILETYPE_PEM) != 1)
      return Error{fmt::format("cannot load client key '{}': {}", settings.key, lastTlsError())};
  }
  SSL_CTX_set_alpn_protos(native, kAlpnHttp11, sizeof kAlpnHttp11);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_CLIENT);
  return out;
}

}  // namespace ganglion::net
