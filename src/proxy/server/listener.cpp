#include "proxy/server/listener.h"

#include <cerrno>

namespace trellis::proxy {

void ListenSocket::onEvents(uint32_t) {
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accepted_(fd, port_, peer);
      continue;
    }
    // Out of descriptors (or kernel memory): the connection stays queued and the level-triggered
    // listener ready, so polling it again now would only spin. The worker stops for a moment.
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) starved_(errno);
    return;  // EAGAIN, or a transient error such as ECONNABORTED: the next event retries
  }
}

bool admitted(const snapshot::Snapshot& snap, const sockaddr_storage& peer, uint16_t port, snapshot::Address& address,
              WorkerMetrics& metrics) {
  const snapshot::Vpc* vpc = nullptr;
  if (snapshot::addressOf(reinterpret_cast<const sockaddr*>(&peer), address)) vpc = snap.sourceVpc(address);
  if (vpc && vpc->admits(address, port)) return true;
  ++(vpc ? metrics.deniedSecurityGroup : metrics.deniedNoVpc);
  return false;
}

}  // namespace trellis::proxy
