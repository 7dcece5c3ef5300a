#include "proxy/data_plane.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "common/thread_name.h"
#include "proxy/access_log.h"
#include "proxy/health.h"
#include "proxy/tls_contexts.h"
#include "proxy/server/worker.h"

namespace trellis::proxy {

struct DataPlane::Impl {
  DataPlaneOptions options;
  snapshot::SnapshotSource& source;
  std::unique_ptr<AccessLogWriter> accessLogs;
  std::unique_ptr<TlsContextProvider> tls;  // null when the CA cannot be opened: HTTPS handshakes fail
  HealthChecker health;
  std::vector<std::unique_ptr<Worker>> workers;

  std::thread control;
  mutable std::mutex mutex;
  std::condition_variable wake;
  bool changed = true;
  bool stopping = false;
  bool running = false;
  std::map<uint16_t, ListenerBindStatus> ports;  // every port of the current snapshot

  Impl(DataPlaneOptions o, snapshot::SnapshotSource& s) : options(std::move(o)), source(s) {}

  // One SO_REUSEPORT socket per worker, so the kernel spreads connections over the workers.
  std::vector<int> bindPort(uint16_t port, std::string& error) {
    std::vector<int> fds;
    sockaddr_storage address{};
    socklen_t length = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
    std::string host = options.bindAddress;
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(port);
      length = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(port);
      length = sizeof(sockaddr_in6);
    } else {
      error = "bad bind address " + options.bindAddress;
      return {};
    }
    for (size_t i = 0; i < workers.size(); ++i) {
      int fd = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      int one = 1;
      if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      }
      if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 || listen(fd, 4096) != 0) {
        error = std::strerror(errno);
        if (fd >= 0) close(fd);
        for (int f : fds) close(f);
        return {};
      }
      fds.push_back(fd);
    }
    return fds;
  }

  // Opens the ports of new listeners (and retries failed ones), closes the ports of removed ones.
  void reconcile() {
    snapshot::SnapshotPtr snap = source.current();
    health.update(snap);
    if (tls) tls->refresh(snap, time(nullptr));  // new services, imported certificates, leaf renewals
    std::map<uint16_t, ListenerBindStatus> next;
    for (uint16_t port : snap->listenerPorts) {
      std::lock_guard lock(mutex);
      auto old = ports.find(port);
      if (old != ports.end() && old->second.bound) {
        next[port] = old->second;
        continue;
      }
      ListenerBindStatus status{port, false, {}};
      std::vector<int> fds = bindPort(port, status.error);
      if (fds.empty()) {
        if (old == ports.end() || old->second.error != status.error) {
          logWarn("proxy: cannot listen on ", options.bindAddress, ":", port, ": ", status.error);
        }
      } else {
        status.bound = true;
        logInfo("proxy: listening on ", options.bindAddress, ":", port);
        for (size_t i = 0; i < workers.size(); ++i) {
          int fd = fds[i];
          Worker* w = workers[i].get();
          w->post([w, port, fd] { w->addListener(port, fd); });
        }
      }
      next[port] = status;
    }
    std::lock_guard lock(mutex);
    for (const auto& [port, status] : ports) {
      if (next.count(port) || !status.bound) continue;
      logInfo("proxy: closing port ", port);
      for (auto& w : workers) {
        Worker* worker = w.get();
        uint16_t p = port;
        worker->post([worker, p] { worker->removeListener(p); });
      }
    }
    ports = std::move(next);
  }

  void runControl() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      // Failed binds are retried every few seconds even without a new snapshot.
      wake.wait_for(lock, std::chrono::seconds(5), [&] { return stopping || changed; });
      if (stopping) return;
      changed = false;
      lock.unlock();
      reconcile();
      lock.lock();
    }
  }
};

DataPlane::DataPlane(DataPlaneOptions options, snapshot::SnapshotSource& source)
    : impl_(std::make_unique<Impl>(std::move(options), source)) {
  Impl* impl = impl_.get();
  source.subscribe([impl] {
    {
      std::lock_guard lock(impl->mutex);
      impl->changed = true;
    }
    impl->wake.notify_all();
  });
}

DataPlane::~DataPlane() { stop(); }

void DataPlane::start() {
  Impl& d = *impl_;
  int count = d.options.workers > 0 ? d.options.workers : static_cast<int>(std::thread::hardware_concurrency());
  if (count <= 0) count = 1;
  snapshot::SnapshotPtr snap = d.source.current();
  d.accessLogs = std::make_unique<AccessLogWriter>(d.options.dataDir, snap->region.empty() ? "us-east-1" : snap->region,
                                                   snap->accountId.empty() ? "111122223333" : snap->accountId);
  d.accessLogs->start();
  try {
    d.tls = std::make_unique<TlsContextProvider>(d.options.dataDir, snap->verifyTargetCertificates, snap->targetCaFile);
  } catch (const std::exception& e) {
    logError("proxy: HTTPS listeners disabled: ", e.what());
  }
  for (int i = 0; i < count; ++i) d.workers.push_back(std::make_unique<Worker>(i, d.source, *d.accessLogs));
  for (auto& w : d.workers) {
    w->setTls(d.tls.get());
    w->setWorkerCount(count);
  }
  for (auto& w : d.workers) w->start();
  d.health.start();
  d.reconcile();
  d.running = true;
  d.control = std::thread([&d] {
    nameThisThread("proxy-control");
    d.runControl();
  });
}

void DataPlane::stop() {
  Impl& d = *impl_;
  if (!d.running) return;
  d.running = false;
  {
    std::lock_guard lock(d.mutex);
    d.stopping = true;
  }
  d.wake.notify_all();
  if (d.control.joinable()) d.control.join();
  // Workers drain in parallel: ask them all, then wait for each.
  std::vector<std::thread> stoppers;
  for (auto& w : d.workers) {
    Worker* worker = w.get();
    stoppers.emplace_back([worker, grace = d.options.gracefulStopMillis] { worker->stop(grace); });
  }
  for (auto& t : stoppers) t.join();
  d.workers.clear();
  d.health.stop();
  d.accessLogs->stop();
}

std::string DataPlane::renderMetrics() const {
  Impl& d = *impl_;
  WorkerMetrics merged;
  std::vector<std::future<WorkerMetrics>> copies;
  for (auto& w : d.workers) {
    auto promise = std::make_shared<std::promise<WorkerMetrics>>();
    copies.push_back(promise->get_future());
    Worker* worker = w.get();
    worker->post([worker, promise] { promise->set_value(worker->metrics()); });
  }
  for (auto& copy : copies) {
    if (copy.wait_for(std::chrono::seconds(2)) == std::future_status::ready) merged.add(copy.get());
  }
  return renderPrometheus(merged) + renderHealthMetrics(d.health) +
         (d.accessLogs ? d.accessLogs->renderMetrics() : std::string());
}

std::vector<ListenerBindStatus> DataPlane::listenerStatus() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<ListenerBindStatus> out;
  for (const auto& [port, status] : impl_->ports) out.push_back(status);
  return out;
}

const TargetHealthView& DataPlane::targetHealth() const { return impl_->health; }

std::string DataPlane::rootCertificatePem() const { return impl_->tls ? impl_->tls->authority().rootPem() : ""; }

}  // namespace trellis::proxy
