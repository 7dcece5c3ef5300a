// Health checks, draining and access logs through a running DataPlane.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "proxy/h2_backend.h"
#include "proxy/proxy_harness.h"
#include "proxy/tls_harness.h"

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

// A client connection with no request in flight closes after the service's idle timeout.
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

namespace trellis::testing {
namespace {

// An HTTPS target for HTTP/2 checks: with `offerH2` it selects ALPN h2 when offered and then speaks
// HTTP/2, answering every request with `status`; otherwise (or without ALPN) it speaks HTTP/1.1 only.
class TlsH2Backend {
 public:
  TlsH2Backend(const std::string& certFile, const std::string& keyFile, bool offerH2, int status)
      : offerH2_(offerH2), status_(status), ctx_(tlsServerContext(certFile, keyFile)) {
    SSL_CTX_set_alpn_select_cb(ctx_.get(), selectAlpn, this);
    // Checks come one at a time.
    acceptor_.start(LoopbackAcceptor::Mode::kOneAtATime,
                    [this](int c) { serveTls(ctx_.get(), c, [this](SSL* ssl) { serve(ssl); }); });
  }
  uint16_t port() const { return acceptor_.port(); }
  int h2Requests() const { return h2Requests_; }
  int http1Requests() const { return http1Requests_; }

 private:
  class H2Connection : public proxy::Http2ServerHandler {
   public:
    explicit H2Connection(TlsH2Backend& owner) : owner_(owner) {}
    void onRequestHead(int32_t stream, proxy::RequestHead&) override {
      ++owner_.h2Requests_;
      session_.submitResponse(stream, owner_.status_, {{"content-type", "text/plain"}}, true);
    }
    void onMalformedRequest(int32_t stream, std::string_view) override {
      session_.submitResponse(stream, 400, {}, true);
    }
    void onBody(int32_t stream, std::string_view data) override { session_.consume(stream, data.size()); }
    void onTrailers(int32_t, proxy::Headers&) override {}
    void onComplete(int32_t) override {}
    void onStreamClosed(int32_t, uint32_t) override {}
    proxy::Http2ServerSession session_{*this};

   private:
    TlsH2Backend& owner_;
  };

  static int selectAlpn(SSL*, const unsigned char** out, unsigned char* outLength, const unsigned char* in,
                        unsigned int inLength, void* self) {
    if (!static_cast<TlsH2Backend*>(self)->offerH2_) return SSL_TLSEXT_ERR_NOACK;
    for (unsigned i = 0; i < inLength; i += 1 + in[i]) {
      if (in[i] == 2 && i + 3 <= inLength && std::memcmp(in + i + 1, "h2", 2) == 0) {
        *out = in + i + 1;
        *outLength = 2;
        return SSL_TLSEXT_ERR_OK;
      }
    }
    return SSL_TLSEXT_ERR_NOACK;
  }

  void serve(SSL* ssl) {
    const unsigned char* alpn = nullptr;
    unsigned alpnLength = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpnLength);
    char buffer[16384];
    if (alpnLength == 2) {
      H2Connection h2(*this);
      for (std::string out;; out.clear()) {
        if (!h2.session_.send(out)) break;
        if (!out.empty() && SSL_write(ssl, out.data(), static_cast<int>(out.size())) <= 0) break;
        if (h2.session_.finished()) break;
        int n = SSL_read(ssl, buffer, sizeof buffer);
        if (n <= 0 || !h2.session_.receive(std::string_view(buffer, static_cast<size_t>(n)))) break;
      }
    } else if (SSL_read(ssl, buffer, sizeof buffer) > 0) {  // HTTP/1.1: one request, whatever it says
      ++http1Requests_;
      std::string response = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
      SSL_write(ssl, response.data(), static_cast<int>(response.size()));
    }
  }

