// Opening connections to targets: one way for HTTP/1, HTTP/2 and passthrough upstreams.
#pragma once
#include "snapshot/snapshot.h"

namespace trellis::proxy {

// A non-blocking TCP socket to `address`, with TCP_NODELAY, connecting. Returns the fd (`connected`
// says whether the connect already completed; otherwise wait for EPOLLOUT), or -1 on failure.
int connectNonBlocking(const snapshot::SocketAddress& address, bool& connected);

}  // namespace trellis::proxy
