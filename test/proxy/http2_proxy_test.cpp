// HTTP/2 and gRPC through the data plane, with real clients: curl (--http2-prior-knowledge, --http2 over TLS),
// h2load, and gRPC (Debian's python3-grpcio) to a real gRPC server; the protocol matrix and the
// access log's protocol and grpcResponseCode.
#include <gtest/gtest.h>

#include <sys/prctl.h>
#include <sys/wait.h>

#include <csignal>
#include <functional>
#include <future>
#include <fstream>
#include <map>

#include "proxy/h2_backend.h"
#include "proxy/h2_client.h"
#include "proxy/grpc_server.h"
#include "proxy/tls_harness.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kTg = "tg-0000000000000000a";
const std::string kHost = StoreFixture::generatedName(kSvc, "billing");
const std::string kLogGroup = "arn:aws:logs:us-east-1:111122223333:log-group:h2-test";

class Http2ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port = freePort();
    tlsPort = freePort();
    h.store.service(kSvc, "billing");
    h.store.reachableFrom(kLoopbackVpc, kSvc);
    h.store.accessLogSubscription("als-1", kSvc, kLogGroup);
  }
  // The target group the listeners forward to (by default): `version` HTTP1 | HTTP2 | GRPC.
  void targetGroup(uint16_t backendPort, const std::string& version,
                   const json& defaultAction = StoreFixture::forward({{kTg, 100}})) {
    h.store.targetGroup(kTg, backendPort, {{"127.0.0.1"}});
    for (const auto& r : h.store.contents().records) {
      if (r.kind != "targetgroup" || r.id != kTg) continue;
      json doc = json::parse(r.value);
      doc["config"]["protocolVersion"] = version;
      h.store.put("targetgroup", kTg, doc);
    }
    h.store.listener("listener-1", kSvc, port, defaultAction);
    h.store.listener("listener-2", kSvc, tlsPort, defaultAction, "HTTPS");
  }
  void start() {
    h.start();
    ASSERT_TRUE(h.waitListening(port));
    ASSERT_TRUE(h.waitListening(tlsPort));
    writeText(dir.file("ca.pem"), h.dataPlane().rootCertificatePem());
  }
  // curl to the plaintext listener; the output ends with "\n<status> <http version>".
  CommandResult curl(const std::string& flags, const std::string& path = "/hello") {
    return runCommand("curl -sS --max-time 10 " + flags + " -H 'Host: " + kHost +
                      "' -w '\\n%{http_code} %{http_version}'" +
                      " http://127.0.0.1:" + std::to_string(port) + path);
  }
  CommandResult curlTls(const std::string& flags, const std::string& path = "/hello") {
    return runCommand("curl -sS --max-time 10 --cacert " + dir.file("ca.pem") + " --resolve " + kHost + ":" +
                      std::to_string(tlsPort) + ":127.0.0.1 " + flags + " -w '\\n%{http_code} %{http_version}'" +
                      " https://" + kHost + ":" + std::to_string(tlsPort) + path);
  }
  static std::string statusLine(const CommandResult& r) { return r.output.substr(r.output.rfind('\n') + 1); }
  static json body(const CommandResult& r) {
    return json::parse(r.output.substr(0, r.output.rfind('\n')), nullptr, false);
  }
  // The access log lines written so far (the writer flushes within a second).
  std::vector<json> accessLogs(size_t atLeast) {
    std::vector<json> out;
    for (int i = 0; i < 50 && out.size() < atLeast; ++i) {
      out.clear();
      std::ifstream in(dir.path() + "/access-logs/cloudwatch/h2-test.jsonl");
      std::string line;
      while (std::getline(in, line)) out.push_back(json::parse(line));
      if (out.size() < atLeast) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return out;
  }

  TempDir dir;
  uint16_t port = 0, tlsPort = 0;
  ProxyHarness h{loopbackConfig(), 2, dir.path()};
};

