#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "auth/sigv4.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/time.h"
#include "fleet/changes.h"
#include "fleet/feed.h"
#include "fleet/follower.h"
#include "store/sqlite_store.h"

namespace trellis::fleet {
namespace {

namespace fs = std::filesystem;
using store::Op;

constexpr const char* kAllowReceive =
    R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"trellis:ReceiveConfiguration","Resource":"*"}]})";

model::Identity identity(const std::string& name, const std::string& policy) {
  model::Identity id;
  id.arn = "arn:aws:iam::111122223333:role/" + name;
  id.accessKeyId = "AKIA" + name;
  id.secretAccessKey = name + "-secret";
  id.policy = policy;
  return id;
}

// The kind, id and value of every record a store holds of the kinds the data plane compiles.
std::map<std::string, std::string> dataPlaneRecords(store::Store& s) {
  std::map<std::string, std::string> out;
  for (const auto& r : s.readAll().records)
    if (r.kind == "service" || r.kind == "rule" || r.kind == "listener") out[r.kind + "/" + r.id] = r.value;
  return out;
}

bool eventually(const std::function<bool()>& holds) {
  for (int i = 0; i < 500; ++i) {
    if (holds()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return holds();
}

// An API server's config stream on loopback: a feed over `primary` behind a real HTTP server.
struct FeedServer {
  FeedServer(store::Store& primary, model::ConfigPtr config,
             std::chrono::seconds healthLease = std::chrono::seconds(30))
      : feed(primary, [config] { return config; }, healthLease),
        server("feed", AsyncHttpHandler([this](const HttpRequest& r, HttpReply reply) { feed.handle(r, reply); })) {
    // The store keeps its watchers: this one outlives the server, and stops calling it when it goes.
    primary.watch([target = target](int64_t revision) {
      if (auto* f = target->load()) f->notifyCommitted(revision);
    });
    feed.start();
    server.start("127.0.0.1:0");
  }
  ~FeedServer() {
    target->store(nullptr);
    stop();
  }
  void stop() {
    feed.stop();
    server.stop();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server.port()); }

  ConfigFeed feed;
  HttpServer server;
  std::shared_ptr<std::atomic<ConfigFeed*>> target = std::make_shared<std::atomic<ConfigFeed*>>(&feed);
};

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "trellis-fleet-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    auto c = std::make_shared<model::Config>();
    c->identities = {identity("proxy", kAllowReceive), identity("admin", "")};
    config_ = c;
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string dir(const std::string& name) const { return (fs::path(root_) / name).string(); }
  FollowerOptions follow(std::vector<std::string> urls, const std::string& who = "proxy") const {
    const auto* id = config_->identityByAccessKey("AKIA" + who);
    return {std::move(urls), "", {id->accessKeyId, id->secretAccessKey, ""}, "us-east-1", "test-proxy",
            std::chrono::seconds(5)};
  }
  // A signed poll, as a proxy sends it, answered at once (wait=0).
  HttpResult poll(const FeedServer& feed, const std::string& who, int64_t since,
                  const std::string& secret = "") const {
    std::string problem;
    auto endpoint = *parseEndpoint(feed.url(), problem);
    std::string query = "since=" + std::to_string(since) + "&wait=0";
    HeaderList headers{{"host", endpoint.hostHeader}};
    auth::signRequest("GET", endpoint.hostHeader, kChangesPath, query, headers, "",
                      {"AKIA" + who, secret.empty() ? who + "-secret" : secret, ""}, "us-east-1", kSigningService, systemNow());
    return httpExchange(endpoint, "GET", std::string(kChangesPath) + "?" + query, headers, "");
  }

  std::string root_;
  model::ConfigPtr config_;
};

