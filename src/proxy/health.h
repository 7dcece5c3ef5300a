// Active health checks: one prober thread for the whole process, not per worker. It keeps
// a state per (target group, target, port), runs due probes concurrently with non-blocking sockets
// and flips the snapshot's HealthCell bits the workers read. The detailed status is for ListTargets.
// A probe is one GET on a fresh connection, plain or TLS (HTTPS, not verified), in HTTP/1.1 or, for
// protocolVersion HTTP2, in HTTP/2 (prior knowledge in plaintext, ALPN h2 over TLS); its status is matched.
#pragma once
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "proxy/target_health.h"
#include "snapshot/snapshot.h"
#include "tls/certificates.h"

namespace trellis::proxy {

class HealthChecker : public TargetHealthView {
 public:
  HealthChecker() = default;
  ~HealthChecker() override;
  void start();
  void stop();
  // A new snapshot: targets appear, disappear, change config.
  void update(snapshot::SnapshotPtr snap);
  TargetHealth status(const std::string& targetGroupId, const std::string& targetId, uint16_t port) const override;
  std::vector<CheckedTarget> checked() const override;

 private:
  using Clock = std::chrono::steady_clock;
  using Key = std::tuple<std::string, std::string, uint16_t>;
  enum class State { Initial, Healthy, Unhealthy };
  struct Entry {
    State state = State::Initial;
    std::string reason = "Elb.RegistrationInProgress";
    int successes = 0, failures = 0;
    Clock::time_point nextProbe{};
    bool scheduled = false;  // in schedule_ at nextProbe
    const snapshot::TargetGroup* group = nullptr;  // valid while snapshot_ is held
    const snapshot::Target* target = nullptr;
  };
  struct Probe;

  void run();
  void record(Entry& entry, bool ok, const std::string& failureReason);
  // Entries whose checks run (enabled, in use, not draining, resolvable) wait in schedule_ by their next
  // probe, so the prober looks only at what is due: at 100,000 targets with checks off, at nothing.
  void schedule(const Key& key, Entry& entry);
  void unschedule(const Key& key, Entry& entry);
  // The TLS client for HTTPS checks, as the snapshot's dataPlane settings want it; null when its CA cannot load.
  SSL_CTX* tlsClient();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  snapshot::SnapshotPtr snapshot_;
  std::map<Key, Entry> entries_;
  std::set<std::pair<Clock::time_point, Key>> schedule_;
  std::thread thread_;
  tls::SslCtxPtr tlsClient_;
  bool tlsClientVerifies_ = false;
  std::string tlsClientCaFile_;
};

// Lattice's target-group health metrics as Prometheus gauges, HealthyHostCount and UnHealthyHostCount by
// target_group, from what `health` sees (https://docs.aws.amazon.com/vpc-lattice/latest/ug/monitoring-cloudwatch.html).
std::string renderHealthMetrics(const TargetHealthView& health);

}  // namespace trellis::proxy
