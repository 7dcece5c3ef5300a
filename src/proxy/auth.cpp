#include "proxy/auth.h"

#include <chrono>
#include <cstdio>

#include "auth/sigv4.h"
#include "common/log.h"
#include "common/time.h"

namespace trellis::proxy {
namespace {

constexpr std::string_view kSigningName = "vpc-lattice-svcs";

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes into `out`, reusing its capacity. A malformed escape is kept as it is.
void decodeInto(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    int high = -1, low = -1;
    if (in[i] == '%' && i + 2 < in.size() && (high = hexValue(in[i + 1])) >= 0 &&
        (low = hexValue(in[i + 2])) >= 0) {
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      out += in[i];
    }
  }
}

}  // namespace

std::string_view AuthOutcome::resolvedUser() const {
  if (!enforced) return {};
  if (caller) return caller->identity.arn;
  return unknownCaller ? "Unknown" : "Anonymous";
}

bool carriesSignature(const RequestHead& head, bool& presigned) {
  presigned = false;
  if (const std::string* authorization = head.header("authorization")) {
    // SigV4 and SigV4A ("AWS4-ECDSA-P256-SHA256"); other schemes (Basic, Bearer) are the target's business.
    if (authorization->starts_with("AWS4-")) return true;
  }
  auto query = std::string_view(head.target).find('?');
  if (query == std::string_view::npos) return false;
  std::string_view q = std::string_view(head.target).substr(query + 1);
  presigned = q.find("X-Amz-Signature=") != std::string_view::npos ||
              q.find("X-Amz-Algorithm=") != std::string_view::npos ||
              q.find("X-Amz-Credential=") != std::string_view::npos;
  return presigned;
}

RequestAuthorizer& RequestAuthorizer::forThisThread() {
  static thread_local RequestAuthorizer authorizer;
  return authorizer;
}

void RequestAuthorizer::decodeQuery(std::string_view rawQuery) {
  queryCount_ = 0;
  while (!rawQuery.empty()) {
    size_t amp = rawQuery.find('&');
    std::string_view pair = rawQuery.substr(0, amp);
    rawQuery = amp == std::string_view::npos ? std::string_view() : rawQuery.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    if (queryCount_ == query_.size()) query_.emplace_back();
    auto& [key, value] = query_[queryCount_];
    decodeInto(pair.substr(0, eq), key);
    decodeInto(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), value);
    if (!key.empty()) ++queryCount_;
  }
}

std::string_view RequestAuthorizer::currentTime() {
  time_t now = time(nullptr);
  if (now != nowSecond_) {
    nowSecond_ = now;
    tm parts{};
    gmtime_r(&now, &parts);
    strftime(now_, sizeof now_, "%Y-%m-%dT%H:%M:%SZ", &parts);
  }
  return now_;
}

