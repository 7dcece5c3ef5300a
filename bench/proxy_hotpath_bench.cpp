// Hot-path micro-benchmarks: HTTP/1 parsing (requests and responses), routing and weighted selection,
// snapshot builds, and one whole proxied request over loopback sockets (data plane + a tiny origin).
// Release build: cmake --build build/bench-release --target bench_proxy_hotpath
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "compile/compiler.h"
#include "proxy/data_plane.h"
#include "proxy/health.h"
#include "proxy/http/http1_codec.h"
#include "proxy/router.h"
#include "snapshot/source.h"

namespace {

using namespace trellis;

constexpr const char* kVpc = "vpc-0000000000000beef";

// `services` services in one service network associated with kVpc; each has a 25/75 default action
// and five rules that do not match kRequest, so routing walks them all. Target groups hold 127.0.0.1
// and, unless `oneTarget`, 127.0.0.2.
store::StoreContents makeStore(int services, int port = 80, int originPort = 80, bool oneTarget = false) {
  store::StoreContents c;
  c.revision = 1;
  auto add = [&](std::string kind, std::string id, std::string doc) { c.records.push_back({kind, id, doc, 1, 1}); };
  add("servicenetwork", "sn-0", R"({"id":"sn-0","arn":"arn:sn/0"})");
  add("servicenetworkvpcassociation", "snva-0", R"({"id":"snva-0","vpcId":")" + std::string(kVpc) +
                                                    R"(","serviceNetworkId":"sn-0","status":"ACTIVE"})");
  std::string p = std::to_string(port), origin = std::to_string(originPort);
  for (int i = 0; i < services; ++i) {
    std::string n = std::to_string(i);
    add("service", "svc-" + n,
        R"({"id":"svc-)" + n + R"(","arn":"arn:svc/)" + n + R"(","dnsEntry":{"domainName":"s)" + n + R"(.example"}})");
    add("servicenetworkserviceassociation", "snsa-" + n,
        R"({"id":"snsa-)" + n + R"(","serviceId":"svc-)" + n + R"(","serviceNetworkId":"sn-0","status":"ACTIVE"})");
    add("targetgroup", "tg-" + n,
        R"({"id":"tg-)" + n + R"(","config":{"port":)" + origin +
            R"(,"healthCheck":{"enabled":false}},"targets":[{"id":"127.0.0.1"})" +
            (oneTarget ? "" : R"(,{"id":"127.0.0.2"})") + "]}");
    add("listener", "listener-" + n,
        R"({"id":"listener-)" + n + R"(","serviceId":"svc-)" + n + R"(","port":)" + p +
            R"(,"protocol":"HTTP","defaultAction":{"forward":{"targetGroups":[{"targetGroupIdentifier":"tg-)" + n +
            R"(","weight":25},{"targetGroupIdentifier":"tg-0","weight":75}]}}})");
    for (int r = 1; r <= 5; ++r) {
      add("rule", "rule-" + n + "-" + std::to_string(r),
          R"({"id":"rule-)" + n + "-" + std::to_string(r) + R"(","listenerId":"listener-)" + n +
              R"(","priority":)" + std::to_string(r) +
              R"(,"match":{"httpMatch":{"pathMatch":{"match":{"prefix":"/api/v)" + std::to_string(r) +
              R"("}},"headerMatches":[{"name":"x-env","match":{"exact":"prod"}}]}},"action":{"fixedResponse":{"statusCode":404}}})");
    }
  }
  return c;
}

model::Config makeConfig() {
  model::Config config;
  config.vpcs.push_back({kVpc, {"127.0.0.0/8"}});
  return config;
}

class RequestSink : public proxy::Http1RequestHandler {
 public:
  void onRequestHead(proxy::RequestHead& h) override { head = std::move(h); }
  void onBody(std::string_view) override {}
  void onTrailers(proxy::Headers&) override {}
  void onComplete() override {}
  proxy::RequestHead head;
};

class ResponseSink : public proxy::Http1ResponseHandler {
 public:
  void onResponseHead(proxy::ResponseHead& h) override { head = std::move(h); }
  void onBody(std::string_view data) override { benchmark::DoNotOptimize(data.data()); }
  void onTrailers(proxy::Headers&) override {}
  void onComplete() override {}
  proxy::ResponseHead head;
};

const std::string kRequest =
    "GET /api/v9/items?id=7 HTTP/1.1\r\nHost: s7.example\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
    "x-env: staging\r\nx-amzn-requestid: 0123\r\n\r\n";

// What a browser sends: a dozen headers, some long.
const std::string kBrowserRequest =
    "GET /catalog/items/12345?view=full&lang=en HTTP/1.1\r\nHost: s7.example\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n"
    "Referer: https://s7.example/catalog\r\nCookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: same-origin\r\nx-env: prod\r\n\r\n";

// nginx's answer in bench/run.sh.
const std::string kResponse =
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 04:17:54 GMT\r\n"
    "Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-B: a\r\n\r\nok";

void BM_ParseRequest(benchmark::State& state, const std::string& request) {
  RequestSink sink;
  proxy::Http1RequestParser parser(sink);
  for (auto _ : state) {
    size_t consumed;
    parser.parse(request.data(), request.size(), consumed);
    parser.resume();
    benchmark::DoNotOptimize(sink.head.host);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * request.size()));
}
BENCHMARK_CAPTURE(BM_ParseRequest, small, kRequest);
BENCHMARK_CAPTURE(BM_ParseRequest, browser, kBrowserRequest);

