// Who can reach what: the source VPC of a client, service-network reachability and
// the VPC association's security groups. On loopback: clients bound to different 127.0.0.0/8 addresses
// are clients in different VPCs.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "proxy/proxy_harness.h"
#include "proxy/router.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;

const std::string kVpcA = "vpc-0000000000000000a";  // 127.0.1.0/24
const std::string kVpcB = "vpc-0000000000000000b";  // 127.0.2.0/24
const std::string kSnA = "sn-0000000000000000a";
const std::string kSnB = "sn-0000000000000000b";
const std::string kSvc = "svc-0123456789abcdef0";
const std::string kOther = "svc-0000000000000000b";
const std::string kTg = "tg-0000000000000000a";
const std::string kHost = StoreFixture::generatedName(kSvc, "billing");
const std::string kOtherHost = StoreFixture::generatedName(kOther, "other");
const std::string kVpcArnPrefix = "arn:aws:ec2:us-east-1:111122223333:vpc/";

model::Config twoVpcs() {
  model::Config c;
  c.vpcs.push_back({kVpcA, {"127.0.1.0/24"}});
  c.vpcs.push_back({kVpcB, {"127.0.2.0/24"}});
  return c;
}

snapshot::Address v4(const char* text) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, text, &a.sin_addr);
  snapshot::Address out;
  snapshot::addressOf(reinterpret_cast<sockaddr*>(&a), out);
  return out;
}

snapshot::Address v6(const char* text) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  inet_pton(AF_INET6, text, &a.sin6_addr);
  snapshot::Address out;
  snapshot::addressOf(reinterpret_cast<sockaddr*>(&a), out);
  return out;
}

std::string vpcIdOf(const snapshot::Snapshot& snap, const snapshot::Address& address) {
  const snapshot::Vpc* vpc = snap.sourceVpc(address);
  return vpc ? vpc->id : "none";
}

// An SNVA as the API stores it, with security groups.
void vpcAssociation(StoreFixture& store, const std::string& id, const std::string& sn, const std::string& vpc,
                    const std::vector<std::string>& securityGroups) {
  store.put("servicenetworkvpcassociation", id,
            {{"id", id}, {"arn", StoreFixture::arn("servicenetworkvpcassociation", id)}, {"status", "ACTIVE"},
             {"serviceNetworkId", sn}, {"serviceNetworkArn", StoreFixture::arn("servicenetwork", sn)},
             {"vpcId", vpc}, {"securityGroupIds", securityGroups}, {"createdAt", "2024-01-01T00:00:00Z"}});
}

// ---------------- the snapshot's view ----------------

TEST(SourceVpc, LongestPrefixOverIPv4AndIPv6) {
  model::Config c;
  c.vpcs.push_back({"vpc-wide", {"10.0.0.0/8", "fd00::/8"}});
  c.vpcs.push_back({"vpc-mid", {"10.1.0.0/16", "fd00:1::/32"}});
  c.vpcs.push_back({"vpc-narrow", {"10.1.2.0/24", "10.1.3.4/32"}});
  c.vpcs.push_back({"vpc-all6", {"::/0"}});
  auto snap = compile::compileSnapshot({}, c);
  EXPECT_EQ(vpcIdOf(*snap, v4("10.200.0.1")), "vpc-wide");
  EXPECT_EQ(vpcIdOf(*snap, v4("10.1.200.1")), "vpc-mid");
  EXPECT_EQ(vpcIdOf(*snap, v4("10.1.2.255")), "vpc-narrow");
  EXPECT_EQ(vpcIdOf(*snap, v4("10.1.3.4")), "vpc-narrow");
  EXPECT_EQ(vpcIdOf(*snap, v4("10.1.3.5")), "vpc-mid");
  EXPECT_EQ(vpcIdOf(*snap, v4("11.0.0.1")), "none");  // ::/0 is IPv6 only
  // A dual-stack socket's IPv4 peer arrives IPv4-mapped and is still the IPv4 client.
  EXPECT_EQ(vpcIdOf(*snap, v6("::ffff:10.1.2.3")), "vpc-narrow");
  EXPECT_EQ(vpcIdOf(*snap, v6("fd00:1::5")), "vpc-mid");
  EXPECT_EQ(vpcIdOf(*snap, v6("fd00:2::5")), "vpc-wide");
  EXPECT_EQ(vpcIdOf(*snap, v6("2001:db8::1")), "vpc-all6");
  EXPECT_EQ(snap->vpcs.at("vpc-mid").arn, kVpcArnPrefix + "vpc-mid");

  // The development switch: clients outside every VPC belong to defaultVpc.
  c.defaultVpc = "vpc-mid";
  snap = compile::compileSnapshot({}, c);
  EXPECT_EQ(vpcIdOf(*snap, v4("11.0.0.1")), "vpc-mid");
  EXPECT_EQ(vpcIdOf(*snap, v4("10.1.2.3")), "vpc-narrow");
}

