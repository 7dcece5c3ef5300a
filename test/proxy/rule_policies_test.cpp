// Trellis rule timeouts and retries applied by the real proxy, over HTTP/1.1 and HTTP/2
// (h2c, curl and nghttp), against scripted backends; and the connection lifetime knob
// (config `dataPlane.connectionLifetimeSeconds`).
#include <gtest/gtest.h>

#include "proxy/h2_backend.h"
#include "proxy/h2_client.h"
#include "proxy/tls_harness.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kTgA = "tg-0000000000000000a";
const std::string kTgB = "tg-0000000000000000b";
const std::string kHost = StoreFixture::generatedName(kSvc, "billing");

int64_t millisSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

class RulePolicies : public ::testing::Test {
 protected:
  explicit RulePolicies(model::Config config = loopbackConfig()) : h(std::move(config)) {
    port = freePort();
    h.store.service(kSvc, "billing");
    h.store.reachableFrom(kLoopbackVpc, kSvc);
    h.store.listener("listener-1", kSvc, port, StoreFixture::fixed(404));
  }
  // One rule for every path, forwarding to a target group of `backends` (`version`: its protocolVersion),
  // with `trellis` extensions.
  void rule(const std::vector<uint16_t>& backends, const json& trellis, const std::string& version = "HTTP1") {
    std::vector<StoreFixture::TargetSpec> targets;
    for (uint16_t p : backends) targets.push_back({"127.0.0.1", p});
    h.store.targetGroup(kTgA, backends.at(0), targets, {{"enabled", false}});
    for (const auto& r : h.store.contents().records) {
      if (r.kind != "targetgroup" || r.id != kTgA) continue;
      json doc = json::parse(r.value);
      doc["config"]["protocolVersion"] = version;
      h.store.put("targetgroup", kTgA, doc);
    }
    h.store.rule("rule-1", kSvc, "listener-1", 1, {{"pathMatch", {{"match", {{"prefix", "/"}}}}}},
                 StoreFixture::forward({{kTgA, 100}}));
    for (const auto& r : h.store.contents().records) {
      if (r.kind != "rule" || r.id != "rule-1") continue;
      json doc = json::parse(r.value);
      doc["trellis"] = trellis;
      h.store.put("rule", "rule-1", doc);
    }
    h.start();
    ASSERT_TRUE(h.waitListening(port));
  }
  // curl over h2c (prior knowledge); the output ends with "\n<status> <http version>".
  CommandResult curlH2(const std::string& flags = {}, const std::string& path = "/x") {
    return runCommand("curl -sS --max-time 10 --http2-prior-knowledge " + flags + " -H 'Host: " + kHost +
                      "' -w '\\n%{http_code} %{http_version}' http://127.0.0.1:" + std::to_string(port) + path);
  }
  static std::string statusLine(const CommandResult& r) { return r.output.substr(r.output.rfind('\n') + 1); }

  uint16_t port = 0;
  ProxyHarness h;
};

// ---------------- timeouts ----------------

TEST_F(RulePolicies, RequestTimeoutAnswers504WithinItsDeadline) {
  ScriptedBackend slow([](int) { return ScriptedBackend::Reply{200, 3000}; });
  rule({slow.port()}, {{"timeouts", {{"requestMs", 400}}}});
  Client c(port);
  auto start = Clock::now();
  Response r = c.get(kHost);
  int64_t took = millisSince(start);
  EXPECT_EQ(r.status, 504);
  EXPECT_GE(took, 350);
  EXPECT_LT(took, 1500);  // not the backend's 3 s, nor the 60 s idle timeout
  ASSERT_NE(r.header("x-amzn-requestid"), nullptr);
  // The same over HTTP/2.
  start = Clock::now();
  auto h2 = curlH2();
  EXPECT_EQ(statusLine(h2), "504 2") << h2.output;
  EXPECT_LT(millisSince(start), 1500);
}

TEST_F(RulePolicies, RequestTimeoutDoesNotCutAResponseThatCameInTime) {
  ScriptedBackend quick([](int) { return ScriptedBackend::Reply{200, 100}; });
  rule({quick.port()}, {{"timeouts", {{"requestMs", 1000}}}});
  Client c(port);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.get(kHost).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // past the deadlines of the requests above
  EXPECT_EQ(c.get(kHost).status, 200);                            // the keep-alive connection is still fine
}

