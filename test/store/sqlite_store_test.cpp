#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

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

std::vector<std::string> ids(const std::vector<Record>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.id);
  return out;
}

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

TEST_F(SqliteStoreTest, PutGetUpdateDelete) {
  auto store = openSqliteStore(dir_);
  auto r1 = store->commit({}, {Op::put("service", "svc-1", R"({"name":"a"})")});
  ASSERT_EQ(r1, 1);
  auto rec = store->get("service", "svc-1");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->kind, "service");
  EXPECT_EQ(rec->value, R"({"name":"a"})");
  EXPECT_EQ(rec->createRevision, 1);
  EXPECT_EQ(rec->modRevision, 1);
  EXPECT_FALSE(store->get("listener", "svc-1")) << "kind is part of the key";

  auto r2 = store->commit({}, {Op::put("service", "svc-1", R"({"name":"b"})")});
  ASSERT_EQ(r2, 2);
  rec = store->get("service", "svc-1");
  EXPECT_EQ(rec->value, R"({"name":"b"})");
  EXPECT_EQ(rec->createRevision, 1);
  EXPECT_EQ(rec->modRevision, 2);

  ASSERT_EQ(store->commit({}, {Op::del("service", "svc-1")}), 3);
  EXPECT_FALSE(store->get("service", "svc-1"));
  EXPECT_EQ(store->revision(), 3);

  // Re-created: a fresh createRevision.
  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-1", "{}")}), 4);
  EXPECT_EQ(store->get("service", "svc-1")->createRevision, 4);
}

TEST_F(SqliteStoreTest, BinaryAndEmbeddedNulValuesRoundTrip) {
  auto store = openSqliteStore(dir_);
  std::string value("a\0b\xff\"", 5);
  ASSERT_TRUE(store->commit({}, {Op::put("k", std::string("i\0d", 3), value)}));
  auto rec = store->get("k", std::string("i\0d", 3));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->value, value);
}

TEST_F(SqliteStoreTest, Conditions) {
  auto store = openSqliteStore(dir_);
  Condition absent{"service", "svc-1", Condition::kMustNotExist};
  Condition present{"service", "svc-1", Condition::kMustExist};

  EXPECT_FALSE(store->commit({present}, {Op::put("service", "svc-1", "{}")}));
  ASSERT_EQ(store->commit({absent}, {Op::put("service", "svc-1", "v1")}), 1);
  EXPECT_FALSE(store->commit({absent}, {Op::put("service", "svc-1", "v2")})) << "create must not overwrite";
  EXPECT_EQ(store->get("service", "svc-1")->value, "v1");

  ASSERT_EQ(store->commit({present}, {Op::put("service", "svc-1", "v2")}), 2);
  // Exact revision: the stale writer (expects 1) loses, the current one (expects 2) wins.
  EXPECT_FALSE(store->commit({{"service", "svc-1", 1}}, {Op::put("service", "svc-1", "stale")}));
  ASSERT_EQ(store->commit({{"service", "svc-1", 2}}, {Op::put("service", "svc-1", "v3")}), 3);
  EXPECT_EQ(store->get("service", "svc-1")->value, "v3");
  // An exact revision on a missing record fails.
  EXPECT_FALSE(store->commit({{"service", "svc-404", 3}}, {Op::put("service", "svc-404", "x")}));
  EXPECT_FALSE(store->get("service", "svc-404"));
  EXPECT_EQ(store->revision(), 3) << "failed commits do not advance the revision";

  // Conditions only: checked, nothing written, revision unchanged.
  EXPECT_EQ(store->commit({present}, {}), 3);
  EXPECT_FALSE(store->commit({absent}, {}));
}

TEST_F(SqliteStoreTest, FailedCommitAppliesNothing) {
  auto store = openSqliteStore(dir_);
  ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-1", "old"), Op::put("index", "a", "{}")}));
  // The last condition fails: none of the ops, in any order, may show.
  auto result =
      store->commit({{"service", "svc-1", Condition::kMustExist}, {"index", "a", Condition::kMustNotExist}},
                    {Op::put("service", "svc-1", "new"), Op::del("index", "a"), Op::put("service", "svc-2", "x")});
  EXPECT_FALSE(result);
  EXPECT_EQ(store->get("service", "svc-1")->value, "old");
  EXPECT_TRUE(store->get("index", "a"));
  EXPECT_FALSE(store->get("service", "svc-2"));
  EXPECT_EQ(store->readAll().records.size(), 2u);
  EXPECT_EQ(store->revision(), 1);
}

TEST_F(SqliteStoreTest, OneCommitOneRevisionForManyOps) {
  auto store = openSqliteStore(dir_);
  auto rev = store->commit({}, {Op::put("a", "1", "{}"), Op::put("b", "2", "{}"), Op::put("c", "3", "{}")});
  ASSERT_EQ(rev, 1);
  for (const auto& r : store->readAll().records) EXPECT_EQ(r.modRevision, 1) << r.kind;
}

