#include <gtest/gtest.h>

#include <map>

#include "proxy/proxy_harness.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kTgA = "tg-0000000000000000a";
const std::string kTgB = "tg-0000000000000000b";
const std::string kHost = StoreFixture::generatedName(kSvc, "billing");
const std::string kSn = "sn-0000000000000000a";
const std::string kVpc = "vpc-0000000000000c11e";

json echoed(const Response& r) { return json::parse(r.body, nullptr, false); }

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port = freePort();
    h.store.service(kSvc, "billing", "billing.example.com");
    h.store.targetGroup(kTgA, a.port(), {{"127.0.0.1"}});
    h.store.targetGroup(kTgB, b.port(), {{"127.0.0.1"}});
    h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTgA, 100}}));
    // Loopback clients are in kVpc, associated with the service's network (reachability: reachability_test.cpp).
    h.store.serviceNetwork(kSn, "net");
    h.store.serviceAssociation("snsa-1", kSn, kSvc);
    h.store.vpcAssociation("snva-1", kSn, kVpc);
  }
  void start() {
    h.start();
    ASSERT_TRUE(h.waitListening(port));
  }

  EchoBackend a{"a"}, b{"b"};
  uint16_t port = 0;
  ProxyHarness h{[] {
    model::Config c;
    c.vpcs.push_back({kVpc, {"127.0.0.0/8"}});
    return c;
  }()};
};

TEST_F(ProxyTest, RoutesByHostCaseInsensitiveWithPortStripped) {
  start();
  Client c(port);
  for (std::string host : {kHost, "BILLING.example.com:" + std::to_string(port), std::string("billing.example.com")}) {
    Response r = c.get(host);
    ASSERT_EQ(r.status, 200) << host;
    EXPECT_EQ(echoed(r)["backend"], "a");
  }
  Response unknown = c.get("nobody.example.com");
  EXPECT_EQ(unknown.status, 404);
  // The connection survives a 404 (keep-alive).
  EXPECT_EQ(c.get(kHost).status, 200);
}

TEST_F(ProxyTest, AddsLatticeHeadersAndStripsSpoofedOnes) {
  start();
  Client c(port);
  Response r = c.get(kHost, "/x?y=1",
                     "X-Forwarded-For: 6.6.6.6\r\nx-amzn-lattice-identity: Principal=spoof\r\n"
                     "x-amzn-source-vpc: vpc-spoof\r\nx-amzn-lattice-target: spoof\r\nKeep-Alive: 5\r\n"
                     "Connection: keep-alive, X-Private\r\nX-Private: secret\r\nX-Kept: yes\r\n");
  ASSERT_EQ(r.status, 200);
  json seen = echoed(r)["headers"];
  EXPECT_EQ(seen["x-forwarded-for"], "127.0.0.1");
  EXPECT_EQ(seen["x-forwarded-port"], std::to_string(port));
  EXPECT_EQ(seen["x-forwarded-proto"], "http");
  EXPECT_FALSE(seen.contains("x-amzn-lattice-identity"));
  EXPECT_FALSE(seen.contains("keep-alive"));
  EXPECT_FALSE(seen.contains("x-private"));  // named in Connection: hop-by-hop
  EXPECT_EQ(seen["x-kept"], "yes");
  EXPECT_EQ(seen["x-amzn-source-vpc"], "vpc-0000000000000c11e");
  EXPECT_EQ(seen["x-amzn-lattice-network"],
            "SourceVpcArn=arn:aws:ec2:us-east-1:111122223333:vpc/vpc-0000000000000c11e");
  EXPECT_EQ(seen["x-amzn-lattice-target"],
            "ServiceArn=" + StoreFixture::arn("service", kSvc) +
                "; ServiceNetworkArn=" + StoreFixture::arn("servicenetwork", "sn-0000000000000000a") +
                "; TargetGroupArn=" + StoreFixture::arn("targetgroup", kTgA));
  EXPECT_EQ(echoed(r)["target"], "/x?y=1");
  // A request id is generated, sent to the target and echoed to the client (not the target's own).
  ASSERT_NE(r.header("x-amzn-requestid"), nullptr);
  EXPECT_EQ(*r.header("x-amzn-requestid"), seen["x-amzn-requestid"]);
  EXPECT_EQ(r.header("x-amzn-requestid")->size(), 36u);
}

