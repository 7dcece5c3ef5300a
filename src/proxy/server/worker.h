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
#include <thread>
#include <unordered_map>

#include "proxy/access_log.h"
#include "proxy/server/worker_context.h"
#include "snapshot/source.h"

namespace trellis::proxy {

class Worker : public WorkerContext {
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
  void setTls(TlsContextProvider* tls) { limits_.tls = tls; }
  // Takes the source's newest snapshot if it moved (each loop turn; tests call it themselves).
  void refreshSnapshot();

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
  AccessLogWriter& accessLogs_;
  std::thread thread_;
  int64_t stopDeadline_ = 0;
  int64_t lastSweep_ = 0;
  std::unordered_map<uint16_t, Pollable*> listeners_;
  int workerCount_ = 1;
  static constexpr int64_t kAcceptPauseMs = 100;
  int64_t acceptPausedUntil_ = 0;  // 0: listeners polled
  bool acceptPauseLogged_ = false;
};

}  // namespace trellis::proxy
