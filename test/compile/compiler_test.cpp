#include "compile/compiler.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <atomic>

#include "compile/builder.h"
#include "compile/sqlite_fixture.h"
#include "compile/store_fixture.h"

namespace trellis::compile {
namespace {

using namespace snapshot;

using testing::StoreFixture;

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kTgA = "tg-0000000000000000a";
const std::string kTgB = "tg-0000000000000000b";

StoreFixture basicStore() {
  StoreFixture s;
  s.service(kSvc, "billing", "Billing.Example.COM", 120);
  s.targetGroup(kTgA, 8080, {{"10.0.0.1"}, {"10.0.0.2", 9090, true}, {"fd00::5"}});
  s.targetGroup(kTgB, 80, {{"i-0123456789abcdef0"}, {"i-unknown"}}, {}, "INSTANCE");
  s.listener("listener-1", kSvc, 8081, StoreFixture::forward({{kTgA, 25}, {kTgB, 75}}));
  s.rule("rule-2", kSvc, "listener-1", 20, {{"method", "POST"}}, StoreFixture::fixed(500));
  s.rule("rule-1", kSvc, "listener-1", 10,
         {{"pathMatch", {{"match", {{"prefix", "/API"}}}}},
          {"headerMatches", {{{"name", "X-Env"}, {"match", {{"contains", "Prod"}}}}}}},
         StoreFixture::forward({{kTgB, 100}, {kTgA, 0}}));
  return s;
}

model::Config config() {
  model::Config c;
  c.instances.push_back({"i-0123456789abcdef0", "vpc-1", "10.1.0.7"});
  c.vpcs.push_back({"vpc-1", {"10.1.0.0/16", "fd00:1::/64"}});
  c.vpcs.push_back({"vpc-2", {"10.1.2.0/24"}});
  return c;
}

TEST(SnapshotCompiler, IndexesServicesByLowerCasedHostNames) {
  auto snap = compileSnapshot(basicStore().contents(), config());
  const Service* byGenerated = snap->serviceByHost(StoreFixture::generatedName(kSvc, "billing"));
  ASSERT_NE(byGenerated, nullptr);
  EXPECT_EQ(byGenerated->id, kSvc);
  EXPECT_EQ(snap->serviceByHost("billing.example.com"), byGenerated);
  EXPECT_EQ(snap->serviceByHost("Billing.Example.COM"), nullptr);  // callers lower-case first
  // The names above them, with how many host names are below each.
  EXPECT_EQ(snap->hostAncestors.at("example.com"), 1u);
  EXPECT_EQ(snap->hostAncestors.at("com"), 1u);
  EXPECT_FALSE(snap->hostAncestors.contains("billing.example.com"));
  EXPECT_EQ(byGenerated->idleTimeoutSeconds, 120);
  EXPECT_EQ(snap->httpListenerPorts, std::vector<uint16_t>{8081});
}

TEST(SnapshotCompiler, SortsRulesAndCompilesMatchers) {
  auto snap = compileSnapshot(basicStore().contents(), config());
  const Listener* listener = snap->services.at(kSvc)->listenerOnPort(8081);
  ASSERT_NE(listener, nullptr);
  ASSERT_EQ(listener->rules.size(), 2u);
  EXPECT_EQ(listener->rules[0].id, "rule-1");
  EXPECT_EQ(listener->rules[1].id, "rule-2");
  const HttpMatch& m = listener->rules[0].match;
  EXPECT_EQ(m.pathKind, HttpMatch::PathKind::Prefix);
  EXPECT_EQ(m.path, "/api");  // case-insensitive by default: stored lower-cased
  ASSERT_EQ(m.headers.size(), 1u);
  EXPECT_EQ(m.headers[0].name, "x-env");
  EXPECT_EQ(m.headers[0].value, "prod");
  EXPECT_EQ(m.headers[0].kind, HeaderMatch::Kind::Contains);
  // Weight 0 entries are dropped; the other keeps its weight.
  ASSERT_EQ(listener->rules[0].action.targetGroups.size(), 1u);
  EXPECT_EQ(listener->rules[0].action.targetGroups[0].id, kTgB);
  EXPECT_EQ(listener->rules[1].action.kind, Action::Kind::FixedResponse);
  EXPECT_EQ(listener->rules[1].action.statusCode, 500);
  EXPECT_EQ(listener->defaultAction.totalWeight, 100);
  const TargetGroup* group = listener->defaultAction.targetGroups[0].group;
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->id, kTgA);
  // The group routing reads and the snapshot's own entry hold the very same targets (one health each).
  EXPECT_TRUE(group->targets.sameAs(snap->targetGroups.at(kTgA)->targets));
}

TEST(SnapshotCompiler, ResolvesTargets) {
  auto snap = compileSnapshot(basicStore().contents(), config());
  const TargetGroup& a = *snap->targetGroups.at(kTgA);
  ASSERT_EQ(a.targets.size(), 3u);
  EXPECT_EQ(a.targets[0].ipPort, "10.0.0.1:8080");
  EXPECT_FALSE(a.targets[0].draining);
  EXPECT_EQ(a.targets[1].ipPort, "10.0.0.2:9090");
  EXPECT_TRUE(a.targets[1].draining);
  EXPECT_EQ(a.targets[2].ipPort, "[fd00::5]:8080");
  EXPECT_TRUE(a.used);
  const TargetGroup& b = *snap->targetGroups.at(kTgB);
  EXPECT_EQ(b.targets[0].ipPort, "10.1.0.7:80");
  EXPECT_FALSE(b.targets[1].resolvable());
  // Health defaults of https://docs.aws.amazon.com/vpc-lattice/latest/ug/target-group-health-checks.html.
  EXPECT_TRUE(a.healthCheck.enabled);
  EXPECT_EQ(a.healthCheck.intervalSeconds, 30);
  EXPECT_EQ(a.healthCheck.healthyThreshold, 5);
  EXPECT_EQ(a.healthCheck.unhealthyThreshold, 2);
  EXPECT_EQ(a.healthCheck.path, "/");
  EXPECT_TRUE(a.healthCheck.matches(200));
  EXPECT_FALSE(a.healthCheck.matches(204));
}

TEST(SnapshotCompiler, LambdaAndAlbTargetsComeFromTheConfig) {
  const std::string kTgFn = "tg-0000000000000000c", kTgAlb = "tg-0000000000000000d";
  const std::string fn = "arn:aws:lambda:us-east-1:111122223333:function:echo:live";
  const std::string alb = "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/web/50dc6c495c0c9188";
  StoreFixture s = basicStore();
  s.put("targetgroup", kTgFn,
        {{"id", kTgFn},
         {"name", "fn"},
         {"arn", "arn:aws:vpc-lattice:us-east-1:111122223333:targetgroup/" + kTgFn},
         {"type", "LAMBDA"},
         {"config", {{"lambdaEventStructureVersion", "V2"}}},
         {"status", "ACTIVE"},
         {"targets", {{{"id", fn}}}}});
  s.targetGroup(kTgAlb, 8443, {{alb}}, {}, "ALB");
  model::Config c = config();
  c.albs.push_back({alb, "vpc-1", "10.1.0.9"});
  c.lambda.endpoint = "http://127.0.0.1:9001/prefix/";
  c.lambda.timeoutSeconds = 7;

  auto snap = compileSnapshot(s.contents(), c);
  const TargetGroup& f = *snap->targetGroups.at(kTgFn);
  ASSERT_TRUE(f.lambda);
  EXPECT_TRUE(f.lambdaEventV2);
  EXPECT_FALSE(f.healthCheck.enabled);
  EXPECT_EQ(f.lambda->host, "127.0.0.1:9001");
  EXPECT_EQ(f.lambda->pathPrefix, "/prefix");
  EXPECT_EQ(f.lambda->settings.timeoutSeconds, 7);
  EXPECT_EQ(f.lambda->server->protocol, TargetProtocol::Http);
  ASSERT_EQ(f.targets.size(), 1u);
  EXPECT_EQ(f.targets[0].ipPort, fn);  // logs name the function
  EXPECT_TRUE(f.targets[0].resolvable());
  const TargetGroup& a = *snap->targetGroups.at(kTgAlb);
  EXPECT_EQ(a.targets[0].ipPort, "10.1.0.9:8443");
  EXPECT_FALSE(a.healthCheck.enabled);  // the load balancer checks its own targets

  c.lambda.endpoint = "https://[::1]";
  snap = compileSnapshot(s.contents(), c);
  const LambdaEndpoint& tls = *snap->targetGroups.at(kTgFn)->lambda;
  EXPECT_EQ(tls.server->protocol, TargetProtocol::Https);
  EXPECT_EQ(tls.server->targets[0].port, 443);
  EXPECT_EQ(tls.host, "[::1]");
  EXPECT_EQ(tls.pathPrefix, "");

  c.lambda.endpoint.clear();  // nowhere to run functions: the target cannot be routed to
  snap = compileSnapshot(s.contents(), c);
  EXPECT_FALSE(snap->targetGroups.at(kTgFn)->lambda);
  EXPECT_FALSE(snap->targetGroups.at(kTgFn)->targets[0].resolvable());
  c.albs.clear();
  EXPECT_FALSE(compileSnapshot(s.contents(), c)->targetGroups.at(kTgAlb)->targets[0].resolvable());
}

TEST(SnapshotCompiler, HealthCheckConfigAndMatchers) {
  StoreFixture s;
  s.targetGroup(kTgA, 80, {{"10.0.0.1"}},
                {{"enabled", true}, {"path", "/health"}, {"healthCheckIntervalSeconds", 5},
                 {"healthCheckTimeoutSeconds", 0}, {"healthyThresholdCount", 2},
                 {"matcher", {{"httpCode", "200-204,302"}}}});
  auto snap = compileSnapshot(s.contents(), config());
  const HealthCheck& hc = snap->targetGroups.at(kTgA)->healthCheck;
  EXPECT_EQ(hc.path, "/health");
  EXPECT_EQ(hc.intervalSeconds, 5);
  EXPECT_EQ(hc.timeoutSeconds, 5);  // 0 resets to default
  EXPECT_EQ(hc.healthyThreshold, 2);
  EXPECT_TRUE(hc.matches(204));
  EXPECT_TRUE(hc.matches(302));
  EXPECT_FALSE(hc.matches(301));
  EXPECT_FALSE(snap->targetGroups.at(kTgA)->used);
  EXPECT_TRUE(parseHttpCodeMatcher("2x0").empty());
  EXPECT_TRUE(parseHttpCodeMatcher("300-200").empty());
  EXPECT_EQ(parseHttpCodeMatcher("200,202").size(), 2u);
}

TEST(SnapshotCompiler, NetworksVpcsAndAccessLogs) {
  StoreFixture s = basicStore();
  s.serviceNetwork("sn-0000000000000000a", "net");
  s.serviceAssociation("snsa-1", "sn-0000000000000000a", kSvc);
  s.vpcAssociation("snva-1", "sn-0000000000000000a", "vpc-1");
  s.accessLogSubscription("als-1", kSvc, "arn:aws:logs:us-east-1:111122223333:log-group:svc-logs");
  s.accessLogSubscription("als-2", "sn-0000000000000000a", "arn:aws:s3:::bucket/prefix");
  auto snap = compileSnapshot(s.contents(), config());
  const Service& svc = *snap->services.at(kSvc);
  ASSERT_EQ(svc.networks.size(), 1u);
  ASSERT_EQ(svc.accessLogs.size(), 2u);
  sockaddr_in client{};
  client.sin_family = AF_INET;
  inet_pton(AF_INET, "10.1.3.3", &client.sin_addr);
  EXPECT_EQ(snap->vpcOf(reinterpret_cast<sockaddr*>(&client)), "vpc-1");
  inet_pton(AF_INET, "10.1.2.3", &client.sin_addr);  // longest prefix wins
  EXPECT_EQ(snap->vpcOf(reinterpret_cast<sockaddr*>(&client)), "vpc-2");
  inet_pton(AF_INET, "10.2.0.1", &client.sin_addr);
  EXPECT_EQ(snap->vpcOf(reinterpret_cast<sockaddr*>(&client)), "");
  ASSERT_NE(snap->networkFor(svc, "vpc-1"), nullptr);
  EXPECT_EQ(snap->networkFor(svc, "vpc-1")->id, "sn-0000000000000000a");
  EXPECT_EQ(snap->networkFor(svc, "vpc-2"), nullptr);
}

TEST(SnapshotCompiler, FirehoseDestinationsCarryTheConfiguredEndpoint) {
  StoreFixture s = basicStore();
  s.accessLogSubscription("als-1", kSvc, "arn:aws:firehose:us-east-1:111122223333:deliverystream/lattice-logs");
  model::Config c = config();
  c.accessLogs.firehose["lattice-logs"] = {"http://127.0.0.1:9000/put", "key-1"};
  auto snap = compileSnapshot(s.contents(), c);
  const auto& logs = snap->services.at(kSvc)->accessLogs;
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].firehoseUrl, "http://127.0.0.1:9000/put");
  EXPECT_EQ(logs[0].firehoseAccessKey, "key-1");
  // A stream the config does not name: no endpoint (the writer drops and counts its records).
  c.accessLogs.firehose.clear();
  c.accessLogs.firehose["other"] = {"http://127.0.0.1:9000/put", ""};
  EXPECT_EQ(compileSnapshot(s.contents(), c)->services.at(kSvc)->accessLogs[0].firehoseUrl, "");
}