TEST_F(Http2ProxyTest, H2cAndAlpnH2ClientsReachAnHttp1TargetGroup) {
  EchoBackend backend{"h1"};
  targetGroup(backend.port(), "HTTP1");
  start();
  auto r = curl("--http2-prior-knowledge", "/x?y=1");
  ASSERT_EQ(r.exitCode, 0) << r.output;
  EXPECT_EQ(statusLine(r), "200 2") << r.output;
  json seen = body(r);
  EXPECT_EQ(seen["target"], "/x?y=1");
  EXPECT_EQ(seen["headers"]["x-forwarded-proto"], "http");
  EXPECT_EQ(seen["headers"]["host"], kHost);
  // A body of unknown length goes to the HTTP/1.1 target chunked; a known one with its length.
  auto post = curl("--http2-prior-knowledge -X POST --data-binary @/etc/hostname");
  ASSERT_EQ(post.exitCode, 0) << post.output;
  EXPECT_EQ(statusLine(post), "200 2");
  // An HTTP/1.1 client on the same port is unaffected.
  auto h1 = curl("--http1.1");
  EXPECT_EQ(statusLine(h1), "200 1.1") << h1.output;
  // Over TLS, ALPN h2 (HTTP2Preferred); no ALPN is HTTP/1.1.
  auto tls = curlTls("--http2");
  ASSERT_EQ(tls.exitCode, 0) << tls.output;
  EXPECT_EQ(statusLine(tls), "200 2") << tls.output;
  EXPECT_EQ(body(tls)["headers"]["x-forwarded-proto"], "https");
  EXPECT_EQ(statusLine(curlTls("--http1.1")), "200 1.1");
  auto logs = accessLogs(5);
  ASSERT_GE(logs.size(), 5u);
  int http2 = 0;
  for (const auto& entry : logs) http2 += entry["protocol"] == "HTTP/2";
  EXPECT_EQ(http2, 3);
}

TEST_F(Http2ProxyTest, LargeHttp1ResponseToASlowHttp2ClientKeepsFlowing) {
  const size_t size = 6 * 1024 * 1024;
  RawBackend backend("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n" +
                     std::string(size, 'b'));
  targetGroup(backend.port(), "HTTP1");
  start();
  // Slower than the target: backpressure holds the target's bytes back and must let them go again.
  auto r = runCommand("curl -sS --max-time 30 --http2-prior-knowledge --limit-rate 3M -o /dev/null -H 'Host: " +
                      kHost + "' -w '%{http_code} %{http_version} %{size_download}' http://127.0.0.1:" +
                      std::to_string(port) + "/big");
  ASSERT_EQ(r.exitCode, 0) << r.output;
  EXPECT_EQ(r.output, "200 2 " + std::to_string(size));
}

TEST_F(Http2ProxyTest, EachStreamIsAuthorizedOnItsOwn) {
  EchoBackend backend{"h1"};
  targetGroup(backend.port(), "HTTP1");
  // Anonymous callers may invoke /open only.
  for (const auto& r : h.store.contents().records) {
    if (r.kind != "service" || r.id != kSvc) continue;
    json doc = json::parse(r.value);
    doc["authType"] = "AWS_IAM";
    h.store.put("service", kSvc, doc);
  }
  json policy = {{"Version", "2012-10-17"},
                 {"Statement",
                  {{{"Effect", "Allow"},
                    {"Principal", "*"},
                    {"Action", "vpc-lattice-svcs:Invoke"},
                    {"Resource", "*/open"}}}}};
  h.store.put("authpolicy", kSvc,
              {{"policy", policy.dump()},
               {"createdAt", "2024-01-01T00:00:00Z"},
               {"lastUpdatedAt", "2024-01-01T00:00:00Z"}});
  start();
  // Both requests on one HTTP/2 connection: curl reuses it (over TLS: curl 7.88 cannot reuse an h2c
  // prior-knowledge connection, curl/curl#10634).
  std::string base = "https://" + kHost + ":" + std::to_string(tlsPort);
  auto r = runCommand("curl -sS --max-time 10 --http2 --cacert " + dir.file("ca.pem") + " --resolve " + kHost +
                      ":" + std::to_string(tlsPort) + ":127.0.0.1" +
                      " -w '%{http_code} %{http_version} %{num_connects}\\n'" + " -o /dev/null " + base +
                      "/open -o /dev/null " + base + "/closed");
  ASSERT_EQ(r.exitCode, 0) << r.output;
  EXPECT_EQ(r.output, "200 2 1\n403 2 0\n");
}