TEST_F(ProxyTest, KeepsClientRequestIdUpTo512Bytes) {
  start();
  Client c(port);
  Response r = c.get(kHost, "/", "x-amzn-requestid: my-id-1\r\n");
  EXPECT_EQ(*r.header("x-amzn-requestid"), "my-id-1");
  EXPECT_EQ(echoed(r)["headers"]["x-amzn-requestid"], "my-id-1");
  std::string longId(700, 'q');
  r = c.get(kHost, "/", "x-amzn-requestid: " + longId + "\r\n");
  EXPECT_EQ(*r.header("x-amzn-requestid"), longId.substr(0, 512));
}

TEST_F(ProxyTest, WeightedTargetGroupsSplit25To75) {
  h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTgA, 25}, {kTgB, 75}}));
  start();
  std::map<std::string, int> counts;
  Client c(port);
  for (int i = 0; i < 4000; ++i) {
    Response r = c.get(kHost);
    ASSERT_EQ(r.status, 200);
    counts[echoed(r)["backend"]]++;
  }
  EXPECT_NEAR(counts["a"], 1000, 120);  // ±3% of 4,000
  EXPECT_NEAR(counts["b"], 3000, 120);
  // Short runs are fair too (smooth weighted round robin): any 4 consecutive picks hold one "a".
  int inFour = 0;
  for (int i = 0; i < 4; ++i) inFour += echoed(c.get(kHost))["backend"] == "a";
  EXPECT_EQ(inFour, 1);
}

TEST_F(ProxyTest, WeightZeroGetsNothing) {
  h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTgA, 0}, {kTgB, 10}}));
  start();
  Client c(port);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(echoed(c.get(kHost))["backend"], "b");
}

TEST_F(ProxyTest, RulesMatchInPriorityOrder) {
  auto toB = StoreFixture::forward({{kTgB, 1}});
  h.store.rule("rule-5", kSvc, "listener-1", 5, {{"pathMatch", {{"match", {{"exact", "/Exact"}}}, {"caseSensitive", true}}}},
               toB);
  h.store.rule("rule-10", kSvc, "listener-1", 10, {{"pathMatch", {{"match", {{"prefix", "/api/"}}}}}},
               StoreFixture::fixed(500));
  // A lower number wins even when the more specific rule comes later.
  h.store.rule("rule-7", kSvc, "listener-1", 7, {{"pathMatch", {{"match", {{"prefix", "/api/b"}}}}}}, toB);
  h.store.rule("rule-20", kSvc, "listener-1", 20, {{"method", "DELETE"}}, StoreFixture::fixed(404));
  h.store.rule("rule-30", kSvc, "listener-1", 30,
               {{"headerMatches",
                 {{{"name", "X-Exact"}, {"match", {{"exact", "Yes"}}}},
                  {{"name", "x-prefix"}, {"match", {{"prefix", "ab"}}}, {"caseSensitive", true}}}}},
               toB);
  h.store.rule("rule-40", kSvc, "listener-1", 40,
               {{"headerMatches", {{{"name", "x-contains"}, {"match", {{"contains", "needle"}}}}}}}, toB);
  start();
  Client c(port);
  auto backend = [&](const std::string& method, const std::string& path, const std::string& extra = {}) {
    c.send(method + " " + path + " HTTP/1.1\r\nHost: " + kHost + "\r\n" + extra + "\r\n");
    Response r = c.read();
    if (r.status != 200) return std::to_string(r.status);
    return echoed(r)["backend"].get<std::string>();
  };
  EXPECT_EQ(backend("GET", "/Exact"), "b");
  EXPECT_EQ(backend("GET", "/exact"), "a");    // case-sensitive exact
  EXPECT_EQ(backend("GET", "/Exact/x"), "a");  // exact is not a prefix
  EXPECT_EQ(backend("GET", "/API/x"), "500");  // prefix, case-insensitive by default
  EXPECT_EQ(backend("GET", "/api/bill"), "b");
  EXPECT_EQ(backend("GET", "/api/b?q=1"), "b");  // the query is not part of the path
  EXPECT_EQ(backend("DELETE", "/x"), "404");
  EXPECT_EQ(backend("GET", "/h", "X-Exact: yes\r\nX-Prefix: abc\r\n"), "b");
  EXPECT_EQ(backend("GET", "/h", "X-Exact: yes\r\nX-Prefix: ABc\r\n"), "a");  // case-sensitive prefix
  EXPECT_EQ(backend("GET", "/h", "X-Exact: yes\r\n"), "a");                   // all matches must hold
  EXPECT_EQ(backend("GET", "/h", "X-Exact: yess\r\nX-Prefix: abc\r\n"), "a");
  EXPECT_EQ(backend("GET", "/h", "X-Contains: hayNEEDLEstack\r\n"), "b");
  EXPECT_EQ(backend("GET", "/h", "X-Contains: haystack\r\n"), "a");
  Client fresh(port);
  fresh.send("delete /x HTTP/1.1\r\nHost: " + kHost + "\r\n\r\n");
  EXPECT_EQ(fresh.read().status, 400);  // methods are case-sensitive tokens; unknown ones are rejected
}

