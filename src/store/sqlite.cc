#include "store/sqlite.h"

#include <fmt/format.h>
#include <sqlite3.h>

namespace ganglion::store {

Result<std::unique_ptr<Database>> Database::open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Error{fmt::format("cannot open SQLite database '{}': {}", path, why)};
  }
  // Without write access SQLite opens the file read-only instead of failing, and every write
  // would then fail: refuse it here, where the start can say so.
  if (sqlite3_db_readonly(db, "main") == 1) {
    sqlite3_close(db);
    return Error{
        fmt::format("cannot write SQLite database '{}': the file (or its folder) is read-only", path)};
  }
  std::unique_ptr<Database> out(new Database(db, path));
  sqlite3_busy_timeout(db, 2000);
  // A rollback journal, not WAL: WAL maps its `-shm` index file into memory, and a process
  // that truncates that file (a backup restore, a clean-up script) kills the gateway with
  // SIGBUS at the next access. The gateway writes once a second, so WAL's concurrency buys
  // nothing here; FULL: each commit is on disk when it returns.
  auto ok = out->exec("PRAGMA journal_mode=TRUNCATE; PRAGMA synchronous=FULL;");
  if (!ok) return ok.error();
  return out;
}

Database::~Database() { sqlite3_close(db_); }

std::string Database::lastError() const { return fmt::format("{}: {}", path_, sqlite3_errmsg(db_)); }

Result<void> Database::exec(const std::string& sql) {
  char* message = nullptr;
  if (const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message); rc != SQLITE_OK) {
    std::string why = message ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    // Another connection holds the lock (past the busy timeout): the same call may work later.
    const bool busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
    return Error{fmt::format("{}: {}", path_, why), busy ? "sqlite_busy" : "sqlite_error", 0, busy};
  }
  return {};
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) != SQLITE_OK)
    return Error{lastError()};
  return Statement(stmt, this);
}

Statement::~Statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Statement& Statement::bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Result<Statement::Step> Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return Step::kRow;
  if (rc == SQLITE_DONE) return Step::kDone;
  return Error{db_->lastError()};
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Database::changes() const { return sqlite3_changes64(db_); }

int64_t Statement::integer(int column) const { return sqlite3_column_int64(stmt_, column); }

double Statement::real(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Statement::text(int column) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, column))) : std::string();
}

}  // namespace ganglion::store
