// The `tls` maps of listeners and upstreams, declared once (config/schema.h) and built into
// TLS contexts. Main thread, at config load.
#pragma once

#include <memory>

#include "config/reader.h"
#include "config/schema.h"
#include "net/tls.h"

namespace ganglion::net {

const config::Schema<TlsServerSettings>& tlsServerSchema();
const config::Schema<CertificateFiles>& certificateSchema();
const config::Schema<TlsClientSettings>& tlsClientSchema();

/// A listener's `tls` map, read and loaded (every file); null with the errors in `r`.
std::shared_ptr<TlsServerContext> readTlsServer(config::Reader& r, const config::Node& n);
/// An upstream's `tls`: `true` (the system store) or a map; null when false or on errors.
std::shared_ptr<TlsClientContext> readTlsClient(config::Reader& r, const config::Node& n);

}  // namespace ganglion::net
