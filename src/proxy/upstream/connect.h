// Opening connections to targets: one way for HTTP/1, HTTP/2 and passthrough upstreams.
#pragma once
#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/metrics.h"
#include "snapshot/snapshot.h"
#include "tls/tls.h"

namespace trellis::proxy {

// How long a connection to a target may take to come up (TLS included for passthrough and HTTP/2).
inline constexpr int64_t kConnectTimeoutMs = 5000;

// The pools' key of a connection to `target`: "10.0.0.1:8080", or "tls 10.0.0.1:443" for HTTPS target
// groups, whose connections never carry plaintext requests.
inline std::string targetKey(const snapshot::Target& target, bool tls) {
  return tls ? "tls " + target.ipPort : target.ipPort;
}

using tls::TlsSession;

// A non-blocking TCP socket to `address`, with TCP_NODELAY, connecting. Returns the fd (`connected`
// says whether the connect already completed; otherwise wait for EPOLLOUT), or -1 on failure.
int connectNonBlocking(const snapshot::SocketAddress& address, bool& connected);

// A connection to a target group's target, counted in `stats` (TotalConnectionCount; ConnectionErrorCount
// when it cannot be made). `tls`: over TLS with `context` (null: TLS is unavailable, which is an error),
// offering `alpn`, the certificate checked against the target's address when the context verifies peers.
struct TargetSocket {
  int fd = -1;
  bool connected = false;  // as connectNonBlocking says
  std::unique_ptr<TlsSession> tls;
};
std::optional<TargetSocket> openTargetSocket(const snapshot::Target& target, bool tls, SSL_CTX* context,
                                             std::string_view alpn, TargetGroupCounters& stats);

}  // namespace trellis::proxy
