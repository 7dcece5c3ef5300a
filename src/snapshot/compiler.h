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

namespace trellis::snapshot {

// Hands out the same HealthCell for the same (target group, target, port) across rebuilds, so health
// survives snapshot swaps. Cells of targets no snapshot holds any more are dropped.
class HealthCells {
 public:
  std::shared_ptr<HealthCell> cell(const std::string& targetGroupId, const std::string& targetId, uint16_t port);

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<HealthCell>> cells_;
  size_t sweepAt_ = 1024;
};

// Compiles one revision after another, reusing what it compiled from records that have not changed
// since (same kind, id and modRevision): a change to one rule re-parses one rule, not 10,000 services.
// A service's listeners and rules, and a target group's targets, are immutable SharedVectors that the
// next snapshot shares unless one of their records (or a target group an action names) changed; the
// rest of each snapshot (maps, services, copies of target groups) is assembled fresh. The result routes
// exactly as compileSnapshot of the same contents and config would (test/snapshot). One build at a time.
class SnapshotCompiler {
 public:
  // `cells` may be null (fresh cells: every target starts INITIAL); it must outlive the compiler.
  explicit SnapshotCompiler(HealthCells* cells = nullptr);
  ~SnapshotCompiler();
  SnapshotCompiler(const SnapshotCompiler&) = delete;
  SnapshotCompiler& operator=(const SnapshotCompiler&) = delete;

  std::shared_ptr<const Snapshot> compile(const store::StoreContents& contents, const model::Config& config);

 private:
  struct Cache;
  HealthCells* cells_;
  std::unique_ptr<Cache> cache_;
};

// A from-scratch compile. `cells` may be null (fresh cells: every target starts INITIAL).
std::shared_ptr<const Snapshot> compileSnapshot(const store::StoreContents& contents, const model::Config& config,
                                                HealthCells* cells = nullptr);

// Parses "200", "200-299", "200,202" into inclusive ranges; empty result when malformed.
std::vector<std::pair<int, int>> parseHttpCodeMatcher(std::string_view text);

// Fills a SocketAddress from an IP literal and port; false when `ip` is not an IP literal.
bool makeSocketAddress(const std::string& ip, uint16_t port, SocketAddress& out);

}  // namespace trellis::snapshot
