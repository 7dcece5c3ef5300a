// What every Store backend does alike (src/store/store.h), run against SQLite and against a real 3-member etcd
// cluster. Revisions are compared relative to the store's revision when the test began: etcd's counter is
// shared by every test on the cluster.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "store/etcd_cluster.h"
#include "store/etcd_store.h"
#include "store/records.h"
#include "store/sqlite_store.h"

namespace trellis::store {
namespace {

namespace fs = std::filesystem;

enum class Backend { Sqlite, Etcd };

// One cluster for the whole binary; if it cannot start, every etcd case fails at once with the same reason.
test::EtcdCluster& sharedCluster() {
  static std::unique_ptr<test::EtcdCluster> cluster;
  static std::string error;
  if (!cluster && error.empty()) {
    try {
      cluster = std::make_unique<test::EtcdCluster>();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (!cluster) throw std::runtime_error(error);
  return *cluster;
}

class StoreContractTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::Sqlite) {
      std::string tmpl = (fs::temp_directory_path() / "trellis-store-XXXXXX").string();
      ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
      root_ = tmpl;
      store_ = openSqliteStore(root_ + "/data");
    } else {
      static int tests = 0;
      EtcdOptions options;
      options.endpoints = sharedCluster().endpoints();
      // A prefix per test: each starts with an empty store.
      options.prefix = "/contract-" + std::to_string(getpid()) + "-" + std::to_string(++tests) + "/";
      options.compactionInterval = std::chrono::milliseconds(0);  // no lock key writes between the test's commits
      store_ = openEtcdStore(options);
    }
    base_ = store_->revision();
  }
  void TearDown() override {
    store_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }

  std::string root_;
  std::unique_ptr<Store> store_;
  int64_t base_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreContractTest, ::testing::Values(Backend::Sqlite, Backend::Etcd),
                         [](const auto& info) { return info.param == Backend::Sqlite ? "Sqlite" : "Etcd"; });

TEST_P(StoreContractTest, StartsEmpty) {
  EXPECT_FALSE(store_->get("service", "svc-1"));
  EXPECT_TRUE(store_->list("service").empty());
  EXPECT_EQ(store_->count("service"), 0u);
  EXPECT_TRUE(store_->readAll().records.empty());
}

TEST_P(StoreContractTest, PutGetUpdateDelete) {
  auto& store = store_;
  auto r1 = store->commit({}, {Op::put("service", "svc-1", R"({"name":"a"})")});
  ASSERT_EQ(r1, base_ + 1);
  auto rec = store->get("service", "svc-1");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->kind, "service");
  EXPECT_EQ(rec->value, R"({"name":"a"})");
  EXPECT_EQ(rec->createRevision, base_ + 1);
  EXPECT_EQ(rec->modRevision, base_ + 1);
  EXPECT_FALSE(store->get("listener", "svc-1")) << "kind is part of the key";

  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-1", R"({"name":"b"})")}), base_ + 2);
  rec = store->get("service", "svc-1");
  EXPECT_EQ(rec->value, R"({"name":"b"})");
  EXPECT_EQ(rec->createRevision, base_ + 1);
  EXPECT_EQ(rec->modRevision, base_ + 2);

  ASSERT_EQ(store->commit({}, {Op::del("service", "svc-1")}), base_ + 3);
  EXPECT_FALSE(store->get("service", "svc-1"));
  EXPECT_EQ(store->revision(), base_ + 3);

  // Re-created: a fresh createRevision.
  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-1", "{}")}), base_ + 4);
  EXPECT_EQ(store->get("service", "svc-1")->createRevision, base_ + 4);
}

// More keys than one etcd Txn may hold (128), absent ones among them, answered in the order asked.
TEST_P(StoreContractTest, GetManyAnswersEveryKeyInOrder) {
  std::vector<Op> ops;
  for (int i = 0; i < 150; i += 2) ops.push_back(Op::put("service", "svc-" + std::to_string(i), "v" + std::to_string(i)));
  for (size_t first = 0; first < ops.size(); first += 50)
    ASSERT_TRUE(store_->commit({}, {ops.begin() + first, ops.begin() + std::min(ops.size(), first + 50)}));
  std::vector<RecordKey> keys;
  for (int i = 149; i >= 0; --i) keys.push_back({"service", "svc-" + std::to_string(i)});
  keys.push_back({"listener", "svc-0"});  // the same id under another kind is another record
  auto records = store_->getMany(keys);
  ASSERT_EQ(records.size(), keys.size());
  for (size_t k = 0; k < 150; ++k) {
    int i = 149 - static_cast<int>(k);
    if (i % 2 == 1) {
      EXPECT_FALSE(records[k]) << keys[k].id;
      continue;
    }
    ASSERT_TRUE(records[k]) << keys[k].id;
    EXPECT_EQ(records[k]->id, keys[k].id);
    EXPECT_EQ(records[k]->value, "v" + std::to_string(i));
    EXPECT_EQ(records[k]->modRevision, store_->get("service", keys[k].id)->modRevision);
  }
  EXPECT_FALSE(records.back());
  EXPECT_TRUE(store_->getMany({}).empty());
}