void BM_ParseResponse(benchmark::State& state) {
  ResponseSink sink;
  proxy::Http1ResponseParser parser(sink);
  for (auto _ : state) {
    size_t consumed;
    parser.parse(kResponse.data(), kResponse.size(), consumed);
    parser.resume();
    benchmark::DoNotOptimize(sink.head.status);
  }
}
BENCHMARK(BM_ParseResponse);

void BM_RouteAndPick(benchmark::State& state) {
  auto snap = compile::compileSnapshot(makeStore(static_cast<int>(state.range(0))), makeConfig());
  sockaddr_in client{};
  client.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &client.sin_addr);
  const snapshot::Vpc* vpc = snap->sourceVpc(reinterpret_cast<const sockaddr*>(&client));
  RequestSink sink;
  proxy::Http1RequestParser parser(sink);
  size_t consumed;
  parser.parse(kRequest.data(), kRequest.size(), consumed);
  proxy::RouterState router;
  for (auto _ : state) {
    proxy::RouteResult r = proxy::route(*snap, vpc, 80, sink.head);
    if (!r.action) {
      state.SkipWithError("no route");
      break;
    }
    const auto* weighted = router.pickTargetGroup(*r.action);
    benchmark::DoNotOptimize(router.pickTarget(*weighted->group));
  }
}
BENCHMARK(BM_RouteAndPick)->Arg(10)->Arg(10000);

void BM_CompileSnapshot(benchmark::State& state) {
  store::StoreContents contents = makeStore(static_cast<int>(state.range(0)));
  model::Config config = makeConfig();
  for (auto _ : state) benchmark::DoNotOptimize(compile::compileSnapshot(contents, config));
}
BENCHMARK(BM_CompileSnapshot)->Arg(100)->Arg(10000)->Unit(benchmark::kMillisecond);

// What one unrelated change costs the health checker, which trellisd hands every new snapshot (off the
// request path, on the data plane's control thread).
void BM_HealthUpdateAfterOneChange(benchmark::State& state) {
  store::StoreContents contents = makeStore(static_cast<int>(state.range(0)));
  compile::SnapshotCompiler compiler;
  auto snap = compiler.compile(contents, makeConfig());
  proxy::HealthChecker health;  // not started: no probes, only the bookkeeping
  health.update(snap);
  store::StoreChanges change;
  change.revision = contents.revision;
  change.records.push_back(*std::find_if(contents.records.begin(), contents.records.end(),
                                         [](const store::Record& r) { return r.kind == "rule"; }));
  for (auto _ : state) {
    state.PauseTiming();
    change.records[0].modRevision = ++change.revision;
    snap = compiler.update(change);
    state.ResumeTiming();
    health.update(snap);
  }
}
BENCHMARK(BM_HealthUpdateAfterOneChange)->Arg(100)->Arg(10000)->Unit(benchmark::kMillisecond);

// --- one proxied request end to end: client → data plane (1 worker) → origin, over loopback ---

int listenLoopback(uint16_t& port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return -1;
  }
  port = ntohs(a.sin_port);
  return fd;
}

// Answers every request head with a 2-byte body, one thread per connection (the proxy pools them).
class Origin {
 public:
  Origin() : fd_(listenLoopback(port_)) {
    accepter_ = std::thread([this] {
      while (true) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        connections_.emplace_back([c] {
          static const std::string kAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
          std::string pending;
          char buf[4096];
          while (true) {
            ssize_t n = read(c, buf, sizeof buf);
            if (n <= 0) break;
            pending.append(buf, static_cast<size_t>(n));
            for (size_t end; (end = pending.find("\r\n\r\n")) != std::string::npos;) {
              pending.erase(0, end + 4);
              if (write(c, kAnswer.data(), kAnswer.size()) < 0) break;
            }
          }
          close(c);
        });
      }
    });
  }
  ~Origin() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    accepter_.join();
    for (auto& t : connections_) t.join();
  }
  uint16_t port() const { return port_; }

 private:
  uint16_t port_ = 0;
  int fd_;
  std::thread accepter_;
  std::vector<std::thread> connections_;
};

void BM_ProxyRoundTrip(benchmark::State& state) {
  Origin origin;
  uint16_t proxyPort = 0;
  close(listenLoopback(proxyPort));  // a free port for the listener (the data plane binds it itself)
  snapshot::SnapshotHolder holder;
  holder.publish(compile::compileSnapshot(makeStore(1, proxyPort, origin.port(), true), makeConfig()));
  proxy::DataPlane dataPlane({"127.0.0.1", 1, "/tmp", 1000}, holder);
  dataPlane.start();

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(proxyPort);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    state.SkipWithError("cannot connect to the data plane");
    return;
  }
  const std::string request = "GET / HTTP/1.1\r\nHost: s0.example\r\n\r\n";
  char buf[4096];
  for (auto _ : state) {
    if (write(fd, request.data(), request.size()) < 0) break;
    std::string_view seen;
    size_t got = 0;
    // The proxy answers with a head and "ok": done when the body has arrived.
    while (seen.size() < 4 || seen.substr(seen.size() - 2) != "ok") {
      ssize_t n = read(fd, buf + got, sizeof buf - got);
      if (n <= 0) {
        state.SkipWithError("the data plane closed the connection");
        break;
      }
      got += static_cast<size_t>(n);
      seen = std::string_view(buf, got);
    }
    if (seen.substr(0, 12) != "HTTP/1.1 200") {
      state.SkipWithError("not a 200");
      break;
    }
  }
  close(fd);
  dataPlane.stop();
}
BENCHMARK(BM_ProxyRoundTrip)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
