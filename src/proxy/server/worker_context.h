// What one worker thread's connections and exchanges share: its event loop, its snapshot, router state,
// metrics, upstream pools, access-log batch and the registries the worker drives (timers, the sweep).
// Worker (worker.h) is this plus what drives it: the thread, the listeners, the sweep. Connections and
// exchanges see only this, so nothing here knows their classes.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "proxy/access_log.h"
#include "proxy/metrics.h"
#include "proxy/router.h"
#include "proxy/server/event_loop.h"
#include "proxy/upstream/target_pools.h"
#include "proxy/upstream/upstream.h"
#include "snapshot/source.h"

namespace trellis::proxy {

class DownstreamConnection;
class Exchange;
class TlsContextProvider;

class WorkerContext {
 public:
  EventLoop& loop() { return loop_; }
  int64_t nowMillis() const { return loop_.nowMillis(); }
  bool stopping() const { return stopping_; }
  const snapshot::SnapshotPtr& snapshot() const { return snapshot_; }
  RouterState& router() { return router_; }
  WorkerMetrics& stats() { return metrics_; }
  UpstreamPool& upstreams() { return *upstreams_; }
  // HTTPS: certificates by SNI and the client context for HTTPS targets; null when HTTPS is unavailable.
  TlsContextProvider* tls() const { return limits_.tls; }
  void log(AccessLogEntry&& entry) { accessLogBatch_.push_back(std::move(entry)); }
  std::string newRequestId();
  uint64_t newExchangeSerial() { return ++exchangeSerial_; }
  // Every exchange alive on this worker (to tell a deferred task whether its exchange is still there).
  std::unordered_set<Exchange*>& exchanges() { return exchanges_; }
  // Rule timeouts and retry backoffs (only exchanges of rules that have them): the loop wakes for the
  // earliest time given and calls Exchange::onTimer on those due. An exchange disarms itself when it ends.
  void armTimer(Exchange* e, int64_t atMillis) {
    timed_.insert(e);
    if (atMillis < nextTimer_) nextTimer_ = atMillis;
  }
  void disarmTimer(Exchange* e) { timed_.erase(e); }
  // A client connection closed (DownstreamConnection::close).
  void connectionClosed(DownstreamConnection* c) {
    downstreams_.erase(c);
    --metrics_.activeDownstreamConnections;
  }

 protected:
  // `upstreams`: where exchanges send requests; null: TCP to the targets (TargetPools).
  WorkerContext(snapshot::SnapshotSource& source, std::unique_ptr<UpstreamPool> upstreams);
  ~WorkerContext() = default;

  snapshot::SnapshotSource& source_;
  EventLoop loop_;
  bool stopping_ = false;
  uint64_t generation_ = ~0ull;
  snapshot::SnapshotPtr snapshot_;
  RouterState router_;
  WorkerMetrics metrics_;
  std::vector<AccessLogEntry> accessLogBatch_;
  PoolLimits limits_;
  std::unique_ptr<UpstreamPool> upstreams_;
  std::unordered_set<DownstreamConnection*> downstreams_;
  std::unordered_set<Exchange*> exchanges_;
  std::unordered_set<Exchange*> timed_;
  int64_t nextTimer_ = INT64_MAX;  // the earliest time an exchange in timed_ asked for

 private:
  uint64_t requestIdState_[2];
  uint64_t exchangeSerial_ = 0;
};

}  // namespace trellis::proxy
