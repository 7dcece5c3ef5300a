#include "compile/builder.h"

#include <algorithm>
#include <iomanip>
#include <sstream>
#include <utility>

#include "common/log.h"
#include "common/thread_name.h"

namespace trellis::compile {

SnapshotBuilder::SnapshotBuilder(store::Store& store, model::Config config)
    : store_(store), config_(std::move(config)) {}

SnapshotBuilder::~SnapshotBuilder() { stop(); }

void SnapshotBuilder::start() {
  buildOnce();
  thread_ = std::thread([this] {
    nameThisThread("snap-builder");
    run();
  });
}

void SnapshotBuilder::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SnapshotBuilder::notifyCommitted(int64_t revision) {
  {
    std::lock_guard lock(mutex_);
    if (revision <= wantedRevision_ && revision <= publishedRevision_) return;
    wantedRevision_ = std::max(wantedRevision_, revision);
    if (!pending_) {
      pending_ = true;
      oldestPending_ = std::chrono::steady_clock::now();
    }
  }
  wake_.notify_one();
}

bool SnapshotBuilder::waitForRevision(int64_t revision, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return published_.wait_for(lock, timeout, [&] { return publishedRevision_ >= revision; });
}

void SnapshotBuilder::setConfig(model::Config config) {
  {
    std::lock_guard lock(mutex_);
    config_ = std::move(config);
    configChanged_ = true;
    pending_ = true;
  }
  wake_.notify_one();
}

void SnapshotBuilder::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || pending_; });
    if (stopping_) return;
    lock.unlock();
    buildOnce();
    lock.lock();
  }
}

void SnapshotBuilder::buildOnce() {
  std::chrono::steady_clock::time_point since;
  model::Config config;
  bool configChanged = false;
  {
    std::lock_guard lock(mutex_);
    since = oldestPending_;
    pending_ = false;  // commits arriving from here on trigger another build
    config = config_;  // a copy: setConfig may replace it while this build runs
    configChanged = std::exchange(configChanged_, false);
  }
  snapshot::SnapshotPtr snapshot;
  try {
    snapshot = compileNext(config, configChanged);
  } catch (const std::exception& e) {
    logError("snapshot: build failed, keeping revision ", current()->revision, ": ", e.what());
    std::lock_guard lock(mutex_);
    ++buildFailures_;
    return;
  }
  int64_t revision = snapshot->revision;
  // Workers still on the previous snapshot keep it alive; otherwise it is freed here, once waiters know.
  snapshot::SnapshotPtr previous = holder_.publish(std::move(snapshot));
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    publishedRevision_ = std::max(publishedRevision_, revision);
    publishedAt_ = std::chrono::system_clock::now();
    if (since != std::chrono::steady_clock::time_point{}) {
      double seconds = std::chrono::duration<double>(now - since).count();
      for (size_t i = 0; i < std::size(kBuckets); ++i) {
        if (seconds <= kBuckets[i]) ++bucketCounts_[i];
      }
      ++propagationCount_;
      propagationSum_ += seconds;
    }
    oldestPending_ = pending_ ? now : std::chrono::steady_clock::time_point{};
  }
  published_.notify_all();
}

snapshot::SnapshotPtr SnapshotBuilder::compileNext(const model::Config& config, bool configChanged) {
  if (compiledRevision_ >= 0 && !configChanged) {
    store::StoreChanges changes = store_.changesSince(compiledRevision_);
    if (!changes.compacted) {
      compiledRevision_ = -1;  // until the update is through: a throw leaves the compiler's state unknown
      snapshot::SnapshotPtr snapshot = compiler_.update(changes);
      compiledRevision_ = changes.revision;
      return snapshot;
    }
    logInfo("snapshot: the store no longer has the changes since revision ", compiledRevision_, "; reading it all");
  }
  compiledRevision_ = -1;
  store::StoreContents contents = store_.readAll();
  snapshot::SnapshotPtr snapshot = compiler_.compile(contents, config);
  compiledRevision_ = contents.revision;
  return snapshot;
}

std::string SnapshotBuilder::renderMetrics() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  out << "# HELP trellis_snapshot_propagation_seconds Store commit notification to routing snapshot published.\n"
      << "# TYPE trellis_snapshot_propagation_seconds histogram\n";
  for (size_t i = 0; i < std::size(kBuckets); ++i) {
    out << "trellis_snapshot_propagation_seconds_bucket{le=\"" << kBuckets[i] << "\"} " << bucketCounts_[i] << "\n";
  }
  out << "trellis_snapshot_propagation_seconds_bucket{le=\"+Inf\"} " << propagationCount_ << "\n"
      << "trellis_snapshot_propagation_seconds_sum " << propagationSum_ << "\n"
      << "trellis_snapshot_propagation_seconds_count " << propagationCount_ << "\n"
      << "# TYPE trellis_snapshot_revision gauge\ntrellis_snapshot_revision " << publishedRevision_ << "\n"
      // Wall-clock time of the last publication: hosts on one clock compare it with when a change was made.
      << "# TYPE trellis_snapshot_published_timestamp_seconds gauge\ntrellis_snapshot_published_timestamp_seconds "
      << std::fixed << std::setprecision(6)
      << std::chrono::duration<double>(publishedAt_.time_since_epoch()).count() << std::defaultfloat << "\n"
      << "# TYPE trellis_snapshot_build_failures_total counter\ntrellis_snapshot_build_failures_total "
      << buildFailures_ << "\n";
  return out.str();
}

}  // namespace trellis::compile
