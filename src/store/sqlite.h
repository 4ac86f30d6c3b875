// A thin RAII layer over SQLite: one connection, prepared statements, errors as Result.
// The embedded default store (issue 3: key spend). A Database is used by one thread at a
// time; the gateway keeps its databases on the main thread, never on a worker.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace ganglion::store {

class Statement;

class Database {
 public:
  /// Opens (creating if needed) `path` in WAL mode with a busy timeout, so a second process
  /// on the same file (a binary upgrade) waits instead of failing.
  static Result<std::unique_ptr<Database>> open(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  /// Runs one or more statements without results (schema, pragmas, BEGIN/COMMIT).
  Result<void> exec(const std::string& sql);
  Result<Statement> prepare(std::string_view sql);
  const std::string& path() const { return path_; }
  /// Rows the last INSERT, UPDATE or DELETE changed (0 for an INSERT OR IGNORE that ignored).
  int64_t changes() const;

 private:
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  std::string lastError() const;
  sqlite3* db_;
  std::string path_;
  friend class Statement;
};

/// A prepared statement. Bind parameters (1-based), then step() through rows.
class Statement {
 public:
  Statement(Statement&& other) noexcept : stmt_(other.stmt_), db_(other.db_) { other.stmt_ = nullptr; }
  Statement& operator=(Statement&&) = delete;
  ~Statement();

  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, int64_t value);
  /// What a step found: a row ready to read, or the end of the statement.
  enum class Step { kRow, kDone };
  /// Runs the statement to its next row. An error is an Error.
  Result<Step> step();
  /// Ready for another run with new bindings.
  void reset();
  int64_t integer(int column) const;
  double real(int column) const;
  std::string text(int column) const;

 private:
  Statement(sqlite3_stmt* stmt, Database* db) : stmt_(stmt), db_(db) {}
  sqlite3_stmt* stmt_;
  Database* db_;
  friend class Database;
};

}  // namespace ganglion::store
