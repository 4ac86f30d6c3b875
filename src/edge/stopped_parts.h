// What the admin API stopped (POST /edge/{pipelines|connectors|sinks}/{name}/stop): kept by
// name across reloads and, in edge.data_dir/stopped.state, across restarts, until started
// again or removed from the config. EdgeRuntime asks it as it installs each part.
//
// Threads: the main thread only.
#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace ganglion::edge {

struct EdgeConfig;

class StoppedParts {
 public:
  /// The parts the admin API names: "pipelines", "connectors", "sinks". False for others.
  static bool knownPart(std::string_view part);
  /// Whether `cfg` has a part (`part`, as above) named `name`.
  static bool configHas(const EdgeConfig& cfg, std::string_view part, std::string_view name);
  /// "pipeline", "connector", "sink": how messages name one.
  static std::string_view singular(std::string_view part);

  /// Reads `dir`/stopped.state once (later calls do not read it again); a file that cannot be
  /// read leaves nothing stopped and says why. Then drops names `cfg` no longer has, and
  /// moves the file when `dir` changed (edge.data_dir reloaded); saved when either changed
  /// anything.
  void load(const std::filesystem::path& dir, const EdgeConfig& cfg);
  bool contains(std::string_view part, std::string_view name) const;
  /// Stops or starts one; whether that changed anything.
  bool set(std::string_view part, std::string_view name, bool stopped);
  /// Writes the set to the file loaded from (an empty set removes the file).
  Result<void> save() const;
  /// Every stopped part, as (part, name), sorted.
  const std::set<std::pair<std::string, std::string>>& all() const { return stopped_; }

  /// The file's body (JSON: {"pipelines":[...],"connectors":[...],"sinks":[...]}) and back;
  /// a body that does not parse is an error saying why. Exposed for tests and the fuzzer.
  static std::string encode(const std::set<std::pair<std::string, std::string>>& stopped);
  static Result<std::set<std::pair<std::string, std::string>>> decode(std::string_view body);

 private:
  std::filesystem::path file_;
  bool loaded_ = false;
  std::set<std::pair<std::string, std::string>> stopped_;
};

}  // namespace ganglion::edge
