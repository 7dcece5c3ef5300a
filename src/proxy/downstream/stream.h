// The client side of one exchange: the current request of an HTTP/1.1 connection, or one HTTP/2 stream
// (downstream/connection.h, downstream/http2_stream.h). The exchange talks only to this, never to a
// connection's codec, so its tests drive it with a fake one.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/failure.h"
#include "proxy/http/message.h"
#include "proxy/tls_transport.h"
#include "snapshot/snapshot.h"

namespace trellis::proxy {

// The client's connection, as its exchanges see it.
struct ClientConnection {
  uint16_t port = 0;          // the listener's
  std::string portText;       // the same, for x-forwarded-port
  snapshot::Address address;  // the client's, for its source VPC
  std::string ip;             // for x-forwarded-for and auth's aws:SourceIp
  std::string ipPort;         // for logs: "10.0.0.1:51000", "[fd00::1]:51000"
  DownstreamTransport transport;  // plaintext, or TLS terminated here
};

class DownstreamStream {
 public:
  virtual ~DownstreamStream() = default;
  virtual bool http2() const = 0;
  // The request was routed to `service`: its idle timeout is the connection's.
  virtual void routedTo(const snapshot::Service& service) = 0;
  // The final response head: `head.headers` minus hop-by-hop ones and x-amzn-requestid, plus `requestId`.
  // `request` is the request it answers (its version and method decide the framing).
  virtual void sendHead(const ResponseHead& head, const RequestHead& request, std::string_view requestId) = 0;
  virtual void sendContinue(const RequestHead& request) = 0;  // a target's 100 Continue, where the client can take it
  virtual void sendBody(std::string_view data) = 0;
  virtual void sendEnd(const Headers& trailers) = 0;
  // Response bytes not yet on the wire: the target is not read while this is above kHighWater.
  virtual size_t bufferedBytes() const = 0;
  // The target took the request body sent so far: read more of it.
  virtual void resumeRequestBody() = 0;
  // The response is complete but the request is not: the rest of the request has nowhere to go.
  virtual void abandonRequest() = 0;
  // Whether a local answer may finish the exchange before the request has been read to its end.
  virtual bool endsBeforeRequest() const = 0;
  // The exchange is over and logged: the HTTP/1.1 connection moves on to its next request, the HTTP/2
  // stream lets go of it. The Exchange is destroyed in here: the caller returns right after.
  virtual void exchangeDone() = 0;
  // The response cannot be completed: cut the client off (HTTP/1.1: the connection; HTTP/2: the stream).
  virtual void abortStream(Failure failure) = 0;
  // Writes what the exchange produced.
  virtual void flushOutput() = 0;
};

}  // namespace trellis::proxy