TEST_F(RulePolicies, BackendRequestTimeoutEndsTheAttemptWith504) {
  ScriptedBackend slow([](int) { return ScriptedBackend::Reply{200, 3000}; });
  rule({slow.port()}, {{"timeouts", {{"backendRequestMs", 300}}}});
  auto start = Clock::now();
  Client c(port);
  EXPECT_EQ(c.get(kHost).status, 504);
  EXPECT_LT(millisSince(start), 1500);
  EXPECT_EQ(slow.requests(), 1);  // no retry configured
}

TEST_F(RulePolicies, TimedOutAttemptIsRetriedOnTheNextTarget) {
  ScriptedBackend slow([](int) { return ScriptedBackend::Reply{200, 3000}; });
  ScriptedBackend fast([](int) { return ScriptedBackend::Reply{200, 0}; });
  rule({slow.port(), fast.port()}, {{"timeouts", {{"backendRequestMs", 300}}}, {"retry", {{"attempts", 1}}}});
  // Round robin starts anywhere: whichever target comes first, every request ends 200, and the slow one
  // never answers one of them.
  Client c(port);
  for (int i = 0; i < 4; ++i) {
    auto start = Clock::now();
    Response r = c.get(kHost);
    EXPECT_EQ(r.status, 200);
    EXPECT_LT(millisSince(start), 1500);
  }
  EXPECT_EQ(fast.requests(), 4);
  EXPECT_GE(slow.requests(), 1);
}

// ---------------- retries ----------------

TEST_F(RulePolicies, Retries503UntilTheAttemptsAreSpent) {
  ScriptedBackend flaky([](int index) { return ScriptedBackend::Reply{index % 3 < 2 ? 503 : 200, 0}; });
  rule({flaky.port()}, {{"retry", {{"attempts", 2}}}});
  Client c(port);
  Response r = c.get(kHost);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "answer 3");  // the third request's answer
  EXPECT_EQ(flaky.requests(), 3);
  std::string metrics = h.dataPlane().renderMetrics();
  EXPECT_NE(metrics.find("trellis_proxy_retries_total{target_group=\"" + kTgA + "\"} 2"), std::string::npos) << metrics;
}

TEST_F(RulePolicies, TheLastRetriedStatusGoesToTheClient) {
  ScriptedBackend flaky([](int index) { return ScriptedBackend::Reply{index % 3 < 2 ? 503 : 200, 0}; });
  rule({flaky.port()}, {{"retry", {{"attempts", 1}}}});
  Client c(port);
  Response r = c.get(kHost);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "answer 2");  // the target's own 503, not one the proxy made up
  EXPECT_EQ(flaky.requests(), 2);
}

TEST_F(RulePolicies, OnlyTheListedStatusCodesAreRetried) {
  ScriptedBackend flaky([](int index) { return ScriptedBackend::Reply{index == 0 ? 503 : index == 1 ? 500 : 200, 0}; });
  rule({flaky.port()}, {{"retry", {{"attempts", 3}, {"statusCodes", {500, 502}}}}});
  Client c(port);
  EXPECT_EQ(c.get(kHost).status, 503);  // not listed: no retry
  EXPECT_EQ(flaky.requests(), 1);
  EXPECT_EQ(c.get(kHost).status, 200);  // 500 is listed: retried, then 200
  EXPECT_EQ(flaky.requests(), 3);
}

TEST_F(RulePolicies, BackoffSpacesTheRetries) {
  ScriptedBackend flaky([](int index) { return ScriptedBackend::Reply{index < 2 ? 503 : 200, 0}; });
  rule({flaky.port()}, {{"retry", {{"attempts", 2}, {"backoffMs", 300}}}});
  auto start = Clock::now();
  Client c(port);
  EXPECT_EQ(c.get(kHost).status, 200);
  EXPECT_GE(millisSince(start), 550);  // two waits of 300 ms (the timer may wake a few ms early per turn)
  EXPECT_EQ(flaky.requests(), 3);
}