TEST(SourceVpc, ReachableServicesAndSecurityGroupsArePrecomputed) {
  model::Config c = twoVpcs();
  c.securityGroups.push_back({"sg-0000000000000000a", kVpcA, {{"127.0.1.0/25", 80, 80}, {"127.0.1.200/32", 0, 65535}}});
  c.securityGroups.push_back({"sg-0000000000000000b", kVpcA, {{"127.0.1.128/25", 8000, 8999}}});
  StoreFixture s;
  s.service(kSvc, "billing");
  s.service(kOther, "other");
  s.serviceNetwork(kSnA, "a");
  s.serviceNetwork(kSnB, "b");
  s.serviceAssociation("snsa-1", kSnA, kSvc);
  s.serviceAssociation("snsa-2", kSnB, kOther);
  vpcAssociation(s, "snva-a", kSnA, kVpcA, {"sg-0000000000000000a", "sg-0000000000000000b"});
  vpcAssociation(s, "snva-b", kSnB, kVpcB, {});
  auto snap = compile::compileSnapshot(s.contents(), c);
  const snapshot::Vpc& a = snap->vpcs.at(kVpcA);
  const snapshot::Vpc& b = snap->vpcs.at(kVpcB);
  const snapshot::Service& svc = *snap->services.at(kSvc);
  const snapshot::Service& other = *snap->services.at(kOther);
  ASSERT_NE(a.networkFor(svc), nullptr);
  EXPECT_EQ(a.networkFor(svc)->id, kSnA);
  EXPECT_EQ(a.networkFor(other), nullptr);
  EXPECT_EQ(b.networkFor(svc), nullptr);
  EXPECT_EQ(b.networkFor(other)->id, kSnB);
  EXPECT_EQ(snap->networkFor(other, kVpcB)->id, kSnB);  // the by-id form the DNS directory uses

  // Rules of both groups apply (a union), each on its own port range.
  EXPECT_TRUE(a.admits(v4("127.0.1.5"), 80));
  EXPECT_FALSE(a.admits(v4("127.0.1.5"), 81));
  EXPECT_TRUE(a.admits(v4("127.0.1.200"), 9999));
  EXPECT_TRUE(a.admits(v4("127.0.1.201"), 8000));
  EXPECT_TRUE(a.admits(v4("127.0.1.201"), 8999));
  EXPECT_FALSE(a.admits(v4("127.0.1.201"), 80));
  EXPECT_FALSE(a.admits(v4("127.0.1.201"), 9000));
  EXPECT_TRUE(b.admits(v4("127.0.2.77"), 1));  // no security group: the whole VPC may connect

  // A security group the config does not define lets nobody in (it was meant to restrict).
  vpcAssociation(s, "snva-a", kSnA, kVpcA, {"sg-00000000000000099"});
  snap = compile::compileSnapshot(s.contents(), c);
  EXPECT_FALSE(snap->vpcs.at(kVpcA).admits(v4("127.0.1.5"), 80));
  EXPECT_NE(snap->vpcs.at(kVpcA).networkFor(*snap->services.at(kSvc)), nullptr);

  // Disassociated: nothing reachable, and no security group left to apply.
  s.erase("servicenetworkvpcassociation", "snva-a");
  snap = compile::compileSnapshot(s.contents(), c);
  EXPECT_EQ(snap->vpcs.at(kVpcA).networkFor(*snap->services.at(kSvc)), nullptr);
  EXPECT_TRUE(snap->vpcs.at(kVpcA).admits(v4("127.0.1.5"), 80));
}

