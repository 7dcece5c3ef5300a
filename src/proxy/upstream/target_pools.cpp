#include "proxy/upstream/target_pools.h"

#include "proxy/http/http2_codec.h"
#include "proxy/tls_contexts.h"

namespace trellis::proxy {

UpstreamPool::Opened TargetPools::open(const UpstreamRequest& request, UpstreamStreamSink& sink) {
  SSL_CTX* clientTls = limits_.tls ? limits_.tls->clientContext() : nullptr;
  Opened opened = request.group.type == "LAMBDA" ? lambda_.open(request, sink, clientTls, limits_.connectionsPerTarget)
                  : upstreamIsHttp2(request.group.protocolVersion)
                      ? http2_.open(request, sink, clientTls, limits_.connectionsPerTarget)
                      : http1_.open(request, sink, clientTls, limits_.connectionsPerTarget);
  if (opened.atLimit) ++metrics_.targetConnectionLimit;
  return opened;
}

}  // namespace trellis::proxy