TEST_F(ProxyTest, FixedResponsesWithoutContactingTargets) {
  h.store.listener("listener-1", kSvc, port, StoreFixture::fixed(404));
  start();
  Client c(port);
  c.send("POST / HTTP/1.1\r\nHost: " + kHost + "\r\nContent-Length: 5\r\n\r\nhello");
  Response r = c.read();
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.header("x-amzn-requestid"), nullptr);
  EXPECT_EQ(c.get(kHost).status, 404);  // the body was consumed; the connection goes on
  EXPECT_EQ(a.requests() + b.requests(), 0);
}

TEST_F(ProxyTest, PipelinedRequestsAnsweredInOrder) {
  start();
  Client c(port);
  c.send("GET /1 HTTP/1.1\r\nHost: " + kHost + "\r\n\r\nGET /2 HTTP/1.1\r\nHost: nobody\r\n\r\n"
         "GET /3 HTTP/1.1\r\nHost: " + kHost + "\r\n\r\n");
  Response r1 = c.read(), r2 = c.read(), r3 = c.read();
  EXPECT_EQ(echoed(r1)["target"], "/1");
  EXPECT_EQ(r2.status, 404);
  EXPECT_EQ(echoed(r3)["target"], "/3");
}

TEST_F(ProxyTest, StreamsRequestBodiesContentLengthAndChunked) {
  start();
  Client c(port);
  std::string body(300000, 'x');
  c.send("POST /up HTTP/1.1\r\nHost: " + kHost + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         body);
  Response r = c.read();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoed(r)["bodySize"], body.size());
  c.send("POST /up HTTP/1.1\r\nHost: " + kHost + "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  r = c.read();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoed(r)["bodySize"], 11);
}

