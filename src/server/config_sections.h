// The top-level sections of a config, listed in one place: the order they are read in, how
// each is read and shown by GET /config, and the docs table of the top level. Adding a
// section is its schema or reader in its module plus one entry in config_sections.cc. Main
// thread (load, reload) or the blocking pool (POST /config/check).
#pragma once

#include "config/config.h"
#include "config/reader.h"
#include "config/schema.h"
#include "server/gateway_config.h"

namespace ganglion::server {

/// Every top-level section as a field of Config, in reading order: a section's
/// reader may use the sections before it (routes use listeners, keys and state; models use
/// providers).
const config::Schema<Config>& topLevelSchema();

// The readers of sections with more than a schema behind them (config_loader.cc): each gets
// the value written under its key.
void readListeners(config::Reader& r, const config::Node& v, Config& cfg);
void readUpstreams(config::Reader& r, const config::Node& v, Config& cfg);
void readRoutes(config::Reader& r, const config::Node& v, Config& cfg);
void readKeySection(config::Reader& r, const config::Node& v, Config& cfg);
void readAdminSection(config::Reader& r, const config::Node& v, Config& cfg);
void readStateSection(config::Reader& r, const config::Node& v, Config& cfg);

}  // namespace ganglion::server
