// TLS_PASSTHROUGH listeners: the ClientHello's SNI picked the service (exactly its custom domain
// name, see tls_transport.h); the connection is spliced byte for byte to a target of the listener's default
// action, a TCP target group picked by weight, without terminating TLS or touching any byte. The splice
// closes after the service's idle timeout without data in either direction, and after 10 minutes in any case.
// Lattice's TLS listeners: https://docs.aws.amazon.com/vpc-lattice/latest/ug/tls-listeners.html
#pragma once
#include <cstdint>
#include <string>

#include "snapshot/snapshot.h"

namespace trellis::proxy {

class EventLoop;
class RouterState;

// Takes over `clientFd` (already non-blocking, out of the loop's epoll set) and adopts both ends into
// `loop`. `firstBytes` were read from the client already (the ClientHello) and go to the target first.
// Closes the socket when no target can be picked or connected. False when the connection was refused.
bool startPassthrough(EventLoop& loop, RouterState& router, const snapshot::Snapshot& snap, int clientFd, const std::string& clientIpPort, const snapshot::Service& service,
                      const snapshot::Listener& listener, std::string firstBytes);

}  // namespace trellis::proxy