bool RequestAuthorizer::authorize(const AuthRequest& r, AuthOutcome& out, std::string& denial) {
  out = {};
  const snapshot::ServiceNetwork* network = r.network;
  bool networkIam = network && network->usesIam;
  if (!networkIam && !r.service.usesIam) return true;
  out.enforced = true;

  std::string_view target = r.head.target;
  size_t queryStart = target.find('?');
  std::string_view path = target.substr(0, queryStart);
  std::string_view rawQuery = queryStart == std::string_view::npos ? std::string_view() : target.substr(queryStart + 1);

  bool presigned = false;
  if (carriesSignature(r.head, presigned)) {
    // Payload signing is unsupported. Bodies stream to the target and are never held for a
    // hash, so a signed request must claim UNSIGNED-PAYLOAD; a presigned one without a body may keep
    // the empty body's hash its signer used. See
    // https://docs.aws.amazon.com/vpc-lattice/latest/ug/sigv4-authenticated-requests.html.
    const std::string* claimed = r.head.header("x-amz-content-sha256");
    bool unsignedPayload = claimed && *claimed == auth::kUnsignedPayload;
    if (!unsignedPayload && !(presigned && !claimed && !r.head.hasBody())) {
      out.unknownCaller = true;
      denial = "InvalidSignatureException: Payload signing is not supported by vpc-lattice-svcs: sign the request "
               "with x-amz-content-sha256: UNSIGNED-PAYLOAD";
      return false;
    }
    const snapshot::Caller* found = nullptr;
    const snapshot::Snapshot& snap = r.snap;
    auth::CredentialLookup lookup = [&snap, &found](std::string_view accessKeyId) -> const model::Identity* {
      found = snap.callerByAccessKey(accessKeyId);
      return found ? &found->identity : nullptr;
    };
    auth::SigV4Request signedRequest{r.head.method, path, rawQuery, r.head.headers, {}};
    auth::VerifyResult verified = auth::verifySigV4(signedRequest, kSigningName, snap.region, lookup, systemNow());
    if (!verified.ok()) {
      out.unknownCaller = true;
      denial = verified.errorCode + ": " + verified.message;
      return false;
    }
    out.caller = found;
  }

  ctx_.clear();
  auth::addPrincipalKeys(ctx_, out.caller ? &out.caller->identity : nullptr);
  std::snprintf(port_, sizeof port_, "%u", static_cast<unsigned>(r.port));
  auth::LatticeRequest lattice;
  lattice.serviceArn = r.service.arn;
  if (network) lattice.serviceNetworkArn = network->arn;
  if (r.vpc) {
    lattice.sourceVpc = r.vpc->id;
    lattice.sourceVpcOwnerAccount = r.snap.accountId;
  }
  lattice.port = port_;
  lattice.method = r.head.method;
  lattice.path = path;
  lattice.headers = &r.head.headers;
  lattice.sourceIp = r.sourceIp;
  lattice.currentTime = currentTime();
  lattice.secureTransport = r.https;
  auth::addLatticeRequestKeys(ctx_, lattice);
  for (const auto& [key, value] : r.service.tags) ctx_.add("aws:ResourceTag/", key, value, false);
  // RequestQueryString/<key> (ArrayOfString) from this worker's reused decoded pairs.
  decodeQuery(rawQuery);
  for (size_t i = 0; i < queryCount_; ++i) {
    ctx_.add("vpc-lattice-svcs:RequestQueryString/", query_[i].first, query_[i].second, true);
  }
  // The resource: the service ARN plus the request path ("…/svc-x/" for "/").
  resource_.assign(r.service.arn);
  if (!path.starts_with('/')) resource_ += '/';
  resource_.append(path);
  ctx_.resource = resource_;

  return decide(r.service, network, out, denial);
}

bool RequestAuthorizer::authorizeConnect(const ConnectRequest& r, std::string& denial) {
  bool networkIam = r.network && r.network->usesIam;
  if (!networkIam && !r.service.usesIam) return true;
  ctx_.clear();
  auth::addPrincipalKeys(ctx_, nullptr);
  std::snprintf(port_, sizeof port_, "%u", static_cast<unsigned>(r.port));
  auth::LatticeRequest lattice;
  lattice.connect = true;
  lattice.serviceArn = r.service.arn;
  if (r.network) lattice.serviceNetworkArn = r.network->arn;
  if (r.vpc) {
    lattice.sourceVpc = r.vpc->id;
    lattice.sourceVpcOwnerAccount = r.snap.accountId;
  }
  lattice.port = port_;
  lattice.sourceIp = r.sourceIp;
  lattice.currentTime = currentTime();
  auth::addLatticeRequestKeys(ctx_, lattice);
  for (const auto& [key, value] : r.service.tags) ctx_.add("aws:ResourceTag/", key, value, false);
  ctx_.resource = r.service.arn;
  AuthOutcome out;
  return decide(r.service, r.network, out, denial);
}

bool RequestAuthorizer::decide(const snapshot::Service& service, const snapshot::ServiceNetwork* network,
                               AuthOutcome& out, std::string& denial) {
  auth::LatticeAuthPolicies policies;
  policies.identity = out.caller && out.caller->policy ? out.caller->policy.get() : nullptr;
  policies.networkUsesIam = network && network->usesIam;
  policies.network = network ? network->authPolicy.get() : nullptr;
  policies.serviceUsesIam = service.usesIam;
  policies.service = service.authPolicy.get();
  auth::LatticeDecision decision = auth::authorizeLattice(policies, ctx_);
  if (decision.allowed) return true;
  switch (decision.deniedBy) {
    case auth::AuthLayer::Identity: out.deniedBy = "Identity"; break;
    case auth::AuthLayer::Network: out.deniedBy = "Network"; break;
    case auth::AuthLayer::Service: out.deniedBy = "Service"; break;
  }
  denial = auth::accessDeniedMessage(decision, ctx_);
  return false;
}

}  // namespace trellis::proxy
