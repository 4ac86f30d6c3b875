// State files in `edge.data_dir/state/`: a pipeline's detector histories, the rules' hold-offs.
// A file is written whole or not at all (a temporary file, fsynced, renamed over the old one,
// the directory fsynced) and carries a CRC, so a crash or a scribbled byte leaves the previous
// version or a file that is refused as a whole, never half of one.
//
//     "GNGLSTA1" | u32 crc32c(body) | u64 body length | body
//
// StateWriter writes them on a thread of its own (a 10 MB snapshot must not stall a worker,
// nor the log syncer's fsyncs); when two writes of one file wait, only the newer is written.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/result.h"

namespace ganglion::edge {

/// Writes `body` to `path` whole (see above). Any thread; blocks for the write and fsyncs.
Result<void> writeStateFile(const std::filesystem::path& path, std::string_view body);
/// Reads a state file's body. An absent file is an empty body with ok; a damaged one, an
/// error saying what is wrong with it.
Result<std::string> readStateFile(const std::filesystem::path& path);

/// What a pipeline keeps across restarts: its stages' state (Pipeline::saveState) and, per
/// rule reading it, the rule's state (RuleRunner::saveState) under the rule's state key.
struct SavedPipelineState {
  std::string pipeline;  ///< whose state it is (a file copied to another pipeline is refused)
  std::string stages;
  std::vector<std::pair<std::string, std::string>> rules;
  bool empty() const { return stages.empty() && rules.empty(); }
};
/// u8 version (1) | string pipeline | string stages | u32 rules | (string key, string state)
/// per rule.
std::string encodePipelineState(const SavedPipelineState& state);
/// An error when `body` is not what encodePipelineState() wrote; an empty body is an empty state.
Result<SavedPipelineState> decodePipelineState(std::string_view body);

class StateWriter {
 public:
  StateWriter();
  /// Writes what is pending, then ends the thread.
  ~StateWriter();
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  /// The process's writer (started on first use). Any thread.
  static StateWriter& shared();

  /// Writes `body` to `path` soon; a newer write of the same path replaces one still waiting.
  /// A failure is logged once per path until a write of it succeeds. `done(ok)` runs on the
  /// writer's thread once the file holds this body or a newer one (post from there to the
  /// thread that owns what it touches). Any thread.
  void write(std::filesystem::path path, std::string body, std::function<void(bool)> done = {});
  /// Returns once every write asked for before the call is done. Any thread but the writer's.
  void flush();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  struct Pending {
    std::string body;
    std::vector<std::function<void(bool)>> done;
  };
  std::map<std::filesystem::path, Pending> pending_;
  std::map<std::filesystem::path, bool> failing_;
  bool busy_ = false, stopping_ = false;
  std::thread thread_;
};

}  // namespace ganglion::edge
