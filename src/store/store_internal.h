// Private helpers of the store: RAII owners for SQLite handles, the cache of
// prepared statements, and the one translation of SQLite result codes into
// ty::Status. Only src/store/*.cc includes this.
//
// Not thread-safe: the Store serialises every use under its mutex.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace ty::store {

// The one place a SQLite result code becomes a Status. `what` names the
// operation for the message. SQLITE_OK, SQLITE_ROW and SQLITE_DONE are Ok.
Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

// Runs SQL text with no parameters (DDL, BEGIN/COMMIT).
Status Exec(sqlite3* db, const char* sql);

// A write transaction on the store's connection; rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction() {
    if (active_) (void)Exec(db_, "ROLLBACK");
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Status Begin() {
    TY_RETURN_IF_ERROR(Exec(db_, "BEGIN IMMEDIATE"));
    active_ = true;
    return Status::Ok();
  }
  Status Commit() {
    TY_RETURN_IF_ERROR(Exec(db_, "COMMIT"));
    active_ = false;
    return Status::Ok();
  }

 private:
  sqlite3* db_;
  bool active_ = false;
};

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

struct DbDeleter {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbDeleter>;

// A borrowed cached statement. Resets it and clears its bindings when it goes
// out of scope, so the next user finds it fresh and no read transaction is
// left open by an unfinished SELECT.
class ScopedStmt {
 public:
  ScopedStmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~ScopedStmt() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  ScopedStmt(const ScopedStmt&) = delete;
  ScopedStmt& operator=(const ScopedStmt&) = delete;

  sqlite3_stmt* get() const { return stmt_; }

  // Parameters are 1-based, as in SQLite.
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void Bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, const char* v) { Bind(i, std::string_view(v)); }
  void Bind(int i, const std::string& v) { Bind(i, std::string_view(v)); }
  void Bind(int i, const std::optional<int64_t>& v) {
    if (v) {
      Bind(i, *v);
    } else {
      sqlite3_bind_null(stmt_, i);
    }
  }

  // Steps once: true with a row, false when done, or the translated error.
  Result<bool> Step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteStatus(db_, rc, sqlite3_sql(stmt_));
  }
  // Runs a statement that returns no rows we care about.
  Status Exec() {
    int rc;
    while ((rc = sqlite3_step(stmt_)) == SQLITE_ROW) {
    }
    return SqliteStatus(db_, rc, sqlite3_sql(stmt_));
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::optional<int64_t> OptInt(int col) const {
    if (IsNull(col)) return std::nullopt;
    return Int(col);
  }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    if (p == nullptr) return {};
    return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

// Prepared statements keyed by their SQL text, prepared on first use and kept
// for the life of the connection (SQLITE_PREPARE_PERSISTENT).
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}

  // REQUIRES: the statement of `sql` is not already borrowed (no nesting of
  // the same SQL text).
  Result<sqlite3_stmt*> Get(const std::string& sql) {
    auto it = stmts_.find(sql);
    if (it != stmts_.end()) return it->second.get();
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return SqliteStatus(db_, rc, "prepare: " + sql);
    if (!stmt) return Internal("empty SQL statement: " + sql);
    return stmts_.emplace(sql, std::move(stmt)).first->second.get();
  }

 private:
  sqlite3* db_;
  std::unordered_map<std::string, StmtPtr> stmts_;
};

// Borrows the cached statement of SQL text `sql` as ScopedStmt `var` (in Store methods).
#define TY_STMT(var, sql)                                         \
  TY_ASSIGN_OR_RETURN(sqlite3_stmt* var##_raw, stmts_->Get(sql)); \
  ScopedStmt var(db_, var##_raw)

}  // namespace ty::store
