// Key spend kept in the embedded database, so budgets survive restarts and binary upgrades.
// The gateway owns it: it loads the current periods at start (main thread, before serving);
// after that every call runs on one strand of the blocking pool (loads at reload, what the
// ledger settled every second and at shutdown). Workers never touch it.
#pragma once

#include <memory>
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
  Result<void> loadInto(KeyLedger& ledger, const std::vector<control::KeyConfig>& keys,
                        std::chrono::system_clock::time_point now);
  /// Adds `deltas` to the stored totals in one transaction. One thread at a time.
  Result<void> add(const std::vector<KeyLedger::SpendDelta>& deltas);
  /// Moves whatever the ledger settled since the last flush into the database; on failure
  /// the ledger keeps it for the next try. Returns the error, if any. One thread at a time.
  std::string flush(KeyLedger& ledger);

 private:
  explicit SpendStore(std::unique_ptr<store::Database> db) : db_(std::move(db)) {}
  std::unique_ptr<store::Database> db_;
};

}  // namespace ganglion::llm
