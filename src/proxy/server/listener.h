// Accepting client connections on a listener port, and who may have one: only clients in a VPC, and of
// those only what the association's security groups allow (docs/configuration.md, "Who reaches what").
#pragma once
#include <sys/socket.h>

#include <cstdint>
#include <functional>

#include "proxy/metrics.h"
#include "proxy/server/event_loop.h"
#include "snapshot/snapshot.h"

namespace trellis::proxy {

class ListenSocket : public Pollable {
 public:
  // `accepted(fd, port, peer)` takes each new connection; `outOfDescriptors(errno)` hears when accept()
  // fails for want of descriptors or memory (the connection stays queued).
  using Accepted = std::function<void(int fd, uint16_t port, const sockaddr_storage& peer)>;
  using Starved = std::function<void(int error)>;
  ListenSocket(int fd, uint16_t port, Accepted accepted, Starved starved)
      : port_(port), accepted_(std::move(accepted)), starved_(std::move(starved)) {
    fd_ = fd;
  }
  void onEvents(uint32_t events) override;

 private:
  uint16_t port_;
  Accepted accepted_;
  Starved starved_;
};

// Whether the client at `peer` may connect to `port`; its address in `address` when it may. Refused
// connections count in `metrics`.
bool admitted(const snapshot::Snapshot& snap, const sockaddr_storage& peer, uint16_t port, snapshot::Address& address,
              WorkerMetrics& metrics);

}  // namespace trellis::proxy
