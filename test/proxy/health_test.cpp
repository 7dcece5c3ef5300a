// Health checks, draining and access logs through a running DataPlane.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "proxy/proxy_harness.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kTg = "tg-0000000000000000a";
const std::string kHost = StoreFixture::generatedName(kSvc, "billing");

template <typename Fn>
bool eventually(Fn fn, int seconds = 15) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(HealthChecks, UnhealthyTargetsLeaveRotationAndComeBack) {
  EchoBackend a("a"), b("b");
  uint16_t port = freePort();
  ProxyHarness h;
  h.store.service(kSvc, "billing");
  json check = {{"enabled", true}, {"healthCheckIntervalSeconds", 1}, {"healthCheckTimeoutSeconds", 1},
                {"healthyThresholdCount", 2}, {"unhealthyThresholdCount", 2}, {"path", "/health"},
                {"matcher", {{"httpCode", "200-299"}}}};
  h.store.targetGroup(kTg, a.port(), {{"127.0.0.1"}, {"127.0.0.1", b.port()}}, check);
  h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTg, 100}}));
  h.store.reachableFrom(kLoopbackVpc, kSvc);
  h.start();
  ASSERT_TRUE(h.waitListening(port));
  const proxy::TargetHealthView& health = h.dataPlane().targetHealth();
  ASSERT_TRUE(eventually([&] {
    return health.status(kTg, "127.0.0.1", a.port()).status == "HEALTHY" &&
           health.status(kTg, "127.0.0.1", b.port()).status == "HEALTHY";
  }));
  EXPECT_GT(b.healthChecks(), 0);

  b.stop();
  ASSERT_TRUE(eventually([&] { return health.status(kTg, "127.0.0.1", b.port()).status == "UNHEALTHY"; }));
  EXPECT_FALSE(health.status(kTg, "127.0.0.1", b.port()).reasonCode.empty());
  Client c(port);
  for (int i = 0; i < 40; ++i) {
    Response r = c.get(kHost);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(json::parse(r.body)["backend"], "a");
  }

  b.restart();
  ASSERT_TRUE(eventually([&] { return health.status(kTg, "127.0.0.1", b.port()).status == "HEALTHY"; }));
  int toB = 0;
  for (int i = 0; i < 20; ++i) toB += json::parse(c.get(kHost).body)["backend"] == "b";
  EXPECT_EQ(toB, 10);

  // A failing status code counts as a failure too (matcher 200-299).
  a.setStatus(503);
  ASSERT_TRUE(eventually([&] { return health.status(kTg, "127.0.0.1", a.port()).status == "UNHEALTHY"; }));
  EXPECT_EQ(health.status(kTg, "127.0.0.1", a.port()).reasonCode, "Target.ResponseCodeMismatch");
}

TEST(HealthChecks, StatusesForDrainingUnusedAndDisabled) {
  EchoBackend a("a");
  ProxyHarness h;
  uint16_t port = freePort();
  h.store.service(kSvc, "billing");
  h.store.targetGroup(kTg, a.port(), {{"127.0.0.1"}, {"127.0.0.2", 0, true}});
  h.store.targetGroup("tg-0000000000000000b", a.port(), {{"127.0.0.1"}});
  h.store.targetGroup("tg-0000000000000000c", a.port(), {{"127.0.0.1"}}, {{"enabled", false}});
  h.store.listener("listener-1", kSvc, port,
                   StoreFixture::forward({{kTg, 1}, {"tg-0000000000000000c", 1}}));
  h.start();
  const auto& health = h.dataPlane().targetHealth();
  EXPECT_EQ(health.status(kTg, "127.0.0.2", a.port()).status, "DRAINING");
  EXPECT_EQ(health.status("tg-0000000000000000b", "127.0.0.1", a.port()).status, "UNUSED");
  EXPECT_EQ(health.status("tg-0000000000000000c", "127.0.0.1", a.port()).status, "UNAVAILABLE");
  EXPECT_TRUE(eventually([&] { return health.status(kTg, "127.0.0.1", a.port()).status == "HEALTHY"; }));
}

