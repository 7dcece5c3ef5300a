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

TEST_F(SqliteStoreTest, CountsRecordsOfOneKind) {
  auto store = openSqliteStore(dir_);
  EXPECT_EQ(store->count("service"), 0u);
  ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-1", "{}"), Op::put("service", "svc-2", "{}"),
                                 Op::put("service", "svc-3", "{}"), Op::put("servicenetwork", "sn-1", "{}")}));
  EXPECT_EQ(store->count("service"), 3u);
  EXPECT_EQ(store->count("servicenetwork"), 1u);
  EXPECT_EQ(store->count("serv"), 0u);  // a kind, not a prefix
  ASSERT_TRUE(store->commit({}, {Op::del("service", "svc-2")}));
  EXPECT_EQ(store->count("service"), 2u);
}

TEST_F(SqliteStoreTest, CountsFollowEveryKindOfWrite) {
  auto store = openSqliteStore(dir_);
  // One key put twice in a commit, a put over an existing record, a delete of what is not there.
  ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-1", "a"), Op::put("service", "svc-1", "b"),
                                 Op::put("service", "svc-2", "c"), Op::del("service", "svc-9")}));
  EXPECT_EQ(store->count("service"), 2u);
  ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-2", "d"), Op::del("service", "svc-1"),
                                 Op::put("service", "svc-1", "e"), Op::del("service", "svc-2")}));
  EXPECT_EQ(store->count("service"), 1u);
  // A refused commit counts nothing.
  EXPECT_FALSE(store->commit({{"service", "svc-1", Condition::kMustNotExist}}, {Op::put("service", "svc-3", "f")}));
  EXPECT_EQ(store->count("service"), 1u);
  // And the counts survive a reopen.
  store.reset();
  store = openSqliteStore(dir_);
  EXPECT_EQ(store->count("service"), 1u);
  EXPECT_EQ(store->count("never-written"), 0u);
}

TEST_F(SqliteStoreTest, CountsRecordsUnderAnIdPrefix) {
  auto store = openSqliteStore(dir_);
  ASSERT_TRUE(store->commit({}, {Op::put("index", "sn-1/a", "{}"), Op::put("index", "sn-1/b", "{}"),
                                 Op::put("index", "sn-10/a", "{}"), Op::put("index", "sn-2/a", "{}"),
                                 Op::put("index", "sn-1", "{}"), Op::put("other", "sn-1/c", "{}")}));
  EXPECT_EQ(store->count("index", "sn-1/"), 2u);
  EXPECT_EQ(store->count("index", "sn-1"), 4u);  // a prefix, not a path: sn-1, sn-1/a, sn-1/b, sn-10/a
  EXPECT_EQ(store->count("index", "sn-3/"), 0u);
  EXPECT_EQ(store->count("index", ""), 5u);
  EXPECT_EQ(store->count("index", "sn-1/\xe2\x82\xac"), 0u);  // multi-byte UTF-8 in a prefix
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


// Change lists come in no particular order.
std::vector<std::string> keys(const std::vector<RecordKey>& deleted) {
  std::vector<std::string> out;
  for (const auto& k : deleted) out.push_back(k.kind + "/" + k.id);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> puts(const std::vector<Record>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.kind + "/" + r.id + "=" + r.value + "@" + std::to_string(r.modRevision));
  return out;
}

std::vector<std::string> changed(const std::vector<Record>& records) {
  auto out = puts(records);
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(SqliteStoreTest, ChangesSinceReportsCreatesUpdatesAndDeletes) {
  auto store = openSqliteStore(dir_);
  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-1", "a"), Op::put("listener", "l-1", "x")}), 1);
  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-2", "b")}), 2);
  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-1", "a2")}), 3);
  ASSERT_EQ(store->commit({}, {Op::del("listener", "l-1"), Op::del("listener", "never-there")}), 4);

  auto all = store->changesSince(0);
  EXPECT_FALSE(all.compacted);
  EXPECT_EQ(all.revision, 4);
  EXPECT_EQ(changed(all.records), (std::vector<std::string>{"service/svc-1=a2@3", "service/svc-2=b@2"}));
  EXPECT_EQ(keys(all.deleted), (std::vector<std::string>{"listener/l-1"})) << "only keys that existed";

  auto since2 = store->changesSince(2);
  EXPECT_EQ(changed(since2.records), (std::vector<std::string>{"service/svc-1=a2@3"}));
  EXPECT_EQ(keys(since2.deleted), (std::vector<std::string>{"listener/l-1"}));

  auto since4 = store->changesSince(4);
  EXPECT_FALSE(since4.compacted);
  EXPECT_EQ(since4.revision, 4);
  EXPECT_TRUE(since4.records.empty());
  EXPECT_TRUE(since4.deleted.empty());

  // Deleted and re-created: a reader from before the deletion sees both, one from in between only the put.
  ASSERT_EQ(store->commit({}, {Op::del("service", "svc-2")}), 5);
  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-2", "b2")}), 6);
  auto since4b = store->changesSince(4);
  EXPECT_EQ(changed(since4b.records), (std::vector<std::string>{"service/svc-2=b2@6"}));
  EXPECT_EQ(keys(since4b.deleted), (std::vector<std::string>{"service/svc-2"}));
  auto since5 = store->changesSince(5);
  EXPECT_EQ(changed(since5.records), (std::vector<std::string>{"service/svc-2=b2@6"}));
  EXPECT_TRUE(since5.deleted.empty());

  // A reader from the future (another store's history) must start over.
  EXPECT_TRUE(store->changesSince(7).compacted);
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

TEST_F(SqliteStoreTest, ContentsFollowTheChangeFeed) {
  // A reader that applies each batch of changes to its copy holds exactly what readAll returns, through
  // small batches and big ones, with deletions and re-creations.
  auto store = openSqliteStore(dir_);
  std::map<std::pair<std::string, std::string>, std::string> copy;
  int64_t revision = store->revision();
  uint32_t seed = 7;
  auto next = [&seed](uint32_t n) {
    seed = seed * 1103515245 + 12345;
    return (seed >> 16) % n;
  };
  for (int round = 0; round < 40; ++round) {
    size_t batch = round % 4 == 3 ? 150 : 1 + next(5);
    std::vector<Op> ops;
    for (size_t i = 0; i < batch; ++i) {
      std::string kind = "k" + std::to_string(next(3));
      std::string id = "id-" + std::to_string(next(60));
      if (next(3) == 0)
        ops.push_back(Op::del(kind, id));
      else
        ops.push_back(Op::put(kind, id, "v" + std::to_string(round)));
    }
    ASSERT_TRUE(store->commit({}, ops));
    auto changes = store->changesSince(revision);
    ASSERT_FALSE(changes.compacted);
    for (const auto& key : changes.deleted) copy.erase({key.kind, key.id});  // deletions first
    for (const auto& record : changes.records) copy[{record.kind, record.id}] = record.value;
    revision = changes.revision;
    auto expected = store->readAll();
    ASSERT_EQ(revision, expected.revision);
    std::map<std::pair<std::string, std::string>, std::string> all;
    for (const auto& record : expected.records) all[{record.kind, record.id}] = record.value;
    ASSERT_EQ(copy, all) << "round " << round;
  }
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
