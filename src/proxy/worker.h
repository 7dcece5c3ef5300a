// One event-loop thread of the data plane. Raw epoll rather than asio: the hot path is a handful of
// syscalls per request (read, write, epoll_wait) with no handler allocation, type erasure or strand
// bookkeeping, and the proxy needs nothing else asio offers here (no timers per operation: idle and
// lifetime limits are swept once a second; only exchanges of rules with timeouts or retries arm a timer,
// armTimer). Connections never leave the worker that accepted them; other threads talk to a worker only
// through post() (an eventfd-woken task queue).
//
// Layers, so HTTP/2 and TLS slot in later:
//   DownstreamConnection — socket + downstream codec: Http1RequestParser (one Exchange at a time), or
//                          Http2ServerSession (one Exchange per stream, ALPN h2 or h2c prior knowledge)
//   Exchange             — the stream: routing (router.h), protocol matrix (5.4), headers (5.7/5.8), retries,
//                          logging, metrics; talks to its client side only through DownstreamStream
//   UpstreamConnection   — socket + upstream codec (Http1ResponseParser), pooled per target; or a stream on an
//                          Http2UpstreamConnection (http2_upstream.h) for HTTP2/GRPC target groups
#pragma once
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proxy/access_log.h"
#include "proxy/metrics.h"
#include "proxy/router.h"
#include "snapshot/source.h"

namespace trellis::proxy {

class DownstreamConnection;
class UpstreamConnection;
class Exchange;
class Http2UpstreamPool;
class TlsContextProvider;

// Something with a socket in a worker's epoll set (epoll_event.data.ptr). Freed by the worker after retire().
class Pollable {
 public:
  virtual ~Pollable() {
    if (fd_ >= 0) ::close(fd_);
  }
  virtual void onEvents(uint32_t events) = 0;
  // Adopted connections only: once a second (timeouts); `stopping` when the worker shuts down.
  virtual void onSweep(int64_t /*nowMillis*/, bool /*stopping*/) {}
  int fd_ = -1;
  uint32_t interest_ = 0;
  bool watched_ = false;  // in the worker's epoll set (Worker::watch)
  bool dead_ = false;
};

class Worker {
 public:
  Worker(int index, snapshot::SnapshotSource& source, AccessLogWriter& accessLogs);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  // Stops accepting, waits for in-flight exchanges up to `graceMillis`, then closes everything.
  void stop(int graceMillis);
  // Runs `task` on the worker thread.
  void post(std::function<void()> task);

  // Worker-thread only: takes ownership of a listening socket for `port`; closes the old one.
  void addListener(uint16_t port, int fd);
  void removeListener(uint16_t port);
  const WorkerMetrics& metrics() const { return metrics_; }