TEST_P(StoreContractTest, CountsRecordsOfOneKind) {
  auto& store = store_;
  EXPECT_EQ(store->count("service"), 0u);
  ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-1", "{}"), Op::put("service", "svc-2", "{}"),
                                 Op::put("service", "svc-3", "{}"), Op::put("servicenetwork", "sn-1", "{}")}));
  EXPECT_EQ(store->count("service"), 3u);
  EXPECT_EQ(store->count("servicenetwork"), 1u);
  EXPECT_EQ(store->count("serv"), 0u);  // a kind, not a prefix
  ASSERT_TRUE(store->commit({}, {Op::del("service", "svc-2")}));
  EXPECT_EQ(store->count("service"), 2u);
}

TEST_P(StoreContractTest, CountsFollowEveryKindOfWrite) {
  auto& store = store_;
  // A put over an existing record, a delete of what is not there, a key deleted and put back in one commit.
  ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-1", "a"), Op::put("service", "svc-2", "c"),
                                 Op::del("service", "svc-9")}));
  EXPECT_EQ(store->count("service"), 2u);
  ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-2", "d"), Op::del("service", "svc-1"),
                                 Op::put("service", "svc-1", "e"), Op::del("service", "svc-2")}));
  EXPECT_EQ(store->count("service"), 1u);
  // A refused commit counts nothing.
  EXPECT_FALSE(store->commit({{"service", "svc-1", Condition::kMustNotExist}}, {Op::put("service", "svc-3", "f")}));
  EXPECT_EQ(store->count("service"), 1u);
  EXPECT_EQ(store->count("never-written"), 0u);
}

TEST_P(StoreContractTest, CountsRecordsUnderAnIdPrefix) {
  auto& store = store_;
  ASSERT_TRUE(store->commit({}, {Op::put("index", "sn-1/a", "{}"), Op::put("index", "sn-1/b", "{}"),
                                 Op::put("index", "sn-10/a", "{}"), Op::put("index", "sn-2/a", "{}"),
                                 Op::put("index", "sn-1", "{}"), Op::put("other", "sn-1/c", "{}")}));
  EXPECT_EQ(store->count("index", "sn-1/"), 2u);
  EXPECT_EQ(store->count("index", "sn-1"), 4u);  // a prefix, not a path: sn-1, sn-1/a, sn-1/b, sn-10/a
  EXPECT_EQ(store->count("index", "sn-3/"), 0u);
  EXPECT_EQ(store->count("index", ""), 5u);
  EXPECT_EQ(store->count("index", "sn-1/\xe2\x82\xac"), 0u);  // multi-byte UTF-8 in a prefix
}

TEST_P(StoreContractTest, BinaryAndEmbeddedNulValuesRoundTrip) {
  std::string value("a\0b\xff\"", 5);
  ASSERT_TRUE(store_->commit({}, {Op::put("k", std::string("i\0d", 3), value)}));
  auto rec = store_->get("k", std::string("i\0d", 3));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->value, value);
  EXPECT_EQ(rec->id, std::string("i\0d", 3));
}

TEST_P(StoreContractTest, IdsMayContainSlashes) {
  ASSERT_TRUE(store_->commit({}, {Op::put("tags", "arn:aws:vpc-lattice:r:1:service/svc-1", "{}"),
                                  Op::put("index.name.listener", "svc-1/http", "{}")}));
  EXPECT_TRUE(store_->get("tags", "arn:aws:vpc-lattice:r:1:service/svc-1"));
  EXPECT_EQ(ids(store_->list("index.name.listener")), (std::vector<std::string>{"svc-1/http"}));
  EXPECT_EQ(store_->count("tags"), 1u);
}

