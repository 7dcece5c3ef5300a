#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "store/records.h"

namespace trellis::store {
namespace {

namespace fs = std::filesystem;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "trellis-store-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    dir_ = (fs::path(root_) / "data").string();  // not yet there: the store creates it
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string root_;
  std::string dir_;
};

TEST_F(SqliteStoreTest, CreatesPrivateDirectoryAndStartsEmpty) {
  auto store = openSqliteStore(dir_);
  struct stat st {};
  ASSERT_EQ(stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(store->revision(), 0);
  EXPECT_FALSE(store->get("service", "svc-1"));
  EXPECT_TRUE(store->list("service").empty());
  EXPECT_TRUE(store->readAll().records.empty());
  // WAL journal in use, and the lock file names us.
  ASSERT_TRUE(store->commit({}, {Op::put("k", "i", "{}")}));
  EXPECT_TRUE(fs::exists(fs::path(dir_) / (std::string(kSqliteDatabaseFile) + "-wal")));
  std::ifstream lock(fs::path(dir_) / kLockFile);
  std::string pid;
  lock >> pid;
  EXPECT_EQ(pid, std::to_string(getpid()));
}

TEST_F(SqliteStoreTest, CountsSurviveAReopen) {
  {
    auto store = openSqliteStore(dir_);
    ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-1", "a"), Op::put("service", "svc-2", "b")}));
    ASSERT_TRUE(store->commit({}, {Op::del("service", "svc-1")}));
  }
  auto store = openSqliteStore(dir_);
  EXPECT_EQ(store->count("service"), 1u);
}

TEST_F(SqliteStoreTest, ReopenKeepsDataAndRevision) {
  {
    auto store = openSqliteStore(dir_);
    ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-1", "v1")}));
    ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-1", "v2"), Op::put("listener", "l-1", "x")}));
  }
  auto store = openSqliteStore(dir_);
  EXPECT_EQ(store->revision(), 2);
  auto rec = store->get("service", "svc-1");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->value, "v2");
  EXPECT_EQ(rec->createRevision, 1);
  EXPECT_EQ(rec->modRevision, 2);
  EXPECT_EQ(store->commit({}, {Op::del("listener", "l-1")}), 3) << "the counter continues, never reuses";
}

TEST_F(SqliteStoreTest, SecondOpenInSameProcessIsRefused) {
  auto store = openSqliteStore(dir_);
  try {
    openSqliteStore(dir_);
    FAIL() << "second open succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir_), std::string::npos) << e.what();
  }
}

TEST_F(SqliteStoreTest, SecondProcessIsRefusedWithDirAndPid) {
  auto store = openSqliteStore(dir_);
  int pipeFds[2];
  ASSERT_EQ(pipe(pipeFds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipeFds[0]);
    std::string message = "opened";
    try {
      openSqliteStore(dir_);
    } catch (const std::exception& e) {
      message = e.what();
    }
    (void)!write(pipeFds[1], message.data(), message.size());
    _exit(0);
  }
  close(pipeFds[1]);
  std::string message;
  char buf[512];
  ssize_t n;
  while ((n = read(pipeFds[0], buf, sizeof buf)) > 0) message.append(buf, size_t(n));
  close(pipeFds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_NE(message, "opened");
  EXPECT_NE(message.find(dir_), std::string::npos) << message;
  EXPECT_NE(message.find("pid " + std::to_string(getpid())), std::string::npos) << message;

  // Once the holder closes, the directory is free again.
  store.reset();
  EXPECT_NO_THROW(openSqliteStore(dir_));
}

TEST_F(SqliteStoreTest, NewerSchemaVersionIsRefused) {
  { openSqliteStore(dir_); }
  // Pretend a newer trellisd migrated this database.
  sqlite3* db = nullptr;
  std::string path = (fs::path(dir_) / kSqliteDatabaseFile).string();
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string sql = "PRAGMA user_version = " + std::to_string(sqliteSchemaVersion() + 1);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    openSqliteStore(dir_);
    FAIL() << "opened a database from the future";
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("schema version " + std::to_string(sqliteSchemaVersion() + 1)), std::string::npos) << what;
    EXPECT_NE(what.find("newer"), std::string::npos) << what;
  }
  // The refusal released the lock: a correct binary could still open the directory.
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, ("PRAGMA user_version = " + std::to_string(sqliteSchemaVersion())).c_str(), nullptr, nullptr,
               nullptr);
  sqlite3_close(db);
  EXPECT_NO_THROW(openSqliteStore(dir_));
}

