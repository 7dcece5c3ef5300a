// Requests shaped to slip past a rule, smuggle a second request, or wear the proxy out (docs/request-paths.md,
// docs/architecture.md "Limits"). Raw sockets for HTTP/1, HTTP/2 frames built here byte by byte, so nothing
// between the test and the proxy tidies a request up. Work is measured as CPU seconds and lifetimes, not
// as speed.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>

#include <filesystem>
#include <map>

#include "proxy/h2_client.h"
#include "proxy/proxy_harness.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kOther = "svc-0123456789abcdef1";
const std::string kTg = "tg-0000000000000000a";
const std::string kOtherTg = "tg-0000000000000000b";
const std::string kHost = StoreFixture::generatedName(kSvc, "billing");
const std::string kOtherHost = StoreFixture::generatedName(kOther, "orders");
const std::string kSn = "sn-0000000000000000a";

json echoed(const Response& r) { return json::parse(r.body, nullptr, false); }

double cpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

model::Config configWith(const std::function<void(model::DataPlaneSettings&)>& change = {}) {
  model::Config c = loopbackConfig();
  if (change) change(c.dataPlane);
  return c;
}

class HostileClients : public ::testing::Test {
 protected:
  // Two services on one port: billing (a rule refuses /admin with 403, the rest goes to `a`) and orders.
  void setUp(model::Config config = loopbackConfig(), int workers = 2) {
    h = std::make_unique<ProxyHarness>(std::move(config), workers);
    port = freePort();
    h->store.service(kSvc, "billing");
    h->store.service(kOther, "orders");
    h->store.targetGroup(kTg, a.port(), {{"127.0.0.1"}}, {{"enabled", false}});
    h->store.targetGroup(kOtherTg, b.port(), {{"127.0.0.1"}}, {{"enabled", false}});
    h->store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTg, 100}}));
    h->store.listener("listener-2", kOther, port, StoreFixture::forward({{kOtherTg, 100}}));
    h->store.rule("rule-admin", kSvc, "listener-1", 1, {{"pathMatch", {{"match", {{"prefix", "/admin"}}}}}},
                  StoreFixture::fixed(403));
    h->store.serviceNetwork(kSn, "net");
    h->store.serviceAssociation("snsa-1", kSn, kSvc);
    h->store.serviceAssociation("snsa-2", kSn, kOther);
    h->store.vpcAssociation("snva-1", kSn, kLoopbackVpc);
  }
  void start() {
    h->start();
    ASSERT_TRUE(h->waitListening(port));
  }
  // One raw request on a connection of its own.
  Response raw(const std::string& request) {
    Client c(port);
    c.send(request);
    return c.read();
  }
  std::string metric(const std::string& series) {
    std::string text = h->dataPlane().renderMetrics();
    size_t at = text.find("\n" + series + " ");
    return at == std::string::npos ? "" : text.substr(at + series.size() + 2, text.find('\n', at + 1) - at - series.size() - 2);
  }

  EchoBackend a{"a"}, b{"b"};
  uint16_t port = 0;
  std::unique_ptr<ProxyHarness> h;
};

// ---------------- 1. one path for the rule and the target ----------------

