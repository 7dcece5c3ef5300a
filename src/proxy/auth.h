// Auth on the data plane: who the caller is (SigV4 for `vpc-lattice-svcs`, else anonymous) and
// whether the identity policy, the service network's auth policy and the service's let it invoke the service.
//
// Runs once per request after routing, only when the network or the service uses AWS_IAM: with both at
// NONE nothing is verified and an Authorization header passes to the target untouched (it may be meant
// for it). Policy evaluation reuses one RequestContext per worker thread and its strings, so an allowed
// request allocates nothing here beyond what SigV4 verification itself needs.
// See docs/architecture.md, "Auth on the data plane", and
// https://docs.aws.amazon.com/vpc-lattice/latest/ug/auth-policies.html.
#pragma once
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/policy.h"
#include "proxy/http/message.h"
#include "snapshot/snapshot.h"

namespace trellis::proxy {

// What one request's auth check found, for the headers to the target and the access log.
struct AuthOutcome {
  bool enforced = false;                     // some layer uses AWS_IAM
  const snapshot::Caller* caller = nullptr;  // a caller whose signature checked out; null: anonymous
  bool unknownCaller = false;                // signed, but the signature did not check out
  const char* deniedBy = "";                 // "Identity" | "Network" | "Service" when a policy denied

  // The access log's resolvedUser: principal ARN | "Anonymous" | "Unknown"; empty when auth is off (null).
  std::string_view resolvedUser() const;
};

struct AuthRequest {
  const snapshot::Snapshot& snap;
  const snapshot::Service& service;
  const snapshot::ServiceNetwork* network;  // through which the client's VPC reaches the service
  const snapshot::Vpc* vpc;                 // the client's source VPC
  const RequestHead& head;
  uint16_t port;              // listener port
  std::string_view sourceIp;  // the client's address
  bool https;
};

// A TLS passthrough connection: action vpc-lattice-svcs:Connect on the service ARN, always
// anonymous (nothing is decrypted), with the keys Connect supports.
struct ConnectRequest {
  const snapshot::Snapshot& snap;
  const snapshot::Service& service;
  const snapshot::ServiceNetwork* network;
  const snapshot::Vpc* vpc;
  uint16_t port;
  std::string_view sourceIp;
};

// One per worker thread (forThisThread): the evaluation state reused from request to request.
class RequestAuthorizer {
 public:
  static RequestAuthorizer& forThisThread();

  // True when the request may go on. Otherwise `denial` holds the 403's text body: AWS's
  // AccessDeniedException message for a policy denial, the SigV4 error for a bad signature.
  bool authorize(const AuthRequest& request, AuthOutcome& out, std::string& denial);
  // The same for a passthrough connection; `denial` is the reason to log (the client only sees a close).
  bool authorizeConnect(const ConnectRequest& request, std::string& denial);

 private:
  void decodeQuery(std::string_view rawQuery);
  bool decide(const snapshot::Service& service, const snapshot::ServiceNetwork* network, AuthOutcome& out,
              std::string& denial);
  std::string_view currentTime();

  auth::RequestContext ctx_;
  std::string resource_;
  std::vector<std::pair<std::string, std::string>> query_;  // the first queryCount_ are this request's
  size_t queryCount_ = 0;
  char port_[8] = {};
  char now_[32] = {};
  time_t nowSecond_ = 0;
};

// Whether a request is signed with SigV4 (Authorization: AWS4-…, or a presigned X-Amz-* query). Signed
// requests are authenticated or refused, never treated as anonymous.
bool carriesSignature(const RequestHead& head, bool& presigned);

}  // namespace trellis::proxy
