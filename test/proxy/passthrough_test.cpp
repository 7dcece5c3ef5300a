// TLS_PASSTHROUGH listeners end to end: the target's own certificate reaches the client, the
// bytes are not touched, routing is by exact custom-domain SNI and by weight, idle connections close.
#include <gtest/gtest.h>

#include <set>

#include "proxy/tls_harness.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kTgA = "tg-0000000000000000a";
const std::string kTgB = "tg-0000000000000000b";
const std::string kCustom = "db.example.com";

class PassthroughTest : public ::testing::Test {
 protected:
  explicit PassthroughTest(model::Config config = loopbackConfig()) : h(std::move(config), 2, dir.path()) {}
  void SetUp() override {
    ASSERT_TRUE(makeSelfSigned(dir, "a", kCustom));
    ASSERT_TRUE(makeSelfSigned(dir, "b", kCustom));
    a = std::make_unique<TlsBackend>(dir.file("a.pem"), dir.file("a.key"));
    b = std::make_unique<TlsBackend>(dir.file("b.pem"), dir.file("b.key"));
    port = freePort();
    tcpGroup(kTgA, a->port());
    tcpGroup(kTgB, b->port());
    h.store.reachableFrom(kLoopbackVpc, kSvc);
  }
  void TearDown() override { h.dataPlane().stop(); }  // before the backends: they serve spliced connections
  void tcpGroup(const std::string& id, uint16_t targetPort) {
    h.store.targetGroup(id, targetPort, {{"127.0.0.1"}}, json{{"enabled", false}});
    for (const auto& r : h.store.contents().records) {
      if (r.kind != "targetgroup" || r.id != id) continue;
      json doc = json::parse(r.value);
      doc["config"]["protocol"] = "TCP";
      doc["config"].erase("protocolVersion");
      h.store.put("targetgroup", id, doc);
      return;
    }
  }
  void start(const json& action, int idleTimeoutSeconds = 0) {
    h.store.service(kSvc, "db", kCustom, idleTimeoutSeconds);
    h.store.listener("listener-1", kSvc, port, action, "TLS_PASSTHROUGH");
    h.start();
    ASSERT_TRUE(h.waitListening(port));
  }

  TempDir dir;
  std::unique_ptr<TlsBackend> a, b;
  uint16_t port = 0;
  ProxyHarness h;
};

TEST_F(PassthroughTest, TargetCertificateReachesTheClientAndBytesAreUntouched) {
  start(StoreFixture::forward({{kTgA, 100}}));
  TlsClient c(port, kCustom);
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.peerFingerprint(), fingerprintOfPemFile(dir.file("a.pem")));
  for (int i = 0; i < 3; ++i) {
    Response r = c.get(kCustom);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "tls-backend proto=-");  // no x-forwarded-* added: the proxy never saw the request
  }
  // openssl s_client sees the same: the target's certificate, not one of Trellis's.
  auto s = runCommand("echo | timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                      " -servername " + kCustom);
  EXPECT_EQ(s.exitCode, 0) << s.output;
  EXPECT_EQ(s.output.find("Trellis"), std::string::npos) << s.output;
}

TEST_F(PassthroughTest, RoutesOnlyTheExactCustomDomainName) {
  start(StoreFixture::forward({{kTgA, 100}}));
  EXPECT_FALSE(TlsClient(port, StoreFixture::generatedName(kSvc, "db")).connected());
  EXPECT_FALSE(TlsClient(port, "other.example.com").connected());
  EXPECT_FALSE(TlsClient(port, "").connected());
  Client plain(port);  // not TLS at all
  EXPECT_NE(plain.get(kCustom).status, 200);
  EXPECT_TRUE(TlsClient(port, "DB.Example.com").connected());  // DNS names are case-insensitive
}

