#include "snapshot/source.h"

#include <condition_variable>
#include <thread>
#include <utility>

#include "common/thread_name.h"

namespace trellis::snapshot {

void releaseSnapshot(SnapshotPtr&& snapshot) {
  // use_count() is exact enough here: only when it says 1 could this be the last reference, and a
  // snapshot another thread takes meanwhile is simply freed by that thread later.
  if (!snapshot || snapshot.use_count() > 1) {
    snapshot.reset();
    return;
  }
  // One detached thread for the process, started on first use; it only ever frees snapshots.
  struct Reaper {
    std::mutex mutex;
    std::condition_variable wake;
    std::vector<SnapshotPtr> queue;
    Reaper() {
      std::thread([this] {
        nameThisThread("snap-reaper");
        std::unique_lock lock(mutex);
        while (true) {
          wake.wait(lock, [this] { return !queue.empty(); });
          std::vector<SnapshotPtr> freeing;
          freeing.swap(queue);
          lock.unlock();
          freeing.clear();
          lock.lock();
        }
      }).detach();
    }
  };
  static Reaper* reaper = new Reaper;  // never destroyed: its thread outlives static destruction
  {
    std::lock_guard lock(reaper->mutex);
    reaper->queue.push_back(std::move(snapshot));
  }
  reaper->wake.notify_one();
}

SnapshotHolder::SnapshotHolder() : current_(std::make_shared<const Snapshot>()) {}

SnapshotPtr SnapshotHolder::publish(SnapshotPtr snapshot) {
  SnapshotPtr previous = current_.exchange(std::move(snapshot), std::memory_order_acq_rel);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  std::vector<std::function<void()>> subscribers;
  {
    std::lock_guard lock(subscribersMutex_);
    subscribers = subscribers_;
  }
  for (auto& fn : subscribers) fn();
  return previous;
}

void SnapshotHolder::subscribe(std::function<void()> fn) {
  std::lock_guard lock(subscribersMutex_);
  subscribers_.push_back(std::move(fn));
}

}  // namespace trellis::snapshot
