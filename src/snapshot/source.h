// Publishing snapshots to the data plane. Readers poll generation() (one relaxed atomic load) and
// call current() only when it moved, so the request path never takes a lock.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "snapshot/snapshot.h"

namespace trellis::snapshot {

// Lets go of `snapshot`. When this was its last reference, it is freed on a background thread instead:
// freeing a snapshot of 10,000 services takes tens of milliseconds, which must not stall an event loop.
// For the data plane's workers and requests, which may hold the last reference to a replaced snapshot.
void releaseSnapshot(SnapshotPtr&& snapshot);

class SnapshotSource {
 public:
  virtual ~SnapshotSource() = default;
  // The newest published snapshot; never null (an empty one before the first build).
  virtual SnapshotPtr current() const = 0;
  // Advances on every publish.
  virtual uint64_t generation() const = 0;
  // `fn` runs (on the publishing thread) after every publish. Register before traffic starts.
  virtual void subscribe(std::function<void()> fn) = 0;
};

// A SnapshotSource that publishes whatever it is given. Tests use it directly; compile::SnapshotBuilder wraps it.
class SnapshotHolder : public SnapshotSource {
 public:
  SnapshotHolder();
  // Returns the snapshot it replaced, so the caller picks where its destruction (large at 10,000
  // services) runs: the builder does it after reporting the new one.
  SnapshotPtr publish(SnapshotPtr snapshot);

  SnapshotPtr current() const override { return current_.load(std::memory_order_acquire); }
  uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }
  void subscribe(std::function<void()> fn) override;

 private:
  std::atomic<SnapshotPtr> current_;
  std::atomic<uint64_t> generation_{0};
  std::mutex subscribersMutex_;
  std::vector<std::function<void()>> subscribers_;
};

}  // namespace trellis::snapshot