TEST_F(HostileClients, AbsoluteFormIsRoutedAndRuledByItsOwnAuthorityAndPath) {
  setUp();
  start();
  // The rule sees the path of the absolute URI, not "http://...".
  EXPECT_EQ(raw("GET http://" + kHost + "/admin/secret HTTP/1.1\r\nHost: " + kHost + "\r\n\r\n").status, 403);
  EXPECT_EQ(raw("GET HTTP://" + kHost + "/admin HTTP/1.1\r\nHost: " + kHost + "\r\n\r\n").status, 403);
  // Its authority replaces Host (RFC 9112 3.2.2): routed to the service it names, never half of each.
  Response r = raw("GET http://" + kHost + ":" + std::to_string(port) + "/public?q=1 HTTP/1.1\r\nHost: " +
                   kOtherHost + "\r\n\r\n");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoed(r)["backend"], "a");
  EXPECT_EQ(echoed(r)["target"], "/public?q=1");  // origin-form, as the target expects
  EXPECT_EQ(echoed(r)["headers"]["host"], kHost + ":" + std::to_string(port));
  r = raw("GET http://" + kOtherHost + "/admin/secret HTTP/1.1\r\nHost: " + kHost + "\r\n\r\n");
  ASSERT_EQ(r.status, 200);  // orders has no /admin rule: its own target answers
  EXPECT_EQ(echoed(r)["backend"], "b");
  EXPECT_EQ(echoed(r)["target"], "/admin/secret");
  EXPECT_EQ(raw("GET http://nobody.example/ HTTP/1.1\r\nHost: " + kHost + "\r\n\r\n").status, 404);
  // What cannot be made origin-form is refused.
  for (std::string bad : {"ftp://" + kHost + "/x", "http://user@" + kHost + "/x", std::string("http:///x"), std::string("*")}) {
    EXPECT_EQ(raw("GET " + bad + " HTTP/1.1\r\nHost: " + kHost + "\r\n\r\n").status, 400) << bad;
  }
  EXPECT_EQ(a.requests(), 1);
}

TEST_F(HostileClients, PathShapesNeverSlipPastARule) {
  setUp();
  start();
  Client c(port);  // keep-alive: a refused shape does not cost the connection
  for (std::string path : {"/admin/secret", "/ADMIN/secret", "/%61dmin/secret", "/%41DMIN", "//admin/secret",
                           "/./admin/secret", "/public/../admin/secret", "/public/%2e%2e/admin", "/x/.%2E/admin",
                           "/../admin", "/admin"}) {
    EXPECT_EQ(c.get(kHost, path).status, 403) << path;
  }
  // Shapes targets disagree about are refused outright.
  for (std::string path : {"/admin%2Fsecret", "/admin%2fsecret", "/admin%5Csecret", "/x%00y", "/x%zz", "/x#frag"}) {
    EXPECT_EQ(c.get(kHost, path).status, 400) << path;
  }
  EXPECT_EQ(c.get(kHost, "/admin\\secret").status, 400);
  EXPECT_EQ(a.requests(), 0);
  // And the other way: what passes reaches the target as the rule saw it.
  const std::pair<const char*, const char*> passed[] = {
      {"/public/./a/../b", "/public/b"}, {"//public//x", "/public/x"}, {"/%7Euser", "/~user"},
      {"/caf%c3%a9?x=%2F", "/caf%C3%A9?x=%2F"}, {"/administrator/..", "/"},
  };
  for (const auto& [path, seen] : passed) {
    Response r = c.get(kHost, path);
    ASSERT_EQ(r.status, 200) << path;
    EXPECT_EQ(echoed(r)["target"], seen) << path;
  }
}

TEST_F(HostileClients, EncodedSlashesKeptWhenConfiguredAndMatchedAsTheyAre) {
  setUp(configWith([](auto& d) { d.keepEncodedSlashes = true; }));
  start();
  Client c(port);
  Response r = c.get(kHost, "/admin%2fsecret");
  EXPECT_EQ(r.status, 403);  // still under the /admin prefix: one segment "admin%2Fsecret"
  r = c.get(kHost, "/public%2F..%2Fadmin");
  ASSERT_EQ(r.status, 200);  // one segment, not a climb
  EXPECT_EQ(echoed(r)["target"], "/public%2F..%2Fadmin");
}

TEST_F(HostileClients, Http2PathsAreNormalizedLikeHttp1) {
  setUp();
  start();
  for (std::string path : {"/%61dmin/secret", "//admin", "/public/../admin"}) {
    H2Client c(port);
    c.get(kHost, path);
    EXPECT_EQ(c.status_, 403) << path;
  }
  H2Client bad(port);
  bad.get(kHost, "/admin%2Fsecret");
  EXPECT_EQ(bad.status_, 400);
  EXPECT_EQ(a.requests(), 0);
}

// ---------------- 2. framing llhttp 8.1 lets through ----------------

