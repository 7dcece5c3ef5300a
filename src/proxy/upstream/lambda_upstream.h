// LAMBDA target groups: each request is one call of the Lambda Invoke API on the config's endpoint
// (docs/lambda-targets.md). The request is gathered whole (at most 6 MB), made into Lattice's event
// (lambda_event.h), SigV4-signed and posted over HTTP/1.1 through the worker's Http1UpstreamPool; the
// function's answer, gathered whole too, becomes the response. To the exchange it is one more
// UpstreamStream; to the HTTP/1.1 pool, one more sink.
#pragma once
#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <unordered_set>

#include "proxy/server/event_loop.h"
#include "proxy/upstream/http1_upstream.h"
#include "proxy/upstream/lambda_event.h"
#include "proxy/upstream/upstream.h"

namespace trellis::proxy {

// Lattice's limits for functions, each way (https://docs.aws.amazon.com/vpc-lattice/latest/ug/lambda-functions.html).
inline constexpr size_t kMaxLambdaRequestBody = 6 * 1024 * 1024;
inline constexpr size_t kMaxLambdaResponse = 6 * 1024 * 1024;

class LambdaPool;

// One invocation. A Pollable without a descriptor, so that the loop frees it after the turn it ends in.
class LambdaInvocation : public Pollable, public UpstreamStream, private UpstreamStreamSink {
 public:
  LambdaInvocation(LambdaPool& pool, const UpstreamRequest& request, UpstreamStreamSink& sink);

  // UpstreamStream
  void sendBody(std::string_view data) override;
  void sendEnd(const Headers& trailers) override;
  bool blocked() const override { return false; }  // gathered: bounded by kMaxLambdaRequestBody
  void resumeResponse() override {}                // delivered whole
  void cancel() override;
  Resend resendIfAbandoned() const override { return invoked_ ? Resend::Idempotent : Resend::Any; }

  void onEvents(uint32_t) override {}

 private:
  friend class LambdaPool;
  // Posts the event; false (with the sink not told) when no connection to the endpoint could be had.
  bool invoke(UpstreamFailure& failure);
  // The sink hears `failure` at the end of the turn (never from inside its own call to this stream).
  void failLater(UpstreamFailure failure, const std::string& why);
  // Cancels the Invoke call if one is in flight, and retires this invocation.
  void end();
  void deliver();

  // UpstreamStreamSink: the endpoint's HTTP/1.1 response.
  void onUpstreamHead(ResponseHead& head) override;
  void onUpstreamBody(std::string_view data) override;
  void onUpstreamTrailers(Headers&) override {}
  void onUpstreamComplete() override;
  void onUpstreamFailed(UpstreamFailure failure) override;
  void onUpstreamDrained() override {}
  void onUpstreamActive() override {}
  bool responseBlocked() const override { return false; }
  void onUpstreamReadDone() override {}

  LambdaPool& pool_;
  UpstreamStreamSink* sink_;  // null once it heard the end
  const snapshot::TargetGroup& group_;
  const snapshot::Target& target_;
  TargetGroupCounters& stats_;
  LambdaRequest event_;  // its views point into the copies below
  std::string method_, path_, body_;
  std::vector<std::pair<std::string, std::string>> fields_;
  std::string serviceArn_, networkArn_, vpcArn_;
  bool headOnly_ = false;           // HEAD: the answer's body is not sent
  UpstreamStream* call_ = nullptr;  // the Invoke request in flight
  bool invoked_ = false;
  bool failing_ = false;  // failLater: the sink hears it at the end of the turn
  int64_t deadline_ = 0;  // the loop's clock once invoked: past it, 504
  int invokeStatus_ = 0;
  std::string functionError_;  // X-Amz-Function-Error of the answer
  std::string answer_;
};

class LambdaPool {
 public:
  LambdaPool(EventLoop& loop, Http1UpstreamPool& http1) : loop_(loop), http1_(http1) {}
  ~LambdaPool();  // frees the invocations nobody ended (a worker stopping)
  LambdaPool(const LambdaPool&) = delete;
  LambdaPool& operator=(const LambdaPool&) = delete;

  // Starts an invocation of `request`'s function. `clientTls`, `maxConnections`: for the endpoint's
  // connections, as for a target's.
  UpstreamPool::Opened open(const UpstreamRequest& request, UpstreamStreamSink& sink, SSL_CTX* clientTls,
                            int maxConnections);
  // Once a second: invocations past the endpoint's timeoutSeconds answer 504.
  void sweep(int64_t nowMillis);

 private:
  friend class LambdaInvocation;
  EventLoop& loop_;
  Http1UpstreamPool& http1_;
  SSL_CTX* clientTls_ = nullptr;
  int maxConnections_ = 1024;
  std::unordered_set<LambdaInvocation*> live_;
};

}  // namespace trellis::proxy
