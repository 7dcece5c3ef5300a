#include "proxy/health.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "common/thread_name.h"
#include "proxy/http/http2_codec.h"
#include "tls/certificates.h"
#include "tls/tls.h"

namespace trellis::proxy {
namespace {

constexpr std::string_view kUserAgent = "Amazon-VPC-Lattice-HealthChecks";
constexpr std::string_view kAlpnH2{"\x02h2", 3};

// The HTTP/2 side of a probe: one GET on a fresh connection; only the response's :status matters.
struct Http2Probe : Http2ClientHandler {
  Http2ClientSession session{*this};
  int status = 0;
  bool closed = false;  // the stream ended (reset, GOAWAY) without a response head

  void onResponseHead(int32_t, ResponseHead& head) override { status = head.status; }
  void onBody(int32_t, std::string_view) override {}
  void onTrailers(int32_t, Headers&) override {}
  void onComplete(int32_t) override {}
  void onStreamClosed(int32_t, uint32_t) override { closed = true; }
};

}  // namespace

// One check in flight: bytes to the socket and back, through TLS for HTTPS, then HTTP/1.1 or HTTP/2.
struct HealthChecker::Probe {
  Key key;
  int fd = -1;
  std::string wire;  // bytes for the socket (TLS records for HTTPS)
  size_t written = 0;
  std::unique_ptr<tls::TlsSession> tls;  // HTTPS checks: certificates are not verified
  std::string plainPending;         // HTTPS: request bytes waiting for the handshake
  std::string response;             // HTTP/1.1: the response bytes so far
  std::unique_ptr<Http2Probe> h2;   // HTTP/2 checks
  bool failed = false;              // the connection broke (TLS or HTTP/2 error)
  Clock::time_point deadline;
  snapshot::HealthCheck check;  // a copy: the snapshot may be swapped while the probe runs

  // Application bytes to send: straight to the socket, or through TLS once it is established.
  void queue(std::string_view plain) {
    if (!tls) {
      wire.append(plain);
      return;
    }
    plainPending.append(plain);
    if (!tls->established()) return;
    long taken = tls->send(plainPending, wire);
    if (taken < 0) failed = true;
    plainPending.erase(0, taken > 0 ? static_cast<size_t>(taken) : 0);
  }
  // Bytes read from the socket.
  void received(std::string_view bytes) {
    std::string plain;
    if (tls) {
      if (!tls->receive(bytes, plain, wire)) failed = true;
      if (!failed && tls->established() && !plainPending.empty()) queue({});
    } else {
      plain.assign(bytes);
    }
    if (failed || plain.empty()) return;
    if (!h2) {
      response += plain;
      return;
    }
    std::string out;
    if (!h2->session.receive(plain) || !h2->session.send(out)) failed = true;
    queue(out);  // SETTINGS ACK, WINDOW_UPDATE, or the GOAWAY that says why
  }
  // The response status once known (0 until then, and when the target did not speak the protocol).
  int status() const {
    if (h2) return h2->status;
    if (response.rfind("HTTP/1.", 0) == 0 && response.size() >= 12) return std::atoi(response.substr(9, 3).c_str());
    return 0;
  }
  bool answered() const { return h2 ? h2->status != 0 || h2->closed : response.size() >= 12; }
};

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  thread_ = std::thread([this] {
    nameThisThread("health");
    run();
  });
}

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
  auto now = Clock::now();
  // Only target groups that are new objects in this snapshot are looked at: the others, and the entries
  // pointing into them, stay as they are (the new snapshot holds the very same objects).
  auto refresh = [&](const std::string& groupId, const snapshot::TargetGroup* group) {
    std::map<Key, Entry> previous;  // the group's entries so far: their state carries over by key
    auto first = entries_.lower_bound(Key{groupId, "", 0});
    auto last = first;
    while (last != entries_.end() && std::get<0>(last->first) == groupId) {
      unschedule(last->first, last->second);
      ++last;
    }
    previous.insert(std::make_move_iterator(first), std::make_move_iterator(last));
    entries_.erase(first, last);
    if (!group) return;
    for (const auto& target : group->targets) {
      Key key{group->id, target.id, target.port};
      auto old = previous.find(key);
      Entry entry = old != previous.end() ? old->second : Entry{};
      if (old == previous.end()) entry.nextProbe = now;  // a new target is checked right away
      entry.group = group;
      entry.target = &target;
      if (!group->healthCheck.enabled) target.health->healthy.store(true, std::memory_order_relaxed);
      auto placed = entries_.emplace(std::move(key), std::move(entry)).first;
      schedule(placed->first, placed->second);
    }
  };
  if (snapshot_) {
    snap->targetGroups.forEachChange(snapshot_->targetGroups,
                                     [&](const std::string& id, const auto*, const auto* after) {
                                       refresh(id, after ? after->get() : nullptr);
                                     });
  } else {
    for (const auto& [id, group] : snap->targetGroups) refresh(id, group.get());
  }
  snapshot_ = std::move(snap);
  wake_.notify_all();
}

void HealthChecker::schedule(const Key& key, Entry& e) {
  if (!e.group->used || !e.group->healthCheck.enabled || e.target->draining || !e.target->resolvable()) return;
  schedule_.emplace(e.nextProbe, key);
  e.scheduled = true;
}