TEST(SnapshotCompiler, SkipsBrokenRecordsAndKeepsTheRest) {
  StoreFixture s = basicStore();
  s.put("rule", "rule-bad", nlohmann::json{{"id", "rule-bad"}, {"listenerId", "listener-1"}, {"action", {}}});
  store::StoreContents contents = s.contents();
  contents.records.push_back({"service", "svc-broken", "{not json", 1, 1});
  auto snap = compileSnapshot(contents, config());
  EXPECT_EQ(snap->services.size(), 1u);
  EXPECT_EQ(snap->services.at(kSvc)->listeners[0].rules.size(), 2u);
}

TEST(SnapshotCompiler, CompilesProtocolsToEnums) {
  StoreFixture s = basicStore();
  s.listener("listener-2", kSvc, 443, StoreFixture::fixed(404), "HTTPS");
  s.listener("listener-3", kSvc, 8443, StoreFixture::fixed(404), "TLS_PASSTHROUGH");
  s.listener("listener-4", kSvc, 9000, StoreFixture::fixed(404), "QUIC");  // no protocol of the API's
  s.targetGroup(kTgB, 443, {{"10.0.0.9"}}, {{"protocol", "HTTPS"}, {"protocolVersion", "HTTP2"}});
  for (const auto& r : s.contents().records) {
    if (r.kind != "targetgroup" || r.id != kTgB) continue;
    nlohmann::json doc = nlohmann::json::parse(r.value);
    doc["config"]["protocol"] = "HTTPS";
    doc["config"]["protocolVersion"] = "GRPC";
    s.put("targetgroup", kTgB, doc);
    break;
  }
  auto snap = compileSnapshot(s.contents(), config());
  const Service& service = *snap->services.at(kSvc);
  ASSERT_EQ(service.listeners.size(), 3u);  // QUIC is skipped, as any record that does not compile
  EXPECT_EQ(service.listenerOnPort(8081)->protocol, ListenerProtocol::Http);
  EXPECT_EQ(service.listenerOnPort(443)->protocol, ListenerProtocol::Https);
  EXPECT_EQ(service.listenerOnPort(8443)->protocol, ListenerProtocol::TlsPassthrough);
  EXPECT_EQ(service.listenerOnPort(9000), nullptr);
  EXPECT_EQ(snap->httpListenerPorts, std::vector<uint16_t>{8081});
  const TargetGroup& a = *snap->targetGroups.at(kTgA);
  EXPECT_EQ(a.protocol, TargetProtocol::Http);
  EXPECT_EQ(a.protocolVersion, ProtocolVersion::Http1);
  EXPECT_EQ(a.healthCheck.protocol, TargetProtocol::Http);
  EXPECT_EQ(a.healthCheck.protocolVersion, ProtocolVersion::Http1);
  const TargetGroup& b = *snap->targetGroups.at(kTgB);
  EXPECT_EQ(b.protocol, TargetProtocol::Https);
  EXPECT_EQ(b.protocolVersion, ProtocolVersion::Grpc);
  EXPECT_EQ(b.healthCheck.protocol, TargetProtocol::Https);
  EXPECT_EQ(b.healthCheck.protocolVersion, ProtocolVersion::Http2);
}

