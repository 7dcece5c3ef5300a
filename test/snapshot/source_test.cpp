#include "snapshot/source.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

namespace trellis::snapshot {
namespace {

// A replaced snapshot whose last reference an event loop drops is freed elsewhere; one still in use is not freed.
TEST(ReleaseSnapshot, LastReferenceIsFreedOnAnotherThread) {
  std::mutex mutex;
  std::condition_variable freed;
  std::optional<std::thread::id> freedOn;
  auto tracked = [&] {
    return SnapshotPtr(new Snapshot, [&](const Snapshot* s) {
      delete s;
      std::lock_guard lock(mutex);
      freedOn = std::this_thread::get_id();
      freed.notify_all();
    });
  };
  SnapshotPtr shared = tracked();
  SnapshotPtr other = shared;
  releaseSnapshot(std::move(shared));
  EXPECT_EQ(shared, nullptr);
  EXPECT_FALSE(freedOn.has_value());  // `other` still holds it
  releaseSnapshot(std::move(other));
  std::unique_lock lock(mutex);
  ASSERT_TRUE(freed.wait_for(lock, std::chrono::seconds(5), [&] { return freedOn.has_value(); }));
  EXPECT_NE(*freedOn, std::this_thread::get_id());
}

}  // namespace
}  // namespace trellis::snapshot