TEST_F(ProxyTest, ChunkedResponsesAndTrailersPassThrough) {
  RawBackend raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n"
                 "3\r\nabc\r\n2\r\nde\r\n0\r\nx-checksum: 42\r\n\r\n");
  raw.terminator = "x-req-trailer: 7\r\n\r\n";
  h.store.targetGroup(kTgA, raw.port(), {{"127.0.0.1"}});
  start();
  Client c(port);
  c.send("POST / HTTP/1.1\r\nHost: " + kHost + "\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\nx-req-trailer: 7\r\n\r\n");
  Response r = c.read();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "abcde");
  EXPECT_EQ(r.trailers, "x-checksum: 42\r\n");
  std::string sent = raw.received();
  EXPECT_NE(sent.find("transfer-encoding: chunked\r\n"), std::string::npos);
  EXPECT_NE(sent.find("4\r\nwxyz\r\n0\r\nx-req-trailer: 7\r\n\r\n"), std::string::npos) << sent;
}

TEST_F(ProxyTest, EofDelimitedResponseBecomesChunked) {
  RawBackend raw("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-the-end");
  h.store.targetGroup(kTgA, raw.port(), {{"127.0.0.1"}});
  start();
  Client c(port);
  Response r = c.get(kHost);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "until-the-end");
  EXPECT_NE(r.header("transfer-encoding"), nullptr);
  EXPECT_EQ(c.get(kHost).status, 200);  // the client connection stays usable
}

TEST_F(ProxyTest, SmugglingShapesGet400AndClose) {
  start();
  const std::vector<std::string> shapes = {
      "POST / HTTP/1.1\r\nHost: H\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: H\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nHost: H\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
      "POST / HTTP/1.1\r\nHost: H\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: H\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: H\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: H\r\nX-Folded: a\r\n b\r\n\r\n",
      "GET / HTTP/1.1\nHost: H\n\n",
      "GET / HTTP/1.1\r\nHost: H\r\nX: y\n\r\n",
      "GET / HTTP/1.1\r\nHost: H\r\n\n",
      "GET / HTTP/1.1\r\nHost: H\r\nX-Bad : y\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: H\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: H\r\nHost: other\r\n\r\n",
  };
  for (std::string shape : shapes) {
    shape.replace(shape.find("H"), 1, kHost);
    Client c(port);
    c.send(shape);
    Response r = c.read();
    EXPECT_EQ(r.status, 400) << shape;
    EXPECT_TRUE(c.closedByPeer()) << shape;
  }
  EXPECT_EQ(a.requests(), 0);
}

TEST_F(ProxyTest, HeaderLimits) {
  start();
  auto withHeaders = [&](int count, size_t valueSize) {
    std::string req = "GET / HTTP/1.1\r\nHost: " + kHost + "\r\n";
    for (int i = 1; i < count; ++i) req += "x-h" + std::to_string(i) + ": " + std::string(valueSize, 'v') + "\r\n";
    Client c(port);
    c.send(req + "\r\n");
    return c.read().status;
  };
  EXPECT_EQ(withHeaders(100, 10), 200);
  EXPECT_EQ(withHeaders(101, 10), 400);
  EXPECT_EQ(withHeaders(50, 1000), 200);
  EXPECT_EQ(withHeaders(70, 1000), 400);  // > 60 KB
}

TEST_F(ProxyTest, ConnectFailureRetriesOnAnotherTarget) {
  uint16_t dead = freePort();
  h.store.targetGroup(kTgA, a.port(), {{"127.0.0.1", dead}, {"127.0.0.1"}},
                      {{"enabled", false}});  // no health checks: only the retry saves the requests
  start();
  Client c(port);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(c.get(kHost).status, 200);
}

TEST_F(ProxyTest, UnreachableTargets502AndNoTargets503) {
  h.store.targetGroup(kTgA, freePort(), {{"127.0.0.1"}}, {{"enabled", false}});
  h.store.targetGroup(kTgB, 80, {});
  h.store.rule("rule-1", kSvc, "listener-1", 1, {{"pathMatch", {{"match", {{"prefix", "/empty"}}}}}},
               StoreFixture::forward({{kTgB, 1}}));
  start();
  Client c(port);
  EXPECT_EQ(c.get(kHost).status, 502);
  Client d(port);
  EXPECT_EQ(d.get(kHost, "/empty").status, 503);
}