TEST_F(HostileClients, SmugglingShapesOfLlhttp81Get400AndClose) {
  setUp();
  start();
  const std::string P = "POST / HTTP/1.1\r\nHost: H\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::vector<std::string> shapes = {
      "GET /a HTTP/1.1\r\nHost: H\r\n\rXGET /smuggled HTTP/1.1\r\nHost: H\r\n\r\n",  // lone CR ends the head
      "GET / HTTP/1.1\r\nHost: H\r\nX:\rTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n",
      "PUT / HTTP/1.1\r\nHost: H\r\nContent-Length: 3\r\n\rabc",
      P + "5\rXhello\r\n0\r\n\r\n",                    // lone CR after a chunk size
      P + "5;a\rXhello\r\n0\r\n\r\n",                  // ... in a chunk extension
      P + "5\r\nhelloXX0\r\n\r\n",                     // no CRLF after chunk data
      P + "0\r\n\rXGET /smuggled HTTP/1.1\r\nHost: H\r\n\r\n",
      P + "0\r\nX: y\r\n\rZGET /smuggled HTTP/1.1\r\nHost: H\r\n\r\n",
      P + "0\r\nX: y\r\n\nGET /smuggled HTTP/1.1\r\nHost: H\r\n\r\n",  // bare LF ends the trailers
      P + "0\r\n\nGET /smuggled HTTP/1.1\r\nHost: H\r\n\r\n",
      P + "0\r\nX: y\r\n z\r\n\r\n",                   // obs-fold in trailers
      P + "5;a=\"x\x7fy\"\r\nhello\r\n0\r\n\r\n",       // DEL in a quoted extension
      P + "5;a=" + std::string(20000, 'x') + "\r\nhello\r\n0\r\n\r\n",  // CVE-2024-22019
      "POST / HTTP/1.1\r\nHost: H\r\nContent-Length: 3\r\nTransfer-Encoding:\r\n\r\nabc",
      "POST / HTTP/1.1\r\nHost: H\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.0\r\nHost: H\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: H\r\n\r\n",
  };
  for (std::string shape : shapes) {
    for (size_t at; (at = shape.find("Host: H\r")) != std::string::npos;) shape.replace(at + 6, 1, kHost);
    Client c(port);
    c.send(shape);
    Response r = c.read();
    EXPECT_EQ(r.status, 400) << shape;
    EXPECT_TRUE(c.closedByPeer()) << shape;
  }
  EXPECT_EQ(a.requests(), 0);
  // Trailers that are well formed still pass.
  Client ok(port);
  ok.send("POST / HTTP/1.1\r\nHost: " + kHost + "\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nX: y\r\n\r\n");
  EXPECT_EQ(ok.read().status, 200);
}

TEST_F(HostileClients, AClientStillSendingAfterA400ReadsItsAnswerAndIsCutAfterTheDrain) {
  setUp();
  start();
  Client c(port);
  // A bad request followed by more bytes than the proxy will read: closing outright would reset the
  // connection and could destroy the 400 before the client read it.
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: " + kHost + "\r\n\rX" + std::string(200000, 'x')));
  Response r = c.read();
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(c.closedByPeer());  // a FIN: the proxy half-closed and drops what still comes
  auto start = std::chrono::steady_clock::now();
  bool cut = false;
  while (!cut && std::chrono::steady_clock::now() - start < std::chrono::seconds(6)) {
    cut = ::send(c.fd(), "more", 4, MSG_NOSIGNAL) < 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(cut) << "still taking bytes 6 s after the 400";  // drained for 2 s, then closed
}

TEST_F(HostileClients, NoBodyIsReadAfterA204OrA304) {
  // A target that gives a 204 a Content-Length: llhttp 8.1 would take the next bytes as its body.
  RawBackend liar("HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\nHTTP/");
  setUp();
  h->store.targetGroup(kTg, liar.port(), {{"127.0.0.1"}}, {{"enabled", false}});
  start();
  Client c(port);
  ASSERT_TRUE(c.send("GET /public HTTP/1.1\r\nHost: " + kHost + "\r\n\r\n"));
  Response r = c.read();
  EXPECT_EQ(r.status, 204);
  // The client's next response starts where it should: nothing of the target's extra bytes came first.
  Response next = c.get(kHost, "/admin");
  EXPECT_EQ(next.status, 403);
}

// ---------------- 3. HPACK: work bounded by the bytes received ----------------

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  f += static_cast<char>(payload.size() >> 16);
  f += static_cast<char>(payload.size() >> 8);
  f += static_cast<char>(payload.size());
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  for (int shift : {24, 16, 8, 0}) f += static_cast<char>((stream >> shift) & 0xff);
  return f + payload;
}

