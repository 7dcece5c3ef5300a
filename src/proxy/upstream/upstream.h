// The target side of an exchange, whatever the protocol: an UpstreamStream carries one request to one
// target and reports the response to its sink (the exchange). An UpstreamPool starts them: HTTP/1.1 on a
// pooled connection of its own (http1_upstream.h), HTTP/2 as a stream on a shared connection
// (http2_upstream.h). The exchange knows only these two interfaces, so a new kind of target plugs in as
// another pool, and the exchange's tests drive it with a fake one.
#pragma once
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/failure.h"
#include "proxy/http/message.h"
#include "proxy/metrics.h"
#include "snapshot/snapshot.h"

namespace trellis::proxy {

// The exchange, as its upstream stream sees it. Calls come on the worker thread; after onUpstreamComplete
// or onUpstreamFailed the stream is gone and the sink must not touch it again.
class UpstreamStreamSink {
 public:
  virtual ~UpstreamStreamSink() = default;
  virtual void onUpstreamHead(ResponseHead& head) = 0;  // interim (1xx) heads too
  virtual void onUpstreamBody(std::string_view data) = 0;
  virtual void onUpstreamTrailers(Headers& trailers) = 0;
  virtual void onUpstreamComplete() = 0;
  virtual void onUpstreamFailed(UpstreamFailure failure) = 0;
  // The target took the request body sent so far: send more.
  virtual void onUpstreamDrained() = 0;
  // Bytes moved either way: the target is not idle.
  virtual void onUpstreamActive() = 0;
  // The client is behind with the response: take no more of it from the target for now (resumeResponse).
  virtual bool responseBlocked() const = 0;
  // A read's worth of response went to the sink: send it on.
  virtual void onUpstreamReadDone() = 0;
};

// One request to one target.
class UpstreamStream {
 public:
  virtual ~UpstreamStream() = default;
  // The request body, as it comes (unframed: each protocol frames it its own way).
  virtual void sendBody(std::string_view data) = 0;
  // The end of the request, with its trailers.
  virtual void sendEnd(const Headers& trailers) = 0;
  // The target is behind with the request: read no more of the client's body (onUpstreamDrained).
  virtual bool blocked() const = 0;
  // The client caught up (responseBlocked turned false): take more of the response.
  virtual void resumeResponse() = 0;
  // Gives up on the request: HTTP/2 resets the stream, HTTP/1.1 closes the connection. The sink hears
  // nothing more, and the stream is gone.
  virtual void cancel() = 0;
  // When the exchange itself ends the attempt (a deadline): whether the request may go to a target again.
  virtual Resend resendIfAbandoned() const = 0;
};

// What goes to the target: the request head, routed and rewritten, and the fields to send with it (the
// client's own that may cross the proxy, then the proxy's: exchange/forwarded_headers.h).
struct UpstreamRequest {
  const snapshot::TargetGroup& group;
  const snapshot::Target& target;
  const RequestHead& head;
  const std::vector<HeaderView>& fields;
  TargetGroupCounters& stats;  // the worker's counters of `group`
  bool firstAttempt;  // retries never reuse a pooled HTTP/1.1 connection: it may be why the first failed
  // Where it came from, for a target that gets the request as an event (LAMBDA: lambda_upstream.h).
  const snapshot::Service* service;
  const snapshot::ServiceNetwork* network;  // null: reached without one
  const snapshot::Vpc* sourceVpc;
  const snapshot::Caller* caller;  // set only when SigV4 auth succeeded
};

class UpstreamPool {
 public:
  virtual ~UpstreamPool() = default;
  struct Opened {
    UpstreamStream* stream = nullptr;  // null: `failure` says why
    bool atLimit = false;              // no new connection to this target: maxConnectionsPerTarget are open
    UpstreamFailure failure;
  };
  // Starts `request` on its target: the head is on its way when this returns a stream.
  virtual Opened open(const UpstreamRequest& request, UpstreamStreamSink& sink) = 0;
  // Once a second: connect timeouts and idle pooled connections.
  virtual void sweep(int64_t nowMillis, bool stopping) = 0;
  // Shutdown: every connection closes.
  virtual void closeAll() = 0;
};

}  // namespace trellis::proxy
