// The Store on an etcd v3 cluster (etcd's gRPC API), for several trellisd sharing one control plane.
// Layout, Txn mapping, limits, watch and compaction: docs/store-schema.md, "etcd layout".
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "store/store.h"

namespace trellis::store {

struct EtcdOptions {
  std::vector<std::string> endpoints;  // HOST:PORT of the members; calls go to any that answers
  std::string prefix = "/trellis/";    // every key lives under it, so installations can share one etcd
  // TLS when caFile is set (PEM files); certFile and keyFile add a client certificate.
  std::string caFile;
  std::string certFile;
  std::string keyFile;
  // Every unary call's deadline: past it, a call throws Unavailable (quorum lost, no member reachable).
  std::chrono::milliseconds requestTimeout{2000};
  // How many revisions changesSince answers from, and etcd's history keeps (older ones are compacted).
  int64_t keptRevisions = 10000;
  // How often the instance holding the compaction lock compacts; 0: this instance never compacts.
  std::chrono::milliseconds compactionInterval{60000};
};

// Connects and reads the current revision (throws Unavailable when no member answers in time), then
// starts the watch on the prefix and the compaction thread.
std::unique_ptr<Store> openEtcdStore(const EtcdOptions& options);

}  // namespace trellis::store
