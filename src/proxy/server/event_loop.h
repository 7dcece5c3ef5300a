// One thread's epoll set, and what runs around its events: tasks posted from other threads, work deferred
// to the end of the loop turn, and freeing what was retired during it. It knows sockets, not HTTP: the
// worker (server/worker.h) composes it with listeners, pools and the router.
//
// Raw epoll rather than asio: the hot path is a handful of syscalls per request (read, write,
// epoll_wait) with no handler allocation, type erasure or strand bookkeeping. Timeouts are swept once a
// second by the worker instead of armed per operation.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_set>
#include <vector>

struct epoll_event;

namespace trellis::proxy {

class EventLoop;

// Something with a descriptor in an event loop (epoll_event.data.ptr). Freed by the loop after retire().
class Pollable {
 public:
  virtual ~Pollable() {
    if (fd_ >= 0) ::close(fd_);
  }
  virtual void onEvents(uint32_t events) = 0;
  // Adopted ones only (EventLoop::adopt): once a second, for their timeouts; `stopping` at shutdown.
  virtual void onSweep(int64_t /*nowMillis*/, bool /*stopping*/) {}
  // Queued with EventLoop::atEndOfTurn: once this turn's events are handled.
  virtual void onEndOfTurn() {}
  // Retired (EventLoop::retire): whoever keeps a list of these forgets this one now.
  virtual void onRetire() {}

  int fd() const { return fd_; }
  // Retired: the descriptor is closed, and nothing may be called on it after this loop turn.
  bool dead() const { return dead_; }

 protected:
  int fd_ = -1;
  // Hands the descriptor to someone else (a passthrough splice): the loop stops watching it.
  int releaseFd(EventLoop& loop);

 private:
  friend class EventLoop;
  uint32_t interest_ = 0;
  bool watched_ = false;  // in the epoll set
  bool dead_ = false;
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // From any thread: runs `task` on the loop's thread, waking it.
  void post(std::function<void()> task);

  // Loop thread only, from here on.
  // Adds `p->fd()` for `events`; false when the kernel refuses it (no memory or watches left).
  bool watch(Pollable* p, uint32_t events);
  void unwatch(Pollable* p);
  void setInterest(Pollable* p, uint32_t events);
  // Closes the descriptor now and frees `p` at the end of the loop turn.
  void retire(Pollable* p);
  // Watches a Pollable nobody else drives (a passthrough splice, an HTTP/2 target connection): swept once a
  // second, retired at shutdown. When it cannot be watched it fails as a socket error would.
  void adopt(Pollable* p, uint32_t events);
  // Runs `task` once this turn's events are handled.
  void defer(std::function<void()> task) { deferred_.push_back(std::move(task)); }
  // Calls `p->onEndOfTurn()` once this turn's events are handled (once however often asked).
  void atEndOfTurn(Pollable* p);
  // The loop's clock (CLOCK_MONOTONIC, ms), read once per turn.
  int64_t nowMillis() const { return nowMillis_; }
  void updateClock();
  static int64_t monotonicMillis();

  // One turn, in the order the worker runs them: wait (not at all while deferred work is queued), take
  // the events and posted tasks, and, after the worker's own steps, the end of the turn.
  void wait(int timeoutMillis);
  void dispatch();
  void runEndOfTurn();  // deferred tasks and end-of-turn calls, until neither brings more
  void freeRetired();
  void sweepAdopted(bool stopping);
  void retireAdopted();

 private:
  void runTasks();

  int epollFd_ = -1;
  int wakeFd_ = -1;
  int64_t nowMillis_ = 0;
  std::mutex tasksMutex_;
  std::vector<std::function<void()>> tasks_;
  std::vector<std::function<void()>> deferred_;
  std::vector<Pollable*> endOfTurn_, endingNow_;
  std::vector<Pollable*> graveyard_;
  std::unordered_set<Pollable*> adopted_;
  static constexpr int kMaxEvents = 256;
  int ready_ = 0;
  ::epoll_event* events_;
};

}  // namespace trellis::proxy
