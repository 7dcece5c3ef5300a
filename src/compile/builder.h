// Building the snapshots the data plane reads: the store's side of the snapshot boundary. The readers
// (src/proxy, src/dns) see only snapshot/source.h.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "compile/compiler.h"
#include "model/config.h"
#include "snapshot/source.h"
#include "store/store.h"

namespace trellis::compile {

// Rebuilds the snapshot when told a revision committed. Notifications are coalesced: a burst of
// commits while a build runs produces one more build, of the newest state. Builds run on the
// builder's own thread; a build that throws keeps the last good snapshot. Each build reads only what
// changed since the last one (Store::changesSince) and hands it to the compiler; the whole store is
// read only at the start, after a config change, and when the store no longer has that history.
class SnapshotBuilder : public snapshot::SnapshotSource {
 public:
  // `store` must outlive the builder.
  SnapshotBuilder(store::Store& store, model::Config config);
  ~SnapshotBuilder() override;
  SnapshotBuilder(const SnapshotBuilder&) = delete;
  SnapshotBuilder& operator=(const SnapshotBuilder&) = delete;

  // Builds and publishes the first snapshot synchronously, then starts the builder thread.
  void start();
  void stop();
  // Cheap, from any thread (e.g. Store::watch): revision `revision` is durable.
  void notifyCommitted(int64_t revision);
  // A reloaded config (identities, VPCs, instances...): the next build uses it; one is triggered now.
  void setConfig(model::Config config);
  // Blocks until a snapshot at or beyond `revision` is published; false on timeout.
  bool waitForRevision(int64_t revision, std::chrono::milliseconds timeout);

  snapshot::SnapshotPtr current() const override { return holder_.current(); }
  uint64_t generation() const override { return holder_.generation(); }
  void subscribe(std::function<void()> fn) override { holder_.subscribe(std::move(fn)); }

  // Prometheus text: trellis_snapshot_propagation_seconds (commit notification → published) and
  // trellis_snapshot_revision, trellis_snapshot_published_timestamp_seconds.
  std::string renderMetrics() const;

 private:
  void run();
  void buildOnce();
  snapshot::SnapshotPtr compileNext(const model::Config& config, bool configChanged);

  store::Store& store_;
  int64_t compiledRevision_ = -1;  // what compiler_ holds; -1: nothing yet
  model::Config config_;
  bool configChanged_ = false;
  HealthCells cells_;
  SnapshotCompiler compiler_{&cells_};  // one build at a time: start(), then the builder thread
  snapshot::SnapshotHolder holder_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable published_;
  bool stopping_ = false;
  int64_t wantedRevision_ = 0;
  int64_t publishedRevision_ = -1;
  std::chrono::system_clock::time_point publishedAt_{};
  std::chrono::steady_clock::time_point oldestPending_{};
  bool pending_ = false;
  std::thread thread_;

  static constexpr double kBuckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                        0.01,   0.025,   0.05,   0.1,   0.25,   1};
  uint64_t bucketCounts_[std::size(kBuckets)] = {};
  uint64_t propagationCount_ = 0;
  double propagationSum_ = 0;
  uint64_t buildFailures_ = 0;
};

}  // namespace trellis::compile
