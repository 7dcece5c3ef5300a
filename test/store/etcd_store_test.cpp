// The etcd store on real 3-member clusters: etcd's limits, several instances on one etcd, compaction, and
// members killed and restarted. The behaviour both backends share is in store_contract_test.cpp.
#include "store/etcd_store.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "store/etcd/etcd.grpc.pb.h"
#include "store/etcd_cluster.h"
#include "store/records.h"

namespace trellis::store {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int prefixes = 0;

EtcdOptions optionsFor(const test::EtcdCluster& cluster, std::string prefix = {}) {
  EtcdOptions options;
  options.endpoints = cluster.endpoints();
  options.prefix = prefix.empty() ? "/etcd-test-" + std::to_string(++prefixes) + "/" : prefix;
  options.compactionInterval = 0ms;
  return options;
}

// Counts watch calls and lets a test wait for one at or after a revision.
class WatchLog {
 public:
  void attach(Store& store) {
    store.watch([this](int64_t revision) {
      std::lock_guard lock(mutex_);
      last_ = std::max(last_, revision);
      changed_.notify_all();
    });
  }
  bool waitFor(int64_t revision, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return last_ >= revision; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t last_ = 0;
};

using Copy = std::map<std::pair<std::string, std::string>, std::string>;

Copy contents(Store& store) {
  Copy out;
  for (const auto& record : store.readAll().records) out[{record.kind, record.id}] = record.value;
  return out;
}

class EtcdStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new test::EtcdCluster(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  static test::EtcdCluster* cluster_;
};
test::EtcdCluster* EtcdStoreTest::cluster_ = nullptr;

TEST_F(EtcdStoreTest, CommitsOverEtcdsLimitsAreRefusedWithNothingApplied) {
  auto store = openEtcdStore(optionsFor(*cluster_));
  int64_t before = store->revision();
  std::vector<Op> ops;
  for (int i = 0; i < 129; ++i) ops.push_back(Op::put("item", "i" + std::to_string(i), "{}"));
  try {
    store->commit({}, ops);
    FAIL() << "129 writes were accepted";
  } catch (const LimitExceeded& e) {
    EXPECT_NE(std::string(e.what()).find("129 writes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nothing was applied"), std::string::npos) << e.what();
  }
  EXPECT_EQ(store->count("item"), 0u);
  EXPECT_EQ(store->revision(), before);

  std::vector<Condition> conditions;
  for (int i = 0; i < 129; ++i) conditions.push_back({"guard", "g" + std::to_string(i), Condition::kMustNotExist});
  EXPECT_THROW(store->commit(conditions, {Op::put("item", "x", "{}")}), LimitExceeded);
  EXPECT_FALSE(store->get("item", "x"));

  std::string big(1536 * 1024, 'x');
  EXPECT_THROW(store->commit({}, {Op::put("item", "big", big)}), LimitExceeded);
  EXPECT_FALSE(store->get("item", "big"));

  // At the limit: 128 writes and 128 conditions in one transaction.
  ops.pop_back();
  conditions.pop_back();
  ASSERT_TRUE(store->commit(conditions, ops));
  EXPECT_EQ(store->count("item"), 128u);
  // etcd counts keys, not ops: several ops on one key are one write.
  std::vector<Op> repeated;
  for (int i = 0; i < 200; ++i) repeated.push_back(Op::put("item", "i" + std::to_string(i % 100), std::to_string(i)));
  ASSERT_TRUE(store->commit({}, repeated));
  EXPECT_EQ(store->get("item", "i5")->value, "105");
}

TEST_F(EtcdStoreTest, KindsWithASlashAreRefused) {
  auto store = openEtcdStore(optionsFor(*cluster_));
  EXPECT_THROW(store->commit({}, {Op::put("a/b", "id", "{}")}), std::invalid_argument);
  EXPECT_THROW(store->commit({}, {Op::put("", "id", "{}")}), std::invalid_argument);
}

TEST_F(EtcdStoreTest, TwoInstancesShareOneEtcd) {
  auto options = optionsFor(*cluster_);
  WatchLog bWatch;  // outlives the stores, whose watch threads call it
  auto a = openEtcdStore(options);
  auto b = openEtcdStore(options);
  bWatch.attach(*b);
  int64_t start = b->revision();

  auto revision = a->commit({{"service", "svc-1", Condition::kMustNotExist}}, {Op::put("service", "svc-1", "v1")});
  ASSERT_TRUE(revision);
  // Reads go to etcd: B sees A's write at once, and its watch fires soon after.
  ASSERT_TRUE(b->get("service", "svc-1"));
  EXPECT_EQ(b->get("service", "svc-1")->value, "v1");
  EXPECT_EQ(ids(b->list("service")), (std::vector<std::string>{"svc-1"}));
  EXPECT_EQ(b->count("service"), 1u);
  ASSERT_TRUE(bWatch.waitFor(*revision, 2000ms)) << "B's watch did not fire for A's commit";
  auto changes = b->changesSince(start);
  EXPECT_FALSE(changes.compacted);
  EXPECT_EQ(changed(changes.records, start), (std::vector<std::string>{"service/svc-1=v1@1"}));

  // Conditions hold across instances: B's create of the same key fails, B's update at A's revision wins,
  // and A's stale update then fails.
  EXPECT_FALSE(b->commit({{"service", "svc-1", Condition::kMustNotExist}}, {Op::put("service", "svc-1", "b")}));
  ASSERT_TRUE(b->commit({{"service", "svc-1", *revision}}, {Op::put("service", "svc-1", "v2")}));
  EXPECT_FALSE(a->commit({{"service", "svc-1", *revision}}, {Op::put("service", "svc-1", "stale")}));
  EXPECT_EQ(a->get("service", "svc-1")->value, "v2");

  // Racing creates of one name: exactly one wins, on whichever instance.
  for (int round = 0; round < 10; ++round) {
    std::string name = "name-" + std::to_string(round);
    std::atomic<int> wins{0};
    auto create = [&](Store& store, const char* who) {
      if (store.commit({{"index.name.service", name, Condition::kMustNotExist}},
                       {Op::put("index.name.service", name, who)}))
        ++wins;
    };
    std::thread ta([&] { create(*a, "a"); });
    std::thread tb([&] { create(*b, "b"); });
    ta.join();
    tb.join();
    EXPECT_EQ(wins, 1) << name;
  }
  EXPECT_EQ(a->count("index.name.service"), 10u);
}

TEST_F(EtcdStoreTest, DeletesAndRecreatesReachTheOtherInstancesFeed) {
  auto options = optionsFor(*cluster_);
  WatchLog bWatch;  // outlives the stores, whose watch threads call it
  auto a = openEtcdStore(options);
  auto b = openEtcdStore(options);
  bWatch.attach(*b);
  ASSERT_TRUE(a->commit({}, {Op::put("k", "x", "1"), Op::put("k", "y", "1")}));
  auto copy = contents(*b);
  int64_t from = b->readAll().revision;
  ASSERT_TRUE(a->commit({}, {Op::del("k", "x")}));
  ASSERT_TRUE(a->commit({}, {Op::del("k", "y")}));
  auto last = a->commit({}, {Op::put("k", "y", "2"), Op::put("k", "z", "1")});
  ASSERT_TRUE(last);
  ASSERT_TRUE(bWatch.waitFor(*last, 2000ms));
  auto changes = b->changesSince(from);
  ASSERT_FALSE(changes.compacted);
  EXPECT_EQ(keys(changes.deleted), (std::vector<std::string>{"k/x", "k/y"}));
  for (const auto& key : changes.deleted) copy.erase({key.kind, key.id});
  for (const auto& record : changes.records) copy[{record.kind, record.id}] = record.value;
  EXPECT_EQ(copy, contents(*a));
  EXPECT_EQ(changes.revision, *last);
}

// The Range at a revision etcd's history no longer has fails with OUT_OF_RANGE.
bool compactedPast(const test::EtcdCluster& cluster, int64_t revision) {
  auto channel = grpc::CreateChannel(cluster.endpoints().front(), grpc::InsecureChannelCredentials());
  auto kv = etcdserverpb::KV::NewStub(channel);
  etcdserverpb::RangeRequest request;
  request.set_key("/");
  request.set_revision(revision);
  etcdserverpb::RangeResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 2s);
  return kv->Range(&context, request, &response).error_code() == grpc::StatusCode::OUT_OF_RANGE;
}

TEST_F(EtcdStoreTest, AReaderLaggingPastCompactionReadsEverythingAndMissesNothing) {
  auto options = optionsFor(*cluster_);
  options.keptRevisions = 5;
  options.compactionInterval = 100ms;
  auto store = openEtcdStore(options);
  // A second instance on the same prefix does not compact while the first holds the lock, and is not hurt.
  auto other = openEtcdStore(options);
  ASSERT_TRUE(store->commit({}, {Op::put("k", "a", "0"), Op::put("k", "b", "0"), Op::put("k", "c", "0")}));
  auto copy = contents(*store);
  int64_t lagging = store->readAll().revision;
  for (int i = 1; i <= 30; ++i) {
    std::string id = std::string(1, static_cast<char>('a' + i % 5));
    ASSERT_TRUE(store->commit({}, {i % 3 == 0 ? Op::del("k", id) : Op::put("k", id, std::to_string(i))}));
  }
  auto deadline = Clock::now() + 5s;
  while (!compactedPast(*cluster_, lagging) && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(compactedPast(*cluster_, lagging)) << "etcd's history was not compacted";

  for (auto* s : {store.get(), other.get()}) {
    auto changes = s->changesSince(lagging);
    ASSERT_TRUE(changes.compacted);
    auto all = s->readAll();
    Copy fresh;
    for (const auto& record : all.records) fresh[{record.kind, record.id}] = record.value;
    EXPECT_NE(fresh, copy);
    EXPECT_EQ(fresh, contents(*store));
    // From the full read on, the feed answers again.
    ASSERT_TRUE(store->commit({}, {Op::put("k", "after", "1")}));
    auto next = s->changesSince(all.revision);
    EXPECT_FALSE(next.compacted);
  }
}

// A watch whose next revision was compacted while it was down (here: every member restarted) starts over;
// readers from before get `compacted` and read everything. The watch keeps working afterwards.
TEST(EtcdStoreFaultTest, AWatchRestartedPastCompactionStartsOverAndMissesNothing) {
  test::EtcdCluster cluster;
  auto idleOptions = optionsFor(cluster);
  WatchLog idleWatch;  // outlives the stores, whose watch threads call it
  auto idle = openEtcdStore(idleOptions);
  idleWatch.attach(*idle);
  ASSERT_TRUE(idle->commit({}, {Op::put("k", "gone", "1"), Op::put("k", "kept", "1")}));
  int64_t reader = idle->readAll().revision;

  // Another installation on the same etcd compacts its history; compaction is cluster-wide.
  auto busyOptions = optionsFor(cluster);
  busyOptions.keptRevisions = 2;
  busyOptions.compactionInterval = 100ms;
  auto busy = openEtcdStore(busyOptions);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(busy->commit({}, {Op::put("x", "y", std::to_string(i))}));
  auto deadline = Clock::now() + 5s;
  while (!compactedPast(cluster, reader + 5) && Clock::now() < deadline) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(compactedPast(cluster, reader + 5));

  for (size_t i = 0; i < cluster.size(); ++i) cluster.kill(i);
  for (size_t i = 0; i < cluster.size(); ++i) cluster.start(i);
  cluster.waitHealthy();
  // Written while the idle store's watch reconnects: it must not be lost.
  std::optional<int64_t> revision;
  for (auto until = Clock::now() + 10s; !revision && Clock::now() < until;) {
    try {
      revision = busy->commit({}, {Op::del("x", "y")});
      revision = idle->commit({}, {Op::del("k", "gone"), Op::put("k", "new", "1")});
    } catch (const Unavailable&) {
      std::this_thread::sleep_for(100ms);
    }
  }
  ASSERT_TRUE(revision);
  ASSERT_TRUE(idleWatch.waitFor(*revision, 10000ms));
  auto changes = idle->changesSince(reader);
  Copy copy;
  if (changes.compacted) {
    copy = contents(*idle);
  } else {
    ADD_FAILURE() << "the watch restarted past compaction but the feed claims to be complete";
  }
  EXPECT_EQ(copy, (Copy{{{"k", "kept"}, "1"}, {{"k", "new"}, "1"}}));
  ASSERT_TRUE(idle->commit({}, {Op::put("k", "later", "1")}));
  EXPECT_FALSE(idle->changesSince(idle->readAll().revision).compacted);
}

TEST(EtcdStoreFaultTest, OneFollowerDownChangesNothingVisible) {
  test::EtcdCluster cluster;
  WatchLog watch;  // outlives the stores, whose watch threads call it
  auto store = openEtcdStore(optionsFor(cluster));
  watch.attach(*store);
  ASSERT_TRUE(store->commit({}, {Op::put("k", "before", "1")}));
  int64_t from = store->revision();
  cluster.kill((cluster.leader() + 1) % cluster.size());
  std::optional<int64_t> last;
  int unavailable = 0;
  for (int i = 0; i < 20; ++i) {
    std::string key = "during-" + std::to_string(i);
    try {
      last = store->commit({}, {Op::put("k", key, "1")});
    } catch (const Unavailable&) {
      // The one commit that went out on the connection to the member as it died may come back Unavailable (it
      // may or may not have been applied: the caller retries, as the API's callers do on its 500). Only that one.
      ASSERT_EQ(++unavailable, 1) << i;
      auto applied = store->get("k", key);
      last = applied ? std::optional<int64_t>(applied->modRevision) : store->commit({}, {Op::put("k", key, "1")});
    }
    ASSERT_TRUE(last) << i;
    ASSERT_TRUE(store->get("k", "during-" + std::to_string(i))) << i;
  }
  ASSERT_TRUE(watch.waitFor(*last, 2000ms));
  EXPECT_EQ(store->changesSince(from).records.size(), 20u);
  EXPECT_EQ(store->count("k"), 21u);
}

// A commit in flight when the leader dies is lost with it, and etcd answers only after its own request
// timeout: such commits throw Unavailable until a new leader is elected, then all work again.
TEST(EtcdStoreFaultTest, TheLeaderDownPausesCommitsForAnElection) {
  test::EtcdCluster cluster;
  WatchLog watch;  // outlives the stores, whose watch threads call it
  auto store = openEtcdStore(optionsFor(cluster));
  watch.attach(*store);
  ASSERT_TRUE(store->commit({}, {Op::put("k", "before", "1")}));
  cluster.kill(cluster.leader());
  auto killed = Clock::now();
  std::optional<int64_t> revision;
  while (!revision && Clock::now() - killed < 10s) {
    try {
      revision = store->commit({}, {Op::put("k", "after", "1")});
    } catch (const Unavailable&) {
    }
  }
  ASSERT_TRUE(revision);
  auto recovered = Clock::now() - killed;
  std::printf("leader killed → first commit: %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(recovered).count()));
  EXPECT_LT(recovered, 5s) << "commits must work again within 5 s of losing the leader";
  EXPECT_TRUE(watch.waitFor(*revision, 2000ms));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store->commit({}, {Op::put("k", "then-" + std::to_string(i), "1")}));
}

TEST(EtcdStoreFaultTest, QuorumLostFailsFastAndRecoversWithoutARestart) {
  test::EtcdCluster cluster;
  auto options = optionsFor(cluster);
  WatchLog watch;  // outlives the stores, whose watch threads call it
  auto writer = openEtcdStore(options);
  auto follower = openEtcdStore(options);  // its watch must come back on its own
  watch.attach(*follower);
  ASSERT_TRUE(writer->commit({}, {Op::put("k", "before", "1")}));

  cluster.kill(1);
  cluster.kill(2);
  auto started = Clock::now();
  EXPECT_THROW(writer->commit({}, {Op::put("k", "lost", "1")}), Unavailable);
  std::printf(
      "quorum lost → commit throws: %lld ms\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()));
  EXPECT_LT(Clock::now() - started, 3s) << "a commit without quorum must fail within 3 s";
  started = Clock::now();
  EXPECT_THROW(writer->get("k", "before"), Unavailable);
  EXPECT_LT(Clock::now() - started, 3s) << "a read without quorum must fail within 3 s";

  // How long the members take to start and elect is etcd's business (and the machine's load); what Trellis
  // owes is to commit again soon after etcd is healthy, with no restart of its own.
  auto restarted = Clock::now();
  cluster.start(1);
  cluster.start(2);
  cluster.waitHealthy();
  std::printf("members restarted → etcd healthy: %lld ms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - restarted).count()));
  auto back = Clock::now();
  std::optional<int64_t> revision;
  while (!revision && Clock::now() - back < 10s) {
    try {
      revision = writer->commit({}, {Op::put("k", "after", "1")});
    } catch (const Unavailable&) {
      std::this_thread::sleep_for(50ms);
    }
  }
  ASSERT_TRUE(revision);
  auto recovered = Clock::now() - back;
  std::printf("etcd healthy → first commit: %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(recovered).count()));
  EXPECT_LT(recovered, 3s) << "commits must work again within 3 s of etcd's return to health";
  EXPECT_TRUE(watch.waitFor(*revision, 5000ms)) << "the other instance's watch did not recover";
  EXPECT_TRUE(follower->get("k", "after"));
}

// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, made with openssl.
std::string makeCertificates() {
  std::string dir = (std::filesystem::temp_directory_path() / "trellis-etcd-tls-XXXXXX").string();
  if (!mkdtemp(dir.data())) throw std::runtime_error("mkdtemp failed");
  std::string script =
      "cd " + dir +
      " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > server.ext"
      " && printf 'extendedKeyUsage=clientAuth\\n' > client.ext"
      " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key"
      " -out ca.pem -days 1 -subj /CN=trellis-test-ca"
      " && for n in server client; do"
      " openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $n.key -out $n.csr"
      " -subj /CN=$n && openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
      " -out $n.pem -days 1 -extfile $n.ext || exit 1; done";
  if (std::system((script + " > openssl.log 2>&1").c_str()) != 0)
    throw std::runtime_error("openssl failed: see " + dir + "/openssl.log");
  return dir;
}

TEST(EtcdStoreTlsTest, TalksTlsWithAClientCertificate) {
  std::string certificates = makeCertificates();
  {
    test::EtcdCluster cluster(1, certificates);
    auto options = optionsFor(cluster);
    options.caFile = certificates + "/ca.pem";
    options.certFile = certificates + "/client.pem";
    options.keyFile = certificates + "/client.key";
    auto store = openEtcdStore(options);
    ASSERT_TRUE(store->commit({}, {Op::put("k", "a", "1")}));
    EXPECT_EQ(store->get("k", "a")->value, "1");

    // By name: the certificate is checked against the name given, not the address it resolves to.
    auto byName = options;
    byName.endpoints = {"localhost:" + cluster.endpoints().front().substr(cluster.endpoints().front().rfind(':') + 1)};
    EXPECT_EQ(openEtcdStore(byName)->get("k", "a")->value, "1");

    // etcd asks for a client certificate: without one, nothing answers.
    auto anonymous = options;
    anonymous.certFile.clear();
    anonymous.keyFile.clear();
    EXPECT_THROW(openEtcdStore(anonymous), Unavailable);
    auto plain = options;
    plain.caFile.clear();
    EXPECT_THROW(openEtcdStore(plain), Unavailable);
  }
  std::filesystem::remove_all(certificates);
}

}  // namespace
}  // namespace trellis::store
