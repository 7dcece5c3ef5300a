// The one list of fields that goes to a target with a request, for HTTP/1.1 and HTTP/2 targets alike
// (docs/architecture.md, "Forward"): the client's own fields that may cross a proxy, then the ones the
// proxy owns, which a client can never set itself.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/message.h"
#include "snapshot/snapshot.h"

namespace trellis::proxy {

struct ClientConnection;

// Fields the proxy sets; whatever a client sends under these names is dropped.
bool ownedByProxy(std::string_view lowerName);

// Who sends what where: the pieces of the proxy's own fields.
struct ForwardedFor {
  const ClientConnection& client;
  std::string_view requestId;
  const snapshot::Service& service;
  const snapshot::ServiceNetwork* network;  // null: reached without a network (a VPC's own service)
  const snapshot::TargetGroup& group;
  const snapshot::Vpc* vpc;        // the client's source VPC
  const snapshot::Caller* caller;  // set only when SigV4 auth succeeded
};

class ForwardedHeaders {
 public:
  // The fields for `head`, to a target spoken to in HTTP/2 (`http2`) or HTTP/1.1. Hop-by-hop fields and
  // those the Connection field names never cross (RFC 9110 7.6.1), nor Content-Length to HTTP/1.1 targets,
  // whose framing the upstream writes itself; HTTP/2 keeps "te" (the HTTP/2 codec keeps only "trailers",
  // RFC 9113 8.2.2). The views point into `head`, `for`'s objects and this object: valid until the next
  // build.
  const std::vector<HeaderView>& build(const RequestHead& head, const ForwardedFor& to, bool http2);
  // The fields of a Lambda function's event: the client's own that cross a proxy (Content-Length kept), then
  // X-Forwarded-For,
  // the one field Lattice adds for functions (their requestContext carries the rest).
  const std::vector<HeaderView>& buildForFunction(const RequestHead& head, const ForwardedFor& to);

 private:
  // The client's fields that may cross the proxy; Content-Length too when `keepLength`.
  void copyClientFields(const RequestHead& head, bool http2, bool keepLength);
  void dropNamedByConnection(const RequestHead& head);
  std::vector<HeaderView> fields_;
  std::vector<std::string_view> connectionTokens_;
  std::string target_, network_;  // composed values
};

}  // namespace trellis::proxy
