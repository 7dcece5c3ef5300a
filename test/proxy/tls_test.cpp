// HTTPS listeners end to end: real curl and openssl s_client against the data plane,
// certificates from Trellis's CA and from the imported-certificate store, HTTPS targets.
#include <gtest/gtest.h>

#include <set>

#include "proxy/tls_harness.h"
#include "tls/certificates.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kTg = "tg-0000000000000000a";
const std::string kTgTls = "tg-0000000000000000b";
const std::string kHost = StoreFixture::generatedName(kSvc, "billing");
const std::string kCustom = "billing.example.com";
const std::string kLogGroup = "arn:aws:logs:us-east-1:111122223333:log-group:tls-test";

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port = freePort();
    plainPort = freePort();
    service(certificateArn);
    h.store.targetGroup(kTg, backend.port(), {{"127.0.0.1"}});
    h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTg, 100}}), "HTTPS");
    h.store.reachableFrom(kLoopbackVpc, kSvc);
    h.store.accessLogSubscription("als-1", kSvc, kLogGroup);
  }
  // The fixture's service document plus a certificateArn.
  void service(const std::string& arn) {
    h.store.service(kSvc, "billing", kCustom);
    for (const auto& r : h.store.contents().records) {
      if (r.kind != "service") continue;
      json doc = json::parse(r.value);
      if (!arn.empty()) doc["certificateArn"] = arn;
      h.store.put("service", kSvc, doc);
      return;
    }
  }
  void start() {
    h.start();
    ASSERT_TRUE(h.waitListening(port));
    writeText(dir.file("ca.pem"), h.dataPlane().rootCertificatePem());
  }
  std::string curl(const std::string& host, const std::string& flags, const std::string& path = "/hello") {
    return "curl -sS --max-time 10 --cacert " + dir.file("ca.pem") + " --resolve " + host + ":" +
           std::to_string(port) + ":127.0.0.1 " + flags + " https://" + host + ":" + std::to_string(port) + path;
  }
  std::string sClient(const std::string& serverName) {
    std::string sni = serverName.empty() ? "-noservername" : "-servername " + serverName;
    return "echo | timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " " + sni;
  }
  // Waits until a new TLS connection for `name` sees the certificate with `fingerprint`.
  bool waitForCertificate(const std::string& name, const std::string& fingerprint) {
    for (int i = 0; i < 100; ++i) {
      TlsClient c(port, name);
      if (c.connected() && c.peerFingerprint() == fingerprint) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  std::vector<json> accessLogs() {
    std::vector<json> out;
    std::ifstream in(dir.path() + "/access-logs/cloudwatch/tls-test.jsonl");
    std::string line;
    while (std::getline(in, line)) out.push_back(json::parse(line));
    return out;
  }
  std::string importFromFiles(const std::string& stem) {
    std::string error;
    std::string arn = tls::importCertificate(dir.path(), readText(dir.file(stem + ".pem")),
                                               readText(dir.file(stem + ".key")), "us-east-1", "111122223333", error);
    EXPECT_FALSE(arn.empty()) << error;
    return arn;
  }

  TempDir dir;
  EchoBackend backend{"plain"};
  uint16_t port = 0, plainPort = 0;
  std::string certificateArn;
  ProxyHarness h{loopbackConfig(), 2, dir.path()};
};

TEST_F(TlsTest, CurlOverHttp1AndTls12And13TrustingTheExportedCa) {
  start();
  for (const std::string flags : {"--http1.1 --tlsv1.3", "--http1.1 --tlsv1.2 --tls-max 1.2", "--http2"}) {
    auto r = runCommand(curl(kHost, flags + " -w '\\n%{http_code} %{http_version}'"));
    ASSERT_EQ(r.exitCode, 0) << flags << ": " << r.output;
    // ALPN HTTP2Preferred: curl --http2 gets h2, the others HTTP/1.1.
    std::string expected = flags == "--http2" ? "\n200 2" : "\n200 1.1";
    EXPECT_NE(r.output.find(expected), std::string::npos) << flags << ": " << r.output;
    json seen = json::parse(r.output.substr(0, r.output.rfind('\n')), nullptr, false);
    EXPECT_EQ(seen["headers"]["x-forwarded-proto"], "https");
    EXPECT_EQ(seen["headers"]["x-forwarded-port"], std::to_string(port));
    EXPECT_EQ(seen["target"], "/hello");
  }
  // The CA made in the data dir keeps its private key to the owner.
  auto mode = fs::status(dir.path() + "/tls/ca.key").permissions();
  EXPECT_EQ(mode & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
}

TEST_F(TlsTest, ServerPicksSpecCipherSuitesInItsOwnOrder) {
  start();
  // The client prefers AES256 but the server's order puts AES128-GCM first.
  auto tls12 = runCommand(sClient(kHost) + " -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256");
  EXPECT_NE(tls12.output.find("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"), std::string::npos) << tls12.output;
  auto tls13 = runCommand(sClient(kHost) + " -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256");
  EXPECT_NE(tls13.output.find("TLS_AES_128_GCM_SHA256"), std::string::npos) << tls13.output;
  // Suites outside the list are refused; so is TLS 1.1.
  EXPECT_NE(runCommand(sClient(kHost) + " -tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305").exitCode, 0);
  EXPECT_NE(runCommand(sClient(kHost) + " -tls1_1").exitCode, 0);
}

TEST_F(TlsTest, SniCasesGeneratedCustomWithoutCertificateUnknownAndMissing) {
  start();
  auto generated = runCommand(sClient(kHost));
  EXPECT_EQ(generated.exitCode, 0) << generated.output;
  EXPECT_NE(generated.output.find("CN = " + kHost.substr(0, 64)), std::string::npos) << generated.output;
  EXPECT_NE(generated.output.find("Trellis Root CA"), std::string::npos);
  // Custom domain with no certificateArn: no fallback certificate, the handshake fails.
  auto custom = runCommand(sClient(kCustom));
  EXPECT_NE(custom.exitCode, 0);
  EXPECT_NE(custom.output.find("unrecognized name"), std::string::npos) << custom.output;
  EXPECT_NE(runCommand(sClient("nobody.example.com")).exitCode, 0);
  EXPECT_NE(runCommand(sClient("")).exitCode, 0);  // SNI is required
  EXPECT_NE(runCommand(curl(kCustom, "--http1.1")).exitCode, 0);
}

TEST_F(TlsTest, CustomDomainUsesImportedCertificateAndRotatesWithoutDroppingConnections) {
  ASSERT_TRUE(makeSelfSigned(dir, "first", kCustom));
  ASSERT_TRUE(makeSelfSigned(dir, "second", kCustom, "ec -pkeyopt ec_paramgen_curve:P-256"));
  service(importFromFiles("first"));
  start();
  // The key went into the store owner-only.
  for (const auto& entry : fs::directory_iterator(tls::certificateStoreDir(dir.path()))) {
    if (entry.path().extension() != ".key") continue;
    EXPECT_EQ(entry.status().permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
  }
  auto r = runCommand("curl -sS --max-time 10 --cacert " + dir.file("first.pem") + " --resolve " + kCustom + ":" +
                      std::to_string(port) + ":127.0.0.1 --tlsv1.2 --tls-max 1.2 https://" + kCustom + ":" +
                      std::to_string(port) + "/custom");
  ASSERT_EQ(r.exitCode, 0) << r.output;
  EXPECT_EQ(json::parse(r.output)["target"], "/custom");

  TlsClient old(port, kCustom);
  ASSERT_TRUE(old.connected());
  EXPECT_EQ(old.peerFingerprint(), fingerprintOfPemFile(dir.file("first.pem")));
  EXPECT_EQ(old.get(kCustom).status, 200);

  // Rotation: the service now names another certificate. New connections get it, the open one carries on.
  service(importFromFiles("second"));
  h.publish();
  EXPECT_TRUE(waitForCertificate(kCustom, fingerprintOfPemFile(dir.file("second.pem"))));
  EXPECT_EQ(old.get(kCustom, "/still-here").status, 200);
}

// Issue 6: certificates rotate under load without a failed request. Clients keep opening connections (and one
// keeps its connection) while the service's certificate flips between two imported ones.
TEST_F(TlsTest, RotationUnderLoadFailsNoRequest) {
  ASSERT_TRUE(makeSelfSigned(dir, "first", kCustom));
  ASSERT_TRUE(makeSelfSigned(dir, "second", kCustom, "ec -pkeyopt ec_paramgen_curve:P-256"));
  const std::string arns[] = {importFromFiles("first"), importFromFiles("second")};
  const std::string fingerprints[] = {fingerprintOfPemFile(dir.file("first.pem")),
                                      fingerprintOfPemFile(dir.file("second.pem"))};
  service(arns[0]);
  start();
  TlsClient kept(port, kCustom);
  ASSERT_TRUE(kept.connected());

  std::atomic<bool> done{false};
  std::thread rotate([&] {
    for (int i = 1; i <= 20; ++i) {
      service(arns[i % 2]);
      h.publish();
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    done = true;
  });
  int requests = 0, failures = 0;
  std::set<std::string> seen;
  while (!done) {
    TlsClient c(port, kCustom);
    std::string fingerprint = c.connected() ? c.peerFingerprint() : "";
    if (fingerprint != fingerprints[0] && fingerprint != fingerprints[1]) ++failures;
    seen.insert(fingerprint);
    if (!c.connected() || c.get(kCustom).status != 200) ++failures;
    if (kept.get(kCustom, "/kept").status != 200) ++failures;
    requests += 2;
  }
  rotate.join();
  EXPECT_EQ(failures, 0) << "of " << requests << " requests";
  EXPECT_GE(requests, 20);
  EXPECT_EQ(seen.size(), 2u) << "both certificates were served while rotating";
}

TEST_F(TlsTest, AccessLogRecordsTlsVersionCipherAndSni) {
  start();
  ASSERT_EQ(runCommand(curl(kHost, "--http1.1 --tlsv1.2 --tls-max 1.2")).exitCode, 0);
  ASSERT_EQ(runCommand(curl(kHost, "--http1.1 --tlsv1.3")).exitCode, 0);
  std::vector<json> logs;
  for (int i = 0; i < 50 && logs.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    logs = accessLogs();
  }
  ASSERT_EQ(logs.size(), 2u);
  if (logs[0]["tlsVersion"] != "TLSv1.2") std::swap(logs[0], logs[1]);  // two workers: any order
  EXPECT_EQ(logs[0]["tlsVersion"], "TLSv1.2");
  EXPECT_EQ(logs[0]["sslCipher"], "ECDHE-ECDSA-AES128-GCM-SHA256");
  EXPECT_EQ(logs[0]["serverNameIndication"], kHost);
  EXPECT_EQ(logs[1]["tlsVersion"], "TLSv1.3");
  EXPECT_EQ(logs[1]["sslCipher"], "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(logs[1]["serverNameIndication"], kHost);
  EXPECT_EQ(logs[1]["responseCode"], 200);
}

TEST_F(TlsTest, ProtocolsSharingAPortAndMismatches) {
  // The same port carries HTTPS for this service and plain HTTP for another.
  const std::string other = "svc-0123456789abcdef1";
  h.store.service(other, "ledger");
  h.store.listener("listener-2", other, port, StoreFixture::forward({{kTg, 100}}), "HTTP");
  h.store.reachableFrom(kLoopbackVpc, other);
  start();
  const std::string otherHost = StoreFixture::generatedName(other, "ledger");
  Client plain(port);
  EXPECT_EQ(plain.get(otherHost).status, 200);
  // Plaintext to the HTTPS listener's service, TLS to the HTTP one, a Host that is not the SNI's service.
  EXPECT_EQ(plain.get(kHost).status, 400);
  EXPECT_FALSE(TlsClient(port, otherHost).connected());
  TlsClient tls(port, kHost);
  ASSERT_TRUE(tls.connected());
  EXPECT_EQ(tls.get(otherHost).status, 421);
}

TEST_F(TlsTest, HttpsTargetGroupAndHealthChecksWithoutCertificateVerification) {
  ASSERT_TRUE(makeSelfSigned(dir, "target", "not-the-target-name"));  // wrong name, self-signed: still used
  TlsBackend target(dir.file("target.pem"), dir.file("target.key"));
  h.store.targetGroup(kTgTls, target.port(), {{"127.0.0.1"}}, json{{"enabled", true}, {"protocol", "HTTPS"}});
  for (const auto& r : h.store.contents().records) {
    if (r.kind != "targetgroup" || r.id != kTgTls) continue;
    json doc = json::parse(r.value);
    doc["config"]["protocol"] = "HTTPS";
    h.store.put("targetgroup", kTgTls, doc);
    break;
  }
  h.store.listener("listener-2", kSvc, plainPort, StoreFixture::forward({{kTgTls, 100}}), "HTTP");
  h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTgTls, 100}}), "HTTPS");
  start();
  ASSERT_TRUE(h.waitListening(plainPort));
  Client c(plainPort);
  for (int i = 0; i < 3; ++i) {  // kept alive and pooled
    Response r = c.get(kHost);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "tls-backend proto=http");
  }
  auto viaHttps = runCommand(curl(kHost, "--http1.1"));
  EXPECT_EQ(viaHttps.output, "tls-backend proto=https");
  // The health check spoke TLS too: the target passed it.
  for (int i = 0; i < 50 && h.dataPlane().targetHealth().status(kTgTls, "127.0.0.1", target.port()).status != "HEALTHY";
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(h.dataPlane().targetHealth().status(kTgTls, "127.0.0.1", target.port()).status, "HEALTHY");
  EXPECT_GE(target.requests(), 5);  // 4 proxied + at least one health check
  h.dataPlane().stop();  // closes the pooled connections the target is still serving
}

// The Trellis extension dataPlane.verifyTargetCertificates: a target must present a certificate from the
// configured CA that names its address; anything else fails the connection (502) and the health check.
TEST(TargetCertificateVerification, OnlyTargetsWithACertificateFromTheCaForTheirAddressServe) {
  TempDir dir;
  ASSERT_EQ(runCommand("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca"
                       " -keyout " + dir.file("ca.key") + " -out " + dir.file("ca.pem"))
                .exitCode,
            0);
  auto issue = [&](const std::string& stem, const std::string& san) {  // a leaf signed by the test CA
    return runCommand("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=" +
                      stem + " -addext subjectAltName=" + san + " -CA " + dir.file("ca.pem") + " -CAkey " +
                      dir.file("ca.key") + " -keyout " + dir.file(stem + ".key") + " -out " + dir.file(stem + ".pem"))
               .exitCode == 0;
  };
  ASSERT_TRUE(issue("good", "IP:127.0.0.1"));
  ASSERT_TRUE(issue("wrongaddress", "IP:10.9.9.9"));
  ASSERT_TRUE(makeSelfSigned(dir, "stranger", "127.0.0.1"));
  TlsBackend good(dir.file("good.pem"), dir.file("good.key"));
  TlsBackend wrongAddress(dir.file("wrongaddress.pem"), dir.file("wrongaddress.key"));
  TlsBackend stranger(dir.file("stranger.pem"), dir.file("stranger.key"));

  model::Config config = model::parseConfig(
      "dataPlane: {verifyTargetCertificates: true, targetCaFile: " + dir.file("ca.pem") + "}\n", "test.yaml");
  config.vpcs = loopbackConfig().vpcs;
  ProxyHarness h{config, 1, dir.path()};
  uint16_t port = freePort();
  h.store.service(kSvc, "billing");
  h.store.reachableFrom(kLoopbackVpc, kSvc);
  h.store.listener("listener-1", kSvc, port, StoreFixture::fixed(404), "HTTP");
  const std::pair<const char*, uint16_t> groups[] = {
      {"tg-0000000000000000a", good.port()}, {"tg-0000000000000000b", wrongAddress.port()},
      {"tg-0000000000000000c", stranger.port()}};
  int priority = 1;
  for (const auto& [tg, targetPort] : groups) {
    json check = {{"enabled", true}, {"protocol", "HTTPS"}, {"healthCheckIntervalSeconds", 1},
                  {"healthyThresholdCount", 2}};
    h.store.targetGroup(tg, targetPort, {{"127.0.0.1"}}, check);
    for (const auto& r : h.store.contents().records) {
      if (r.kind != "targetgroup" || r.id != tg) continue;
      json doc = json::parse(r.value);
      doc["config"]["protocol"] = "HTTPS";
      h.store.put("targetgroup", tg, doc);
      break;
    }
    h.store.rule("rule-" + std::to_string(priority), kSvc, "listener-1", priority,
                 {{"pathMatch", {{"match", {{"exact", std::string("/") + tg}}}}}}, StoreFixture::forward({{tg, 100}}));
    ++priority;
  }
  h.start();
  ASSERT_TRUE(h.waitListening(port));
  Client c(port);
  EXPECT_EQ(c.get(kHost, "/tg-0000000000000000a").status, 200);  // signed by the CA for 127.0.0.1
  Client c2(port);
  EXPECT_EQ(c2.get(kHost, "/tg-0000000000000000b").status, 502);  // the CA's, but for another address
  Client c3(port);
  EXPECT_EQ(c3.get(kHost, "/tg-0000000000000000c").status, 502);  // right address, unknown issuer
  EXPECT_EQ(wrongAddress.requests(), 0);
  EXPECT_EQ(stranger.requests(), 0);
  // Health checks verify the same way.
  auto status = [&](const char* tg, uint16_t p) {
    return h.dataPlane().targetHealth().status(tg, "127.0.0.1", p).status;
  };
  for (int i = 0; i < 100 && (status("tg-0000000000000000a", good.port()) != "HEALTHY" ||
                              status("tg-0000000000000000c", stranger.port()) != "UNHEALTHY");
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(status("tg-0000000000000000a", good.port()), "HEALTHY");
  EXPECT_EQ(status("tg-0000000000000000b", wrongAddress.port()), "UNHEALTHY");
  EXPECT_EQ(status("tg-0000000000000000c", stranger.port()), "UNHEALTHY");
  h.dataPlane().stop();
}

TEST(TargetCertificateVerification, AnUnreadableCaFileIsAConfigErrorNamingTheLine) {
  try {
    model::parseConfig("dataPlane:\n  verifyTargetCertificates: true\n  targetCaFile: /nonexistent/ca.pem\n",
                       "trellis.yaml");
    FAIL() << "accepted";
  } catch (const model::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("trellis.yaml:3"), std::string::npos) << e.what();
  }
}

TEST_F(TlsTest, NewConnectionsDuringSnapshotChurnAllSucceed) {
  start();
  std::atomic<bool> done{false};
  std::thread churn([&] {
    for (int i = 0; !done; ++i) {
      h.store.listener("listener-x", kSvc, plainPort, StoreFixture::fixed(404), i % 2 ? "HTTP" : "HTTPS");
      h.publish();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  int failures = 0;
  for (int i = 0; i < 100; ++i) {
    TlsClient c(port, kHost);
    if (!c.connected() || c.get(kHost).status != 200) ++failures;
  }
  done = true;
  churn.join();
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace trellis::testing