// Reads until the proxy answers a PING (so it has processed everything sent before it) or closes.
void awaitPingAckOrClose(int fd) {
  const std::string pingAck("\x00\x00\x08\x06\x01", 5);  // length 8, type PING, flag ACK
  std::string in;
  char buf[65536];
  while (in.find(pingAck) == std::string::npos) {
    ssize_t k = recv(fd, buf, sizeof buf, 0);
    if (k <= 0) return;
    in.append(buf, static_cast<size_t>(k));
  }
}

// :method GET, :scheme http, :path "/", :authority (literal, not indexed).
std::string requestPseudoHeaders(const std::string& authority) {
  return std::string("\x82\x86\x84") + '\x01' + static_cast<char>(authority.size()) + authority;
}

// HEADERS frames whose every field after the first block is one byte: an index into a dynamic-table entry
// of `entrySize` bytes. Returns the bytes received by the proxy.
size_t sendHpackExpansion(uint16_t port, size_t entrySize, int frames) {
  int fd = connectTo(port);
  std::string out(proxy::kHttp2Preface);
  out += frame(4, 0, 0, "");  // SETTINGS
  std::string first = requestPseudoHeaders(kHost);
  // Literal with incremental indexing, new name "x-big": becomes dynamic entry 62.
  first += "\x40\x05x-big";
  size_t n = entrySize;
  if (n < 127) {
    first += static_cast<char>(n);
  } else {
    first += '\x7f';
    for (n -= 127; n >= 128; n >>= 7) first += static_cast<char>((n & 0x7f) | 0x80);
    first += static_cast<char>(n);
  }
  first += std::string(entrySize, 'v');
  constexpr size_t kFrameMax = 16384;
  first += std::string(kFrameMax - first.size(), '\xbe');  // indexed field 62, again and again
  out += frame(1, 0x5, 1, first);  // END_HEADERS | END_STREAM
  std::string refs = requestPseudoHeaders(kHost);
  refs += std::string(kFrameMax - refs.size(), '\xbe');
  for (int i = 1; i < frames; ++i) out += frame(1, 0x5, 1 + 2 * i, refs);
  out += frame(6, 0, 0, std::string(8, 'p'));  // PING: its ACK says everything before it was processed
  size_t sent = 0;
  while (sent < out.size()) {
    ssize_t k = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (k <= 0) break;  // the proxy gave up on us: as it should
    sent += static_cast<size_t>(k);
  }
  awaitPingAckOrClose(fd);
  ::close(fd);
  return sent;
}

TEST_F(HostileClients, HpackExpansionCostsCpuByTheBytesReceivedNotByTheirDecodedSize) {
  setUp();
  start();
  // 200 frames (3.2 MB), each 16,000 references to a 4 KiB entry: 13 GB if decoded in full, about 5 s of
  // CPU in a release build before the proxy stopped decoding blocks over the limit.
  double before = cpuSeconds();
  size_t sent = sendHpackExpansion(port, 4000, 200);  // 4000 + 5 + 32 fits the 4096-byte table
  double perMegabyte = (cpuSeconds() - before) / (static_cast<double>(sent) / 1e6);
  EXPECT_LT(perMegabyte, 0.5) << sent << " bytes sent";
  EXPECT_EQ(metric("trellis_proxy_http2_terminated_total"), "1");
  // An honest connection still works.
  H2Client c(port);
  c.get(kHost, "/public");
  EXPECT_EQ(c.status_, 200);
}

