// The field tables of docs/configuration.md, one per declared section, listed in one place.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ganglion::server {

/// Every section declared so far, by the marker that frames its table in
/// docs/configuration.md (`<!-- schema:listener -->` ... `<!-- /schema -->`).
struct DocsTable {
  std::string_view marker;
  std::string table;
};
std::vector<DocsTable> schemaDocsTables();

}  // namespace ganglion::server