TEST_F(SqliteStoreTest, ListIsPerKindAscendingAndPaginates) {
  auto store = openSqliteStore(dir_);
  for (auto id : {"svc-c", "svc-a", "svc-e", "svc-b", "svc-d"})
    ASSERT_TRUE(store->commit({}, {Op::put("service", id, "{}")}));
  ASSERT_TRUE(store->commit({}, {Op::put("servicenetwork", "sn-a", "{}"), Op::put("target", "svc-0", "{}")}));

  EXPECT_EQ(ids(store->list("service")), (std::vector<std::string>{"svc-a", "svc-b", "svc-c", "svc-d", "svc-e"}));
  EXPECT_EQ(ids(store->list("service", {}, 2)), (std::vector<std::string>{"svc-a", "svc-b"}));
  EXPECT_EQ(ids(store->list("service", "svc-b", 2)), (std::vector<std::string>{"svc-c", "svc-d"}));

  // The page cursor is the last id seen: removing it and adding earlier ids does not skip or repeat.
  ASSERT_TRUE(store->commit({}, {Op::del("service", "svc-d"), Op::put("service", "svc-aa", "{}")}));
  ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-f", "{}")}));
  EXPECT_EQ(ids(store->list("service", "svc-d", 2)), (std::vector<std::string>{"svc-e", "svc-f"}));
  EXPECT_TRUE(store->list("service", "svc-f", 2).empty());
  EXPECT_TRUE(store->list("nothing").empty());
}

TEST_F(SqliteStoreTest, ReadAllSeesEverythingAtOneRevision) {
  auto store = openSqliteStore(dir_);
  ASSERT_TRUE(store->commit({}, {Op::put("b", "1", "x")}));
  ASSERT_TRUE(store->commit({}, {Op::put("a", "2", "y")}));
  auto all = store->readAll();
  EXPECT_EQ(all.revision, 2);
  ASSERT_EQ(all.records.size(), 2u);
  EXPECT_EQ(all.records[0].kind, "a");
  EXPECT_EQ(all.records[1].kind, "b");
}

TEST_F(SqliteStoreTest, ConcurrentCommitsAreSerialisedAndRevisionsMonotonic) {
  auto store = openSqliteStore(dir_);
  ASSERT_TRUE(store->commit({}, {Op::put("counter", "c", "0")}));
  constexpr int kThreads = 4, kPerThread = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::mutex seenMutex;
  std::set<int64_t> seen;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      int64_t last = 0;
      for (int i = 0; i < kPerThread; ++i) {
        // Compare-and-swap increment: retry until our read is still current.
        for (;;) {
          auto rec = store->get("counter", "c");
          int next = std::stoi(rec->value) + 1;
          auto rev = store->commit({{"counter", "c", rec->modRevision}},
                                   {Op::put("counter", "c", std::to_string(next)),
                                    Op::put("item", std::to_string(t) + "-" + std::to_string(i), "{}")});
          if (!rev) continue;
          if (*rev <= last) ++failures;
          last = *rev;
          std::lock_guard lock(seenMutex);
          if (!seen.insert(*rev).second) ++failures;
          break;
        }
        store->readAll();  // readers interleave with writers
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(store->get("counter", "c")->value, std::to_string(kThreads * kPerThread)) << "no lost update";
  EXPECT_EQ(store->list("item").size(), size_t(kThreads * kPerThread));
  EXPECT_EQ(store->revision(), 1 + kThreads * kPerThread);
}

TEST_F(SqliteStoreTest, WatchFiresAfterCommitAndMayCallBack) {
  auto store = openSqliteStore(dir_);
  std::vector<int64_t> fired;
  std::vector<std::string> seenValues;
  store->watch([&](int64_t rev) {
    fired.push_back(rev);
    // Calling back into the store from a watcher must not deadlock, and sees the commit.
    auto rec = store->get("service", "svc-1");
    seenValues.push_back(rec ? rec->value : "<none>");
    EXPECT_EQ(store->revision(), rev);
  });
  ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-1", "v1")}));
  EXPECT_FALSE(store->commit({{"service", "svc-1", Condition::kMustNotExist}}, {Op::put("service", "svc-1", "v2")}));
  ASSERT_TRUE(store->commit({}, {Op::del("service", "svc-1")}));
  EXPECT_EQ(fired, (std::vector<int64_t>{1, 2})) << "failed commits do not fire";
  EXPECT_EQ(seenValues, (std::vector<std::string>{"v1", "<none>"}));
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

}  // namespace
}  // namespace trellis::store
