// Key spend kept in the embedded database, so budgets survive restarts and binary upgrades.
// The gateway owns it: it loads the current periods at start (main thread, before serving);
// after that every call runs on one strand of the blocking pool (loads at reload, what the
// ledger settled every second and at shutdown). Workers never touch it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "llm/ledger.h"
#include "store/sqlite.h"

namespace ganglion::llm {

class SpendStore {
 public:
  /// Opens or creates the database and its `key_spend` table. Main thread.
  static Result<std::unique_ptr<SpendStore>> open(const std::string& path);

  /// Hands the stored spend of each budgeted key's current period to `ledger`. One thread at a time.
  Result<void> loadInto(KeyLedger& ledger, const std::vector<config::KeyConfig>& keys,
                        std::chrono::system_clock::time_point now);
  /// Adds `deltas` to the stored totals in one transaction. One thread at a time.
  Result<void> add(const std::vector<KeyLedger::SpendDelta>& deltas);
  /// Moves whatever the ledger settled since the last flush into the database; on failure
  /// the ledger keeps it for the next try. One thread at a time.
  Result<void> flush(KeyLedger& ledger);
  /// Checks that the path still names the file that was opened. When it was removed (a
  /// clean-up) or replaced (a restore), SQLite would go on writing to the unlinked file and
  /// the next start would find no spend, so the path is opened again and every current
  /// period's spend the ledger knows is written to it (keeping a larger stored figure).
  /// Returns what happened, for the log; empty when the file is the same. Call before
  /// flush(); one thread at a time.
  std::string followFile(KeyLedger& ledger);

 private:
  struct FileId {
    uint64_t device = 0, inode = 0;
    bool operator==(const FileId&) const = default;
  };
  SpendStore(std::unique_ptr<store::Database> db, std::optional<FileId> id) : db_(std::move(db)), id_(id) {}
  static std::optional<FileId> fileIdOf(const std::string& path);
  /// Upserts `rows` in one transaction; an existing row becomes `merged` (SQL over spent_pico
  /// and excluded.spent_pico), capped at what an INTEGER holds. One thread at a time.
  Result<void> writeRows(const std::vector<KeyLedger::SpendDelta>& rows, std::string_view merged);
  std::unique_ptr<store::Database> db_;
  std::optional<FileId> id_;  ///< of the file opened
};

}  // namespace ganglion::llm
