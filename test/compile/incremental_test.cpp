// SnapshotCompiler reuses what it compiled from unchanged records. Random sequences of changes to a small
// store must leave its snapshots equal to a from-scratch compile of the same state, field by field, and
// must never change a snapshot already handed out.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <sstream>

#include "compile/builder.h"
#include "compile/compiler.h"
#include "compile/sqlite_fixture.h"
#include "compile/store_fixture.h"

namespace trellis::compile {
namespace {

using namespace snapshot;

using testing::StoreFixture;
using json = nlohmann::json;

// Everything the data plane reads, in a deterministic order. Health cells print by address (unless
// `cells` is false): a compile that shares cells with another must hand out the same ones.
std::string dump(const Snapshot& snap, bool cells = true) {
  std::ostringstream out;
  auto sorted = [](const auto& map) {
    std::vector<std::string> keys;
    for (const auto& [key, value] : map) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    return keys;
  };
  auto action = [&](const Action& a) {
    out << " action(kind=" << int(a.kind) << " status=" << a.statusCode << " total=" << a.totalWeight;
    for (const auto& w : a.targetGroups) {
      out << " [" << w.id << " w=" << w.weight << " group=" << (w.group ? w.group->id : "null");
      if (w.group) {
        for (const auto& t : w.group->targets)
          out << " " << t.ipPort << "/" << (cells ? t.health.get() : nullptr) << "/" << t.draining;
      }
      out << "]";
    }
    out << ")";
  };
  auto match = [&](const HttpMatch& m) {
    out << " match(" << m.method << " " << int(m.pathKind) << " " << m.path << " " << m.pathCaseSensitive;
    for (const auto& h : m.headers) out << " h:" << h.name << int(h.kind) << h.value << h.caseSensitive;
    out << ")";
  };
  out << "revision " << snap.revision << "\n";
  for (const auto& id : sorted(snap.services)) {
    const Service& s = *snap.services.at(id);
    out << "service " << id << " " << s.arn << " " << s.name << " " << s.authType << " iam=" << s.usesIam
        << " policy=" << (s.authPolicy != nullptr) << " idle=" << s.idleTimeoutSeconds << " cert=" << s.certificateArn
        << " generated=" << s.generatedName << " custom=" << s.customDomainName << "\n";
    for (const auto& host : s.hostNames) out << "  host " << host << "\n";
    for (const auto& [key, value] : s.tags) out << "  tag " << key << "=" << value << "\n";
    for (const auto* network : s.networks) out << "  network " << network->id << "\n";
    for (const auto& log : s.accessLogs)
      out << "  log " << log.subscriptionId << " " << log.destinationArn << " " << log.resourceId << "\n";
    for (const auto& l : s.listeners) {
      out << "  listener " << l.id << " " << l.arn << " " << l.name << " " << int(l.protocol) << " " << l.port;
      action(l.defaultAction);
      out << "\n";
      for (const auto& r : l.rules) {
        out << "    rule " << r.id << " " << r.arn << " " << r.name << " p=" << r.priority;
        match(r.match);
        for (const auto& alternative : r.alternatives) match(alternative);
        for (const auto& q : r.queries) out << " q:" << q.name << int(q.kind) << q.value;
        for (const auto& [name, value] : r.requestHeaders.set) out << " set:" << name << "=" << value;
        out << " rewrite=" << r.rewrite.hostname << int(r.rewrite.path.kind) << r.rewrite.path.value
            << " redirect=" << r.redirect.enabled << r.redirect.statusCode;
        action(r.action);
        out << "\n";
      }
    }
  }
  for (const auto& id : sorted(snap.targetGroups)) {
    const TargetGroup& g = *snap.targetGroups.at(id);
    out << "group " << id << " " << g.arn << " " << g.type << " " << g.port << " used=" << g.used
        << " check=" << g.healthCheck.enabled << g.healthCheck.path << g.healthCheck.intervalSeconds << "\n";
    for (const auto& t : g.targets)
      out << "  target " << t.id << " " << t.port << " " << t.address << " " << t.ipPort << " " << t.draining << " "
          << (cells ? t.health.get() : nullptr) << "\n";
  }
  for (const auto& id : sorted(snap.serviceNetworks)) {
    const ServiceNetwork& n = *snap.serviceNetworks.at(id);
    out << "network " << id << " " << n.authType << " policy=" << (n.authPolicy != nullptr) << "\n";
    for (const auto& log : n.accessLogs) out << "  log " << log.subscriptionId << "\n";
  }
  for (const auto& id : sorted(snap.vpcs)) {
    const Vpc& v = snap.vpcs.at(id);
    out << "vpc " << id << " sg=" << v.securityGroupsApply << " ingress=" << v.ingress.size() << "\n";
    for (const auto* network : v.networks) out << "  network " << network->id << "\n";
    for (const auto& service : sorted(snap.services)) {
      if (const ServiceNetwork* network = v.networkFor(*snap.services.at(service)))
        out << "  reaches " << service << " via " << network->id << "\n";
    }
  }
  for (const auto& host : sorted(snap.servicesByHost))
    out << "byHost " << host << " " << snap.servicesByHost.at(host)->id << "\n";
  for (const auto& name : sorted(snap.hostAncestors)) out << "above " << name << " " << snap.hostAncestors.at(name) << "\n";
  for (auto port : snap.httpListenerPorts) out << "httpPort " << port << "\n";
  for (auto port : snap.listenerPorts) out << "port " << port << "\n";
  return out.str();
}

constexpr const char* kAllowAll =
    R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke",)"
    R"("Resource":"*"}]})";

// Services, target groups, listeners, rules, networks and their associations drawn from a few ids each,
// so changes keep hitting records others point at.
class RandomStore {
 public:
  explicit RandomStore(uint32_t seed) : random_(seed) {}