TEST(HealthCells, SurviveRebuilds) {
  HealthCells cells;
  auto first = compileSnapshot(basicStore().contents(), config(), &cells);
  first->targetGroups.at(kTgA)->targets[0].health->healthy = true;
  auto second = compileSnapshot(basicStore().contents(), config(), &cells);
  EXPECT_TRUE(second->targetGroups.at(kTgA)->targets[0].health->healthy);
  EXPECT_FALSE(second->targetGroups.at(kTgA)->targets[2].health->healthy);
}

TEST(SnapshotBuilder, CoalescesAndPublishesNewRevisions) {
  testing::SqliteFixture db;
  StoreFixture s = basicStore();
  db.sync(s.contents());
  SnapshotBuilder builder(*db.store, config());
  db.store->watch([&builder](int64_t revision) { builder.notifyCommitted(revision); });
  std::atomic<int> published{0};  // counted on the builder's thread
  builder.subscribe([&] { ++published; });
  builder.start();
  int64_t first = builder.current()->revision;
  EXPECT_EQ(first, db.store->revision());
  EXPECT_EQ(builder.current()->services.size(), 1u);
  int64_t last = first;
  for (int i = 0; i < 50; ++i) {
    s.service("svc-0000000000000000" + std::to_string(i % 10), "s" + std::to_string(i));
    last = db.sync(s.contents());
  }
  EXPECT_EQ(last, first + 50);
  ASSERT_TRUE(builder.waitForRevision(last, std::chrono::seconds(10)));
  EXPECT_EQ(builder.current()->services.size(), 11u);
  EXPECT_EQ(builder.current()->services.at("svc-00000000000000003")->name, "s43");
  EXPECT_LE(published.load(), 51);
  EXPECT_NE(builder.renderMetrics().find("trellis_snapshot_propagation_seconds_count"), std::string::npos);

  // A deletion reaches the data plane through the change feed too.
  s.erase("service", "svc-00000000000000003");
  last = db.sync(s.contents());
  ASSERT_TRUE(builder.waitForRevision(last, std::chrono::seconds(10)));
  EXPECT_FALSE(builder.current()->services.contains("svc-00000000000000003"));
  EXPECT_EQ(builder.current()->services.size(), 10u);
  builder.stop();
}

}  // namespace
}  // namespace trellis::compile