TEST_F(Http2ProxyTest, ManyStreamsWithH2load) {
  EchoBackend backend{"h1"};
  targetGroup(backend.port(), "HTTP1");
  start();
  auto r = runCommand("h2load -n 2000 -c 4 -m 50 -H ':authority: " + kHost + "' http://127.0.0.1:" +
                      std::to_string(port) + "/load");
  ASSERT_EQ(r.exitCode, 0) << r.output;
  EXPECT_NE(r.output.find("2000 total, 2000 started, 2000 done, 2000 succeeded"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("status codes: 2000 2xx"), std::string::npos) << r.output;
}

TEST_F(Http2ProxyTest, Http2TargetGroupTakesHttp2AndRefusesHttp1) {
  H2Backend backend;
  targetGroup(backend.port(), "HTTP2");
  start();
  auto r = curl("--http2-prior-knowledge -X POST --data-binary hello", "/up");
  ASSERT_EQ(r.exitCode, 0) << r.output;
  EXPECT_EQ(statusLine(r), "200 2");
  EXPECT_EQ(r.output.substr(0, r.output.rfind('\n')), "echo POST /up hello");
  // HTTP/1.1 to an HTTP2 target group is an error (docs/architecture.md, "HTTP/2 and gRPC").
  auto h1 = curl("--http1.1", "/up");
  EXPECT_EQ(statusLine(h1), "400 1.1") << h1.output;
  auto logs = accessLogs(2);
  ASSERT_EQ(logs.size(), 2u);
  EXPECT_EQ(logs[1]["responseCode"], 400);
  EXPECT_EQ(logs[1]["failureReason"], "ClientProtocolError");
}

TEST_F(Http2ProxyTest, GrpcAllFourCallKindsDeadlinesStatusesAndTrailers) {
  GrpcServer server;
  ASSERT_NE(server.port(), 0) << "python3-grpcio missing? (scripts/setup.sh --test installs it)";
  targetGroup(server.port(), "GRPC");
  start();
  auto r = runCommand("timeout 60 /usr/bin/python3 " TRELLIS_TEST_DIR "/grpc_echo.py call 127.0.0.1:" +
                      std::to_string(port) + " " + kHost);
  ASSERT_EQ(r.exitCode, 0) << r.output;
  json out = json::parse(r.output, nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << r.output;
  EXPECT_EQ(out["unary"], "unary:hi");
  EXPECT_EQ(out["unaryTrailers"]["x-echo-trailer"], "yes");
  EXPECT_EQ(out["unaryTrailers"]["x-saw-requestid"], "yes");  // Lattice's headers reach the target
  EXPECT_EQ(out["fail"], "NOT_FOUND");
  EXPECT_EQ(out["failMessage"], "no such thing");
  EXPECT_EQ(out["deadline"], "DEADLINE_EXCEEDED");
  EXPECT_EQ(out["serverStream"], json({"s:0", "s:1", "s:2"}));
  EXPECT_EQ(out["clientStream"], "a+b+c");
  EXPECT_EQ(out["bidi"], json({"bidi:x", "bidi:y"}));
  auto logs = accessLogs(6);
  std::map<std::string, std::vector<json>> codes;  // path → grpcResponseCode of each call
  for (const auto& entry : logs) codes[entry["requestPath"]].push_back(entry.value("grpcResponseCode", json()));
  EXPECT_EQ(codes["/test.Echo/Unary"], (std::vector<json>{json(0), json(5)}));
  EXPECT_EQ(codes["/test.Echo/Bidi"], (std::vector<json>{json(0)}));
  EXPECT_EQ(codes["/test.Echo/ClientStream"], (std::vector<json>{json(0)}));
  EXPECT_EQ(logs.front()["protocol"], "HTTP/2");
}

TEST_F(Http2ProxyTest, GrpcRoutedByServiceAndMethodPaths) {
  GrpcServer server;
  ASSERT_NE(server.port(), 0) << "python3-grpcio missing? (scripts/setup.sh --test installs it)";
  targetGroup(server.port(), "GRPC", {{"fixedResponse", {{"statusCode", 404}}}});
  h.store.rule("rule-1", kSvc, "listener-1", 1, {{"pathMatch", {{"match", {{"exact", "/test.Echo/Unary"}}}}}},
               StoreFixture::forward({{kTg, 100}}));
  h.store.rule("rule-2", kSvc, "listener-1", 2, {{"pathMatch", {{"match", {{"prefix", "/test.Echo/Server"}}}}}},
               StoreFixture::forward({{kTg, 100}}));
  start();
  writeText(dir.file("hi.grpc"), std::string("\0\0\0\0\2hi", 7));
  auto call = [&](const std::string& method) {
    auto r = curl("--http2-prior-knowledge -o /dev/null -H 'content-type: application/grpc' -H 'te: trailers'"
                  " --data-binary @" + dir.file("hi.grpc"), "/test.Echo/" + method);
    return statusLine(r);
  };
  EXPECT_EQ(call("Unary"), "200 2");
  EXPECT_EQ(call("ServerStream"), "200 2");
  EXPECT_EQ(call("ClientStream"), "404 2");  // no rule for it: the default action
  EXPECT_EQ(call("Bidi"), "404 2");
}

TEST_F(Http2ProxyTest, ShutdownSendsGoawayThenCloses) {
  EchoBackend backend{"h1"};
  targetGroup(backend.port(), "HTTP1");
  start();
  H2Client client(port);
  int32_t id = client.get(kHost, "/before");
  EXPECT_EQ(client.status_, 200);
  auto stopping = std::async(std::launch::async, [&] { h.dataPlane().stop(); });
  client.exchange([&] { return client.goawayLast_ >= 0 && client.closed_; });
  stopping.wait();
  EXPECT_EQ(client.goawayLast_, id);  // the last stream it processed
  EXPECT_EQ(client.goawayError_, 0);  // NO_ERROR: a graceful shutdown
  EXPECT_TRUE(client.closed_);
}

}  // namespace
}  // namespace trellis::testing