TEST(HealthChecks, DeregistrationDuringLoadFailsNothing) {
  EchoBackend a("a"), b("b");
  uint16_t port = freePort();
  ProxyHarness h;
  h.store.service(kSvc, "billing");
  h.store.targetGroup(kTg, a.port(), {{"127.0.0.1"}, {"127.0.0.1", b.port()}});
  h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTg, 100}}));
  h.store.reachableFrom(kLoopbackVpc, kSvc);
  h.start();
  ASSERT_TRUE(h.waitListening(port));
  std::atomic<bool> done{false}, drained{false};
  std::atomic<int> failures{0}, toBAfterDrain{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t) {
    clients.emplace_back([&] {
      Client c(port);
      while (!done) {
        bool afterDrain = drained;
        Response r = c.get(kHost);
        if (r.status != 200) ++failures;
        else if (afterDrain && json::parse(r.body)["backend"] == "b") ++toBAfterDrain;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  h.store.targetGroup(kTg, a.port(), {{"127.0.0.1"}, {"127.0.0.1", b.port(), true}});  // DeregisterTargets
  h.publish();
  drained = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  h.store.targetGroup(kTg, a.port(), {{"127.0.0.1"}});  // drain time over: gone
  h.publish();
  b.stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  done = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(toBAfterDrain.load(), 0);
}

TEST(AccessLogs, WrittenToCloudWatchAndS3Destinations) {
  std::string dir = std::filesystem::temp_directory_path() / ("trellis-al-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  EchoBackend a("a");
  uint16_t port = freePort();
  {
    ProxyHarness h(loopbackConfig(), 1, dir);
    h.store.service(kSvc, "billing");
    h.store.targetGroup(kTg, a.port(), {{"127.0.0.1"}});
    h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTg, 100}}));
    h.store.serviceNetwork("sn-0000000000000000a", "net");
    h.store.serviceAssociation("snsa-1", "sn-0000000000000000a", kSvc);
    h.store.vpcAssociation("snva-1", "sn-0000000000000000a", kLoopbackVpc);
    h.store.accessLogSubscription("als-1", kSvc, "arn:aws:logs:us-east-1:111122223333:log-group:/lattice/billing");
    h.store.accessLogSubscription("als-2", "sn-0000000000000000a", "arn:aws:s3:::logs-bucket/pfx");
    h.start();
    ASSERT_TRUE(h.waitListening(port));
    Client c(port);
    c.get(kHost, "/a?b=c", "User-Agent: test-agent\r\nx-amzn-requestid: rid-1\r\n");
    c.get(kHost, "/second");
    h.dataPlane().stop();  // flushes the writer
  }
  std::ifstream in(dir + "/access-logs/cloudwatch/%2Flattice%2Fbilling.jsonl");
  ASSERT_TRUE(in.good());
  std::string line;
  std::getline(in, line);
  json entry = json::parse(line);
  EXPECT_EQ(entry["requestId"], "rid-1");
  EXPECT_EQ(entry["requestMethod"], "GET");
  EXPECT_EQ(entry["requestPath"], "/a?b=c");
  EXPECT_EQ(entry["userAgent"], "test-agent");
  EXPECT_EQ(entry["responseCode"], 200);
  EXPECT_EQ(entry["serviceArn"], StoreFixture::arn("service", kSvc));
  EXPECT_EQ(entry["targetGroupArn"], StoreFixture::arn("targetgroup", kTg));
  EXPECT_EQ(entry["targetIpPort"], "127.0.0.1:" + std::to_string(a.port()));
  EXPECT_EQ(entry["protocol"], "HTTP/1.1");
  EXPECT_EQ(entry["failureReason"], "-");
  EXPECT_GT(entry["bytesSent"].get<int>(), 0);
  std::getline(in, line);
  EXPECT_EQ(json::parse(line)["requestPath"], "/second");

  std::string s3Root = dir + "/access-logs/s3/logs-bucket/pfx/AWSLogs/111122223333/VpcLattice/AccessLogs/us-east-1";
  std::string found;
  for (const auto& f : std::filesystem::recursive_directory_iterator(s3Root)) {
    if (f.path().extension() == ".gz") found = f.path();
  }
  ASSERT_FALSE(found.empty());
  EXPECT_NE(found.find("/sn-0000000000000000a/111122223333_VpcLatticeAccessLogs_us-east-1_sn-0000000000000000a_"),
            std::string::npos);
  gzFile gz = gzopen(found.c_str(), "rb");
  char buf[8192];
  int n = gzread(gz, buf, sizeof buf);
  gzclose(gz);
  std::string text(buf, n > 0 ? n : 0);
  EXPECT_NE(text.find("\"requestId\":\"rid-1\""), std::string::npos);
  std::filesystem::remove_all(dir);
}

long peakRssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

TEST(Streaming, LargeBodyThroughTheProxyWithBoundedMemory) {
  constexpr uint64_t kBytes = 1ull << 30;  // 1 GiB
  RawBackend raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  raw.expectBodyBytes = kBytes;
  uint16_t port = freePort();
  ProxyHarness h(loopbackConfig(), 1);
  h.store.service(kSvc, "billing");
  h.store.targetGroup(kTg, raw.port(), {{"127.0.0.1"}}, {{"enabled", false}});
  h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTg, 100}}));
  h.store.reachableFrom(kLoopbackVpc, kSvc);
  h.start();
  ASSERT_TRUE(h.waitListening(port));
  Client c(port);
  long before = peakRssKb();
  c.send("POST /upload HTTP/1.1\r\nHost: " + kHost + "\r\nContent-Length: " + std::to_string(kBytes) + "\r\n\r\n");
  std::string chunk(1 << 20, 'z');
  for (uint64_t sent = 0; sent < kBytes; sent += chunk.size()) ASSERT_TRUE(c.send(chunk));
  Response r = c.read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok");
  EXPECT_GE(raw.receivedBytes(), kBytes);
  // Streamed, not buffered: memory stays flat (under 64 MiB of growth for a 1 GiB body, sanitizers included).
  EXPECT_LT(peakRssKb() - before, 64L * 1024);
}

}  // namespace
}  // namespace trellis::testing

namespace trellis::testing {
namespace {

// Spec 5.10: a client connection with no request in flight closes after the service's idle timeout.
TEST(Limits, IdleClientConnectionsCloseAfterTheServiceIdleTimeout) {
  EchoBackend backend("a");
  uint16_t port = freePort();
  ProxyHarness h(loopbackConfig(), 1);
  h.store.service(kSvc, "billing", {}, 1);  // 1 s (the API allows 60-600; the snapshot takes any)
  h.store.targetGroup(kTg, backend.port(), {{"127.0.0.1"}}, {{"enabled", false}});
  h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTg, 100}}));
  h.store.reachableFrom(kLoopbackVpc, kSvc);
  h.start();
  ASSERT_TRUE(h.waitListening(port));
  Client busy(port), idle(port);
  ASSERT_EQ(idle.get(kHost).status, 200);
  // One connection keeps sending requests; the other stays silent past the timeout.
  for (int i = 0; i < 6; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    ASSERT_EQ(busy.get(kHost).status, 200) << "a busy connection is never idle";
  }
  EXPECT_EQ(idle.get(kHost).status, 0) << "the idle connection was closed by the proxy";
}

}  // namespace
}  // namespace trellis::testing