TEST(ChangeBatchTest, RoundTripsAndRefusesWhatIsNotABatch) {
  ChangeBatch batch{42, true, {{"rule", "rule-1"}}, {{"service", "svc-1", R"({"name":"a\u00e9"})", 0, 0}}};
  std::string error;
  auto back = decodeChangeBatch(encodeChangeBatch(batch), error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->revision, 42);
  EXPECT_TRUE(back->full);
  ASSERT_EQ(back->deleted.size(), 1u);
  EXPECT_EQ(back->deleted[0].id, "rule-1");
  ASSERT_EQ(back->records.size(), 1u);
  EXPECT_EQ(back->records[0].value, batch.records[0].value);
  EXPECT_EQ(back->records[0].modRevision, 42);
  for (const char* bad : {"", "[]", R"({"revision":-1,"full":false,"deleted":[],"records":[]})",
                          R"({"revision":1,"full":0,"deleted":[],"records":[]})",
                          R"({"revision":1,"full":false,"deleted":[{"kind":"rule"}],"records":[]})",
                          R"({"revision":1,"full":false,"deleted":[],"records":[{"kind":"a","id":"b","value":{}}]})",
                          R"({"revision":1.5,"full":false,"deleted":[],"records":[]})"}) {
    error.clear();
    EXPECT_FALSE(decodeChangeBatch(bad, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST_F(FleetTest, ABatchAppliesWholeAtItsRevisionAndAWholeCopyRemovesWhatItLacks) {
  store::SqliteStore replica(dir("replica"));
  EXPECT_TRUE(applyChangeBatch(replica, {5, false, {}, {{"service", "a", "1", 0, 0}, {"service", "b", "1", 0, 0}}}));
  EXPECT_TRUE(applyChangeBatch(replica, {9, false, {{"service", "a"}}, {{"rule", "r", "1", 0, 0}}}));
  EXPECT_EQ(replica.revision(), 9);
  EXPECT_EQ(dataPlaneRecords(replica), (std::map<std::string, std::string>{{"rule/r", "1"}, {"service/b", "1"}}));
  EXPECT_FALSE(applyChangeBatch(replica, {9, false, {}, {{"service", "z", "1", 0, 0}}})) << "not past the replica";
  EXPECT_FALSE(replica.get("service", "z"));

  EXPECT_TRUE(applyChangeBatch(replica, {20, true, {}, {{"service", "b", "1", 0, 0}, {"service", "c", "2", 0, 0}}}));
  EXPECT_EQ(dataPlaneRecords(replica), (std::map<std::string, std::string>{{"service/b", "1"}, {"service/c", "2"}}));
  EXPECT_EQ(replica.get("service", "b")->modRevision, 5) << "an unchanged record is not rewritten";
  auto changes = replica.changesSince(9);
  EXPECT_EQ(changes.deleted.size(), 1u) << "the rule";
  EXPECT_EQ(changes.records.size(), 1u) << "service c only";
}

TEST_F(FleetTest, OnlyAnIdentityGrantedReceiveConfigurationMayFollow) {
  store::SqliteStore primary(dir("primary"));
  FeedServer feed(primary, config_);
  auto granted = poll(feed, "proxy", 0);
  EXPECT_EQ(granted.status, 200) << granted.body;
  auto admin = poll(feed, "admin", 0);  // no policy: every Lattice call, but not the stream
  EXPECT_EQ(admin.status, 403);
  EXPECT_NE(admin.body.find("trellis:ReceiveConfiguration"), std::string::npos) << admin.body;
  std::string problem;
  auto endpoint = *parseEndpoint(feed.url(), problem);
  auto unsigned_ = httpExchange(endpoint, "GET", std::string(kChangesPath) + "?since=0&wait=0", {}, "");
  EXPECT_EQ(unsigned_.status, 403);
  ASSERT_NE(unsigned_.header("x-amzn-errortype"), nullptr);
  auto forged = poll(feed, "proxy", 0, "not-the-secret");
  EXPECT_EQ(forged.status, 403);
  ASSERT_NE(forged.header("x-amzn-errortype"), nullptr);
  EXPECT_EQ(*forged.header("x-amzn-errortype"), "InvalidSignatureException");
}

TEST_F(FleetTest, TheStreamCarriesOnlyTheDataPlanesRecords) {
  store::SqliteStore primary(dir("primary"));
  primary.commit({}, {Op::put("service", "svc-1", R"({"name":"a"})"), Op::put("idempotency", "tok", "{}"),
                      Op::put("index", "x", "{}")});
  FeedServer feed(primary, config_);
  auto answer = poll(feed, "proxy", 0);
  std::string error;
  auto batch = decodeChangeBatch(answer.body, error);
  ASSERT_TRUE(batch) << error;
  EXPECT_TRUE(batch->full);
  EXPECT_EQ(batch->revision, 1);
  ASSERT_EQ(batch->records.size(), 1u);
  EXPECT_EQ(batch->records[0].kind, "service");
}

TEST_F(FleetTest, AFollowerReachesEveryCommitAndProxiesAtOneRevisionShareOneRead) {
  store::SqliteStore primary(dir("primary"));
  primary.commit({}, {Op::put("service", "svc-1", "1")});
  FeedServer feed(primary, config_);
  store::SqliteStore replicaA(dir("a")), replicaB(dir("b"));
  Follower a(replicaA, follow({feed.url()})), b(replicaB, follow({feed.url()}));
  a.start();
  b.start();
  ASSERT_TRUE(eventually([&] { return replicaA.revision() == 1 && replicaB.revision() == 1; }));
  ASSERT_TRUE(eventually([&] {
    return feed.feed.renderMetrics().find("trellis_fleet_waiting_proxies 2") != std::string::npos;
  }));
  std::string before = feed.feed.renderMetrics();
  EXPECT_NE(before.find("trellis_fleet_batches_total{full=\"false\"} 0"), std::string::npos) << before;
  primary.commit({}, {Op::put("rule", "rule-1", "1"), Op::del("service", "svc-1")});
  ASSERT_TRUE(eventually([&] { return replicaA.revision() == 2 && replicaB.revision() == 2; }));
  EXPECT_EQ(dataPlaneRecords(replicaA), dataPlaneRecords(primary));
  EXPECT_EQ(dataPlaneRecords(replicaB), dataPlaneRecords(primary));
  EXPECT_NE(feed.feed.renderMetrics().find("trellis_fleet_batches_total{full=\"false\"} 1"), std::string::npos)
      << "two proxies at revision 1, one read of the store";
  primary.commit({}, {Op::put("idempotency", "t", "{}")});
  ASSERT_TRUE(eventually([&] { return replicaA.revision() == 3; })) << "the revision moves even with nothing to apply";
  EXPECT_NE(a.renderMetrics().find("trellis_fleet_full_copies_total 1"), std::string::npos) << a.renderMetrics();
}

TEST_F(FleetTest, ABrokenStreamFailsOverAndResumesWithoutAWholeCopy) {
  store::SqliteStore primary(dir("primary"));
  primary.commit({}, {Op::put("service", "svc-1", "1")});
  auto first = std::make_unique<FeedServer>(primary, config_);
  FeedServer second(primary, config_);
  store::SqliteStore replica(dir("replica"));
  Follower follower(replica, follow({first->url(), second.url()}));
  follower.start();
  ASSERT_TRUE(eventually([&] { return replica.revision() == 1; }));
  first.reset();  // the API server it follows goes away
  primary.commit({}, {Op::put("service", "svc-2", "1")});
  ASSERT_TRUE(eventually([&] { return replica.revision() == 2; }));
  EXPECT_EQ(dataPlaneRecords(replica), dataPlaneRecords(primary));
  EXPECT_NE(follower.renderMetrics().find("trellis_fleet_full_copies_total 1"), std::string::npos)
      << follower.renderMetrics();
}

TEST_F(FleetTest, AProxyAwayLongerThanTheHistoryConvergesThroughAWholeCopy) {
  store::SqliteStore primary(dir("primary"), 3);  // keeps 3 revisions of deletions
  primary.commit({}, {Op::put("service", "svc-1", "1"), Op::put("service", "svc-2", "1")});
  store::SqliteStore replica(dir("replica"));
  {
    FeedServer feed(primary, config_);
    Follower follower(replica, follow({feed.url()}));
    follower.start();
    ASSERT_TRUE(eventually([&] { return replica.revision() == 1; }));
  }
  primary.commit({}, {Op::del("service", "svc-1")});
  for (int i = 0; i < 5; ++i) primary.commit({}, {Op::put("rule", "rule-" + std::to_string(i), "1")});
  ASSERT_TRUE(primary.changesSince(1).compacted);
  FeedServer feed(primary, config_);
  Follower follower(replica, follow({feed.url()}));
  follower.start();
  ASSERT_TRUE(eventually([&] { return replica.revision() == primary.revision(); }));
  EXPECT_EQ(dataPlaneRecords(replica), dataPlaneRecords(primary)) << "svc-1's deletion is not lost";
  EXPECT_NE(follower.renderMetrics().find("trellis_fleet_full_copies_total 1"), std::string::npos);
}

TEST_F(FleetTest, TheConfigFileTravelsOnceAndAgainWhenItChanges) {
  store::SqliteStore primary(dir("primary"));
  primary.commit({}, {Op::put("service", "svc-1", "1")});
  FeedServer feed(primary, config_);
  feed.feed.setConfigText("region: us-east-1\n");
  store::SqliteStore replica(dir("replica"));
  std::mutex mutex;
  std::vector<std::string> taken;
  auto options = follow({feed.url()});
  options.onConfig = [&](const std::string& text) {
    std::lock_guard lock(mutex);
    taken.push_back(text);
  };
  Follower follower(replica, options);
  follower.start();
  auto seen = [&] {
    std::lock_guard lock(mutex);
    return taken;
  };
  ASSERT_TRUE(eventually([&] { return seen().size() == 1 && replica.revision() == 1; }));
  EXPECT_EQ(seen()[0], "region: us-east-1\n");
  feed.feed.setConfigText("region: us-east-1\ndrainSeconds: 5\n");  // a reload: no commit needed
  ASSERT_TRUE(eventually([&] { return seen().size() == 2; }));
  EXPECT_EQ(seen()[1], "region: us-east-1\ndrainSeconds: 5\n");
  primary.commit({}, {Op::put("service", "svc-2", "1")});
  ASSERT_TRUE(eventually([&] { return replica.revision() == 2; }));
  EXPECT_EQ(seen().size(), 2u) << "a config the proxy holds is not sent again";
}

TEST_F(FleetTest, ListTargetsSeesWhatMostLiveHostsSeeAndAHostThatLeftStopsCounting) {
  store::SqliteStore primary(dir("primary"));
  primary.commit({}, {Op::put("service", "svc-1", "1")});
  FeedServer feed(primary, config_, std::chrono::seconds(2));
  auto host = [&](const std::string& id, const std::string& status) {
    auto options = follow({feed.url()});
    options.proxyId = id;
    options.healthRefresh = std::chrono::seconds(1);
    options.healthReport = [status] {
      return std::vector<TargetReport>{{"tg-1", "10.0.0.1", 80, status, status == "UNHEALTHY" ? "Target.Timeout" : ""}};
    };
    return options;
  };
  EXPECT_EQ(feed.feed.fleetHealth("tg-1", "10.0.0.1", 80).first, "") << "no host checks it yet";
  store::SqliteStore r1(dir("r1")), r2(dir("r2")), r3(dir("r3"));
  Follower failing1(r1, host("h1", "UNHEALTHY"));
  Follower passing(r2, host("h2", "HEALTHY"));
  failing1.start();
  passing.start();
  ASSERT_TRUE(eventually([&] { return failing1.renderMetrics().find("health_reports_total 0") == std::string::npos &&
                                      passing.renderMetrics().find("health_reports_total 0") == std::string::npos; }));
  EXPECT_EQ(feed.feed.fleetHealth("tg-1", "10.0.0.1", 80).first, "HEALTHY") << "one of two failing is not most";
  {
    Follower failing2(r3, host("h3", "UNHEALTHY"));
    failing2.start();
    ASSERT_TRUE(eventually([&] { return feed.feed.fleetHealth("tg-1", "10.0.0.1", 80).first == "UNHEALTHY"; }));
    EXPECT_EQ(feed.feed.fleetHealth("tg-1", "10.0.0.1", 80).second, "Target.Timeout");
  }
  // h3 is gone: once its lease runs out, one of two is failing again.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(feed.feed.fleetHealth("tg-1", "10.0.0.1", 80).first, "HEALTHY");
  EXPECT_EQ(feed.feed.fleetHealth("tg-1", "10.0.0.9", 80).first, "") << "a target nobody checks";
}

TEST_F(FleetTest, StoppingEndsAPollInFlightAtOnce) {
  store::SqliteStore primary(dir("primary"));
  primary.commit({}, {Op::put("service", "svc-1", "1")});
  FeedServer feed(primary, config_);
  store::SqliteStore replica(dir("replica"));
  auto options = follow({feed.url()});
  options.wait = std::chrono::seconds(60);
  Follower follower(replica, options);
  follower.start();
  ASSERT_TRUE(eventually([&] {
    return replica.revision() == 1 &&
           feed.feed.renderMetrics().find("trellis_fleet_waiting_proxies 1") != std::string::npos;
  }));
  auto started = std::chrono::steady_clock::now();
  follower.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
}

}  // namespace
}  // namespace trellis::fleet
