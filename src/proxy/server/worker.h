// One thread of the data plane: an event loop (event_loop.h) with the listeners it accepts on, the client
// connections it serves, its pools of target connections, its share of the router's state, its metrics
// and its access-log batch. Connections never leave the worker that accepted them; other threads talk to
// a worker only through post().
//
//   ListenSocket (listener.h)          accept, VPC and security-group admission
//   DownstreamConnection (downstream/)  socket, transport, HTTP/1.1 codec or HTTP/2 session
//   Exchange (exchange/)               one request: routing, auth, forwarding, retries, logging
//   UpstreamPool (upstream/)           HTTP/1.1 connections or HTTP/2 streams to targets
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
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

class Worker {
 public:
  // `upstreams`: where exchanges send requests; null: TCP to the targets (TargetPools). Tests give their own.
  Worker(int index, snapshot::SnapshotSource& source, AccessLogWriter& accessLogs,
         std::unique_ptr<UpstreamPool> upstreams = nullptr);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  // Stops accepting, waits for in-flight exchanges up to `graceMillis`, then closes everything.
  void stop(int graceMillis);
  // Runs `task` on the worker thread.
  void post(std::function<void()> task) { loop_.post(std::move(task)); }

  // Worker-thread only from here on. Takes ownership of a listening socket for `port`; closes the old one.
  void addListener(uint16_t port, int fd);
  void removeListener(uint16_t port);
  const WorkerMetrics& metrics() const { return metrics_; }
  // The data plane's worker count: this worker's share of maxConnectionsPerTarget follows from it.
  void setWorkerCount(int count);
  // HTTPS: certificates by SNI and the client context for HTTPS targets; null when HTTPS is unavailable.
  void setTls(TlsContextProvider* tls);
  TlsContextProvider* tls() const { return limits_.tls; }
  // Takes the source's newest snapshot if it moved (each loop turn; tests call it themselves).
  void refreshSnapshot();

  // For the connections and exchanges of this worker.
  EventLoop& loop() { return loop_; }
  int64_t nowMillis() const { return loop_.nowMillis(); }
  bool stopping() const { return stopping_; }
  const snapshot::SnapshotPtr& snapshot() const { return snapshot_; }
  RouterState& router() { return router_; }
  WorkerMetrics& stats() { return metrics_; }
  UpstreamPool& upstreams() { return *upstreams_; }
  void log(AccessLogEntry&& entry) { accessLogBatch_.push_back(std::move(entry)); }
  std::string newRequestId();
  uint64_t newExchangeSerial() { return ++exchangeSerial_; }
  // Every exchange alive on this worker (to tell a deferred task whether its exchange is still there).
  std::unordered_set<Exchange*>& exchanges() { return exchanges_; }
  // Rule timeouts and retry backoffs (only exchanges of rules that have them): the loop wakes for the
  // earliest time given and calls Exchange::onTimer on those due. An exchange disarms itself when it ends.
  void armTimer(Exchange* e, int64_t atMillis);
  void disarmTimer(Exchange* e) { timed_.erase(e); }
  // A client connection closed (DownstreamConnection::close).
  void connectionClosed(DownstreamConnection* c);

 private:
  void run();
  void accepted(int fd, uint16_t port, const sockaddr_storage& peer);
  // accept() failed for want of descriptors (`error`): no listener is polled for kAcceptPauseMs.
  void pauseAccepting(int error);
  void resumeAcceptingIfDue();
  void sweep();
  void runTimers();
  int waitMillis() const;  // the sweep's pace, or sooner for a timer
  void submitLogs();
  void updateLimits();

  int index_;  // for log lines
  snapshot::SnapshotSource& source_;
  AccessLogWriter& accessLogs_;
  EventLoop loop_;
  std::thread thread_;
  bool stopping_ = false;
  int64_t stopDeadline_ = 0;
  int64_t lastSweep_ = 0;

  uint64_t generation_ = ~0ull;
  snapshot::SnapshotPtr snapshot_;
  RouterState router_;
  WorkerMetrics metrics_;
  std::vector<AccessLogEntry> accessLogBatch_;
  uint64_t requestIdState_[2];

  PoolLimits limits_;
  std::unique_ptr<UpstreamPool> upstreams_;
  std::unordered_map<uint16_t, Pollable*> listeners_;
  std::unordered_set<DownstreamConnection*> downstreams_;
  int workerCount_ = 1;
  uint64_t exchangeSerial_ = 0;
  std::unordered_set<Exchange*> exchanges_;
  std::unordered_set<Exchange*> timed_;
  int64_t nextTimer_ = INT64_MAX;  // the earliest time an exchange in timed_ asked for
  static constexpr int64_t kAcceptPauseMs = 100;
  int64_t acceptPausedUntil_ = 0;  // 0: listeners polled
  bool acceptPauseLogged_ = false;
};

}  // namespace trellis::proxy
