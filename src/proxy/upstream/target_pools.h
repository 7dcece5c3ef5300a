// The worker's UpstreamPool: HTTP/1.1 or HTTP/2 to a target group's targets, as its protocolVersion says,
// or an invocation of a LAMBDA group's function.
#pragma once
#include "proxy/metrics.h"
#include "proxy/server/event_loop.h"
#include "proxy/upstream/http1_upstream.h"
#include "proxy/upstream/http2_upstream.h"
#include "proxy/upstream/lambda_upstream.h"
#include "proxy/upstream/upstream.h"

namespace trellis::proxy {

class TlsContextProvider;

// What the worker sets and the pools read: its share of connections per target, and the client TLS
// context of HTTPS target groups.
struct PoolLimits {
  int connectionsPerTarget = 1024;
  TlsContextProvider* tls = nullptr;  // null: HTTPS targets are unreachable
};

class TargetPools : public UpstreamPool {
 public:
  TargetPools(EventLoop& loop, WorkerMetrics& metrics, const PoolLimits& limits)
      : metrics_(metrics), limits_(limits), http1_(loop), http2_(loop), lambda_(loop, http1_) {}
  Opened open(const UpstreamRequest& request, UpstreamStreamSink& sink) override;
  void sweep(int64_t nowMillis, bool stopping) override {
    http1_.sweep(nowMillis, stopping);
    lambda_.sweep(nowMillis);
  }
  void closeAll() override { http1_.closeAll(); }  // HTTP/2 connections are the loop's adopted ones

 private:
  WorkerMetrics& metrics_;
  const PoolLimits& limits_;
  Http1UpstreamPool http1_;
  Http2UpstreamPool http2_;
  LambdaPool lambda_;  // its calls go through http1_
};

}  // namespace trellis::proxy