  void step() {
    switch (pick(12)) {
      case 0: service(); break;
      case 1: targetGroup(); break;
      case 2: case 3: listener(); break;
      case 4: case 5: case 6: rule(); break;
      case 7: store.serviceNetwork(id("sn-", 2), "net"); break;
      case 8: store.serviceAssociation(id("snsa-", 6), id("sn-", 2), id("svc-", 5)); break;
      case 9: store.vpcAssociation(id("snva-", 2), id("sn-", 2), pick(2) ? "vpc-1" : "vpc-2"); break;
      case 10: other(); break;
      default: erase(); break;
    }
  }

  StoreFixture store;

 private:
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(random_); }
  std::string id(const std::string& prefix, int n) { return prefix + "00000000000000" + std::to_string(pick(n)); }

  void service() {
    std::string svc = id("svc-", 5);
    // Two services may claim one custom domain name: the first in store order keeps it.
    store.service(svc, "s" + std::to_string(pick(3)), pick(2) ? "" : "api" + std::to_string(pick(2)) + ".example.com",
                  pick(3) * 30);
  }
  void targetGroup() {
    std::vector<StoreFixture::TargetSpec> targets;
    for (int i = pick(4); i > 0; --i)
      targets.push_back({"10.0.0." + std::to_string(pick(5)), pick(2) * 8080, pick(4) == 0});
    bool instance = pick(4) == 0;
    if (instance) targets = {{"i-0123456789abcdef0"}, {"i-unknown"}};
    json check = pick(2) ? json::object() : json{{"enabled", true}, {"path", "/health" + std::to_string(pick(3))}};
    store.targetGroup(id("tg-", 4), 80 + pick(2), targets, check, instance ? "INSTANCE" : "IP");
  }
  json action() {
    if (pick(4) == 0) return StoreFixture::fixed(400 + pick(100));
    if (pick(2)) return StoreFixture::forward({{id("tg-", 5), pick(3) * 50}});  // tg-...4 never exists
    return StoreFixture::forward({{id("tg-", 4), 25}, {id("tg-", 4), 75}});
  }
  void listener() {
    store.listener(id("listener-", 6), id("svc-", 5), 80 + pick(3), action(), pick(5) ? "HTTP" : "HTTPS");
  }
  void rule() {
    json match = {{"pathMatch", {{"match", {{"prefix", "/p" + std::to_string(pick(3))}}}}}};
    if (pick(2)) match["method"] = "GET";
    std::string ruleId = id("rule-", 10);
    store.rule(ruleId, id("svc-", 5), id("listener-", 6), pick(4) * 10, match, action());
  }
  void other() {
    switch (pick(3)) {
      case 0:
        store.accessLogSubscription(id("als-", 3), pick(2) ? id("svc-", 5) : id("sn-", 2),
                                    "arn:aws:logs:us-east-1:111122223333:log-group:g" + std::to_string(pick(2)));
        break;
      case 1: {
        std::string resource = pick(2) ? id("svc-", 5) : id("sn-", 2);
        store.put("authpolicy", resource,
                  {{"id", resource},
                   {"policy", pick(3) ? kAllowAll : "not a policy"}});
        break;
      }
      default:
        store.put("tags", StoreFixture::arn("service", id("svc-", 5)), {{"team", "t" + std::to_string(pick(3))}});
    }
  }
  void erase() {
    const auto& records = store.contents().records;
    if (records.empty()) return;
    const auto& victim = records[pick(static_cast<int>(records.size()))];
    std::string kind = victim.kind, recordId = victim.id;
    store.erase(kind, recordId);
  }

