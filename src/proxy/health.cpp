#include "proxy/health.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "proxy/certificates.h"
#include "proxy/tls.h"

namespace trellis::proxy {

struct HealthChecker::Probe {
  Key key;
  int fd = -1;
  std::string request;  // bytes for the wire: the HTTP request, or for HTTPS the TLS records
  size_t written = 0;
  std::unique_ptr<TlsSession> tls;  // HTTPS checks: certificates are not verified (spec 5.4)
  std::string plainRequest;         // HTTPS: the HTTP request, encrypted into `request` after the handshake
  std::string response;
  Clock::time_point deadline;
  snapshot::HealthCheck check;  // a copy: the snapshot may be swapped while the probe runs
};

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() { thread_ = std::thread([this] { run(); }); }

void HealthChecker::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HealthChecker::update(snapshot::SnapshotPtr snap) {
  std::lock_guard lock(mutex_);
  std::map<Key, Entry> next;
  auto now = Clock::now();
  for (const auto& [id, group] : snap->targetGroups) {
    for (const auto& target : group.targets) {
      Key key{group.id, target.id, target.port};
      auto old = entries_.find(key);
      Entry entry = old != entries_.end() ? old->second : Entry{};
      if (old == entries_.end()) entry.nextProbe = now;  // a new target is checked right away
      entry.group = &group;
      entry.target = &target;
      if (!group.healthCheck.enabled) target.health->healthy.store(true, std::memory_order_relaxed);
      next.emplace(std::move(key), std::move(entry));
    }
  }
  entries_ = std::move(next);
  snapshot_ = std::move(snap);
  wake_.notify_all();
}

TargetHealth HealthChecker::status(const std::string& targetGroupId, const std::string& targetId,
                                   uint16_t port) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(Key{targetGroupId, targetId, port});
  if (it == entries_.end()) return {"INITIAL", "Elb.RegistrationInProgress"};
  const Entry& e = it->second;
  if (e.target->draining) return {"DRAINING", "Target.DeregistrationInProgress"};
  if (!e.group->used) return {"UNUSED", "Target.NotInUse"};
  if (!e.group->healthCheck.enabled) return {"UNAVAILABLE", "Target.HealthCheckDisabled"};
  if (!e.target->resolvable()) return {"UNAVAILABLE", "Target.InvalidInstance"};
  switch (e.state) {
    case State::Initial: return {"INITIAL", e.reason};
    case State::Healthy: return {"HEALTHY", ""};
    case State::Unhealthy: return {"UNHEALTHY", e.reason};
  }
  return {"INITIAL", e.reason};
}

void HealthChecker::record(Entry& e, bool ok, const std::string& failureReason) {
  const auto& check = e.group->healthCheck;
  if (ok) {
    e.failures = 0;
    ++e.successes;
    // A new target needs one passing check (UG); a failed one needs healthyThreshold in a row.
    if (e.state == State::Initial || (e.state == State::Unhealthy && e.successes >= check.healthyThreshold)) {
      e.state = State::Healthy;
      e.reason.clear();
      e.target->health->healthy.store(true, std::memory_order_relaxed);
    }
  } else {
    e.successes = 0;
    ++e.failures;
    if (e.state == State::Initial) e.reason = "Elb.InitialHealthChecking";
    if (e.state == State::Unhealthy) e.reason = failureReason;
    if (e.state != State::Unhealthy && e.failures >= check.unhealthyThreshold) {
      if (e.state == State::Healthy) logInfo("health: ", e.target->ipPort, " in ", e.group->id, " is unhealthy: ",
                                             failureReason);
      e.state = State::Unhealthy;
      e.reason = failureReason;
      e.target->health->healthy.store(false, std::memory_order_relaxed);
    }
  }
}

