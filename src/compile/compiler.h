// Compiles the store's records at one revision (docs/store-schema.md) plus the trellisd config into a
// Snapshot. Pure: no I/O, no clocks. Records that do not parse are skipped with a warning (the API
// validated them on the way in, so this only happens with a corrupted store), never fatal.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "model/config.h"
#include "snapshot/snapshot.h"
#include "store/store.h"

namespace trellis::compile {

// Hands out the same HealthCell for the same (target group, target, port) across rebuilds, so health
// survives snapshot swaps. Cells of targets no snapshot holds any more are dropped.
class HealthCells {
 public:
  std::shared_ptr<snapshot::HealthCell> cell(const std::string& targetGroupId, const std::string& targetId,
                                             uint16_t port);

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<snapshot::HealthCell>> cells_;
  size_t sweepAt_ = 1024;
};

// Compiles the store's state once, then brings it forward change set by change set (Store::changesSince),
// doing work in proportion to the change: a changed record is compiled on its own, then reverse indexes
// say what it feeds (a rule its service; a target group the services routing to it; a network the
// services associated with it), and only those are rebuilt. The new snapshot starts as a copy of the
// previous one's sharded maps (ShardedMap) and replaces just those entries. Untouched services, target
// groups and networks, and a service's listeners while none of their inputs changed, are the very same
// objects in both. The result routes exactly as compileSnapshot of the same contents and config would
// (test/compile). One build at a time.
class SnapshotCompiler {
 public:
  // `cells` may be null (fresh cells: every target starts INITIAL); it must outlive the compiler.
  explicit SnapshotCompiler(HealthCells* cells = nullptr);
  ~SnapshotCompiler();
  SnapshotCompiler(const SnapshotCompiler&) = delete;
  SnapshotCompiler& operator=(const SnapshotCompiler&) = delete;

  // Everything, from scratch: at start, and whenever the config changes.
  std::shared_ptr<const snapshot::Snapshot> compile(const store::StoreContents& contents,
                                                    const model::Config& config);
  // The last compiled state plus `changes` (which must start at its revision), with the same config.
  std::shared_ptr<const snapshot::Snapshot> update(const store::StoreChanges& changes);

 private:
  struct Cache;
  struct Dirty;
  void noteChange(const std::string& kind, const std::string& id, const store::Record* record, Dirty& dirty);
  std::shared_ptr<const snapshot::Snapshot> build(int64_t revision, Dirty& dirty);
  std::shared_ptr<const snapshot::Service> buildService(const snapshot::Snapshot& snap, const std::string& id);
  void countListenerPorts(const snapshot::Service& service, int delta);
  void compileVpcs(snapshot::Snapshot& snap) const;
  void compileCallers(snapshot::Snapshot& snap) const;

  HealthCells* cells_;
  std::unique_ptr<Cache> cache_;
};

// A from-scratch compile. `cells` may be null (fresh cells: every target starts INITIAL).
std::shared_ptr<const snapshot::Snapshot> compileSnapshot(const store::StoreContents& contents,
                                                          const model::Config& config, HealthCells* cells = nullptr);

// The record kinds the compiler reads (docs/store-schema.md): what a proxy's replica needs of the store. The
// rest (indexes, uniqueness guards, idempotency records, counts) serve only the API.
bool isCompiledKind(std::string_view kind);

// Parses "200", "200-299", "200,202" into inclusive ranges; empty result when malformed.
std::vector<std::pair<int, int>> parseHttpCodeMatcher(std::string_view text);

// Fills a SocketAddress from an IP literal and port; false when `ip` is not an IP literal.
bool makeSocketAddress(const std::string& ip, uint16_t port, snapshot::SocketAddress& out);

// A number no other compiled action or target group of this process has: what workers key their selection
// state by, so it outlives snapshot swaps for what did not change and is never mistaken for something new.
uint64_t nextSerial();

}  // namespace trellis::compile