void HealthChecker::unschedule(const Key& key, Entry& e) {
  if (e.scheduled) schedule_.erase({e.nextProbe, key});
  e.scheduled = false;
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

std::vector<CheckedTarget> HealthChecker::checked() const {
  std::lock_guard lock(mutex_);
  std::vector<CheckedTarget> out;
  for (const auto& [key, entry] : entries_) {
    if (!entry.group->used || !entry.group->healthCheck.enabled || entry.target->draining ||
        !entry.target->resolvable())
      continue;  // not checked here: status() says why
    const auto& [group, target, port] = key;
    TargetHealth health{"INITIAL", entry.reason};
    if (entry.state == State::Healthy) health = {"HEALTHY", ""};
    if (entry.state == State::Unhealthy) health = {"UNHEALTHY", entry.reason};
    out.push_back({group, target, port, health});
  }
  return out;
}

std::string renderHealthMetrics(const TargetHealthView& health) {
  std::map<std::string, std::pair<int, int>> counts;  // by target group: healthy, unhealthy
  for (const auto& t : health.checked()) {
    auto& [healthy, unhealthy] = counts[t.targetGroupId];
    healthy += t.health.status == "HEALTHY";
    unhealthy += t.health.status == "UNHEALTHY";
  }
  std::string out =
      "# HELP HealthyHostCount Targets passing their health checks.\n# TYPE HealthyHostCount gauge\n";
  for (const auto& [group, n] : counts)
    out += "HealthyHostCount{target_group=\"" + group + "\"} " + std::to_string(n.first) + "\n";
  out += "# HELP UnHealthyHostCount Targets failing their health checks.\n# TYPE UnHealthyHostCount gauge\n";
  for (const auto& [group, n] : counts)
    out += "UnHealthyHostCount{target_group=\"" + group + "\"} " + std::to_string(n.second) + "\n";
  return out;
}

SSL_CTX* HealthChecker::tlsClient() {
  bool verify = snapshot_->verifyTargetCertificates;
  const std::string& caFile = snapshot_->targetCaFile;
  if (!tlsClient_ || verify != tlsClientVerifies_ || caFile != tlsClientCaFile_) {
    tlsClientVerifies_ = verify;
    tlsClientCaFile_ = caFile;
    try {
      tlsClient_ = tls::makeClientContext(verify, caFile);
    } catch (const std::exception& e) {
      logError("health: ", e.what());
      tlsClient_.reset();
    }
  }
  return tlsClient_.get();
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
    while (!schedule_.empty() && schedule_.begin()->first <= now) {
      Key key = schedule_.begin()->second;
      Entry& e = entries_.at(key);
      unschedule(key, e);
      bool inFlight = false;
      for (const auto& p : probes) inFlight = inFlight || p.key == key;
      e.nextProbe = now + std::chrono::seconds(std::max(1, e.group->healthCheck.intervalSeconds));
      schedule(key, e);
      if (inFlight) continue;
      const auto& check = e.group->healthCheck;
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
      std::string authority = e.target->address + ":" + std::to_string(port);
      bool https = check.protocol == snapshot::TargetProtocol::Https;
      bool http2 = check.protocolVersion == snapshot::ProtocolVersion::Http2;
      if (https) {
        // HTTP/2 over TLS needs ALPN h2: servers that speak both pick HTTP/1.1 without it.
        SSL_CTX* client = tlsClient();
        if (client) {
          probe.tls = tls::TlsSession::client(client, "", http2 ? kAlpnH2 : std::string_view{}, e.target->address);
        }
        if (!probe.tls) {
          record(e, false, "Target.FailedHealthChecks");
          continue;
        }
        probe.tls->send({}, probe.wire);  // the ClientHello
      }
      if (http2) {
        probe.h2 = std::make_unique<Http2Probe>();
        probe.h2->session.submitRequest("GET", https ? "https" : "http", authority, check.path,
                                        {{"user-agent", std::string(kUserAgent)}}, true);
        std::string preface;
        probe.h2->session.send(preface);
        probe.queue(preface);
      } else {
        probe.queue("GET " + check.path + " HTTP/1.1\r\nHost: " + authority + "\r\nUser-Agent: " +
                    std::string(kUserAgent) + "\r\nConnection: close\r\n\r\n");
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
    if (!schedule_.empty()) next = std::min(next, std::max(schedule_.begin()->first, now));
    for (const auto& p : probes) next = std::min(next, p.deadline);
    int timeoutMs = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count()) + 1;
    std::vector<pollfd> fds;
    for (const auto& p : probes) {
      fds.push_back({p.fd, static_cast<short>(p.written < p.wire.size() ? POLLOUT | POLLIN : POLLIN), 0});
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
      if ((fds[i].revents & (POLLOUT | POLLERR | POLLHUP)) && p.written < p.wire.size()) {
        ssize_t n = send(p.fd, p.wire.data() + p.written, p.wire.size() - p.written, MSG_NOSIGNAL);
        if (n > 0) p.written += static_cast<size_t>(n);
        else if (n < 0 && errno != EAGAIN) done = true;
        if (p.written == p.wire.size()) {
          p.wire.clear();
          p.written = 0;
        }
      }
      if (!done && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        ssize_t n = recv(p.fd, buf, sizeof buf, 0);
        if (n > 0) p.received(std::string_view(buf, static_cast<size_t>(n)));
        bool closed = n == 0 || (n < 0 && errno != EAGAIN) || (p.tls && p.tls->peerClosed());
        // "HTTP/1.1 200 ..." or the HTTP/2 response head is all we need.
        if (p.answered() || p.failed || closed) {
          done = true;
          int status = p.status();
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