TEST_F(RulePolicies, PostWithASmallBodyIsRetriedWithTheSameBody) {
  ScriptedBackend flaky([](int index) { return ScriptedBackend::Reply{index == 0 ? 503 : 200, 0}; });
  rule({flaky.port()}, {{"retry", {{"attempts", 1}}}});
  Client c(port);
  std::string body(10000, 'b');
  body += "end-of-body";
  ASSERT_TRUE(c.send("POST /orders HTTP/1.1\r\nHost: " + kHost + "\r\ncontent-length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body));
  EXPECT_EQ(c.read().status, 200);
  auto got = flaky.received();
  ASSERT_EQ(got.size(), 2u);
  for (const auto& request : got) {
    EXPECT_EQ(request.substr(0, 13), "POST /orders ");
    EXPECT_EQ(request.substr(request.size() - body.size()), body);
  }
  // Chunked from the client: the retry gets the same chunks.
  ASSERT_TRUE(c.send("POST /more HTTP/1.1\r\nHost: " + kHost +
                     "\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  EXPECT_EQ(c.read().status, 200);
  EXPECT_EQ(flaky.requests(), 3);  // index 2 answered 200 at once
}

TEST_F(RulePolicies, ABodyTooLargeToKeepIsNotRetried) {
  ScriptedBackend flaky([](int index) { return ScriptedBackend::Reply{index == 0 ? 503 : 200, 0}; });
  rule({flaky.port()}, {{"retry", {{"attempts", 1}}}});
  Client c(port);
  std::string body(200 * 1024, 'x');  // above the 64 KiB kept for a retry
  ASSERT_TRUE(c.send("POST /big HTTP/1.1\r\nHost: " + kHost + "\r\ncontent-length: " + std::to_string(body.size()) +
                     "\r\n\r\n" + body));
  EXPECT_EQ(c.read().status, 503);
  EXPECT_EQ(flaky.requests(), 1);
}

TEST_F(RulePolicies, RetriesWorkForHttp2Clients) {
  ScriptedBackend flaky([](int index) { return ScriptedBackend::Reply{index % 2 == 0 ? 503 : 200, 0}; });
  rule({flaky.port()}, {{"retry", {{"attempts", 1}, {"backoffMs", 50}}}});
  auto get = curlH2();
  EXPECT_EQ(statusLine(get), "200 2") << get.output;
  auto post = curlH2("-X POST --data-binary 'payload-123'");
  EXPECT_EQ(statusLine(post), "200 2") << post.output;
  auto got = flaky.received();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[2].substr(got[2].size() - 11), "payload-123");
  EXPECT_EQ(got[3].substr(got[3].size() - 11), "payload-123");
}

TEST_F(RulePolicies, Http2TargetGroupsRetryTheirStreams) {
  H2Backend backend;  // "/status/N" answers N (with a body-less response and trailers); else 200 with an echo
  rule({backend.port()}, {{"retry", {{"attempts", 2}, {"statusCodes", {502}}}}}, "HTTP2");
  auto failing = curlH2("-X POST --data-binary 'body'", "/status/502");
  EXPECT_EQ(statusLine(failing), "502 2") << failing.output;  // the target's own, after two retries
  EXPECT_EQ(backend.requestsSeen(), 3);
  auto echo = curlH2("-X POST --data-binary 'body'", "/echo");
  EXPECT_EQ(echo.output, "echo POST /echo body\n200 2");
  EXPECT_EQ(backend.requestsSeen(), 4);
}

TEST_F(RulePolicies, ConnectionFailuresAreRetriedOnAnotherTarget) {
  uint16_t dead = freePort();  // nobody listens
  ScriptedBackend live([](int) { return ScriptedBackend::Reply{200, 0}; });
  rule({dead, live.port()}, {{"retry", {{"attempts", 2}}}});
  Client c(port);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(c.get(kHost).status, 200);
  EXPECT_EQ(live.requests(), 4);
}

// An HTTP/2 client keeps sending while a retry waits for its backoff: up to what its stream window still
// allows, well past the 64 KiB kept otherwise. The retry must still carry the whole body, not give up.
TEST_F(RulePolicies, Http2BodySentDuringTheBackoffStillGoesToTheRetry) {
  uint16_t dead = freePort();  // nobody listens: an attempt that picks it fails at connect
  ScriptedBackend live([](int) { return ScriptedBackend::Reply{200, 0}; });
  rule({dead, live.port()}, {{"retry", {{"attempts", 1}, {"backoffMs", 600}}}});
  std::string start(8 * 1024, 's'), rest(200 * 1024, 'r');
  rest += "end-of-body";
  H2Client client(port);
  for (int i = 0; i < 2; ++i) {  // round robin: one of the two starts on the dead target
    int32_t stream = client.startPost(kHost, "/upload", start.size() + rest.size());
    client.sendBody(stream, start, false);
    client.pump(std::chrono::milliseconds(200));  // the first attempt has failed: the retry waits
    client.sendBody(stream, rest, true);
    client.exchange([&] { return client.complete_ > i; });
    EXPECT_EQ(client.status_, 200) << "request " << i;
  }
  std::string metrics = h.dataPlane().renderMetrics();
  std::string series = "trellis_proxy_retries_total{target_group=\"" + kTgA + "\"} ";
  auto at = metrics.find(series);
  ASSERT_NE(at, std::string::npos) << metrics;
  EXPECT_GE(std::stoi(metrics.substr(at + series.size())), 1) << metrics;  // the dead target was tried
  auto got = live.received();
  ASSERT_EQ(got.size(), 2u);
  for (const auto& request : got) {
    ASSERT_GE(request.size(), start.size() + rest.size());
    EXPECT_EQ(request.substr(request.size() - rest.size() - start.size()), start + rest);
  }
}

// ---------------- connection lifetime ----------------

// The knob as trellisd reads it from its config file.
model::Config shortLifetime() {
  model::Config config = model::parseConfig("dataPlane: {connectionLifetimeSeconds: 2}\n", "test.yaml");
  config.vpcs = loopbackConfig().vpcs;
  return config;
}

TEST(ConnectionLifetimeConfig, OutOfRangeIsAnErrorNamingTheLine) {
  try {
    model::parseConfig("region: us-east-1\ndataPlane:\n  connectionLifetimeSeconds: 0\n", "trellis.yaml");
    FAIL() << "a lifetime of 0 was accepted";
  } catch (const model::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("trellis.yaml:3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("connectionLifetimeSeconds"), std::string::npos) << e.what();
  }
  EXPECT_EQ(model::Config().dataPlane.connectionLifetimeSeconds, 600);  // Lattice's 10 minutes by default
}

class ConnectionLifetime : public RulePolicies {
 protected:
  ConnectionLifetime() : RulePolicies(shortLifetime()) {}
};

TEST_F(ConnectionLifetime, Http1KeepAliveIsClosedAfterAResponseOnceItsLifetimeIsOver) {
  ScriptedBackend backend([](int) { return ScriptedBackend::Reply{200, 0}; });
  rule({backend.port()}, json::object());
  Client c(port);
  auto start = Clock::now();
  bool closeSeen = false;
  int requests = 0;
  while (!closeSeen && millisSince(start) < 6000) {
    Response r = c.get(kHost);
    ASSERT_EQ(r.status, 200) << "request " << requests << " failed";  // no request is lost on the way
    ++requests;
    const std::string* connection = r.header("connection");
    closeSeen = connection && *connection == "close";
    if (!closeSeen) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(closeSeen);
  EXPECT_GE(millisSince(start), 1900);
  EXPECT_GE(requests, 10);
  EXPECT_TRUE(c.closedByPeer());
}

TEST_F(ConnectionLifetime, Http2GetsGoawayAndItsOpenStreamFinishes) {
  ScriptedBackend slow([](int) { return ScriptedBackend::Reply{200, 3500}; });
  rule({slow.port()}, json::object());
  // nghttp speaks h2c with prior knowledge and prints the frames it receives.
  auto r = runCommand("timeout 15 nghttp -v -H ':authority: " + kHost + "' http://127.0.0.1:" + std::to_string(port) +
                      "/slow");
  EXPECT_NE(r.output.find("recv GOAWAY frame"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(":status: 200"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("answer 1"), std::string::npos) << r.output;  // the body arrived in full
  EXPECT_EQ(r.exitCode, 0) << r.output;
}

}  // namespace
}  // namespace trellis::testing