TEST(SourceVpc, RouterAnswersUnreachableLikeUnknown) {
  StoreFixture s;
  s.service(kSvc, "billing");
  s.listener("listener-1", kSvc, 80, StoreFixture::fixed(200));
  s.serviceNetwork(kSnA, "a");
  s.serviceAssociation("snsa-1", kSnA, kSvc);
  vpcAssociation(s, "snva-a", kSnA, kVpcA, {});
  auto snap = compile::compileSnapshot(s.contents(), twoVpcs());
  proxy::RequestHead head;
  head.host = kHost;
  proxy::RouteResult fromA = proxy::route(*snap, &snap->vpcs.at(kVpcA), 80, head);
  ASSERT_EQ(fromA.kind, proxy::RouteResult::Kind::Action);
  EXPECT_EQ(fromA.network->id, kSnA);
  for (const snapshot::Vpc* source : {&snap->vpcs.at(kVpcB), static_cast<const snapshot::Vpc*>(nullptr)}) {
    proxy::RouteResult r = proxy::route(*snap, source, 80, head);
    EXPECT_EQ(r.kind, proxy::RouteResult::Kind::NoService);
    EXPECT_EQ(r.service, nullptr);
    EXPECT_TRUE(r.unreachable);
  }
}

// ---------------- through a running data plane ----------------

// The value of one Prometheus series line, or -1.
long metric(proxy::DataPlane& dataPlane, const std::string& series) {
  std::string text = dataPlane.renderMetrics();
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stol(text.substr(at + series.size() + 2));
}
const std::string kDeniedNoVpc = "trellis_proxy_connections_denied_total{reason=\"no_vpc\"}";
const std::string kDeniedSg = "trellis_proxy_connections_denied_total{reason=\"security_group\"}";

// True when the proxy cut the connection without answering: the request gets no response at all.
bool dropped(uint16_t port, const std::string& source, const std::string& host = kHost) {
  Client c(port, source);
  if (!c.connected()) return true;  // refused outright
  c.send("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
  return c.read().status == 0;
}

int statusFrom(uint16_t port, const std::string& source, const std::string& host = kHost) {
  Client c(port, source);
  return c.get(host).status;
}

template <typename Fn>
bool eventually(Fn fn) {
  for (int i = 0; i < 200; ++i) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

class Reachability : public ::testing::Test {
 protected:
  explicit Reachability(model::Config config = twoVpcs(), uint16_t listenerPort = freePort())
      : port(listenerPort), h(std::move(config)) {}

  void SetUp() override {
    h.store.service(kSvc, "billing");
    h.store.service(kOther, "other");
    h.store.targetGroup(kTg, backend.port(), {{"127.0.0.1"}}, {{"enabled", false}});
    h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTg, 100}}));
    h.store.listener("listener-2", kOther, port, StoreFixture::forward({{kTg, 100}}));
    h.store.serviceNetwork(kSnA, "a");
    h.store.serviceNetwork(kSnB, "b");
    h.store.serviceAssociation("snsa-1", kSnA, kSvc);
    h.store.serviceAssociation("snsa-2", kSnB, kOther);
  }
  void start() {
    h.start();
    ASSERT_TRUE(h.waitListening(port));
  }

  EchoBackend backend{"backend"};
  uint16_t port;
  ProxyHarness h;
};