  // For the connection classes (worker thread only).
  // Adds `p->fd_` to the epoll set for `events`; false when the kernel refuses it (no memory or watches left).
  bool watch(Pollable* p, uint32_t events);
  // Takes it out again (retire does, and a connection handed to a splice).
  void unwatch(Pollable* p);
  void setInterest(Pollable* p, uint32_t events);
  void retire(Pollable* p);  // closes the socket now, frees at the end of the loop turn
  void defer(std::function<void()> task) { deferred_.push_back(std::move(task)); }
  // An HTTP/2 connection's frames go out once this loop turn's events are handled: responses that complete
  // together leave in one write (one TLS record) instead of one each.
  void flushAtEndOfTurn(DownstreamConnection* c) { endOfTurnFlushes_.push_back(c); }
  // Takes a connection the worker does not drive itself (a TLS passthrough splice): registers `p->fd_` for
  // `events`, sweeps it once a second and retires it at shutdown.
  void adopt(Pollable* p, uint32_t events);
  const snapshot::SnapshotPtr& snapshot() const { return snapshot_; }
  RouterState& router() { return router_; }
  WorkerMetrics& stats() { return metrics_; }
  void log(AccessLogEntry&& entry) { accessLogBatch_.push_back(std::move(entry)); }
  std::string newRequestId();
  // `tls`: to an HTTPS target group (such connections pool apart from plain ones to the same ip:port).
  UpstreamConnection* takeIdleUpstream(const snapshot::Target& target, bool tls = false);
  void releaseUpstream(UpstreamConnection* upstream);  // back to the pool (or closed when full)
  UpstreamConnection* connectUpstream(const snapshot::Target& target, const std::string& targetGroupId,
                                      bool tls = false);
  // This worker's share of the snapshot's maxConnectionsPerTarget.
  int connectionsPerTarget() const;
  // Whether no new HTTP/1.1 connection may be opened to `target` (counted in the metrics when so).
  bool atConnectionLimit(const snapshot::Target& target, bool tls);
  void setWorkerCount(int count) { workerCount_ = count > 0 ? count : 1; }
  uint64_t newExchangeSerial() { return ++exchangeSerial_; }
  // A new client connection on listener `port`: admitted (source VPC and security groups) or closed.
  void accepted(int fd, uint16_t port, const sockaddr_storage& peer);
  // accept() failed for want of descriptors (`error`): no listener is polled for kAcceptPauseMs.
  void pauseAccepting(int error);
  bool stopping() const { return stopping_; }
  // HTTPS: certificates by SNI and the client context for HTTPS targets; null when HTTPS is unavailable.
  void setTls(TlsContextProvider* tls) { tls_ = tls; }
  TlsContextProvider* tls() const { return tls_; }
  int64_t nowMillis() const { return nowMillis_; }
  // Every exchange alive on this worker (for upstream timeouts, and to tell a deferred task whether its
  // exchange is still there).
  std::unordered_set<Exchange*>& exchanges() { return exchanges_; }
  // Multiplexed connections to the targets of HTTP2 and GRPC target groups.
  Http2UpstreamPool& http2Upstreams() { return *http2Upstreams_; }
  // Rule timeouts and retry backoffs (only exchanges of rules that have them): the loop wakes for the
  // earliest time given and calls Exchange::onTimer on those due. An exchange disarms itself when it ends.
  void armTimer(Exchange* e, int64_t atMillis);
  void disarmTimer(Exchange* e) { timed_.erase(e); }

 private:
  friend class DownstreamConnection;
  friend class UpstreamConnection;
  void run();
  void refreshSnapshot();
  void sweep();
  void runTasks();
  void runEndOfTurn();  // deferred tasks and end-of-turn flushes, until neither has more
  void runTimers();
  void resumeAcceptingIfDue();
  int waitMillis() const;  // epoll_wait's timeout: the sweep's pace, or sooner for a timer

  int index_;  // for log lines
  TlsContextProvider* tls_ = nullptr;
  snapshot::SnapshotSource& source_;
  AccessLogWriter& accessLogs_;
  int epollFd_ = -1;
  int wakeFd_ = -1;
  std::thread thread_;
  std::mutex tasksMutex_;
  std::vector<std::function<void()>> tasks_;
  bool stopping_ = false;
  int64_t stopDeadline_ = 0;
  int64_t nowMillis_ = 0;
  int64_t lastSweep_ = 0;

  uint64_t generation_ = ~0ull;
  snapshot::SnapshotPtr snapshot_;
  RouterState router_;
  WorkerMetrics metrics_;
  std::vector<AccessLogEntry> accessLogBatch_;
  uint64_t requestIdState_[2];

  std::unordered_map<uint16_t, Pollable*> listeners_;
  std::unordered_set<DownstreamConnection*> downstreams_;
  std::unordered_set<UpstreamConnection*> upstreams_;
  std::unordered_map<std::string, std::vector<UpstreamConnection*>> idle_;  // by target ip:port
  std::unordered_map<std::string, int> openToTarget_;  // HTTP/1.1 connections by pool key, in use or idle
  int workerCount_ = 1;
  uint64_t exchangeSerial_ = 0;
  std::vector<Pollable*> graveyard_;
  std::unordered_set<Pollable*> adopted_;
  std::vector<std::function<void()>> deferred_;
  std::vector<DownstreamConnection*> endOfTurnFlushes_, flushingNow_;
  std::unordered_set<Exchange*> exchanges_;
  std::unordered_set<Exchange*> timed_;
  int64_t nextTimer_ = INT64_MAX;  // the earliest time an exchange in timed_ asked for
  static constexpr int64_t kAcceptPauseMs = 100;
  int64_t acceptPausedUntil_ = 0;  // 0: listeners polled
  bool acceptPauseLogged_ = false;
  std::unique_ptr<Http2UpstreamPool> http2Upstreams_;
};

}  // namespace trellis::proxy