TEST_F(SqliteStoreTest, UnusableDirectoryGivesReadableError) {
  std::string file = (fs::path(root_) / "plainfile").string();
  std::ofstream(file) << "x";
  try {
    openSqliteStore(file + "/data");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
}

// Every commit the child acknowledged before SIGKILL must be there after reopening.
TEST_F(SqliteStoreTest, AcknowledgedCommitsSurviveKill9) {
  int pipeFds[2];
  ASSERT_EQ(pipe(pipeFds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipeFds[0]);
    try {
      auto store = openSqliteStore(dir_);
      for (int i = 0;; ++i) {
        std::string id = "r" + std::to_string(i);
        if (!store->commit({{"item", id, Condition::kMustNotExist}},
                           {Op::put("item", id, "{\"n\":" + std::to_string(i) + "}")}))
          _exit(2);
        std::string line = id + "\n";  // acknowledged: tell the parent
        if (write(pipeFds[1], line.data(), line.size()) != ssize_t(line.size())) _exit(3);
      }
    } catch (...) {
      _exit(4);
    }
  }
  close(pipeFds[1]);
  std::string received;
  char buf[4096];
  // Read until a good burst has been acknowledged, then kill mid-flight.
  while (std::count(received.begin(), received.end(), '\n') < 200) {
    ssize_t n = read(pipeFds[0], buf, sizeof buf);
    ASSERT_GT(n, 0) << "child died early";
    received.append(buf, size_t(n));
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child exited on its own: " << status;
  ssize_t n;
  while ((n = read(pipeFds[0], buf, sizeof buf)) > 0) received.append(buf, size_t(n));
  close(pipeFds[0]);

  std::vector<std::string> acknowledged;
  size_t start = 0;
  for (size_t nl; (nl = received.find('\n', start)) != std::string::npos; start = nl + 1)
    acknowledged.push_back(received.substr(start, nl - start));
  ASSERT_GE(acknowledged.size(), 200u);

  auto store = openSqliteStore(dir_);  // the lock died with the child
  for (const auto& id : acknowledged) ASSERT_TRUE(store->get("item", id)) << id << " was acknowledged but is lost";
  auto all = store->list("item");
  EXPECT_GE(all.size(), acknowledged.size());
  EXPECT_LE(all.size(), acknowledged.size() + 1) << "at most the one in-flight commit beyond the acknowledged ones";
  EXPECT_EQ(store->revision(), int64_t(all.size()));
}


TEST_F(SqliteStoreTest, ChangesOlderThanTheKeptHistoryAskForAFullRead) {
  {
    SqliteStore store(dir_, 3);
    ASSERT_EQ(store.commit({}, {Op::put("k", "a", "1"), Op::put("k", "b", "1")}), 1);
    ASSERT_EQ(store.commit({}, {Op::del("k", "a")}), 2);
    EXPECT_FALSE(store.changesSince(0).compacted) << "revision 3 is not reached yet: nothing pruned";
    for (int i = 3; i <= 6; ++i) ASSERT_EQ(store.commit({}, {Op::put("k", "b", std::to_string(i))}), i);
    // Kept: revisions 4-6. A reader at 3 misses nothing; one at 2 might have missed a deletion.
    auto kept = store.changesSince(3);
    EXPECT_FALSE(kept.compacted);
    EXPECT_EQ(changed(kept.records), (std::vector<std::string>{"k/b=6@6"}));
    auto old = store.changesSince(2);
    EXPECT_TRUE(old.compacted);
    EXPECT_EQ(old.revision, 6);
    EXPECT_TRUE(old.records.empty());
    EXPECT_TRUE(store.changesSince(0).compacted);
  }
  // The pruned point is durable.
  SqliteStore reopened(dir_, 3);
  EXPECT_TRUE(reopened.changesSince(2).compacted);
  EXPECT_FALSE(reopened.changesSince(3).compacted);
}

// A proxy's replica takes the API servers' revisions as they are, gaps included, and its own readers follow it.
TEST_F(SqliteStoreTest, ReplicaCommitsLandAtTheGivenRevision) {
  SqliteStore store(dir_);
  std::vector<int64_t> seen;
  store.watch([&seen](int64_t revision) { seen.push_back(revision); });
  EXPECT_EQ(store.commitAt(7, {Op::put("k", "a", "1"), Op::put("k", "b", "1")}), 7);
  EXPECT_EQ(store.revision(), 7);
  EXPECT_EQ(store.get("k", "a")->modRevision, 7);
  EXPECT_EQ(store.commitAt(12, {}), 12) << "no ops: the revision still moves on";
  EXPECT_EQ(store.commitAt(20, {Op::del("k", "a")}), 20);
  auto changes = store.changesSince(7);
  EXPECT_EQ(changes.revision, 20);
  ASSERT_EQ(changes.deleted.size(), 1u);
  EXPECT_EQ(changes.deleted[0].id, "a");
  EXPECT_THROW(store.commitAt(20, {Op::put("k", "c", "1")}), std::invalid_argument);
  EXPECT_THROW(store.commitAt(3, {}), std::invalid_argument);
  EXPECT_FALSE(store.get("k", "c")) << "a refused commit applies nothing";
  EXPECT_EQ(store.revision(), 20);
  EXPECT_EQ(seen, (std::vector<int64_t>{7, 12, 20}));
  EXPECT_EQ(store.commit({}, {Op::put("k", "d", "1")}), 21) << "a local commit goes on from there";
}

TEST_F(SqliteStoreTest, MigratesAVersion1DatabaseAndItsHistoryStartsThere) {
  fs::create_directories(dir_);
  std::string path = (fs::path(dir_) / kSqliteDatabaseFile).string();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  // Version 1 as an earlier trellisd left it, at revision 7.
  const char* v1 =
      "CREATE TABLE records (kind TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL,"
      " create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;"
      "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
      "INSERT INTO meta (key, value) VALUES ('revision', 7);"
      "INSERT INTO records VALUES ('service', 'svc-1', 'a', 2, 7);"
      "PRAGMA user_version = 1;";
  ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  auto store = openSqliteStore(dir_);
  EXPECT_EQ(store->revision(), 7);
  EXPECT_EQ(store->get("service", "svc-1")->value, "a");
  EXPECT_EQ(store->count("service"), 1u) << "the counts start from what the database holds";
  EXPECT_TRUE(store->changesSince(6).compacted) << "deletions before the migration were never recorded";
  EXPECT_FALSE(store->changesSince(7).compacted);
  ASSERT_EQ(store->commit({}, {Op::del("service", "svc-1")}), 8);
  EXPECT_EQ(keys(store->changesSince(7).deleted), (std::vector<std::string>{"service/svc-1"}));
  EXPECT_EQ(store->count("service"), 0u);
}

}  // namespace
}  // namespace trellis::store
