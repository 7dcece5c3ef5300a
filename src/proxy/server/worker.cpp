#include "proxy/server/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "common/thread_name.h"
#include "proxy/downstream/connection.h"
#include "proxy/exchange/exchange.h"
#include "proxy/server/listener.h"

namespace trellis::proxy {

Worker::Worker(int index, snapshot::SnapshotSource& source, AccessLogWriter& accessLogs,
               std::unique_ptr<UpstreamPool> upstreams)
    : WorkerContext(source, std::move(upstreams)), index_(index), accessLogs_(accessLogs) {}

Worker::~Worker() {
  if (thread_.joinable()) stop(0);
  for (auto& [port, l] : listeners_) loop_.retire(l);
  for (auto* d : std::vector<DownstreamConnection*>(downstreams_.begin(), downstreams_.end())) d->close();
  upstreams_->closeAll();
  loop_.retireAdopted();
  loop_.freeRetired();
}

void Worker::start() {
  thread_ = std::thread([this] {
    nameThisThread("proxy-" + std::to_string(index_));
    run();
  });
}

void Worker::stop(int graceMillis) {
  post([this, graceMillis] {
    stopping_ = true;
    stopDeadline_ = EventLoop::monotonicMillis() + graceMillis;
    for (auto& [port, l] : listeners_) loop_.retire(l);
    listeners_.clear();
    lastSweep_ = 0;  // sweep now: idle connections close right away
  });
  if (thread_.joinable()) thread_.join();
}

void Worker::setWorkerCount(int count) {
  workerCount_ = count > 0 ? count : 1;
  updateLimits();
}

void Worker::updateLimits() {
  if (!snapshot_) return;
  // This worker's share of the proxy's limit.
  limits_.connectionsPerTarget = (snapshot_->maxConnectionsPerTarget + workerCount_ - 1) / workerCount_;
}

void Worker::addListener(uint16_t port, int fd) {
  removeListener(port);
  auto* l = new ListenSocket(
      fd, port, [this](int client, uint16_t on, const sockaddr_storage& peer) { accepted(client, on, peer); },
      [this](int error) { pauseAccepting(error); });
  if (!loop_.watch(l, EPOLLIN)) {
    logError("proxy: worker ", index_, " cannot serve port ", port, ": epoll: ", std::strerror(errno));
    delete l;
    return;
  }
  listeners_[port] = l;
  if (acceptPausedUntil_ != 0) loop_.setInterest(l, 0);
}

void Worker::removeListener(uint16_t port) {
  auto it = listeners_.find(port);
  if (it == listeners_.end()) return;
  loop_.retire(it->second);
  listeners_.erase(it);
}

void Worker::pauseAccepting(int error) {
  if (acceptPausedUntil_ != 0) return;
  ++metrics_.acceptPaused;
  // Once per episode, not once per pause: the condition lasts as long as the connections do.
  if (!acceptPauseLogged_) {
    logWarn("proxy: worker ", index_, ": cannot accept connections (", std::strerror(error), "); pausing ",
            kAcceptPauseMs, " ms at a time until descriptors are free (trellis_proxy_accept_paused_total)");
    acceptPauseLogged_ = true;
  }
  acceptPausedUntil_ = nowMillis() + kAcceptPauseMs;
  for (auto& [port, listener] : listeners_) loop_.setInterest(listener, 0);
}

void Worker::resumeAcceptingIfDue() {
  if (acceptPausedUntil_ == 0 || nowMillis() < acceptPausedUntil_) return;
  acceptPausedUntil_ = 0;
  for (auto& [port, listener] : listeners_) loop_.setInterest(listener, EPOLLIN);
}

void Worker::accepted(int fd, uint16_t port, const sockaddr_storage& peer) {
  // Refused before any byte is read, with a reset as a firewall's REJECT would.
  snapshot::Address address;
  if (!admitted(*snapshot_, peer, port, address, metrics_)) {
    linger reset{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    ::close(fd);
    return;
  }
  if (acceptPauseLogged_) {
    logInfo("proxy: worker ", index_, ": accepting connections again");
    acceptPauseLogged_ = false;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto* d = new DownstreamConnection(*this, fd, port, peer, address);
  downstreams_.insert(d);
  ++metrics_.downstreamConnections;
  ++metrics_.activeDownstreamConnections;
  if (!loop_.watch(d, EPOLLIN)) d->close();
}

void Worker::refreshSnapshot() {
  uint64_t generation = source_.generation();
  if (generation == generation_) return;
  generation_ = generation;
  snapshot::releaseSnapshot(std::move(snapshot_));
  snapshot_ = source_.current();
  router_.snapshotChanged();
  updateLimits();
}

void Worker::sweep() {
  int64_t now = nowMillis();
  // Collect first: acting on a connection can close it and change downstreams_.
  for (auto* d : std::vector<DownstreamConnection*>(downstreams_.begin(), downstreams_.end())) {
    if (!d->dead()) d->sweep(now, stopping_);
  }
  std::vector<Exchange*> exchanges(exchanges_.begin(), exchanges_.end());
  for (Exchange* e : exchanges) {
    if (exchanges_.count(e)) e->onSweep(now);  // may end other exchanges of the list
  }
  upstreams_->sweep(now, stopping_);
  loop_.sweepAdopted(stopping_);
}

void Worker::runTimers() {
  int64_t now = nowMillis();
  if (now < nextTimer_) return;
  std::vector<Exchange*> due;
  for (auto it = timed_.begin(); it != timed_.end();) {
    int64_t at = (*it)->nextTimer();
    if (at == 0) {
      it = timed_.erase(it);
      continue;
    }
    if (at <= now) due.push_back(*it);
    ++it;
  }
  for (Exchange* e : due) {
    if (timed_.count(e)) e->onTimer(now);  // may end other exchanges of the list
  }
  nextTimer_ = INT64_MAX;
  for (Exchange* e : timed_) {
    if (int64_t at = e->nextTimer(); at != 0) nextTimer_ = std::min(nextTimer_, at);
  }
}

int Worker::waitMillis() const {
  int64_t next = acceptPausedUntil_ != 0 ? std::min(nextTimer_, acceptPausedUntil_) : nextTimer_;
  if (next == INT64_MAX) return 250;
  return static_cast<int>(std::clamp<int64_t>(next - EventLoop::monotonicMillis(), 0, 250));
}

void Worker::submitLogs() {
  if (!accessLogBatch_.empty()) accessLogs_.submit(std::move(accessLogBatch_));
  accessLogBatch_.clear();
}

void Worker::run() {
  logDebug("proxy: worker ", index_, " running");
  while (true) {
    loop_.updateClock();
    refreshSnapshot();
    loop_.wait(waitMillis());
    refreshSnapshot();
    loop_.dispatch();
    runTimers();
    resumeAcceptingIfDue();
    if (nowMillis() - lastSweep_ >= 1000) {
      lastSweep_ = nowMillis();
      sweep();
    }
    loop_.runEndOfTurn();
    loop_.freeRetired();
    submitLogs();
    if (stopping_ && (downstreams_.empty() || nowMillis() >= stopDeadline_)) break;
  }
  loop_.runEndOfTurn();  // the GOAWAYs the last sweep queued
  for (auto* d : std::vector<DownstreamConnection*>(downstreams_.begin(), downstreams_.end())) d->close();
  upstreams_->closeAll();
  loop_.retireAdopted();
  loop_.freeRetired();
  submitLogs();
}

}  // namespace trellis::proxy