TEST_P(StoreContractTest, Conditions) {
  auto& store = store_;
  Condition absent{"service", "svc-1", Condition::kMustNotExist};
  Condition present{"service", "svc-1", Condition::kMustExist};

  EXPECT_FALSE(store->commit({present}, {Op::put("service", "svc-1", "{}")}));
  ASSERT_EQ(store->commit({absent}, {Op::put("service", "svc-1", "v1")}), base_ + 1);
  EXPECT_FALSE(store->commit({absent}, {Op::put("service", "svc-1", "v2")})) << "create must not overwrite";
  EXPECT_EQ(store->get("service", "svc-1")->value, "v1");

  ASSERT_EQ(store->commit({present}, {Op::put("service", "svc-1", "v2")}), base_ + 2);
  // Exact revision: the stale writer (expects +1) loses, the current one (expects +2) wins.
  EXPECT_FALSE(store->commit({{"service", "svc-1", base_ + 1}}, {Op::put("service", "svc-1", "stale")}));
  ASSERT_EQ(store->commit({{"service", "svc-1", base_ + 2}}, {Op::put("service", "svc-1", "v3")}), base_ + 3);
  EXPECT_EQ(store->get("service", "svc-1")->value, "v3");
  // An exact revision on a missing record fails.
  EXPECT_FALSE(store->commit({{"service", "svc-404", base_ + 3}}, {Op::put("service", "svc-404", "x")}));
  EXPECT_FALSE(store->get("service", "svc-404"));
  EXPECT_EQ(store->revision(), base_ + 3) << "failed commits do not advance the revision";

  // Conditions only: checked, nothing written, revision unchanged.
  EXPECT_EQ(store->commit({present}, {}), base_ + 3);
  EXPECT_FALSE(store->commit({absent}, {}));
  EXPECT_EQ(store->revision(), base_ + 3);
}

TEST_P(StoreContractTest, FailedCommitAppliesNothing) {
  auto& store = store_;
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
  EXPECT_EQ(store->revision(), base_ + 1);
}

TEST_P(StoreContractTest, OneCommitOneRevisionForManyOps) {
  auto rev = store_->commit({}, {Op::put("a", "1", "{}"), Op::put("b", "2", "{}"), Op::put("c", "3", "{}")});
  ASSERT_EQ(rev, base_ + 1);
  for (const auto& r : store_->readAll().records) EXPECT_EQ(r.modRevision, base_ + 1) << r.kind;
}

TEST_P(StoreContractTest, OpsOnOneKeyApplyInOrder) {
  ASSERT_TRUE(store_->commit({}, {Op::put("k", "a", "1"), Op::put("k", "a", "2"), Op::del("k", "b"),
                                  Op::put("k", "b", "3"), Op::put("k", "c", "4"), Op::del("k", "c")}));
  EXPECT_EQ(store_->get("k", "a")->value, "2");
  EXPECT_EQ(store_->get("k", "b")->value, "3");
  EXPECT_FALSE(store_->get("k", "c"));
}

TEST_P(StoreContractTest, ListIsPerKindAscendingAndPaginates) {
  auto& store = store_;
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

TEST_P(StoreContractTest, ListsMoreThanOnePageOfRecords) {
  std::vector<Op> ops;
  for (int i = 0; i < 250; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "r%04d", i);
    ops.push_back(Op::put("item", id, "{}"));
    if (ops.size() == 100) {
      ASSERT_TRUE(store_->commit({}, ops));
      ops.clear();
    }
  }
  ASSERT_TRUE(store_->commit({}, ops));
  auto all = store_->list("item");
  ASSERT_EQ(all.size(), 250u);
  EXPECT_EQ(all.front().id, "r0000");
  EXPECT_EQ(all.back().id, "r0249");
  EXPECT_EQ(store_->list("item", "r0010", 150).size(), 150u);
  EXPECT_EQ(store_->readAll().records.size(), 250u);
}

TEST_P(StoreContractTest, ReadAllSeesEverythingAtOneRevisionInKindOrder) {
  ASSERT_TRUE(store_->commit({}, {Op::put("b", "1", "x")}));
  ASSERT_TRUE(store_->commit({}, {Op::put("a", "2", "y"), Op::put("a.b", "3", "z")}));
  auto all = store_->readAll();
  EXPECT_EQ(all.revision, base_ + 2);
  ASSERT_EQ(all.records.size(), 3u);
  EXPECT_EQ(all.records[0].kind, "a");
  EXPECT_EQ(all.records[1].kind, "a.b");
  EXPECT_EQ(all.records[2].kind, "b");
}

