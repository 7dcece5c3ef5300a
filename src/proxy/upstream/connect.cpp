#include "proxy/upstream/connect.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace trellis::proxy {

int connectNonBlocking(const snapshot::SocketAddress& address, bool& connected) {
  int fd = socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&address.storage), address.length);
  if (rc != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  connected = rc == 0;
  return fd;
}

std::optional<TargetSocket> openTargetSocket(const snapshot::Target& target, bool tls, SSL_CTX* context,
                                             std::string_view alpn, TargetGroupCounters& stats) {
  ++stats.totalConnections;
  TargetSocket out;
  if (tls) out.tls = context ? TlsSession::client(context, "", alpn, target.address) : nullptr;
  if (tls && !out.tls) {
    ++stats.connectionErrors;
    return std::nullopt;
  }
  out.fd = connectNonBlocking(target.socketAddress, out.connected);
  if (out.fd < 0) {
    ++stats.connectionErrors;
    return std::nullopt;
  }
  return out;
}

}  // namespace trellis::proxy
