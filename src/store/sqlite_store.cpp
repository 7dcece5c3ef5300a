#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "common/log.h"

namespace trellis::store {

namespace {

// Migration N (1-based) brings the schema from version N-1 to N. Append new steps; never edit old ones.
const char* const kMigrations[] = {
    // v1: the records and the store-wide revision counter.
    "CREATE TABLE records ("
    "  kind TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  create_revision INTEGER NOT NULL,"
    "  mod_revision INTEGER NOT NULL,"
    "  PRIMARY KEY (kind, id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta (key, value) VALUES ('revision', 0);",
    // v2: the change feed (changesSince). Records by revision, and a tombstone per deleted key at the
    // revision of its last deletion, pruned to the last keptRevisions revisions; `compacted_revision`
    // says up to where. Deletions before this migration were never recorded: its history starts here.
    "CREATE INDEX records_by_mod_revision ON records (mod_revision);"
    "CREATE TABLE deletions ("
    "  kind TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  revision INTEGER NOT NULL,"
    "  PRIMARY KEY (kind, id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX deletions_by_revision ON deletions (revision);"
    "INSERT INTO meta (key, value) SELECT 'compacted_revision', value FROM meta WHERE key = 'revision';",
    // v3: how many records each kind has, kept by every commit, so a quota check reads one row rather than
    // walking a kind's records (in a WITHOUT ROWID table the key's B-tree holds the values too).
    "CREATE TABLE counts (kind TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO counts (kind, n) SELECT kind, COUNT(*) FROM records GROUP BY kind;",
};

const char* const kStatementSql[] = {
    "BEGIN",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SELECT kind, id, value, create_revision, mod_revision FROM records WHERE kind = ?1 AND id = ?2",
    "SELECT kind, id, value, create_revision, mod_revision FROM records WHERE kind = ?1 AND id > ?2 "
    "ORDER BY id LIMIT ?3",
    "SELECT kind, id, value, create_revision, mod_revision FROM records ORDER BY kind, id",
    "SELECT mod_revision FROM records WHERE kind = ?1 AND id = ?2",
    "INSERT INTO records (kind, id, value, create_revision, mod_revision) VALUES (?1, ?2, ?3, ?4, ?4) "
    "ON CONFLICT (kind, id) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision",
    "DELETE FROM records WHERE kind = ?1 AND id = ?2",
    "SELECT value FROM meta WHERE key = 'revision'",
    "UPDATE meta SET value = ?1 WHERE key = 'revision'",
    // No ORDER BY: SQLite would walk the whole table in key order rather than sort the few rows the index finds.
    "SELECT kind, id, value, create_revision, mod_revision FROM records WHERE mod_revision > ?1",
    "SELECT kind, id FROM deletions WHERE revision > ?1",
    "INSERT INTO deletions (kind, id, revision) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (kind, id) DO UPDATE SET revision = excluded.revision",
    "SELECT value FROM meta WHERE key = 'compacted_revision'",
    "UPDATE meta SET value = ?1 WHERE key = 'compacted_revision'",
    "DELETE FROM deletions WHERE revision <= ?1",
    // The records under a prefix (small sets: a parent's index entries). Valid UTF-8 has no 0xFF byte, so
    // prefix + "\xff" bounds the prefix.
    "SELECT COUNT(*) FROM records WHERE kind = ?1 AND id >= ?2 AND id < ?2 || x'ff'",
    "SELECT n FROM counts WHERE kind = ?1",
    "INSERT INTO counts (kind, n) VALUES (?1, ?2) ON CONFLICT (kind) DO UPDATE SET n = n + excluded.n",
};

// Resets a cached statement (and drops its bindings) when the use ends, however it ends.
class Use {
 public:
  explicit Use(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Use() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  void bind(int index, std::string_view text) {
    // A null pointer would bind SQL NULL, and `id > NULL` matches nothing: bind "" instead.
    sqlite3_bind_text(stmt_, index, text.data() ? text.data() : "", static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void bind(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  // SQLITE_ROW or SQLITE_DONE; anything else is the caller's error to report.
  int step() { return sqlite3_step(stmt_); }
  std::string text(int column) {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, column))) : std::string();
  }
  int64_t integer(int column) { return sqlite3_column_int64(stmt_, column); }
  Record record() { return {text(0), text(1), text(2), integer(3), integer(4)}; }

 private:
  sqlite3_stmt* stmt_;
};

constexpr int kBusyTimeoutMs = 5000;

}  // namespace

int sqliteSchemaVersion() { return static_cast<int>(std::size(kMigrations)); }

SqliteStore::SqliteStore(const std::string& dataDir, int64_t keptRevisions, Durability durability)
    : dataDir_(dataDir),
      dbPath_((std::filesystem::path(dataDir) / kSqliteDatabaseFile).string()),
      keptRevisions_(std::max<int64_t>(1, keptRevisions)) {
  static_assert(std::size(kStatementSql) == kStatementCount);
  try {
    lockDirectory();
    openDatabase(durability);
    migrate();
    syncDirectory();
    std::lock_guard lock(mutex_);
    revision_ = readRevision();
    compacted_ = readCompacted();
  } catch (...) {
    // The destructor does not run for a half-built object: release what we hold.
    for (auto* stmt : statements_) sqlite3_finalize(stmt);
    if (db_) sqlite3_close(db_);
    if (lockFd_ >= 0) close(lockFd_);
    throw;
  }
}

SqliteStore::~SqliteStore() {
  for (auto* stmt : statements_) sqlite3_finalize(stmt);
  if (db_) sqlite3_close(db_);
  // Closing the descriptor releases the flock; the PID is left behind, harmless once unlocked.
  if (lockFd_ >= 0) close(lockFd_);
}

void SqliteStore::lockDirectory() {
  std::error_code ec;
  if (!std::filesystem::exists(dataDir_, ec)) {
    auto parent = std::filesystem::path(dataDir_).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (mkdir(dataDir_.c_str(), 0700) != 0 && errno != EEXIST)
      throw std::runtime_error("cannot create data directory " + dataDir_ + ": " + std::strerror(errno));
  }
  std::string lockPath = (std::filesystem::path(dataDir_) / kLockFile).string();
  lockFd_ = open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lockFd_ < 0) throw std::runtime_error("cannot open " + lockPath + ": " + std::strerror(errno));
  if (flock(lockFd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) throw std::runtime_error("cannot lock " + lockPath + ": " + std::strerror(err));
    char pid[32] = {};
    ssize_t n = pread(lockFd_, pid, sizeof pid - 1, 0);
    std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "unknown";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    throw std::runtime_error("data directory " + dataDir_ + " is in use by another trellisd (pid " + holder +
                             "); stop it or choose another --data-dir");
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(lockFd_, 0) != 0 || pwrite(lockFd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    throw std::runtime_error("cannot write " + lockPath + ": " + std::strerror(errno));
}

void SqliteStore::openDatabase(Durability durability) {
  int rc =
      sqlite3_open_v2(dbPath_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) fail("cannot open database");
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  sqlite3_extended_result_codes(db_, 1);
  {
    sqlite3_stmt* stmt = nullptr;
    std::string mode;
    if (sqlite3_prepare_v2(db_, "PRAGMA journal_mode = WAL", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
      mode = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    // Some filesystems cannot do WAL; the rollback journal is just as durable, only slower.
    if (mode != "wal") logWarn("store: ", dbPath_, " is not in WAL mode (journal_mode=", mode, ")");
  }
  // FULL: the WAL is fsynced at every commit, so an acknowledged commit survives power loss. NORMAL: only at
  // checkpoints; the database stays consistent, and the last commits may be lost.
  exec(durability == Durability::EveryCommit ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  // Up to 64 MiB of pages in memory (the default is 2 MiB): at 10,000 services the hot pages no longer fit in
  // 2 MiB and every read went back to the kernel for them.
  exec("PRAGMA cache_size = -65536");
  statements_.assign(kStatementCount, nullptr);
}

void SqliteStore::migrate() {
  std::lock_guard lock(mutex_);
  int version = 0;
  {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &stmt, nullptr) != SQLITE_OK) fail("cannot read schema");
    if (sqlite3_step(stmt) == SQLITE_ROW) version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
  }
  if (version > sqliteSchemaVersion())
    throw std::runtime_error("database " + dbPath_ + " has schema version " + std::to_string(version) +
                             ", newer than this trellisd understands (" + std::to_string(sqliteSchemaVersion()) +
                             "); run a newer trellisd");
  for (int next = version + 1; next <= sqliteSchemaVersion(); ++next) {
    exec("BEGIN IMMEDIATE");
    try {
      exec(kMigrations[next - 1]);
      exec(("PRAGMA user_version = " + std::to_string(next)).c_str());
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
    if (version > 0) logInfo("store: migrated ", dbPath_, " to schema version ", next);
  }
}

// Makes the names of files created in the data directory (database, WAL, lock) survive power loss.
void SqliteStore::syncDirectory() {
  int fd = open(dataDir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) logWarn("store: cannot fsync ", dataDir_, ": ", std::strerror(errno));
  if (fd >= 0) close(fd);
}

void SqliteStore::exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw std::runtime_error("database " + dbPath_ + ": " + message + " (in: " + sql + ")");
  }
}

sqlite3_stmt* SqliteStore::statement(Statement which) {
  auto& stmt = statements_[which];
  if (!stmt &&
      sqlite3_prepare_v3(db_, kStatementSql[which], -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK)
    fail("cannot prepare statement");
  return stmt;
}

void SqliteStore::fail(const std::string& what) {
  throw std::runtime_error("database " + dbPath_ + ": " + what + ": " + (db_ ? sqlite3_errmsg(db_) : "out of memory"));
}

int64_t SqliteStore::readRevision() {
  Use q(statement(kGetRevision));
  if (q.step() != SQLITE_ROW) fail("revision counter missing");
  return q.integer(0);
}

int64_t SqliteStore::readCompacted() {
  Use q(statement(kGetCompacted));
  if (q.step() != SQLITE_ROW) fail("compacted revision missing");
  return q.integer(0);
}

// Runs `read` in one read transaction, so everything it reads is at one revision. Holds mutex_.
template <class Read>
auto SqliteStore::readConsistently(Read&& read) {
  Use begin(statement(kBegin));
  if (begin.step() != SQLITE_DONE) fail("cannot begin read");
  try {
    auto out = read();
    Use commit(statement(kCommit));
    if (commit.step() != SQLITE_DONE) fail("cannot end read");
    return out;
  } catch (...) {
    if (sqlite3_get_autocommit(db_) == 0) {
      Use rollback(statement(kRollback));
      rollback.step();
    }
    throw;
  }
}

std::optional<Record> SqliteStore::get(std::string_view kind, std::string_view id) {
  std::lock_guard lock(mutex_);
  return getLocked(kind, id);
}

std::optional<Record> SqliteStore::getLocked(std::string_view kind, std::string_view id) {
  Use q(statement(kGet));
  q.bind(1, kind);
  q.bind(2, id);
  int rc = q.step();
  if (rc == SQLITE_ROW) return q.record();
  if (rc != SQLITE_DONE) fail("get failed");
  return std::nullopt;
}

// Under one hold of the connection's lock, which every commit takes too: one consistent revision.
std::vector<std::optional<Record>> SqliteStore::getMany(const std::vector<RecordKey>& keys) {
  std::lock_guard lock(mutex_);
  std::vector<std::optional<Record>> out;
  out.reserve(keys.size());
  for (const auto& key : keys) out.push_back(getLocked(key.kind, key.id));
  return out;
}

std::vector<Record> SqliteStore::list(std::string_view kind, std::string_view after, size_t limit) {
  std::lock_guard lock(mutex_);
  Use q(statement(kList));
  q.bind(1, kind);
  q.bind(2, after);
  q.bind(3, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));  // LIMIT -1: no limit
  std::vector<Record> out;
  int rc;
  while ((rc = q.step()) == SQLITE_ROW) out.push_back(q.record());
  if (rc != SQLITE_DONE) fail("list failed");
  return out;
}

size_t SqliteStore::count(std::string_view kind, std::string_view idPrefix) {
  std::lock_guard lock(mutex_);
  Use q(statement(idPrefix.empty() ? kCountOfKind : kCount));
  q.bind(1, kind);
  if (!idPrefix.empty()) q.bind(2, idPrefix);
  int rc = q.step();
  if (rc == SQLITE_DONE) return 0;  // a kind never written has no counts row
  if (rc != SQLITE_ROW) fail("count failed");
  return static_cast<size_t>(q.integer(0));
}

StoreContents SqliteStore::readAll() {
  std::lock_guard lock(mutex_);
  return readConsistently([&] {
    StoreContents out;
    out.revision = readRevision();
    Use q(statement(kListAll));
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.records.push_back(q.record());
    if (rc != SQLITE_DONE) fail("readAll failed");
    return out;
  });
}

StoreChanges SqliteStore::changesSince(int64_t revision) {
  std::lock_guard lock(mutex_);
  return readConsistently([&] {
    StoreChanges out;
    out.revision = readRevision();
    // A reader ahead of the store knows a different history: it too must start over.
    if (revision < compacted_ || revision > out.revision) {
      out.compacted = true;
      return out;
    }
    int rc;
    {
      Use q(statement(kDeletedSince));
      q.bind(1, revision);
      while ((rc = q.step()) == SQLITE_ROW) out.deleted.push_back({q.text(0), q.text(1)});
      if (rc != SQLITE_DONE) fail("reading deletions failed");
    }
    Use q(statement(kChangedSince));
    q.bind(1, revision);
    while ((rc = q.step()) == SQLITE_ROW) out.records.push_back(q.record());
    if (rc != SQLITE_DONE) fail("reading changes failed");
    return out;
  });
}

std::optional<int64_t> SqliteStore::commit(const std::vector<Condition>& conditions, const std::vector<Op>& ops) {
  return write(conditions, ops, 0);
}

int64_t SqliteStore::commitAt(int64_t revision, const std::vector<Op>& ops) {
  if (revision <= 0) throw std::invalid_argument("commitAt: revision must be positive");
  return *write({}, ops, revision);
}

// `at` 0: the next revision; else exactly `at`, which must be past the store's (a replica's commit).
std::optional<int64_t> SqliteStore::write(const std::vector<Condition>& conditions, const std::vector<Op>& ops,
                                          int64_t at) {
  int64_t newRevision = 0;
  {
    std::lock_guard lock(mutex_);
    int64_t compacted = compacted_;
    Use begin(statement(kBeginImmediate));
    if (begin.step() != SQLITE_DONE) fail("cannot begin commit");
    bool holds = true;
    bool committed = false;
    try {
      for (const auto& condition : conditions) {
        Use q(statement(kModRevision));
        q.bind(1, condition.kind);
        q.bind(2, condition.id);
        int rc = q.step();
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail("condition check failed");
        bool exists = rc == SQLITE_ROW;
        if (condition.modRevision == Condition::kMustNotExist)
          holds = !exists;
        else if (condition.modRevision == Condition::kMustExist)
          holds = exists;
        else
          holds = exists && q.integer(0) == condition.modRevision;
        if (!holds) break;
      }
      if (holds && (!ops.empty() || at)) {
        int64_t current = readRevision();
        if (at && at <= current)
          throw std::invalid_argument("commitAt: revision " + std::to_string(at) + " is not past the store's " +
                                      std::to_string(current));
        newRevision = at ? at : current + 1;
        std::map<std::string_view, int64_t> added;  // records created minus records deleted, by kind
        for (const auto& op : ops) {
          if (op.type == Op::Type::Put) {
            Use exists(statement(kModRevision));
            exists.bind(1, op.kind);
            exists.bind(2, op.id);
            int rc = exists.step();
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail("existence check failed");
            if (rc == SQLITE_DONE) ++added[op.kind];
          }
          Use q(statement(op.type == Op::Type::Put ? kUpsert : kDelete));
          q.bind(1, op.kind);
          q.bind(2, op.id);
          if (op.type == Op::Type::Put) {
            q.bind(3, op.value);
            q.bind(4, newRevision);
          }
          if (q.step() != SQLITE_DONE) fail("write failed");
          if (op.type == Op::Type::Delete && sqlite3_changes(db_) > 0) {
            --added[op.kind];
            Use tombstone(statement(kRecordDeletion));
            tombstone.bind(1, op.kind);
            tombstone.bind(2, op.id);
            tombstone.bind(3, newRevision);
            if (tombstone.step() != SQLITE_DONE) fail("recording the deletion failed");
          }
        }
        for (const auto& [kind, n] : added) {
          if (n == 0) continue;
          Use q(statement(kAddToCount));
          q.bind(1, kind);
          q.bind(2, n);
          if (q.step() != SQLITE_DONE) fail("count update failed");
        }
        // The change feed keeps the last keptRevisions_ revisions of deletions.
        if (newRevision - keptRevisions_ > compacted) {
          compacted = newRevision - keptRevisions_;
          Use prune(statement(kPruneDeletions));
          prune.bind(1, compacted);
          if (prune.step() != SQLITE_DONE) fail("pruning deletions failed");
          Use mark(statement(kSetCompacted));
          mark.bind(1, compacted);
          if (mark.step() != SQLITE_DONE) fail("compacted revision update failed");
        }
        Use q(statement(kSetRevision));
        q.bind(1, newRevision);
        if (q.step() != SQLITE_DONE) fail("revision update failed");
        Use end(statement(kCommit));
        if (end.step() != SQLITE_DONE) fail("commit failed");
        committed = true;
      }
    } catch (...) {
      if (sqlite3_get_autocommit(db_) == 0) {
        Use rollback(statement(kRollback));
        rollback.step();
      }
      throw;
    }
    if (!committed) {
      Use rollback(statement(kRollback));
      rollback.step();
      if (!holds) return std::nullopt;
      return revision_.load();  // nothing to write: as in etcd, the revision does not advance
    }
    revision_ = newRevision;
    compacted_ = compacted;
  }
  // Outside the lock: a watcher may call back into the store.
  std::vector<std::function<void(int64_t)>> watchers;
  {
    std::lock_guard lock(watchMutex_);
    watchers = watchers_;
  }
  for (const auto& fn : watchers) {
    try {
      fn(newRevision);
    } catch (const std::exception& e) {
      logError("store: watcher failed at revision ", newRevision, ": ", e.what());
    }
  }
  return newRevision;
}

int64_t SqliteStore::revision() { return revision_.load(); }

void SqliteStore::watch(std::function<void(int64_t revision)> fn) {
  std::lock_guard lock(watchMutex_);
  watchers_.push_back(std::move(fn));
}

std::unique_ptr<Store> openSqliteStore(const std::string& dataDir) { return std::make_unique<SqliteStore>(dataDir); }

}  // namespace trellis::store
