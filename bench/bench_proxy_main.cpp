// trellis_bench_proxy: runs the data plane on one snapshot for benchmarks.
// usage: trellis_bench_proxy RECORDS.json WORKERS [CONFIG.yaml [DATA_DIR]]
//   RECORDS.json: [{"kind": "service", "id": "svc-…", "value": {…store document…}}, …]
//   CONFIG.yaml: a trellisd config (docs/configuration.md); its VPCs decide which clients get in.
//   DATA_DIR: where the CA for HTTPS listeners lives (tls/ca.pem, for clients to trust); default /tmp.
#include <csignal>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "compile/compiler.h"
#include "model/config.h"
#include "proxy/data_plane.h"

int main(int argc, char** argv) {
  using namespace trellis;
  if (argc < 3) {
    std::cerr << "usage: trellis_bench_proxy RECORDS.json WORKERS [CONFIG.yaml [DATA_DIR]]\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  nlohmann::json records = nlohmann::json::parse(in);
  store::StoreContents contents;
  contents.revision = 1;
  for (const auto& r : records) contents.records.push_back({r["kind"], r["id"], r["value"].dump(), 1, 1});
  model::Config config = argc > 3 ? model::loadConfig(argv[3]) : model::Config{};
  snapshot::SnapshotHolder holder;
  holder.publish(compile::compileSnapshot(contents, config));
  // Blocked before any thread starts, so only sigwait below sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  proxy::DataPlane dataPlane({"127.0.0.1", std::atoi(argv[2]), argc > 4 ? argv[4] : "/tmp", 1000}, holder);
  dataPlane.start();
  int sig = 0;
  sigwait(&set, &sig);
  dataPlane.stop();
  return 0;
}
