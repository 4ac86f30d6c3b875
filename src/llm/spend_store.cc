#include "llm/spend_store.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <limits>

namespace ganglion::llm {

namespace {

std::string_view kindName(KeyLimits::Period kind) {
  return kind == KeyLimits::Period::kDay ? "day" : "month";
}

constexpr auto kMaxStored = static_cast<Picodollars>(std::numeric_limits<int64_t>::max());

}  // namespace

Result<std::unique_ptr<SpendStore>> SpendStore::open(const std::string& path) {
  auto db = store::Database::open(path);
  if (!db) return db.error();
  // One row per key and budget period; spend in picodollars (exact, like the ledger).
  auto ok = (*db)->exec(
      "CREATE TABLE IF NOT EXISTS key_spend ("
      " key TEXT NOT NULL, kind TEXT NOT NULL, period INTEGER NOT NULL,"
      " spent_pico INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL DEFAULT (unixepoch()),"
      " PRIMARY KEY (key, kind, period)) WITHOUT ROWID");
  if (!ok) return ok.error();
  return std::unique_ptr<SpendStore>(new SpendStore(std::move(*db), fileIdOf(path)));
}

std::optional<SpendStore::FileId> SpendStore::fileIdOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

std::string SpendStore::followFile(KeyLedger& ledger) {
  const std::string path = db_->path();
  const auto now = fileIdOf(path);
  if (now && now == id_) return {};
  const char* what = now ? "was replaced" : "was removed";
  auto again = open(path);
  if (!again)
    return fmt::format("{} {} while the gateway ran and cannot be opened again: {}", path, what,
                       again.error().message);
  auto& fresh = **again;
  // The deltas are part of the totals written below; taking them keeps them from being added twice.
  auto deltas = ledger.takeUnflushed();
  auto totals = ledger.currentSpend();
  // A larger figure already in the file (a restored copy) stays.
  if (auto written = fresh.writeRows(totals, "max(spent_pico, excluded.spent_pico)"); !written) {
    ledger.keepUnflushed(std::move(deltas));
    return fmt::format("{} {} while the gateway ran and cannot be written: {}", path, what,
                       written.error().message);
  }
  db_ = std::move(fresh.db_);
  id_ = fresh.id_;
  return fmt::format("{} {} while the gateway ran: opened it again and wrote the current spend of {} key(s)",
                     path, what, totals.size());
}

Result<void> SpendStore::loadInto(KeyLedger& ledger, const std::vector<config::KeyConfig>& keys,
                                  std::chrono::system_clock::time_point now) {
  auto stmt = db_->prepare("SELECT spent_pico FROM key_spend WHERE key = ?1 AND kind = ?2 AND period = ?3");
  if (!stmt) return stmt.error();
  for (const auto& k : keys) {
    if (!k.limits.budget) continue;
    const int64_t period = budgetPeriod(k.limits.period, now).first;
    stmt->reset();
    stmt->bind(1, k.name).bind(2, kindName(k.limits.period)).bind(3, period);
    auto row = stmt->step();
    if (!row) return row.error();
    if (*row == store::Statement::Step::kRow)
      ledger.restore(k.name, k.limits.period, period,
                     static_cast<Picodollars>(std::max<int64_t>(0, stmt->integer(0))));
  }
  return {};
}

Result<void> SpendStore::add(const std::vector<KeyLedger::SpendDelta>& deltas) {
  return writeRows(deltas, "spent_pico + excluded.spent_pico");
}

Result<void> SpendStore::writeRows(const std::vector<KeyLedger::SpendDelta>& rows, std::string_view merged) {
  if (rows.empty()) return {};
  auto begin = db_->exec("BEGIN IMMEDIATE");
  if (!begin) return begin.error();
  auto stmt = db_->prepare(fmt::format(
      "INSERT INTO key_spend (key, kind, period, spent_pico) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT (key, kind, period) DO UPDATE SET spent_pico = min({}, ?5), updated_at = unixepoch()",
      merged));
  if (!stmt) {
    (void)db_->exec("ROLLBACK");
    return stmt.error();
  }
  for (const auto& d : rows) {
    stmt->reset();
    stmt->bind(1, d.key).bind(2, kindName(d.kind)).bind(3, d.period);
    stmt->bind(4, static_cast<int64_t>(std::min(d.amount, kMaxStored)))
        .bind(5, static_cast<int64_t>(kMaxStored));
    if (auto done = stmt->step(); !done) {
      (void)db_->exec("ROLLBACK");
      return done.error();
    }
  }
  return db_->exec("COMMIT");
}

Result<void> SpendStore::flush(KeyLedger& ledger) {
  auto deltas = ledger.takeUnflushed();
  auto ok = add(deltas);
  if (!ok) ledger.keepUnflushed(std::move(deltas));
  return ok;
}

}  // namespace ganglion::llm