  std::mt19937 random_;
};

model::Config config(bool moved) {
  model::Config c;
  c.instances.push_back({"i-0123456789abcdef0", "vpc-1", moved ? "10.1.0.8" : "10.1.0.7"});
  c.vpcs.push_back({"vpc-1", {"10.1.0.0/16"}});
  c.vpcs.push_back({"vpc-2", {"10.2.0.0/16"}});
  return c;
}

TEST(SnapshotCompilerIncremental, EqualsAFullCompileAfterEveryChange) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RandomStore random(seed);
    HealthCells cells;
    SnapshotCompiler compiler(&cells);
    SnapshotPtr previous;
    std::string previousDump;
    bool moved = false;
    for (int step = 0; step < 200; ++step) {
      random.step();
      bool configChanged = step % 50 == 49;  // INSTANCE targets resolve elsewhere: compiled from scratch
      if (configChanged) moved = !moved;
      auto incremental = !previous || configChanged
                             ? compiler.compile(random.store.contents(), config(moved))
                             : compiler.update(random.store.changesSince(previous->revision));
      auto full = compileSnapshot(random.store.contents(), config(moved), &cells);
      std::string expected = dump(*full);
      ASSERT_EQ(dump(*incremental), expected) << "step " << step;
      if (previous) ASSERT_EQ(dump(*previous), previousDump) << "a published snapshot changed at step " << step;
      previous = incremental;
      previousDump = expected;
    }
  }
}

TEST(SnapshotCompilerIncremental, SharesWhatDidNotChange) {
  StoreFixture s;
  s.service("svc-00000000000000001", "a");
  s.service("svc-00000000000000002", "b");
  s.targetGroup("tg-00000000000000001", 80, {{"10.0.0.1"}});
  s.targetGroup("tg-00000000000000002", 80, {{"10.0.0.2"}});
  s.listener("listener-1", "svc-00000000000000001", 80, StoreFixture::forward({{"tg-00000000000000001", 1}}));
  s.listener("listener-2", "svc-00000000000000002", 80, StoreFixture::forward({{"tg-00000000000000002", 1}}));
  HealthCells cells;
  SnapshotCompiler compiler(&cells);
  auto first = compiler.compile(s.contents(), config(false));

  // A target registered in tg-2: only svc-2 (which routes to it) is rebuilt; svc-1 and tg-1 are the very
  // same objects in both snapshots.
  s.targetGroup("tg-00000000000000002", 80, {{"10.0.0.2"}, {"10.0.0.3"}});
  auto second = compiler.update(s.changesSince(first->revision));
  EXPECT_EQ(first->services.at("svc-00000000000000001"), second->services.at("svc-00000000000000001"));
  EXPECT_EQ(first->targetGroups.at("tg-00000000000000001"), second->targetGroups.at("tg-00000000000000001"));
  EXPECT_NE(first->services.at("svc-00000000000000002"), second->services.at("svc-00000000000000002"));
  EXPECT_NE(first->targetGroups.at("tg-00000000000000002"), second->targetGroups.at("tg-00000000000000002"));
  EXPECT_FALSE(first->services.at("svc-00000000000000002")->listeners.sameAs(
      second->services.at("svc-00000000000000002")->listeners));
  auto routedTargets = [](const Snapshot& snap) {
    return snap.services.at("svc-00000000000000002")->listeners[0].defaultAction.targetGroups[0].group->targets.size();
  };
  EXPECT_EQ(routedTargets(*second), 2u);
  EXPECT_EQ(routedTargets(*first), 1u);  // the old snapshot still routes to what it was built with
}

// The builder keeps a copy of the store and applies its change feed: after random changes committed to a
// real SQLite store, what it publishes equals a from-scratch compile of everything the store holds. Some
// changes reach it late, after the store pruned their history, so it must notice and read everything.
TEST(SnapshotBuilderChangeFeed, PublishesWhatAFullReadWouldCompile) {
  for (uint32_t seed = 11; seed <= 13; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    RandomStore random(seed);
    testing::SqliteFixture db(/*keptRevisions=*/8);
    SnapshotBuilder builder(*db.store, config(false));
    builder.start();
    for (int step = 0; step < 150; ++step) {
      random.step();
      int64_t revision = db.sync(random.store.contents());
      if (step % 50 >= 35) continue;  // not told: the next build starts more than 8 revisions behind
      builder.notifyCommitted(revision);
      ASSERT_TRUE(builder.waitForRevision(revision, std::chrono::seconds(10))) << "step " << step;
      auto expected = compileSnapshot(db.store->readAll(), config(false));
      ASSERT_EQ(dump(*builder.current(), false), dump(*expected, false)) << "step " << step;
    }
    builder.stop();
  }
}

}  // namespace
}  // namespace trellis::compile