TEST_F(PassthroughTest, SpreadsConnectionsByWeight) {
  start(StoreFixture::forward({{kTgA, 1}, {kTgB, 3}}));
  std::map<std::string, int> seen;
  for (int i = 0; i < 40; ++i) {
    TlsClient c(port, kCustom);
    ASSERT_TRUE(c.connected());
    ++seen[c.peerFingerprint()];
  }
  // Two workers each run their own smooth weighted round robin: shares are exact per worker cycle.
  int toA = seen[fingerprintOfPemFile(dir.file("a.pem"))];
  int toB = seen[fingerprintOfPemFile(dir.file("b.pem"))];
  EXPECT_EQ(toA + toB, 40);
  EXPECT_GE(toA, 6);
  EXPECT_LE(toA, 14);
}

TEST_F(PassthroughTest, IdleConnectionsClose) {
  start(StoreFixture::forward({{kTgA, 100}}), 1);
  TlsClient c(port, kCustom);
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.get(kCustom).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  EXPECT_EQ(c.get(kCustom).status, 0);  // closed by the proxy after 1 s without data
}

// Lattice's connection lifetime (10 minutes; here the config's 2 s): a busy spliced connection is closed too.
class PassthroughLifetimeTest : public PassthroughTest {
 protected:
  static model::Config shortLifetime() {
    model::Config config = model::parseConfig("dataPlane: {connectionLifetimeSeconds: 2}\n", "test.yaml");
    config.vpcs = loopbackConfig().vpcs;
    return config;
  }
  PassthroughLifetimeTest() : PassthroughTest(shortLifetime()) {}
};

TEST_F(PassthroughLifetimeTest, BusyConnectionsCloseAtTheirLifetime) {
  start(StoreFixture::forward({{kTgA, 100}}));
  TlsClient c(port, kCustom);
  ASSERT_TRUE(c.connected());
  auto opened = std::chrono::steady_clock::now();
  int answered = 0;
  while (c.get(kCustom).status == 200) {  // never idle: a request every 100 ms
    ++answered;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_LT(std::chrono::steady_clock::now() - opened, std::chrono::seconds(10)) << "never closed";
  }
  auto lived = std::chrono::steady_clock::now() - opened;
  EXPECT_GE(lived, std::chrono::milliseconds(1900));
  EXPECT_GE(answered, 10);
  TlsClient next(port, kCustom);  // new connections are still welcome
  ASSERT_TRUE(next.connected());
  EXPECT_EQ(next.get(kCustom).status, 200);
}

}  // namespace
}  // namespace trellis::testing

namespace trellis::testing {
namespace {

// Auth on passthrough: action Connect on the service ARN, callers always anonymous.
TEST_F(PassthroughTest, AuthPoliciesDecideConnect) {
  auto setAuth = [&](const std::string& policy) {
    for (const auto& r : h.store.contents().records) {
      if (r.kind != "service" || r.id != kSvc) continue;
      json doc = json::parse(r.value);
      doc["authType"] = "AWS_IAM";
      h.store.put("service", kSvc, doc);
    }
    if (policy.empty())
      h.store.erase("authpolicy", kSvc);
    else
      h.store.put("authpolicy", kSvc, json{{"policy", policy}});
  };
  h.store.service(kSvc, "db", kCustom, 0);
  h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTgA, 100}}), "TLS_PASSTHROUGH");
  setAuth("");
  h.start();
  ASSERT_TRUE(h.waitListening(port));
  EXPECT_FALSE(TlsClient(port, kCustom).connected()) << "AWS_IAM without a policy denies";

  const std::string svcArn = "arn:aws:vpc-lattice:us-east-1:111122223333:service/" + kSvc;
  setAuth(R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Connect",)"
          R"("Resource":")" + svcArn + R"(","Condition":{"NumericEquals":{"vpc-lattice-svcs:Port":")" +
          std::to_string(port) + R"("}}}]})");
  h.publish();
  EXPECT_TRUE(TlsClient(port, kCustom).connected()) << "an anonymous Connect allowed on this port";

  setAuth(R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke",)"
          R"("Resource":"*"}]})");
  h.publish();
  EXPECT_FALSE(TlsClient(port, kCustom).connected()) << "Invoke is not Connect";
}

}  // namespace
}  // namespace trellis::testing
