#include "net/tls_config.h"

#include <boost/json.hpp>

#include "base/strings.h"

namespace ganglion::net {

namespace json = boost::json;
using config::FieldKind;

namespace {

void readCertificates(config::Reader& r, const config::Node& v, TlsServerSettings& s) {
  r.forEach(v, "certificates", [&](const config::Node& c) {
    if (!c.IsMap()) return r.fail(c, "a certificate is a map: { cert, key, server_names }");
    CertificateFiles files;
    config::readFields(certificateSchema(), c, files, r);
    s.certificates.push_back(std::move(files));
  });
}

json::value showCertificates(const TlsServerSettings& s) {
  return config::listToJson(certificateSchema(), s.certificates);
}

void readServerNames(config::Reader& r, const config::Node& v, CertificateFiles& files) {
  r.forEach(v, "server_names", [&](const config::Node& name) {
    if (auto s = r.str(name, "server name")) files.server_names.push_back(toLower(*s));
  });
}

json::value showServerNames(const CertificateFiles& files) {
  json::array out;
  for (const auto& n : files.server_names) out.emplace_back(n);
  return out;
}

}  // namespace

const config::Schema<CertificateFiles>& certificateSchema() {
  static const config::Schema<CertificateFiles> schema{
      "certificate",
      {
          {.name = "cert",
           .kind = FieldKind::kString,
           .member = &CertificateFiles::cert,
           .default_text = "",
           .doc = "PEM certificate chain file.",
           .required = true,
           .missing = "certificate needs 'cert' (a PEM file)",
           .type_text = "file"},
          {.name = "key",
           .kind = FieldKind::kString,
           .member = &CertificateFiles::key,
           .default_text = "",
           .doc = "PEM private key file (its path is shown by `GET /config`, never its contents).",
           .required = true,
           .missing = "certificate needs 'key' (a PEM file)",
           .type_text = "file"},
          {.name = "server_names",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "none",
           .doc = "SNI names this certificate serves: exact, or `*.example.com` for one label. Compared "
                  "without case.",
           .type_text = "list of strings",
           .read = readServerNames,
           .show = showServerNames},
      },
      {},
      "a certificate is a map: { cert, key, server_names }",
  };
  return schema;
}

const config::Schema<TlsServerSettings>& tlsServerSchema() {
  static const config::Schema<TlsServerSettings> schema{
      "tls",
      {
          {.name = "certificates",
           .kind = FieldKind::kCustom,
           .member = {},
           .default_text = "required",
           .doc = "PEM certificate chain and private key files (fields below). The first entry is the "
                  "default; a client's SNI name picks the entry whose `server_names` contains it (exact, or "
                  "`*.example.com` for one label). An unknown or absent SNI name gets the default, as in "
                  "nginx.",
           .type_text = "list of `{ cert, key, server_names }`",
           .read = readCertificates,
           .show = showCertificates},
          {.name = "client_ca",
           .kind = FieldKind::kString,
           .member = &TlsServerSettings::client_ca,
           .default_text = "none",
           .doc = "PEM bundle of CAs for client certificates (mutual TLS). Set: clients are asked for a "
                  "certificate.",
           .type_text = "file"},
          {.name = "require_client_cert",
           .kind = FieldKind::kBool,
           .member = &TlsServerSettings::require_client_cert,
           .default_text = "`true`",
           .doc = "With `client_ca`: a client without a valid certificate fails the handshake. `false`: a "
                  "certificate is asked for and verified if sent."},
          {.name = "min_version",
           .kind = FieldKind::kString,
           .member = &TlsServerSettings::min_version,
           .default_text = "`\"1.2\"`",
           .doc = "Oldest TLS version accepted.",
           .type_text = "`\"1.2\"` or `\"1.3\"`"},
      },
      {},
      "tls must be a map: { certificates: [ { cert, key, server_names } ], client_ca, ... }",
  };
  return schema;
}

const config::Schema<TlsClientSettings>& tlsClientSchema() {
  static const config::Schema<TlsClientSettings> schema{
      "upstream tls",
      {
          {.name = "verify",
           .kind = FieldKind::kBool,
           .member = &TlsClientSettings::verify,
           .default_text = "`true`",
           .doc = "`false` skips certificate verification (testing only)."},
          {.name = "ca",
           .kind = FieldKind::kString,
           .member = &TlsClientSettings::ca,
           .default_text = "system store",
           .doc = "PEM bundle to verify against instead.",
           .type_text = "file"},
          {.name = "cert",
           .kind = FieldKind::kString,
           .member = &TlsClientSettings::cert,
           .default_text = "none",
           .doc = "Client certificate for mutual TLS to the upstream (with `key`; both or neither).",
           .type_text = "file"},
          {.name = "key",
           .kind = FieldKind::kString,
           .member = &TlsClientSettings::key,
           .default_text = "none",
           .doc = "The client certificate's private key.",
           .type_text = "file"},
          {.name = "server_name",
           .kind = FieldKind::kString,
           .member = &TlsClientSettings::server_name,
           .default_text = "the target's host",
           .doc = "SNI and the name the certificate must match (useful when targets are IP addresses)."},
          {.name = "min_version",
           .kind = FieldKind::kString,
           .member = &TlsClientSettings::min_version,
           .default_text = "`\"1.2\"`",
           .doc = "Oldest TLS version accepted.",
           .type_text = "`\"1.2\"` or `\"1.3\"`"},
      },
      {},
      "upstream tls is true, or a map: { verify, ca, cert, key, server_name }",
  };
  return schema;
}

std::shared_ptr<TlsServerContext> readTlsServer(config::Reader& r, const config::Node& n) {
  TlsServerSettings settings;
  const size_t errors_before = r.errors.size();
  if (!config::isSectionMap(r, n, tlsServerSchema())) return nullptr;
  config::readFields(tlsServerSchema(), n, settings, r);
  if (settings.certificates.empty() && r.errors.size() == errors_before)
    r.fail(n, "tls needs at least one entry in 'certificates'");
  if (r.errors.size() != errors_before) return nullptr;
  auto ctx = TlsServerContext::create(settings);
  if (!ctx) {
    r.fail(n, ctx.error().message);
    return nullptr;
  }
  return *ctx;
}

std::shared_ptr<TlsClientContext> readTlsClient(config::Reader& r, const config::Node& n) {
  TlsClientSettings settings;
  if (n.IsScalar()) {
    auto on = r.boolean(n, "tls");
    if (!on || !*on) return nullptr;
  } else {
    const size_t errors_before = r.errors.size();
    if (!config::isSectionMap(r, n, tlsClientSchema())) return nullptr;
    config::readFields(tlsClientSchema(), n, settings, r);
    if (settings.cert.empty() != settings.key.empty())
      r.fail(n, "upstream tls needs both 'cert' and 'key', or neither");
    if (r.errors.size() != errors_before) return nullptr;
  }
  auto ctx = TlsClientContext::create(settings);
  if (!ctx) {
    r.fail(n, ctx.error().message);
    return nullptr;
  }
  return *ctx;
}

}  // namespace ganglion::net
