// Hot-path micro-benchmarks: HTTP/1 request parsing, rule matching, weighted selection, snapshot build.
#include <benchmark/benchmark.h>

#include <string>

#include "proxy/http1_codec.h"
#include "proxy/router.h"
#include "snapshot/compiler.h"

namespace {

using namespace trellis;

store::StoreContents makeStore(int services) {
  store::StoreContents c;
  c.revision = 1;
  auto add = [&](std::string kind, std::string id, std::string doc) { c.records.push_back({kind, id, doc, 1, 1}); };
  for (int i = 0; i < services; ++i) {
    std::string n = std::to_string(i);
    add("service", "svc-" + n,
        R"({"id":"svc-)" + n + R"(","arn":"arn:svc/)" + n + R"(","dnsEntry":{"domainName":"s)" + n + R"(.example"}})");
    add("targetgroup", "tg-" + n,
        R"({"id":"tg-)" + n + R"(","config":{"port":80},"targets":[{"id":"10.0.0.1"},{"id":"10.0.0.2"}]})");
    add("listener", "listener-" + n,
        R"({"id":"listener-)" + n + R"(","serviceId":"svc-)" + n +
            R"(","port":80,"protocol":"HTTP","defaultAction":{"forward":{"targetGroups":[{"targetGroupIdentifier":"tg-)" +
            n + R"(","weight":25},{"targetGroupIdentifier":"tg-0","weight":75}]}}})");
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

class Sink : public proxy::Http1RequestHandler {
 public:
  void onRequestHead(proxy::RequestHead& h) override { head = std::move(h); }
  void onBody(std::string_view) override {}
  void onTrailers(proxy::Headers&) override {}
  void onComplete() override {}
  proxy::RequestHead head;
};

const std::string kRequest =
    "GET /api/v9/items?id=7 HTTP/1.1\r\nHost: s7.example\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
    "x-env: staging\r\nx-amzn-requestid: 0123\r\n\r\n";

void BM_ParseRequest(benchmark::State& state) {
  Sink sink;
  proxy::Http1RequestParser parser(sink);
  for (auto _ : state) {
    size_t consumed;
    parser.parse(kRequest.data(), kRequest.size(), consumed);
    parser.resume();
    benchmark::DoNotOptimize(sink.head.host);
  }
}
BENCHMARK(BM_ParseRequest);

void BM_RouteAndPick(benchmark::State& state) {
  auto snap = snapshot::compileSnapshot(makeStore(static_cast<int>(state.range(0))), model::Config{});
  Sink sink;
  proxy::Http1RequestParser parser(sink);
  size_t consumed;
  parser.parse(kRequest.data(), kRequest.size(), consumed);
  proxy::RouterState router;
  for (auto _ : state) {
    proxy::RouteResult r = proxy::route(*snap, 80, sink.head);
    const auto* weighted = router.pickTargetGroup(*r.action);
    benchmark::DoNotOptimize(router.pickTarget(*weighted->group));
  }
}
BENCHMARK(BM_RouteAndPick)->Arg(10)->Arg(10000);

void BM_CompileSnapshot(benchmark::State& state) {
  store::StoreContents contents = makeStore(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(snapshot::compileSnapshot(contents, model::Config{}));
}
BENCHMARK(BM_CompileSnapshot)->Arg(100)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
