#include "proxy/server/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common/assert.h"

namespace trellis::proxy {

int Pollable::releaseFd(EventLoop& loop) {
  loop.unwatch(this);
  int fd = fd_;
  fd_ = -1;
  return fd;
}

EventLoop::EventLoop() : events_(new epoll_event[kMaxEvents]) {
  epollFd_ = epoll_create1(EPOLL_CLOEXEC);
  wakeFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epollFd_ < 0 || wakeFd_ < 0) throw std::runtime_error("proxy: cannot create event loop");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the wake-up eventfd
  if (epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_, &ev) != 0) {
    throw std::runtime_error(std::string("proxy: cannot watch the wake-up eventfd: ") + std::strerror(errno));
  }
  updateClock();
}

EventLoop::~EventLoop() {
  for (auto* p : graveyard_) delete p;
  delete[] events_;
  ::close(epollFd_);
  ::close(wakeFd_);
}

int64_t EventLoop::monotonicMillis() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void EventLoop::updateClock() { nowMillis_ = monotonicMillis(); }

void EventLoop::post(std::function<void()> task) {
  {
    std::lock_guard lock(tasksMutex_);
    tasks_.push_back(std::move(task));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wakeFd_, &one, sizeof one);
}

bool EventLoop::watch(Pollable* p, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = p;
  // Fails for want of kernel memory or of max_user_watches: the caller treats it as a failed connection.
  if (epoll_ctl(epollFd_, EPOLL_CTL_ADD, p->fd_, &ev) != 0) return false;
  p->watched_ = true;
  p->interest_ = events;
  return true;
}

void EventLoop::unwatch(Pollable* p) {
  if (!p->watched_) return;
  p->watched_ = false;
  TRELLIS_ASSERT(epoll_ctl(epollFd_, EPOLL_CTL_DEL, p->fd_, nullptr) == 0);  // a watched descriptor
}

void EventLoop::setInterest(Pollable* p, uint32_t events) {
  if (p->dead_ || !p->watched_ || p->interest_ == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = p;
  // interest_ tracks what epoll has; MOD of a watched descriptor only fails on a bug.
  TRELLIS_ASSERT(epoll_ctl(epollFd_, EPOLL_CTL_MOD, p->fd_, &ev) == 0);
  p->interest_ = events;
}

void EventLoop::retire(Pollable* p) {
  if (p->dead_) return;
  p->dead_ = true;
  unwatch(p);
  adopted_.erase(p);
  p->onRetire();
  if (p->fd_ >= 0) ::close(p->fd_);
  p->fd_ = -1;
  graveyard_.push_back(p);
}

void EventLoop::adopt(Pollable* p, uint32_t events) {
  adopted_.insert(p);
  if (watch(p, events)) return;
  // Not watched: it fails as a socket error would, once the caller has finished setting it up.
  defer([p] {
    if (!p->dead_) p->onEvents(EPOLLERR | EPOLLHUP);
  });
}

void EventLoop::atEndOfTurn(Pollable* p) { endOfTurn_.push_back(p); }

void EventLoop::wait(int timeoutMillis) {
  if (!deferred_.empty() || !endOfTurn_.empty()) timeoutMillis = 0;
  ready_ = epoll_wait(epollFd_, events_, kMaxEvents, timeoutMillis);
  updateClock();
}

void EventLoop::dispatch() {
  for (int i = 0; i < ready_; ++i) {
    auto* p = static_cast<Pollable*>(events_[i].data.ptr);
    if (!p) {
      uint64_t count;
      [[maybe_unused]] ssize_t r = ::read(wakeFd_, &count, sizeof count);
      runTasks();
      continue;
    }
    if (!p->dead_) p->onEvents(events_[i].events);
  }
  ready_ = 0;
}

void EventLoop::runTasks() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(tasksMutex_);
    tasks.swap(tasks_);
  }
  for (auto& task : tasks) task();
}

void EventLoop::runEndOfTurn() {
  while (!deferred_.empty() || !endOfTurn_.empty()) {
    std::vector<std::function<void()>> deferred;
    deferred.swap(deferred_);
    for (auto& task : deferred) task();
    endingNow_.swap(endOfTurn_);
    for (Pollable* p : endingNow_) p->onEndOfTurn();  // dead ones are freed only after this
    endingNow_.clear();
  }
}

void EventLoop::freeRetired() {
  for (auto* p : graveyard_) delete p;
  graveyard_.clear();
}

void EventLoop::sweepAdopted(bool stopping) {
  for (auto* p : std::vector<Pollable*>(adopted_.begin(), adopted_.end())) {
    if (!p->dead_) p->onSweep(nowMillis_, stopping);
  }
}

void EventLoop::retireAdopted() {
  for (auto* p : std::vector<Pollable*>(adopted_.begin(), adopted_.end())) retire(p);
}

}  // namespace trellis::proxy