TEST_F(ProxyTest, DrainingTargetsGetNoNewRequests) {
  h.store.targetGroup(kTgA, a.port(), {{"127.0.0.1"}, {"127.0.0.1", b.port(), true}});
  start();
  Client c(port);
  for (int i = 0; i < 30; ++i) ASSERT_EQ(echoed(c.get(kHost))["backend"], "a");
  EXPECT_EQ(b.requests(), 0);
}

TEST_F(ProxyTest, ListenersOpenAndCloseWithTheSnapshot) {
  start();
  // A port someone else holds: reported, and the others keep working.
  int blocker = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(blocker, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  listen(blocker, 1);
  socklen_t len = sizeof addr;
  getsockname(blocker, reinterpret_cast<sockaddr*>(&addr), &len);
  uint16_t taken = ntohs(addr.sin_port);
  uint16_t second = freePort();
  h.store.service("svc-0000000000000000b", "other");
  h.store.listener("listener-2", "svc-0000000000000000b", second, StoreFixture::forward({{kTgB, 1}}));
  h.store.listener("listener-3", "svc-0000000000000000b", taken, StoreFixture::forward({{kTgB, 1}}));
  h.store.serviceAssociation("snsa-2", kSn, "svc-0000000000000000b");
  h.publish();
  ASSERT_TRUE(h.waitListening(second));
  Client c(second);
  EXPECT_EQ(echoed(c.get(StoreFixture::generatedName("svc-0000000000000000b", "other")))["backend"], "b");
  bool reported = false;
  for (int i = 0; i < 100 && !reported; ++i) {
    for (const auto& s : h.dataPlane().listenerStatus()) reported = reported || (s.port == taken && !s.bound);
    if (!reported) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(reported);
  close(blocker);
  // Removing the listener closes its port; the first listener is untouched.
  h.store.erase("listener", "listener-2");
  h.publish();
  bool closed = false;
  for (int i = 0; i < 200 && !closed; ++i) {
    int fd = connectTo(second);
    closed = fd < 0;
    if (fd >= 0) close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(closed);
  Client first(port);
  EXPECT_EQ(first.get(kHost).status, 200);
}

TEST_F(ProxyTest, RouteAndWeightChangesUnderLoadLoseNothing) {
  start();
  std::atomic<bool> done{false};
  std::atomic<int> failures{0}, requests{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      Client c(port);
      while (!done) {
        Response r = c.get(kHost);
        ++requests;
        if (r.status != 200) ++failures;
      }
    });
  }
  for (int i = 0; i < 1000; ++i) {
    h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTgA, 1 + i % 7}, {kTgB, 1 + i % 5}}));
    if (i % 2) h.store.rule("rule-1", kSvc, "listener-1", 1, {{"method", "PUT"}}, StoreFixture::fixed(500));
    h.publish();
  }
  done = true;
  for (auto& t : clients) t.join();
  EXPECT_GT(requests.load(), 0);
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(ProxyTest, MetricsCountRequestsByServiceAndTargetGroup) {
  start();
  Client c(port);
  for (int i = 0; i < 7; ++i) c.get(kHost);
  c.get("nobody");
  std::string text = h.dataPlane().renderMetrics();
  EXPECT_NE(text.find("TotalRequestCount{service=\"" + kSvc + "\"} 7"), std::string::npos) << text;
  EXPECT_NE(text.find("HTTPCode_2XX_Count{target_group=\"" + kTgA + "\"} 7"), std::string::npos);
  EXPECT_NE(text.find("RequestTime_count{service=\"" + kSvc + "\"} 7"), std::string::npos);
  EXPECT_NE(text.find("TotalConnectionCount{target_group=\"" + kTgA + "\"} 1"), std::string::npos);  // pooled
  EXPECT_NE(text.find("trellis_proxy_unknown_host_total 1"), std::string::npos);
}

}  // namespace
}  // namespace trellis::testing