void HealthChecker::run() {
  std::vector<Probe> probes;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto now = Clock::now();
    // Start due probes (one in flight per target).
    for (auto& [key, e] : entries_) {
      if (e.nextProbe > now || !e.group->used || !e.group->healthCheck.enabled || e.target->draining ||
          !e.target->resolvable()) {
        continue;
      }
      bool inFlight = false;
      for (const auto& p : probes) inFlight = inFlight || p.key == key;
      if (inFlight) continue;
      const auto& check = e.group->healthCheck;
      e.nextProbe = now + std::chrono::seconds(check.intervalSeconds);
      snapshot::SocketAddress address = e.target->socketAddress;
      uint16_t port = check.port ? check.port : e.target->port;
      if (address.storage.ss_family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&address.storage)->sin_port = htons(port);
      } else {
        reinterpret_cast<sockaddr_in6*>(&address.storage)->sin6_port = htons(port);
      }
      Probe probe;
      probe.key = key;
      probe.check = check;
      probe.deadline = now + std::chrono::seconds(check.timeoutSeconds);
      probe.request = "GET " + check.path + " HTTP/1.1\r\nHost: " + e.target->address + ":" + std::to_string(port) +
                      "\r\nUser-Agent: Amazon-VPC-Lattice-HealthChecks\r\nConnection: close\r\n\r\n";
      if (check.protocol == "HTTPS") {
        static SslCtxPtr client = makeClientContext();
        probe.tls = TlsSession::client(client.get(), "");
        probe.plainRequest = std::move(probe.request);
        probe.request.clear();
        if (probe.tls) probe.tls->send({}, probe.request);  // the ClientHello
      }
      probe.fd = socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (probe.fd < 0 || (connect(probe.fd, reinterpret_cast<sockaddr*>(&address.storage), address.length) != 0 &&
                           errno != EINPROGRESS)) {
        if (probe.fd >= 0) close(probe.fd);
        record(e, false, "Target.FailedHealthChecks");
        continue;
      }
      probes.push_back(std::move(probe));
    }
    // Wait for socket activity, the next due probe, or an update.
    auto next = now + std::chrono::seconds(1);
    for (const auto& [key, e] : entries_) {
      // Only targets that get probed: a disabled check's nextProbe stays in the past, and counting it
      // made this loop wake every millisecond.
      if (!e.group->used || !e.group->healthCheck.enabled || e.target->draining || !e.target->resolvable()) continue;
      next = std::min(next, std::max(e.nextProbe, now));
    }
    for (const auto& p : probes) next = std::min(next, p.deadline);
    int timeoutMs = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count()) + 1;
    std::vector<pollfd> fds;
    for (const auto& p : probes) {
      fds.push_back({p.fd, static_cast<short>(p.written < p.request.size() ? POLLOUT : POLLIN), 0});
    }
    lock.unlock();
    if (fds.empty()) {
      lock.lock();
      wake_.wait_for(lock, std::chrono::milliseconds(timeoutMs));
      continue;
    }
    poll(fds.data(), fds.size(), std::min(timeoutMs, 200));  // 200 ms: notice updates and stop promptly
    // Advance probes without the lock (sockets only), then record outcomes with it.
    std::vector<std::tuple<Key, bool, std::string>> outcomes;
    now = Clock::now();
    for (size_t i = 0; i < probes.size(); ++i) {
      Probe& p = probes[i];
      bool done = false, ok = false;
      std::string reason = "Target.FailedHealthChecks";
      if (fds[i].revents & (POLLOUT | POLLERR | POLLHUP)) {
        if (p.written < p.request.size()) {
          ssize_t n = send(p.fd, p.request.data() + p.written, p.request.size() - p.written, MSG_NOSIGNAL);
          if (n > 0) p.written += static_cast<size_t>(n);
          else if (n < 0 && errno != EAGAIN) done = true;
        }
      }
      if (!done && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && p.written == p.request.size()) {
        char buf[1024];
        ssize_t n = recv(p.fd, buf, sizeof buf, 0);
        if (n > 0 && !p.tls) p.response.append(buf, static_cast<size_t>(n));
        if (n > 0 && p.tls) {
          if (!p.tls->receive(std::string_view(buf, static_cast<size_t>(n)), p.response, p.request)) done = true;
          if (!done && p.tls->established() && !p.plainRequest.empty()) {
            long taken = p.tls->send(p.plainRequest, p.request);
            p.plainRequest.erase(0, taken > 0 ? static_cast<size_t>(taken) : 0);
          }
          if (!done && p.response.size() < 12 && !p.tls->peerClosed()) continue;  // handshake or partial status
        }
        if (n <= 0 && !(n < 0 && errno == EAGAIN)) done = true;
        // "HTTP/1.1 200 ..." is all we need.
        if (p.response.size() >= 12 || done) {
          done = true;
          int status = 0;
          if (p.response.rfind("HTTP/1.", 0) == 0 && p.response.size() >= 12) {
            status = std::atoi(p.response.substr(9, 3).c_str());
          }
          ok = p.check.matches(status);
          if (!ok && status) reason = "Target.ResponseCodeMismatch";
        }
      }
      if (!done && now >= p.deadline) {
        done = true;
        reason = "Target.Timeout";
      }
      if (done) {
        close(p.fd);
        p.fd = -1;
        outcomes.emplace_back(p.key, ok, reason);
      }
    }
    std::erase_if(probes, [](const Probe& p) { return p.fd < 0; });
    lock.lock();
    for (auto& [key, ok, reason] : outcomes) {
      auto it = entries_.find(key);
      if (it != entries_.end()) record(it->second, ok, reason);
    }
    // Probes of targets that vanished meanwhile are dropped.
    std::erase_if(probes, [&](Probe& p) {
      if (entries_.count(p.key)) return false;
      close(p.fd);
      return true;
    });
  }
  for (auto& p : probes) close(p.fd);
}

}  // namespace trellis::proxy
