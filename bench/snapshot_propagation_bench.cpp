// Snapshot propagation at scale: a real SQLite store in a temp dir holding N services (each with a
// listener, a rule, a target group of 2 targets, associated to a service network that a VPC is
// associated to), then (a) one full read + compile and (b) commit of one weight change → the
// SnapshotBuilder has published it (what trellis_snapshot_propagation_seconds measures, plus the commit).
// Release build:
//   cmake -S . -B build/bench-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
//     -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
//   cmake --build build/bench-release --target bench_snapshot_propagation
//   build/bench-release/bench/bench_snapshot_propagation
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compile/builder.h"
#include "compile/compiler.h"
#include "store/store.h"

namespace {

using namespace trellis;
using nlohmann::json;

constexpr const char* kVpc = "vpc-0123456789abcdef0";
constexpr const char* kNetwork = "sn-0000000000000000a";

std::string arn(const std::string& type, const std::string& id) {
  return "arn:aws:vpc-lattice:us-east-1:111122223333:" + type + "/" + id;
}

std::string hex17(int i) {
  std::string n = std::to_string(i);
  return std::string(17 - n.size(), '0') + n;
}

json forward(const std::string& a, int weightA, const std::string& b, int weightB) {
  json groups = {{{"targetGroupIdentifier", a}, {"weight", weightA}},
                 {{"targetGroupIdentifier", b}, {"weight", weightB}}};
  return {{"forward", {{"targetGroups", groups}}}};
}

json ruleDoc(int i, int weight) {
  std::string n = hex17(i), svc = "svc-" + n, listener = "listener-" + n, rule = "rule-" + n;
  return {{"id", rule},
          {"name", "r" + n},
          {"arn", arn("service", svc + "/listener/" + listener + "/rule/" + rule)},
          {"priority", 10},
          {"match", {{"httpMatch", {{"pathMatch", {{"match", {{"prefix", "/api"}}}}}}}}},
          {"action", forward("tg-" + n, weight, "tg-" + hex17(0), 100 - weight)},
          {"isDefault", false},
          {"serviceId", svc},
          {"listenerId", listener},
          {"createdAt", "2024-01-01T00:00:00Z"},
          {"lastUpdatedAt", "2024-01-01T00:00:00Z"}};
}

// The records the API writes (docs/store-schema.md) for one service and everything hanging off it.
std::vector<store::Op> serviceOps(int i) {
  std::string n = hex17(i), svc = "svc-" + n, tg = "tg-" + n, listener = "listener-" + n;
  std::vector<store::Op> ops;
  auto put = [&](const char* kind, const std::string& id, const json& doc) {
    ops.push_back(store::Op::put(kind, id, doc.dump()));
  };
  put("service", svc,
      {{"id", svc}, {"name", "s" + n}, {"arn", arn("service", svc)}, {"authType", "NONE"},
       {"dnsEntry", {{"domainName", "s" + n + ".7d67968.vpc-lattice-svcs.us-east-1.on.aws"}, {"hostedZoneId", "Z0"}}},
       {"status", "ACTIVE"}, {"createdAt", "2024-01-01T00:00:00Z"}, {"lastUpdatedAt", "2024-01-01T00:00:00Z"}});
  put("targetgroup", tg,
      {{"id", tg}, {"name", "tg" + n}, {"arn", arn("targetgroup", tg)}, {"type", "IP"},
       {"config", {{"port", 8080}, {"protocol", "HTTP"}, {"protocolVersion", "HTTP1"}, {"vpcIdentifier", kVpc}}},
       {"status", "ACTIVE"},
       {"targets", {{{"id", "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1)}},
                    {{"id", "10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1)}}}},
       {"createdAt", "2024-01-01T00:00:00Z"}, {"lastUpdatedAt", "2024-01-01T00:00:00Z"}});
  put("listener", listener,
      {{"id", listener}, {"name", "l" + n}, {"arn", arn("service", svc + "/listener/" + listener)},
       {"protocol", "HTTP"}, {"port", 80}, {"serviceId", svc}, {"serviceArn", arn("service", svc)},
       {"defaultAction", {{"fixedResponse", {{"statusCode", 404}}}}}, {"createdAt", "2024-01-01T00:00:00Z"},
       {"lastUpdatedAt", "2024-01-01T00:00:00Z"}});
  put("rule", "rule-" + n, ruleDoc(i, 50));
  put("servicenetworkserviceassociation", "snsa-" + n,
      {{"id", "snsa-" + n}, {"arn", arn("servicenetworkserviceassociation", "snsa-" + n)}, {"status", "ACTIVE"},
       {"serviceId", svc}, {"serviceArn", arn("service", svc)}, {"serviceNetworkId", kNetwork},
       {"serviceNetworkArn", arn("servicenetwork", kNetwork)}, {"createdAt", "2024-01-01T00:00:00Z"}});
  return ops;
}

// One store per process and size: filling 10,000 services takes seconds.
struct Fixture {
  std::filesystem::path dir;
  std::unique_ptr<store::Store> store;
  model::Config config;

  explicit Fixture(int services) {
    dir = std::filesystem::temp_directory_path() / ("trellis-bench-snapshot-" + std::to_string(::getpid()) + "-" +
                                                   std::to_string(services));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    store = store::openSqliteStore(dir.string());
    config.vpcs.push_back({kVpc, {"10.0.0.0/8"}});
    std::vector<store::Op> ops;
    ops.push_back(store::Op::put("servicenetwork", kNetwork,
                                 json{{"id", kNetwork}, {"name", "bench"}, {"arn", arn("servicenetwork", kNetwork)},
                                      {"authType", "NONE"}}
                                     .dump()));
    ops.push_back(store::Op::put("servicenetworkvpcassociation", "snva-0000000000000000a",
                                 json{{"id", "snva-0000000000000000a"}, {"status", "ACTIVE"},
                                      {"serviceNetworkId", kNetwork}, {"vpcId", kVpc},
                                      {"securityGroupIds", json::array()}}
                                     .dump()));
    for (int i = 0; i < services; ++i) {
      auto more = serviceOps(i);
      ops.insert(ops.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
      if (ops.size() >= 5000 || i + 1 == services) {
        store->commit({}, ops);
        ops.clear();
      }
    }
  }
  ~Fixture() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
};

Fixture& fixture(int services) {
  static std::unique_ptr<Fixture> current;
  if (!current || current->store->list("service").size() != static_cast<size_t>(services)) {
    current.reset();
    current = std::make_unique<Fixture>(services);
  }
  return *current;
}

// (a) Everything a from-scratch build does: read the whole store, compile.
void BM_FullCompile(benchmark::State& state) {
  Fixture& f = fixture(static_cast<int>(state.range(0)));
  compile::HealthCells cells;
  for (auto _ : state) {
    auto snap = compile::compileSnapshot(f.store->readAll(), f.config, &cells);
    if (snap->services.size() != static_cast<size_t>(state.range(0))) state.SkipWithError("services missing");
  }
}
BENCHMARK(BM_FullCompile)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

// Its two halves: reading the store, and compiling what was read.
void BM_ReadAll(benchmark::State& state) {
  Fixture& f = fixture(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(f.store->readAll());
}
BENCHMARK(BM_ReadAll)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

// What the builder reads per change instead: the change feed after one commit.
void BM_ChangesSinceOneCommit(benchmark::State& state) {
  Fixture& f = fixture(static_cast<int>(state.range(0)));
  int64_t before = f.store->revision();
  f.store->commit({}, {store::Op::put("rule", "rule-" + hex17(1), ruleDoc(1, 42).dump())});
  for (auto _ : state) {
    auto changes = f.store->changesSince(before);
    if (changes.records.size() != 1) state.SkipWithError("expected one changed record");
  }
}
BENCHMARK(BM_ChangesSinceOneCommit)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_CompileOnly(benchmark::State& state) {
  Fixture& f = fixture(static_cast<int>(state.range(0)));
  store::StoreContents contents = f.store->readAll();
  compile::HealthCells cells;
  for (auto _ : state) benchmark::DoNotOptimize(compile::compileSnapshot(contents, f.config, &cells));
}
BENCHMARK(BM_CompileOnly)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

// What the builder does per change after the read: one rule differs from the previous compile.
void BM_IncrementalCompileOnly(benchmark::State& state) {
  Fixture& f = fixture(static_cast<int>(state.range(0)));
  store::StoreContents contents = f.store->readAll();
  compile::HealthCells cells;
  compile::SnapshotCompiler compiler(&cells);
  compiler.compile(contents, f.config);
  store::StoreChanges changes;
  changes.revision = contents.revision;
  changes.records.push_back(*std::find_if(contents.records.begin(), contents.records.end(),
                                          [](const store::Record& r) { return r.kind == "rule"; }));
  int step = 0;
  for (auto _ : state) {
    changes.records[0].value = ruleDoc(0, ++step % 100).dump();
    changes.records[0].modRevision = ++changes.revision;
    benchmark::DoNotOptimize(compiler.update(changes));
  }
}
BENCHMARK(BM_IncrementalCompileOnly)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

// (b) One rule's weights change: commit → the builder has published the revision.
void BM_PublishAfterWeightChange(benchmark::State& state) {
  int services = static_cast<int>(state.range(0));
  Fixture& f = fixture(services);
  compile::SnapshotBuilder builder(*f.store, f.config);
  builder.start();
  // The store outlives the builder, so the watch stays registered: it only forwards to the live one.
  static std::atomic<compile::SnapshotBuilder*> live{nullptr};
  static store::Store* watched = nullptr;
  live = &builder;
  if (watched != f.store.get()) {
    f.store->watch([](int64_t revision) {
      if (auto* b = live.load()) b->notifyCommitted(revision);
    });
    watched = f.store.get();
  }
  int step = 0;
  std::vector<double> seconds;
  for (auto _ : state) {
    ++step;
    int i = (step * 7919) % services;
    auto start = std::chrono::steady_clock::now();
    auto revision = f.store->commit({}, {store::Op::put("rule", "rule-" + hex17(i), ruleDoc(i, step % 100).dump())});
    if (!revision || !builder.waitForRevision(*revision, std::chrono::seconds(30))) {
      state.SkipWithError("not published");
      break;
    }
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    state.SetIterationTime(seconds.back());
  }
  // The aim is a p99: report it (and the p50) over this run's changes, in milliseconds.
  if (!seconds.empty()) {
    std::sort(seconds.begin(), seconds.end());
    state.counters["p50_ms"] = seconds[seconds.size() / 2] * 1e3;
    state.counters["p99_ms"] = seconds[std::min(seconds.size() - 1, seconds.size() * 99 / 100)] * 1e3;
  }
  live = nullptr;
  builder.stop();
}
BENCHMARK(BM_PublishAfterWeightChange)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseManualTime();

}  // namespace

BENCHMARK_MAIN();
