// The data plane's public entry point: the HTTP proxy that carries the services' traffic, driven
// only by routing snapshots. trellisd creates one DataPlane, points it at the SnapshotBuilder and
// exposes renderMetrics(), listenerStatus() and targetHealth() through the admin port and the API.
//
//   compile::SnapshotBuilder builder(store, config);     // store.watch → builder.notifyCommitted
//   proxy::DataPlane dataPlane({.bindAddress = "127.0.0.1", .workers = 0, .dataDir = dir}, builder);
//   builder.start(); dataPlane.start(); ... dataPlane.stop();
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/target_health.h"
#include "snapshot/source.h"

namespace trellis::proxy {

struct DataPlaneOptions {
  std::string bindAddress = "127.0.0.1";  // --proxy-bind
  int workers = 0;                        // event-loop threads; 0: one per CPU
  std::string dataDir = ".";              // access logs are written under {dataDir}/access-logs
  int gracefulStopMillis = 10000;         // stop(): how long in-flight requests may take to finish
};

// Whether the proxy could listen on a listener port (HTTP, HTTPS and TLS_PASSTHROUGH listeners alike).
struct ListenerBindStatus {
  uint16_t port = 0;
  bool bound = false;
  std::string error;  // strerror text when !bound
};

class DataPlane {
 public:
  DataPlane(DataPlaneOptions options, snapshot::SnapshotSource& source);
  ~DataPlane();  // stops if running
  DataPlane(const DataPlane&) = delete;
  DataPlane& operator=(const DataPlane&) = delete;

  // Starts the workers, the health prober and the access-log writer, and opens the listener ports of
  // the current snapshot. Later snapshots open and close ports as listeners come and go.
  void start();
  // Stops accepting, lets in-flight requests finish (up to gracefulStopMillis), then joins.
  void stop();

  // Prometheus text: Lattice's metric names by service and target group, merged over workers.
  std::string renderMetrics() const;
  std::vector<ListenerBindStatus> listenerStatus() const;
  const TargetHealthView& targetHealth() const;
  // Trellis's root CA (PEM), which signs the generated names' certificates; empty when HTTPS is disabled.
  // For clients to trust: trellisd serves it as GET /ca.pem on the admin port.
  std::string rootCertificatePem() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace trellis::proxy