  bool offerH2_;
  int status_;
  SslContext ctx_;
  std::atomic<int> h2Requests_{0}, http1Requests_{0};
  LoopbackAcceptor acceptor_{16};  // last: stops before the context goes
};

json fastCheck(const std::string& protocol, const std::string& version, const std::string& path = "/health") {
  return {{"enabled", true}, {"protocol", protocol}, {"protocolVersion", version},
          {"healthCheckIntervalSeconds", 1}, {"healthCheckTimeoutSeconds", 1}, {"healthyThresholdCount", 2},
          {"unhealthyThresholdCount", 2}, {"path", path}, {"matcher", {{"httpCode", "200"}}}};
}

// Target groups named by a letter, each with one loopback target, all used by one listener.
struct Groups {
  ProxyHarness h;
  std::vector<std::pair<std::string, int>> ports;
  void add(char letter, uint16_t port, const json& check, const std::string& groupVersion = "HTTP1") {
    std::string id = std::string("tg-000000000000000") + letter;
    h.store.targetGroup(id, port, {{"127.0.0.1"}}, check);
    for (const auto& record : h.store.contents().records) {
      if (record.kind != "targetgroup" || record.id != id) continue;
      json doc = json::parse(record.value);
      doc["config"]["protocolVersion"] = groupVersion;
      h.store.put("targetgroup", id, doc);
      break;
    }
    ports.emplace_back(id, port);
  }
  void start() {
    json list = json::array();
    for (const auto& [id, port] : ports) list.push_back({{"targetGroupIdentifier", id}, {"weight", 1}});
    h.store.service(kSvc, "billing");
    h.store.listener("listener-1", kSvc, freePort(), {{"forward", {{"targetGroups", list}}}});
    h.start();
  }
  proxy::TargetHealth status(char letter) {
    std::string id = std::string("tg-000000000000000") + letter;
    for (const auto& [group, port] : ports) {
      if (group == id) return h.dataPlane().targetHealth().status(id, "127.0.0.1", static_cast<uint16_t>(port));
    }
    return {};
  }
  bool settled() {
    for (const auto& [id, port] : ports) {
      std::string s = status(id.back()).status;
      if (s != "HEALTHY" && s != "UNHEALTHY") return false;
    }
    return true;
  }
};

TEST(HealthChecks, Http2ChecksSpeakH2cAndMatchTheStatus) {
  H2Backend h2c;
  EchoBackend http1("http1");
  Groups g;
  g.add('a', h2c.port(), fastCheck("HTTP", "HTTP2"));                   // h2c answering 200
  g.add('b', h2c.port(), fastCheck("HTTP", "HTTP2", "/status/500"));    // h2c answering 500
  g.add('c', http1.port(), fastCheck("HTTP", "HTTP2"));                 // a target that speaks only HTTP/1.1
  g.add('d', h2c.port(), fastCheck("HTTP", "HTTP1"));                   // an HTTP/1.1 check to an h2c-only target
  json unversioned = fastCheck("HTTP", "HTTP1");
  unversioned.erase("protocolVersion");
  g.add('e', h2c.port(), unversioned, "GRPC");  // a GRPC group's check defaults to HTTP/2
  g.start();
  ASSERT_TRUE(eventually([&] { return g.settled(); }));
  EXPECT_EQ(g.status('a').status, "HEALTHY");
  EXPECT_GT(h2c.requestsSeen(), 0);
  EXPECT_EQ(g.status('b').status, "UNHEALTHY");
  EXPECT_EQ(g.status('b').reasonCode, "Target.ResponseCodeMismatch");
  EXPECT_EQ(g.status('c').status, "UNHEALTHY");
  EXPECT_EQ(g.status('c').reasonCode, "Target.FailedHealthChecks");
  EXPECT_EQ(g.status('d').status, "UNHEALTHY");
  EXPECT_EQ(g.status('e').status, "HEALTHY");
}

TEST(HealthChecks, Http2ChecksOverTlsUseAlpnH2) {
  TempDir dir;
  ASSERT_TRUE(makeSelfSigned(dir, "target", "target.internal"));  // self-signed: not verified
  TlsH2Backend ok(dir.file("target.pem"), dir.file("target.key"), true, 200);
  TlsH2Backend failing(dir.file("target.pem"), dir.file("target.key"), true, 500);
  TlsH2Backend http1Only(dir.file("target.pem"), dir.file("target.key"), false, 200);
  Groups g;
  g.add('a', ok.port(), fastCheck("HTTPS", "HTTP2"));
  g.add('b', failing.port(), fastCheck("HTTPS", "HTTP2"));
  g.add('c', http1Only.port(), fastCheck("HTTPS", "HTTP2"));
  g.add('d', http1Only.port(), fastCheck("HTTPS", "HTTP1"));  // the same target is fine for HTTP/1.1 checks
  g.start();
  ASSERT_TRUE(eventually([&] { return g.settled(); }));
  EXPECT_EQ(g.status('a').status, "HEALTHY");
  EXPECT_GT(ok.h2Requests(), 0);
  EXPECT_EQ(ok.http1Requests(), 0);
  EXPECT_EQ(g.status('b').status, "UNHEALTHY");
  EXPECT_EQ(g.status('b').reasonCode, "Target.ResponseCodeMismatch");
  EXPECT_EQ(g.status('c').status, "UNHEALTHY");
  EXPECT_EQ(g.status('d').status, "HEALTHY");
  EXPECT_GT(http1Only.http1Requests(), 0);
}

}  // namespace
}  // namespace trellis::testing
