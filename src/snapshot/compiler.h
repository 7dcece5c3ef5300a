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

// `cells` may be null (fresh cells: every target starts INITIAL).
std::shared_ptr<const Snapshot> compileSnapshot(const store::StoreContents& contents, const model::Config& config,
                                                HealthCells* cells = nullptr);

// Parses "200", "200-299", "200,202" into inclusive ranges; empty result when malformed.
std::vector<std::pair<int, int>> parseHttpCodeMatcher(std::string_view text);

// Fills a SocketAddress from an IP literal and port; false when `ip` is not an IP literal.
bool makeSocketAddress(const std::string& ip, uint16_t port, SocketAddress& out);

}  // namespace trellis::snapshot