TEST_P(StoreContractTest, ConcurrentCommitsAreSerialisedAndRevisionsMonotonic) {
  auto& store = store_;
  ASSERT_TRUE(store->commit({}, {Op::put("counter", "c", "0")}));
  constexpr int kThreads = 4, kPerThread = 25;
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
  EXPECT_EQ(store->revision(), base_ + 1 + kThreads * kPerThread);
}

TEST_P(StoreContractTest, WatchFiresAfterCommitAndMayCallBack) {
  auto& store = store_;
  std::mutex mutex;
  std::vector<int64_t> fired;
  std::vector<std::string> seenValues;
  store->watch([&](int64_t rev) {
    // Calling back into the store from a watcher must not deadlock, and sees the commit.
    auto rec = store->get("service", "svc-1");
    EXPECT_GE(store->revision(), rev);
    std::lock_guard lock(mutex);
    fired.push_back(rev - base_);
    seenValues.push_back(rec ? rec->value : "<none>");
  });
  ASSERT_TRUE(store->commit({}, {Op::put("service", "svc-1", "v1")}));
  EXPECT_FALSE(store->commit({{"service", "svc-1", Condition::kMustNotExist}}, {Op::put("service", "svc-1", "v2")}));
  ASSERT_TRUE(store->commit({}, {Op::del("service", "svc-1")}));
  std::lock_guard lock(mutex);
  EXPECT_EQ(fired, (std::vector<int64_t>{1, 2})) << "fired by the time commit returns; failed commits do not fire";
  EXPECT_EQ(seenValues, (std::vector<std::string>{"v1", "<none>"}));
}

TEST_P(StoreContractTest, ChangesSinceReportsCreatesUpdatesAndDeletes) {
  auto& store = store_;
  int64_t b = base_;
  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-1", "a"), Op::put("listener", "l-1", "x")}), b + 1);
  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-2", "b")}), b + 2);
  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-1", "a2")}), b + 3);
  ASSERT_EQ(store->commit({}, {Op::del("listener", "l-1"), Op::del("listener", "never-there")}), b + 4);

  auto all = store->changesSince(b);
  EXPECT_FALSE(all.compacted);
  EXPECT_EQ(all.revision, b + 4);
  EXPECT_EQ(changed(all.records, b), (std::vector<std::string>{"service/svc-1=a2@3", "service/svc-2=b@2"}));
  EXPECT_EQ(keys(all.deleted), (std::vector<std::string>{"listener/l-1"})) << "only keys that existed";

  auto since2 = store->changesSince(b + 2);
  EXPECT_EQ(changed(since2.records, b), (std::vector<std::string>{"service/svc-1=a2@3"}));
  EXPECT_EQ(keys(since2.deleted), (std::vector<std::string>{"listener/l-1"}));

  auto since4 = store->changesSince(b + 4);
  EXPECT_FALSE(since4.compacted);
  EXPECT_EQ(since4.revision, b + 4);
  EXPECT_TRUE(since4.records.empty());
  EXPECT_TRUE(since4.deleted.empty());

  // Deleted and re-created: a reader from before the deletion sees both, one from in between only the put.
  ASSERT_EQ(store->commit({}, {Op::del("service", "svc-2")}), b + 5);
  ASSERT_EQ(store->commit({}, {Op::put("service", "svc-2", "b2")}), b + 6);
  auto since4b = store->changesSince(b + 4);
  EXPECT_EQ(changed(since4b.records, b), (std::vector<std::string>{"service/svc-2=b2@6"}));
  EXPECT_EQ(keys(since4b.deleted), (std::vector<std::string>{"service/svc-2"}));
  auto since5 = store->changesSince(b + 5);
  EXPECT_EQ(changed(since5.records, b), (std::vector<std::string>{"service/svc-2=b2@6"}));
  EXPECT_TRUE(since5.deleted.empty());

  // A reader from the future (another store's history) must start over.
  EXPECT_TRUE(store->changesSince(b + 1000).compacted);
}

TEST_P(StoreContractTest, ContentsFollowTheChangeFeed) {
  // A reader that applies each batch of changes to its copy holds exactly what readAll returns, through
  // small batches and big ones, with deletions and re-creations.
  auto& store = store_;
  std::map<std::pair<std::string, std::string>, std::string> copy;
  int64_t revision = store->revision();
  uint32_t seed = 7;
  auto next = [&seed](uint32_t n) {
    seed = seed * 1103515245 + 12345;
    return (seed >> 16) % n;
  };
  for (int round = 0; round < 40; ++round) {
    size_t batch = round % 4 == 3 ? 120 : 1 + next(5);  // within etcd's 128 ops per transaction
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

}  // namespace
}  // namespace trellis::store
