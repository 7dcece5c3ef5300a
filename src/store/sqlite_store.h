// The embedded Store: one SQLite database in the data directory, WAL journal, fsync on every commit.
#pragma once
#include <sqlite3.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "store/store.h"

namespace trellis::store {

// The schema version this binary writes; databases with a newer one are refused.
int sqliteSchemaVersion();
// The file names inside the data directory.
inline constexpr const char* kSqliteDatabaseFile = "trellis.db";
inline constexpr const char* kLockFile = "trellisd.lock";
// How many revisions of deletions changesSince can report; older asks get `compacted`.
inline constexpr int64_t kDefaultKeptRevisions = 10000;

// EveryCommit: a commit is fsynced before it returns (what the API acknowledges to its callers). Replica: a crash
// may lose the last commits but never leaves half of one (WAL with synchronous=NORMAL), for a data-plane host's
// replica, which catches up from the API servers' revision anyway.
enum class Durability { EveryCommit, Replica };

class SqliteStore final : public Store {
 public:
  // Takes the directory lock, opens and migrates the database. Throws std::runtime_error.
  explicit SqliteStore(const std::string& dataDir, int64_t keptRevisions = kDefaultKeptRevisions,
                       Durability durability = Durability::EveryCommit);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  std::optional<Record> get(std::string_view kind, std::string_view id) override;
  std::vector<std::optional<Record>> getMany(const std::vector<RecordKey>& keys) override;
  std::vector<Record> list(std::string_view kind, std::string_view after = {}, size_t limit = 0) override;
  size_t count(std::string_view kind, std::string_view idPrefix = {}) override;
  StoreContents readAll() override;
  StoreChanges changesSince(int64_t revision) override;
  std::optional<int64_t> commit(const std::vector<Condition>& conditions, const std::vector<Op>& ops) override;
  // A replica's commit (a proxy's copy of the API servers' records): applies `ops` atomically at exactly
  // `revision`, the primary's revision for them, which must be past this store's (std::invalid_argument if not).
  // No ops: only moves the revision on. Returns `revision`.
  int64_t commitAt(int64_t revision, const std::vector<Op>& ops);
  int64_t revision() override;
  void watch(std::function<void(int64_t revision)> fn) override;

 private:
  enum Statement {
    kBegin,
    kBeginImmediate,
    kCommit,
    kRollback,
    kGet,
    kList,
    kListAll,
    kModRevision,
    kUpsert,
    kDelete,
    kGetRevision,
    kSetRevision,
    kChangedSince,
    kDeletedSince,
    kRecordDeletion,
    kGetCompacted,
    kSetCompacted,
    kPruneDeletions,
    kCount,
    kCountOfKind,
    kAddToCount,
    kStatementCount
  };

  void lockDirectory();
  void openDatabase(Durability durability);
  void migrate();
  void syncDirectory();
  void exec(const char* sql);
  sqlite3_stmt* statement(Statement which);
  std::optional<int64_t> write(const std::vector<Condition>& conditions, const std::vector<Op>& ops, int64_t at);
  std::optional<Record> getLocked(std::string_view kind, std::string_view id);
  int64_t readRevision();
  int64_t readCompacted();
  template <class Read>
  auto readConsistently(Read&& read);
  [[noreturn]] void fail(const std::string& what);

  std::string dataDir_;
  std::string dbPath_;
  int lockFd_ = -1;
  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> statements_;  // prepared once, on first use

  std::mutex mutex_;  // one connection: every database call holds it
  std::atomic<int64_t> revision_{0};
  int64_t keptRevisions_;
  int64_t compacted_ = 0;  // deletions at or before this revision are pruned; guarded by mutex_

  std::mutex watchMutex_;
  std::vector<std::function<void(int64_t)>> watchers_;
};

}  // namespace trellis::store
