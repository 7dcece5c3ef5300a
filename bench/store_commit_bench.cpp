// Commit latency and throughput of the store backends, below the API: SQLite in a temporary directory, and etcd
// as a 3-member cluster on loopback started here (test/store/etcd_cluster.h). Each commit is shaped like an API
// create: a must-not-exist guard on a name index, and three puts (the ~1 KB document, the index, an idempotency
// record). Prints p50/p99 for one writer and for several concurrent writers, and commits per second.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store/etcd_cluster.h"
#include "store/etcd_store.h"
#include "store/store.h"

namespace {

using Clock = std::chrono::steady_clock;
using trellis::store::Condition;
using trellis::store::Op;
using trellis::store::Store;

struct Result {
  double p50Ms, p99Ms, perSecond;
};

Result run(Store& store, int writers, int perWriter, const std::string& tag) {
  std::string document(1000, 'x');
  std::vector<std::vector<double>> latencies(static_cast<size_t>(writers));
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < perWriter; ++i) {
        std::string id = tag + "-" + std::to_string(w) + "-" + std::to_string(i);
        auto began = Clock::now();
        auto revision = store.commit({{"index.name.service", id, Condition::kMustNotExist}},
                                     {Op::put("service", id, document), Op::put("index.name.service", id, id),
                                      Op::put("clienttoken", "CreateService/" + id, "{}")});
        if (!revision) std::fprintf(stderr, "unexpected conflict on %s\n", id.c_str());
        latencies[static_cast<size_t>(w)].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - began).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto at = [&](double q) {
    return all[std::min(all.size() - 1, static_cast<size_t>(q * static_cast<double>(all.size())))];
  };
  return {at(0.50), at(0.99), static_cast<double>(all.size()) / seconds};
}

void report(const char* backend, Store& store) {
  run(store, 1, 50, "warmup");
  for (int writers : {1, 16}) {
    auto result = run(store, writers, writers == 1 ? 500 : 100, "w" + std::to_string(writers));
    std::printf("| %s | %d | %.2f | %.2f | %.0f |\n", backend, writers, result.p50Ms, result.p99Ms, result.perSecond);
  }
}

}  // namespace

int main() {
  std::printf("| backend | concurrent writers | p50 ms | p99 ms | commits/s |\n|---|---|---|---|---|\n");
  {
    auto dir = std::filesystem::temp_directory_path() / ("trellis-bench-store-" + std::to_string(getpid()));
    auto sqlite = trellis::store::openSqliteStore(dir.string());
    report("SQLite", *sqlite);
    sqlite.reset();
    std::filesystem::remove_all(dir);
  }
  trellis::test::EtcdCluster cluster;
  trellis::store::EtcdOptions options;
  options.endpoints = cluster.endpoints();
  auto etcd = trellis::store::openEtcdStore(options);
  report("etcd, 3 members", *etcd);
  return 0;
}