TEST_F(HostileClients, RequestsJustUnderTheLimitCannotDecodeWithoutBound) {
  setUp();
  start();
  // Each request decodes to 56 KB (14 references to a 4000-byte entry) from about 30 bytes on the wire: every
  // one is within the header limit, together they are out of all proportion with what was sent.
  int fd = connectTo(port);
  std::string out(proxy::kHttp2Preface);
  out += frame(4, 0, 0, "");
  std::string entry = "\x40\x05x-big\x7f";
  size_t n = 4000 - 127;
  for (; n >= 128; n >>= 7) entry += static_cast<char>((n & 0x7f) | 0x80);
  entry += static_cast<char>(n);
  entry += std::string(4000, 'v');
  std::string pseudo = std::string("\x82\x86\x04\x06/admin") + '\x01' + static_cast<char>(kHost.size()) + kHost;
  out += frame(1, 0x5, 1, pseudo + entry + std::string(13, '\xbe'));
  double before = cpuSeconds();
  // In rounds of 100, under the 128 streams a connection may have open, each answered before the next.
  for (uint32_t id = 3, round = 0; round < 6; ++round) {
    for (int i = 0; i < 100; ++i, id += 2) out += frame(1, 0x5, id, pseudo + std::string(14, '\xbe'));
    out += frame(6, 0, 0, std::string(8, 'p'));
    if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) break;
    out.clear();
    awaitPingAckOrClose(fd);
  }
  ::close(fd);
  EXPECT_EQ(metric("trellis_proxy_http2_terminated_total"), "1");  // 600 x 56 KB > 16 MiB + 256 x sent
  EXPECT_LT(cpuSeconds() - before, 2.0);
  EXPECT_EQ(a.requests(), 0);
}

TEST_F(HostileClients, AnHonestOversizedHeaderBlockIsStillAnswered400) {
  setUp();
  start();
  H2Client c(port);
  // 62 KiB of literal headers: over the 60 KB limit, under the 64 KiB nghttp2's client side will send.
  proxy::Headers big;
  for (int i = 0; i < 4; ++i) big.emplace_back("x-big" + std::to_string(i), std::string(15 * 1024 + 512, 'b'));
  c.session_.submitRequest("GET", "http", kHost, "/", {big.begin(), big.end()}, true);
  c.exchange();
  EXPECT_EQ(c.status_, 400);
  EXPECT_EQ(a.requests(), 0);
}

// ---------------- 4. the descriptor limit ----------------