TEST_F(Reachability, OnlyThroughTheVpcsServiceNetwork) {
  vpcAssociation(h.store, "snva-a", kSnA, kVpcA, {});
  vpcAssociation(h.store, "snva-b", kSnB, kVpcB, {});
  start();
  // VPC A's network holds the billing service; any address of A's CIDR may use it (no security group).
  for (std::string source : {"127.0.1.10", "127.0.1.250"}) {
    Client c(port, source);
    Response r = c.get(kHost);
    ASSERT_EQ(r.status, 200) << source;
    json seen = json::parse(r.body)["headers"];
    EXPECT_EQ(seen["x-amzn-source-vpc"], kVpcA);
    EXPECT_EQ(seen["x-amzn-lattice-network"], "SourceVpcArn=" + kVpcArnPrefix + kVpcA);
    EXPECT_EQ(seen["x-amzn-lattice-target"], "ServiceArn=" + StoreFixture::arn("service", kSvc) +
                                                 "; ServiceNetworkArn=" + StoreFixture::arn("servicenetwork", kSnA) +
                                                 "; TargetGroupArn=" + StoreFixture::arn("targetgroup", kTg));
    EXPECT_EQ(seen["x-forwarded-for"], source);
  }
  int served = backend.requests();

  // From B, billing does not exist: the same answer as for a host nobody has.
  Client fromB(port, "127.0.2.10");
  Response hidden = fromB.get(kHost);
  Response unknown = fromB.get("nobody.example.com");
  EXPECT_EQ(hidden.status, 404);
  EXPECT_EQ(hidden.status, unknown.status);
  EXPECT_EQ(hidden.body, unknown.body);
  ASSERT_EQ(hidden.headers.size(), unknown.headers.size());
  for (size_t i = 0; i < hidden.headers.size(); ++i) {
    EXPECT_EQ(hidden.headers[i].first, unknown.headers[i].first);
    if (hidden.headers[i].first != "x-amzn-requestid") EXPECT_EQ(hidden.headers[i].second, unknown.headers[i].second);
  }
  // ... while B's own network's service answers, on the same connection, and not to A.
  Response own = fromB.get(kOtherHost);
  ASSERT_EQ(own.status, 200);
  EXPECT_EQ(json::parse(own.body)["headers"]["x-amzn-source-vpc"], kVpcB);
  EXPECT_EQ(statusFrom(port, "127.0.1.10", kOtherHost), 404);
  EXPECT_EQ(backend.requests(), served + 1);

  std::string text = h.dataPlane().renderMetrics();
  EXPECT_NE(text.find("trellis_proxy_unreachable_service_total 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("trellis_proxy_unknown_host_total 1\n"), std::string::npos);
}

TEST_F(Reachability, ClientsOutsideEveryVpcAreRefusedAtAccept) {
  vpcAssociation(h.store, "snva-a", kSnA, kVpcA, {});
  start();
  EXPECT_TRUE(dropped(port, "127.0.3.10"));
  EXPECT_FALSE(dropped(port, "127.0.1.0"));  // A's network address is still in A
  // Two refused: that client, and waitListening's probe from 127.0.0.1 (accepted by whichever worker).
  EXPECT_TRUE(eventually([&] { return metric(h.dataPlane(), kDeniedNoVpc) == 2; }))
      << metric(h.dataPlane(), kDeniedNoVpc);
  EXPECT_EQ(metric(h.dataPlane(), kDeniedSg), 0);
  EXPECT_EQ(backend.requests(), 1);
}

model::Config withDefaultVpc() {
  model::Config c = twoVpcs();
  c.defaultVpc = kVpcB;
  return c;
}

class DefaultVpc : public Reachability {
 protected:
  DefaultVpc() : Reachability(withDefaultVpc()) {}
};

TEST_F(DefaultVpc, MapsClientsOutsideEveryVpc) {
  vpcAssociation(h.store, "snva-b", kSnB, kVpcB, {});
  start();
  Client c(port, "127.0.3.10");
  Response r = c.get(kOtherHost);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["headers"]["x-amzn-source-vpc"], kVpcB);
  EXPECT_EQ(c.get(kHost).status, 404);                  // and sees what B sees, no more
  EXPECT_EQ(statusFrom(port, "127.0.1.10", kOtherHost), 404);  // A is still A
  EXPECT_EQ(metric(h.dataPlane(), kDeniedNoVpc), 0);
}

// Half of A's /24 on the first listener port only; one more host on every port.
model::Config withSecurityGroups(uint16_t port) {
  model::Config c = twoVpcs();
  c.securityGroups.push_back({"sg-0000000000000000a", kVpcA, {{"127.0.1.0/25", port, port}}});
  c.securityGroups.push_back({"sg-0000000000000000b", kVpcA, {{"127.0.1.200/32", 0, 65535}}});
  return c;
}

class SecurityGroups : public Reachability {
 protected:
  SecurityGroups() : SecurityGroups(freePort()) {}
  explicit SecurityGroups(uint16_t first) : Reachability(withSecurityGroups(first), first) {}
  void SetUp() override {
    Reachability::SetUp();
    h.store.listener("listener-3", kSvc, second, StoreFixture::forward({{kTg, 100}}));  // a second port
  }
  uint16_t second = freePort();
};

TEST_F(SecurityGroups, DropClientsAndPortsNoRuleAllows) {
  vpcAssociation(h.store, "snva-a", kSnA, kVpcA, {"sg-0000000000000000a", "sg-0000000000000000b"});
  start();
  ASSERT_TRUE(h.waitListening(second));
  EXPECT_EQ(statusFrom(port, "127.0.1.10"), 200);     // sg-a: the lower half, on `port`
  EXPECT_EQ(statusFrom(port, "127.0.1.200"), 200);    // sg-b: this host, any port
  EXPECT_EQ(statusFrom(second, "127.0.1.200"), 200);
  EXPECT_TRUE(dropped(second, "127.0.1.10"));         // sg-a does not cover this port
  EXPECT_TRUE(dropped(port, "127.0.1.130"));          // nor this address
  EXPECT_TRUE(dropped(second, "127.0.1.130"));
  EXPECT_EQ(metric(h.dataPlane(), kDeniedSg), 3);
  EXPECT_EQ(backend.requests(), 3);
}

TEST_F(Reachability, AssociationChangesApplyLive) {
  start();
  Client kept(port, "127.0.1.10");  // one keep-alive connection through every change
  EXPECT_EQ(kept.get(kHost).status, 404);  // A is associated with nothing yet

  vpcAssociation(h.store, "snva-a", kSnA, kVpcA, {});
  h.publish();
  EXPECT_EQ(kept.get(kHost).status, 200);
  EXPECT_EQ(statusFrom(port, "127.0.1.11"), 200);

  // Removing the service from the network hides it; adding it back shows it.
  h.store.erase("servicenetworkserviceassociation", "snsa-1");
  h.publish();
  EXPECT_EQ(kept.get(kHost).status, 404);
  h.store.serviceAssociation("snsa-1", kSnA, kSvc);
  h.publish();
  EXPECT_EQ(kept.get(kHost).status, 200);

  // Moving A to B's network: B's service appears, A's disappears.
  h.store.erase("servicenetworkvpcassociation", "snva-a");
  vpcAssociation(h.store, "snva-a2", kSnB, kVpcA, {});
  h.publish();
  EXPECT_EQ(kept.get(kHost).status, 404);
  Response moved = kept.get(kOtherHost);
  ASSERT_EQ(moved.status, 200);
  EXPECT_NE(json::parse(moved.body)["headers"]["x-amzn-lattice-target"].get<std::string>().find(
                "ServiceNetworkArn=" + StoreFixture::arn("servicenetwork", kSnB)),
            std::string::npos);

  // A security group on the association applies to new connections at once (an open one stays, as
  // connection tracking would keep it).
  vpcAssociation(h.store, "snva-a2", kSnB, kVpcA, {"sg-00000000000000099"});  // allows nobody
  h.publish();
  EXPECT_TRUE(dropped(port, "127.0.1.12", kOtherHost));
  EXPECT_EQ(kept.get(kOtherHost).status, 200);

  // Disassociated entirely: nothing is reachable, new connections are accepted again.
  h.store.erase("servicenetworkvpcassociation", "snva-a2");
  h.publish();
  EXPECT_EQ(kept.get(kOtherHost).status, 404);
  EXPECT_EQ(statusFrom(port, "127.0.1.12", kOtherHost), 404);
}

TEST(ReachabilityAccessLog, CarriesTheSourceVpcAndNetwork) {
  std::string dir = std::filesystem::temp_directory_path() / ("trellis-reach-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  EchoBackend backend("backend");
  uint16_t port = freePort();
  {
    ProxyHarness h(twoVpcs(), 1, dir);
    h.store.service(kSvc, "billing");
    h.store.targetGroup(kTg, backend.port(), {{"127.0.0.1"}}, {{"enabled", false}});
    h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTg, 100}}));
    h.store.serviceNetwork(kSnA, "a");
    h.store.serviceAssociation("snsa-1", kSnA, kSvc);
    vpcAssociation(h.store, "snva-a", kSnA, kVpcA, {});
    h.store.accessLogSubscription("als-1", kSnA, "arn:aws:logs:us-east-1:111122223333:log-group:net");
    h.start();
    ASSERT_TRUE(h.waitListening(port));
    EXPECT_EQ(statusFrom(port, "127.0.1.10"), 200);
    EXPECT_EQ(statusFrom(port, "127.0.2.10"), 404);  // unreachable: not the network's traffic, not logged
    h.dataPlane().stop();                             // flushes the writer
  }
  std::ifstream in(dir + "/access-logs/cloudwatch/net.jsonl");
  ASSERT_TRUE(in.good());
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["sourceVpcId"], kVpcA);
  EXPECT_EQ(lines[0]["sourceVpcArn"], kVpcArnPrefix + kVpcA);
  EXPECT_EQ(lines[0]["serviceNetworkArn"], StoreFixture::arn("servicenetwork", kSnA));
  EXPECT_EQ(lines[0]["sourceIpPort"].get<std::string>().rfind("127.0.1.10:", 0), 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace trellis::testing