TEST_F(HostileClients, AcceptPausesAtTheDescriptorLimitInsteadOfSpinning) {
  setUp(loopbackConfig(), 1);
  start();
  {
    // Every thread up and every path of a request run once before descriptors run out: UBSan checks a
    // type the first time it sees it through a pipe, which it could not open then.
    Client warm(port);
    ASSERT_EQ(warm.get(kHost, "/public").status, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  rlimit saved{};
  getrlimit(RLIMIT_NOFILE, &saved);
  int highest = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    highest = std::max(highest, std::atoi(entry.path().filename().c_str()));
  }
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(highest + 16);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  // Every descriptor but one taken; the last one goes to a client, whose connection the proxy then cannot
  // accept (EMFILE) while it waits in the listen queue.
  int devNull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // not stdin: a test runner may have closed it
  ASSERT_GE(devNull, 0);
  std::vector<int> filler{devNull};
  // Filled a few times over: a descriptor another thread held for a moment (a certificate being read)
  // would leave a hole the proxy could accept into.
  for (int round = 0; round < 4; ++round) {
    for (int fd; (fd = ::dup(devNull)) >= 0;) filler.push_back(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  ASSERT_GE(filler.size(), 2u);
  int last = filler.back();
  ::close(last);
  filler.pop_back();
  int waiting = connectTo(port);
  ASSERT_EQ(waiting, last) << "the one descriptor left went to someone else";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the worker meets EMFILE
  double before = cpuSeconds();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  double busy = cpuSeconds() - before;
  for (int fd : filler) ::close(fd);
  setrlimit(RLIMIT_NOFILE, &saved);
  EXPECT_LT(busy, 0.5) << "CPU seconds in 2 s at the descriptor limit";  // spinning: about 2
  EXPECT_NE(metric("trellis_proxy_accept_paused_total"), "0");
  // Once descriptors are free, the waiting connection is taken and served.
  std::string request = "GET /public HTTP/1.1\r\nHost: " + kHost + "\r\n\r\n";
  ASSERT_EQ(::send(waiting, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  char buf[64] = {};
  ASSERT_GT(recv(waiting, buf, sizeof buf - 1, 0), 12);
  EXPECT_EQ(std::string(buf, 12), "HTTP/1.1 200");
  ::close(waiting);
}

// ---------------- 5. slow clients ----------------

// Sends `bytes` one every 250 ms until the proxy answers (or closes); whether it did before the last one.
bool dribbleUntilAnswered(Client& c, const std::string& bytes) {
  for (char ch : bytes) {
    if (!c.send(std::string(1, ch))) return false;
    pollfd p{c.fd(), POLLIN, 0};
    if (::poll(&p, 1, 250) > 0) return true;
  }
  return false;
}

TEST_F(HostileClients, AHeadSentAByteAtATimeGets408AtItsDeadline) {
  setUp(configWith([](auto& d) { d.requestHeadTimeoutSeconds = 2; }));
  start();
  Client c(port);
  std::string head = "GET /public HTTP/1.1\r\nHost: " + kHost + "\r\nX-Slow: " + std::string(100, 'a');
  auto opened = std::chrono::steady_clock::now();
  bool closed = dribbleUntilAnswered(c, head);
  ASSERT_TRUE(closed) << "still open after sending " << head.size() << " bytes over 25 s";
  Response r = c.read();
  EXPECT_EQ(r.status, 408);
  // Closed with a FIN, not a reset, although bytes the client sent were still unread (RFC 9112 9.6).
  EXPECT_TRUE(c.closedByPeer());
  auto lifetime = std::chrono::steady_clock::now() - opened;
  EXPECT_LT(lifetime, std::chrono::seconds(5));  // the 2 s deadline plus the once-a-second sweep
  EXPECT_EQ(metric("trellis_proxy_client_timeouts_total{phase=\"head\"}"), "1");
  EXPECT_EQ(a.requests(), 0);
  // A keep-alive connection idle between requests is not a slow head.
  Client idle(port);
  EXPECT_EQ(idle.get(kHost, "/public").status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  EXPECT_EQ(idle.get(kHost, "/public").status, 200);
}

TEST_F(HostileClients, AHandshakeSentAByteAtATimeIsClosedAtTheHeadDeadline) {
  setUp(configWith([](auto& d) { d.requestHeadTimeoutSeconds = 2; }));
  start();
  Client c(port);
  // The start of a TLS ClientHello record, dribbled: nothing to answer in, so the connection just goes.
  std::string hello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  hello += std::string(100, 'r');
  auto opened = std::chrono::steady_clock::now();
  bool closed = dribbleUntilAnswered(c, hello);
  ASSERT_TRUE(closed);
  char byte;
  EXPECT_LE(recv(c.fd(), &byte, 1, 0), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - opened, std::chrono::seconds(5));
  EXPECT_EQ(metric("trellis_proxy_client_timeouts_total{phase=\"head\"}"), "1");
}

TEST_F(HostileClients, ABodyBelowTheMinimumRateGets408) {
  setUp(configWith([](auto& d) { d.requestBodyMinBytesPerSecond = 100; }));
  start();
  Client c(port);
  ASSERT_TRUE(c.send("POST /public HTTP/1.1\r\nHost: " + kHost + "\r\ncontent-length: 100000\r\n\r\n"));
  auto opened = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 100 && !closed; ++i) {  // 20 bytes a second: under the 100 required
    if (!c.send(std::string(10, 'b'))) break;
    pollfd p{c.fd(), POLLIN, 0};
    closed = ::poll(&p, 1, 500) > 0;
  }
  ASSERT_TRUE(closed);
  EXPECT_EQ(c.read().status, 408);
  EXPECT_LT(std::chrono::steady_clock::now() - opened, std::chrono::seconds(25));  // one or two 10 s windows
  EXPECT_EQ(metric("trellis_proxy_client_timeouts_total{phase=\"body\"}"), "1");
}

// ---------------- 6. targets under rapid reset, and what is retried ----------------

// Counts the TCP connections it accepts; answers one request per connection with 200.
class CountingBackend {
 public:
  CountingBackend() {
    acceptor_.start(LoopbackAcceptor::Mode::kThreadPerConnection, [this](int c) {
      ++connections_;
      char buf[65536];
      std::string got;
      while (got.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(delayMs.load()));
      std::string reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
      ::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  uint16_t port() const { return acceptor_.port(); }
  int connections() const { return connections_.load(); }
  std::atomic<int> delayMs{0};

 private:
  std::atomic<int> connections_{0};
  LoopbackAcceptor acceptor_{256};
};

TEST_F(HostileClients, StreamsResetInTheSameReadOpenNoTargetConnection) {
  CountingBackend counting;
  setUp();
  h->store.targetGroup(kTg, counting.port(), {{"127.0.0.1"}}, {{"enabled", false}});
  start();
  int fd = connectTo(port);
  std::string out(proxy::kHttp2Preface);
  out += frame(4, 0, 0, "");
  for (uint32_t id = 1; id < 2 * 200; id += 2) {  // about 14 KB: one read
    std::string head = requestPseudoHeaders(kHost);
    out += frame(1, 0x5, id, head);
    out += frame(3, 0, id, std::string("\x00\x00\x00\x08", 4));  // RST_STREAM CANCEL
  }
  out += frame(6, 0, 0, std::string(8, 'p'));
  ASSERT_EQ(::send(fd, out.data(), out.size(), MSG_NOSIGNAL), static_cast<ssize_t>(out.size()));
  awaitPingAckOrClose(fd);
  ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(counting.connections(), 0);
  // A stream that is not reset still gets its answer.
  H2Client c(port);
  c.get(kHost, "/public");
  EXPECT_EQ(c.status_, 200);
  EXPECT_EQ(counting.connections(), 1);
}

TEST_F(HostileClients, ConnectionsToATargetAreBounded) {
  CountingBackend slow;
  slow.delayMs = 1500;
  setUp(configWith([](auto& d) { d.maxConnectionsPerTarget = 2; }), 1);
  h->store.targetGroup(kTg, slow.port(), {{"127.0.0.1"}}, {{"enabled", false}});
  start();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<Client>(port));
    clients.back()->send("GET /public HTTP/1.1\r\nHost: " + kHost + "\r\n\r\n");
  }
  std::map<int, int> statuses;
  for (auto& c : clients) ++statuses[c->read().status];
  EXPECT_EQ(statuses[200], 2);
  EXPECT_EQ(statuses[503], 2);
  EXPECT_EQ(slow.connections(), 2);
  EXPECT_EQ(metric("trellis_proxy_target_connection_limit_total"), "2");
}

TEST_F(HostileClients, APostThatMayHaveReachedTheTargetIsNotSentAgain) {
  // Both targets read the request and close without a word, as a target dying after acting on it would.
  RawBackend first(""), second("");
  setUp();
  h->store.targetGroup(kTg, first.port(), {{"127.0.0.1", first.port()}, {"127.0.0.1", second.port()}},
                       {{"enabled", false}});
  start();
  Client c(port);
  ASSERT_TRUE(c.send("POST /orders HTTP/1.1\r\nHost: " + kHost + "\r\ncontent-length: 2\r\n\r\nhi"));
  Response r = c.read();
  EXPECT_EQ(r.status, 502);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int reached = (first.received().empty() ? 0 : 1) + (second.received().empty() ? 0 : 1);
  EXPECT_EQ(reached, 1) << "a POST was sent twice";
  // A GET is idempotent: it goes to the other target.
  Client g(port);
  EXPECT_EQ(g.get(kHost, "/public").status, 502);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_NE(first.received().find("GET /public"), std::string::npos);
  EXPECT_NE(second.received().find("GET /public"), std::string::npos);
}

}  // namespace
}  // namespace trellis::testing
