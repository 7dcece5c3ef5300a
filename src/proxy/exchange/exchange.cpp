#include "proxy/exchange/exchange.h"

#include <time.h>

#include <algorithm>

#include "common/log.h"
#include "common/request_target.h"
#include "common/strings.h"
#include "proxy/exchange/forwarded_headers.h"
#include "proxy/http/http2_codec.h"
#include "proxy/io/buffer.h"
#include "proxy/router.h"
#include "proxy/server/worker_context.h"

namespace trellis::proxy {
namespace {

constexpr size_t kMaxReplay = 64 * 1024;  // request body kept for a retry on another target
constexpr int kDefaultIdleTimeoutSeconds = 60;  // Lattice's, until a service is routed to

double monotonicMillisPrecise() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1000.0 + static_cast<double>(ts.tv_nsec) / 1e6;
}

}  // namespace

Exchange::Exchange(WorkerContext& worker, ClientConnection& client, DownstreamStream& stream)
    : w_(worker), client_(client), down_(stream), serial_(worker.newExchangeSerial()),
      idleTimeoutMs_(kDefaultIdleTimeoutSeconds * 1000) {
  startMs_ = monotonicMillisPrecise();
  w_.exchanges().insert(this);
}

Exchange::~Exchange() {
  snapshot::releaseSnapshot(std::move(snap_));
  w_.exchanges().erase(this);
  if (timed_) w_.disarmTimer(this);
}

void Exchange::armTimer(int64_t atMillis) {
  timed_ = true;
  w_.armTimer(this, atMillis);
}

void Exchange::giveReplayStorage(std::string storage) {
  replay_ = std::move(storage);
  replay_.clear();
}

void Exchange::start(RequestHead&& requestHead) {
  snap_ = w_.snapshot();
  head_ = std::move(requestHead);
  bytesReceived_ = head_.headerBytes;
  const std::string* id = head_.header("x-amzn-requestid");
  requestId_ = id && !id->empty() ? id->substr(0, 512) : w_.newRequestId();
  // Per request, not per connection: the snapshot (and with it the VPC's associations) may have changed.
  vpc_ = snap_->sourceVpc(client_.address);
  // One form of the target for the rules, auth, rewrites, the access log and the target
  // (docs/request-paths.md); absolute-form's authority replaces the Host header (RFC 9112 3.2.2).
  std::string authority;
  if (const char* error =
          normalizeRequestTarget(head_.target, head_.method, !down_.http2(), snap_->encodedSlashes, authority)) {
    logDebug("proxy: 400 from ", client_.ipPort, ": ", error);
    ++w_.stats().badRequests;
    return respondLocal(400, Failure::ClientProtocolError);
  }
  if (!authority.empty()) {
    head_.host = toLower(hostOfAuthority(authority));
    std::erase_if(head_.headers, [](const auto& h) { return h.first == "host"; });
    head_.headers.insert(head_.headers.begin(), {"host", std::move(authority)});
  }

  RouteResult r = route(*snap_, vpc_, client_.port, head_);
  if (r.kind == RouteResult::Kind::NoService) {
    ++(r.unreachable ? w_.stats().unreachableService : w_.stats().unknownHost);
    return respondLocal(404);
  }
  // Ports may carry listeners of different protocols: the one that matched must be this connection's. Over
  // TLS the Host must also name the service the SNI did, whose certificate this connection was shown.
  const DownstreamTransport& transport = client_.transport;
  bool tls = transport.tls() != nullptr;
  if (tls && r.service->id != transport.serviceId()) return respondLocal(421, Failure::ClientProtocolError);
  using snapshot::ListenerProtocol;
  if (r.listener->protocol != (tls ? ListenerProtocol::Https : ListenerProtocol::Http)) {
    return respondLocal(400, Failure::ClientProtocolError);
  }
  service_ = r.service;
  idleTimeoutMs_ = int64_t{r.service->idleTimeoutSeconds} * 1000;
  down_.routedTo(*r.service);
  network_ = r.network;
  serviceStats_ = &w_.stats().services[r.service->id];
  ++serviceStats_->active;
  if (r.service->usesIam || (r.network && r.network->usesIam)) {
    std::string denial;
    AuthRequest request{*snap_, *r.service, r.network, vpc_, head_, client_.port, client_.ip, tls};
    if (!RequestAuthorizer::forThisThread().authorize(request, auth_, denial)) {
      return respondLocal(403, Failure::ClientAccessDenied, denial);
    }
  }
  // Trellis rule extensions: a redirect answers here; a rewrite and header modifier change what is forwarded.
  rule_ = r.rule;
  if (rule_ && rule_->redirect.enabled) {
    return respondLocal(rule_->redirect.statusCode, Failure::None, {},
                        redirectLocation(*rule_, head_, tls, client_.port));
  }
  if (rule_) rewriteRequest(*rule_, head_);
  if (r.action->kind == snapshot::Action::Kind::FixedResponse) return respondLocal(r.action->statusCode);
  const snapshot::WeightedTargetGroup* weighted = w_.router().pickTargetGroup(*r.action);
  if (!weighted || !weighted->group) return respondLocal(503);
  // Which request protocols a target group's protocolVersion can carry (docs/architecture.md, "HTTP/2 and
  // gRPC").
  RequestProtocol protocol = requestProtocol(down_.http2(), head_);
  grpc_ = protocol == RequestProtocol::Grpc;
  ProtocolVerdict verdict = checkProtocolCompatibility(protocol, weighted->group->protocolVersion, head_.method);
  if (!verdict.ok()) return respondLocal(verdict.status, verdict.failure);
  group_ = weighted->group;
  groupStats_ = &w_.stats().targetGroups[group_->id];
  if (rule_ && rule_->requestTimeoutMs > 0) {
    requestDeadline_ = w_.nowMillis() + rule_->requestTimeoutMs;
    armTimer(requestDeadline_);
  }
  if (!down_.http2()) return startUpstream(nullptr);
  awaitingStart_ = true;  // Http2Downstream::startUpstreams(), once the read's frames are all handled
}

void Exchange::reject(int status) {
  if (requestId_.empty()) requestId_ = w_.newRequestId();
  dropUpstream();
  requestDone_ = true;  // nothing more of this request is read
  respondLocal(status, Failure::ClientProtocolError);
}

template <typename Task>
void Exchange::atEndOfTurn(Task task) {
  WorkerContext* worker = &w_;
  Exchange* self = this;
  uint64_t id = serial_;
  w_.loop().defer([worker, self, id, task] {
    if (worker->exchanges().count(self) && self->serial_ == id) task(*self);
  });
}

void Exchange::startDeferred() {
  awaitingStart_ = false;
  // In order, as if it had started at once: the head, what of the body came meanwhile, its end. Each
  // step may end the exchange (a local answer, a failure).
  bool ended = requestDone_;
  requestDone_ = false;
  std::string body = std::move(earlyBody_);
  WorkerContext& worker = w_;
  uint64_t id = serial_;
  auto alive = [&] { return worker.exchanges().count(this) && serial_ == id; };
  startUpstream(nullptr);
  if (!body.empty()) {
    if (!alive()) return;
    forwardBody(body);
  }
  if (ended) {
    if (!alive()) return;
    requestComplete();
  }
  if (!body.empty() && alive() && !bodyBlocked()) down_.resumeRequestBody();  // the window held back meanwhile
}

void Exchange::refreshDeadline() { upstreamDeadline_ = w_.nowMillis() + idleTimeoutMs_; }

void Exchange::startUpstream(const snapshot::Target* avoid) {
  target_ = w_.router().pickTarget(*group_, avoid);
  if (!target_) target_ = avoid && !avoid->draining ? avoid : nullptr;  // a lone target gets its retry too
  if (!target_) return respondLocal(503);
  ++attempts_;
  if (rule_ && rule_->backendTimeoutMs > 0) {
    attemptDeadline_ = w_.nowMillis() + rule_->backendTimeoutMs;
    armTimer(attemptDeadline_);
  }
  static thread_local ForwardedHeaders forwarded;  // reused: its vectors keep their capacity
  ForwardedFor to{client_, requestId_, *service_, network_, *group_, vpc_, auth_.caller};
  const auto& fields = group_->type == "LAMBDA" ? forwarded.buildForFunction(head_, to)
                                                : forwarded.build(head_, to, upstreamIsHttp2(group_->protocolVersion));
  UpstreamPool::Opened opened = w_.upstreams().open(
      {*group_, *target_, head_, fields, *groupStats_, attempts_ == 1, service_, network_, vpc_, auth_.caller}, *this);
  if (opened.atLimit) return respondLocal(503, Failure::TargetConnectionError);
  if (!opened.stream) return upstreamFailed(opened.failure);
  upstream_ = opened.stream;
  refreshDeadline();
  ++groupStats_->requests.active;
  if (!head_.hasBody()) {
    requestSentMs_ = monotonicMillisPrecise();
    return;
  }
  if (attempts_ > 1 && !replay_.empty()) upstream_->sendBody(replay_);  // a retry: the body so far again
  if (requestDone_) {
    upstream_->sendEnd(requestTrailers_);
    requestSentMs_ = monotonicMillisPrecise();
  }
}

void Exchange::keepForReplay(std::string_view bytes) {
  if (!replayValid_) return;
  // While a retry waits, an HTTP/2 client may still send what its stream window allows (bodyBlocked stops
  // the window from reopening, but cannot take back what it granted): kept as well, so a body that was
  // small enough when the attempt failed is retried whatever arrives meanwhile. HTTP/1.1 clients are not
  // read from meanwhile.
  size_t limit = retryAt_ != 0 && down_.http2() ? kMaxReplay + kStreamHighWater : kMaxReplay;
  if (replay_.size() + bytes.size() > limit) {
    replayValid_ = false;
    replay_.clear();
    replay_.shrink_to_fit();
  } else {
    replay_.append(bytes);
  }
}

bool Exchange::bodyBlocked() const {
  if (local_) return false;
  // While a retry or the deferred start waits, what the client sends is kept for it: not more than that.
  return awaitingStart_ || retryAt_ != 0 || (upstream_ && upstream_->blocked());
}

bool Exchange::responseBlocked() const { return down_.bufferedBytes() >= kHighWater; }

void Exchange::requestBody(std::string_view data) {
  bytesReceived_ += data.size();
  if (awaitingStart_ && !local_) {
    earlyBody_.append(data);  // bounded by the stream window: bodyBlocked() keeps it shut meanwhile
    return;
  }
  forwardBody(data);
}

void Exchange::forwardBody(std::string_view data) {
  if (local_) return;  // answered already: the body is read and dropped
  keepForReplay(data);  // between attempts too: the next target gets it
  if (!upstream_) return;
  upstream_->sendBody(data);
  refreshDeadline();
}

void Exchange::requestComplete() {
  requestDone_ = true;
  if (!local_ && upstream_) {
    if (head_.hasBody()) upstream_->sendEnd(requestTrailers_);
    requestSentMs_ = monotonicMillisPrecise();
  }
  if (responseDone_) finishLater(true);
}

void Exchange::finishLater(bool needRequestDone) {
  atEndOfTurn([needRequestDone](Exchange& e) {
    if (e.responseDone_ && (!needRequestDone || e.requestDone_)) e.finish();
  });
}

void Exchange::dropUpstream() {
  if (!upstream_) return;
  if (groupStats_) --groupStats_->requests.active;
  UpstreamStream* stream = upstream_;
  upstream_ = nullptr;
  stream->cancel();
}

void Exchange::abort(Failure failure) {
  if (failure_ == Failure::None) failure_ = failure;
  dropUpstream();
  finish();
}

bool Exchange::mayResend(Resend resend) const {
  if (resend == Resend::Any) return true;
  if (resend == Resend::No) return false;
  // RFC 9110 9.2.2: the target may have acted on it. PUT and DELETE are idempotent by definition; any
  // other method goes again only when the rule's own retry policy says so.
  const std::string& m = head_.method;
  bool idempotent = m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
  return idempotent || (rule_ && rule_->retry.attempts > 0);
}

int Exchange::retriesAllowed(bool ofConnection) const {
  int configured = rule_ ? rule_->retry.attempts : 0;
  return ofConnection ? std::max(configured, 1) : configured;
}

void Exchange::retry(const snapshot::Target* failed, const char* why, bool later) {
  if (groupStats_) ++groupStats_->retries;
  logDebug("proxy: ", why, " from ", failed ? failed->ipPort : "-", " (attempt ", attempts_, "), retrying");
  responseStarted_ = false;
  int backoff = rule_ ? rule_->retry.backoffMs : 0;
  if (backoff == 0 && !later) return startUpstream(failed);
  retryAvoid_ = failed;
  retryReason_ = why;
  retryAt_ = w_.nowMillis() + backoff;
  armTimer(retryAt_);
}

bool Exchange::retriedStatus(int responseStatus) {
  if (!rule_ || attempts_ > retriesAllowed(false) || !replayValid_ || !rule_->retry.retriesStatus(responseStatus)) {
    return false;
  }
  logDebug("proxy: ", service_->id, " rule ", rule_->id, " retries status ", responseStatus);
  dropUpstream();
  retry(target_, "RetriedStatus", true);
  return true;
}

void Exchange::onTimer(int64_t now) {
  if (responseHeadSent_) {
    requestDeadline_ = attemptDeadline_ = retryAt_ = 0;
    return;
  }
  if (requestDeadline_ != 0 && now >= requestDeadline_) {
    logInfo("proxy: request timeout (", rule_->requestTimeoutMs, " ms) for ", service_->id, " rule ", rule_->id,
            " after ", attempts_, " attempt(s)");
    requestDeadline_ = attemptDeadline_ = retryAt_ = 0;
    dropUpstream();
    if (!requestDone_) down_.abandonRequest();
    return respondLocal(504, Failure::TargetDataTimeout);
  }
  if (retryAt_ != 0 && now >= retryAt_) {
    retryAt_ = 0;
    if (!replayValid_) {  // the client sent more than can be kept while the retry waited
      logInfo("proxy: ", retryReason_, " for ", service_->id, ": request body too large to retry");
      if (!requestDone_) down_.abandonRequest();
      return respondLocal(502, Failure::TargetConnectionError);
    }
    down_.resumeRequestBody();
    return startUpstream(retryAvoid_);
  }
  if (attemptDeadline_ != 0 && now >= attemptDeadline_ && upstream_) {
    attemptDeadline_ = 0;
    upstreamFailed({Failure::TargetDataTimeout, upstream_->resendIfAbandoned()});
  }
}

int64_t Exchange::nextTimer() const {
  if (responseHeadSent_) return 0;
  int64_t next = 0;
  for (int64_t t : {requestDeadline_, upstream_ ? attemptDeadline_ : 0, retryAt_}) {
    if (t != 0 && (next == 0 || t < next)) next = t;
  }
  return next;
}

void Exchange::onSweep(int64_t now) {
  if (upstream_ && now > upstreamDeadline_) upstreamFailed({Failure::TargetDataTimeout, Resend::No});
}

void Exchange::onUpstreamFailed(UpstreamFailure failure) {
  if (upstream_) {
    if (groupStats_) --groupStats_->requests.active;
    upstream_ = nullptr;  // the stream is gone already
  }
  upstreamFailed(failure);
}

void Exchange::upstreamFailed(UpstreamFailure failure) {
  dropUpstream();
  const snapshot::Target* failed = target_;
  const char* reason = failureReason(failure.kind);
  int allowed = retriesAllowed(failure.ofConnection());
  if (mayResend(failure.resend) && !responseStarted_ && replayValid_ && attempts_ <= allowed) {
    return retry(failed, reason, false);
  }
  if (failure.resend == Resend::Idempotent && !responseStarted_ && replayValid_ && attempts_ <= allowed) {
    logInfo("proxy: ", head_.method, " for ", service_->id, " not retried: it may have reached ",
            failed ? failed->ipPort : "-", " (RFC 9110 9.2.2; a rule with a retry policy allows it)");
  }
  if (!responseHeadSent_) {
    logInfo("proxy: ", reason, " for ", service_ ? service_->id : "-", " via ", failed ? failed->ipPort : "-");
    if (!requestDone_) down_.abandonRequest();
    return respondLocal(failure.status(), failure.kind);
  }
  // The response was already under way: all we can do is cut the client off.
  failure_ = failure.kind;
  down_.abortStream(failure.kind);
}

void Exchange::respondLocal(int code, Failure failure, std::string_view body, std::string_view location) {
  local_ = true;
  status_ = code;
  failure_ = failure;
  responseHeadSent_ = responseDone_ = true;
  ResponseHead response;
  response.status = code;
  response.hasContentLength = true;
  response.contentLength = body.size();
  // Empty ends with the head: on HTTP/2, HEADERS with END_STREAM (no DATA frame to follow, which a reset
  // right behind a cut header block would drop).
  response.bodyless = head_.method == "HEAD" || body.empty();
  if (response.bodyless) response.headers.emplace_back("content-length", std::to_string(body.size()));
  if (!body.empty()) response.headers.emplace_back("content-type", "text/plain");
  if (!location.empty()) response.headers.emplace_back("location", location);
  down_.sendHead(response, head_, requestId_);
  if (!response.bodyless && !body.empty()) down_.sendBody(body);
  down_.sendEnd({});
  if (requestDone_ || down_.endsBeforeRequest()) finishLater(false);
  down_.flushOutput();
}

void Exchange::onUpstreamHead(ResponseHead& response) {
  refreshDeadline();
  if (firstResponseMs_ == 0) firstResponseMs_ = monotonicMillisPrecise();
  if (response.status < 200) {
    if (response.status == 100) down_.sendContinue(head_);
    return;
  }
  responseStarted_ = true;
  if (rule_ && rule_->retry.attempts > 0 && retriedStatus(response.status)) return;
  status_ = response.status;
  responseHeadSent_ = true;
  upstreamKeepAlive_ = response.keepAlive;
  if (grpc_) grpcCode_ = grpcStatus(response.headers);  // a trailers-only response has it here
  if (rule_ && !rule_->responseHeaders.empty()) applyHeaderModifier(rule_->responseHeaders, response.headers);
  down_.sendHead(response, head_, requestId_);
}

void Exchange::onUpstreamBody(std::string_view data) {
  refreshDeadline();
  down_.sendBody(data);
}

void Exchange::onUpstreamComplete() {
  if (upstream_) {
    --groupStats_->requests.active;
    upstream_ = nullptr;  // the stream is over: it let go of this exchange
  }
  responseComplete();
}

void Exchange::responseComplete() {
  down_.sendEnd(responseTrailers_);
  if (grpc_ && grpcStatus(responseTrailers_) >= 0) grpcCode_ = grpcStatus(responseTrailers_);
  responseDone_ = true;
  if (!requestDone_) down_.abandonRequest();  // the rest of the request body has nowhere to go
  finish();
}

void Exchange::downstreamDrained() {
  if (upstream_) upstream_->resumeResponse();
}

void Exchange::finish() {
  double end = monotonicMillisPrecise();
  double ms = end - startMs_;
  int code = status_ ? status_ : 400;
  if (serviceStats_) {
    auto& c = *serviceStats_;
    c.record(code, ms);
    --c.active;
    if (code == 504) ++c.timeouts;
  }
  if (groupStats_) {
    auto& c = groupStats_->requests;
    c.record(code, ms);
    if (code == 504) ++c.timeouts;
  }
  if (service_ && !service_->accessLogs.empty()) {
    AccessLogEntry entry;
    entry.startTimeSeconds = time(nullptr) - static_cast<int64_t>(ms / 1000);
    entry.serviceArn = service_->arn;
    if (network_) entry.serviceNetworkArn = network_->arn;
    if (group_) {
      entry.targetGroupArn = group_->arn;
      entry.destinationVpcId = group_->vpcId;
    }
    if (vpc_) {
      entry.sourceVpcId = vpc_->id;
      entry.sourceVpcArn = vpc_->arn;
    }
    entry.sourceIpPort = client_.ipPort;
    if (target_ && firstResponseMs_ > 0) entry.targetIpPort = target_->ipPort;
    entry.requestMethod = head_.method;
    entry.requestPath = head_.target;
    entry.protocol = down_.http2() ? "HTTP/2" : head_.versionMinor >= 1 ? "HTTP/1.1" : "HTTP/1.0";
    if (const auto* host = head_.header("host")) entry.hostHeader = *host;
    if (const auto* ua = head_.header("user-agent")) entry.userAgent = *ua;
    if (const TlsSession* tls = client_.transport.tls()) {
      entry.tlsVersion = tls->version();
      entry.sslCipher = tls->cipher();
      entry.serverNameIndication = client_.transport.serverName();
    }
    entry.responseCode = code;
    if (grpc_) entry.grpcResponseCode = grpcCode_;
    entry.bytesReceived = bytesReceived_;
    // HTTP/1.1: what is still buffered counts as sent (the stream writes it after this).
    entry.bytesSent = bytesSent_ + (down_.http2() ? 0 : down_.bufferedBytes());
    entry.durationMs = static_cast<int64_t>(ms);
    if (requestSentMs_ > 0) entry.requestToTargetDurationMs = static_cast<int64_t>(requestSentMs_ - startMs_);
    if (firstResponseMs_ > 0) entry.responseFromTargetDurationMs = static_cast<int64_t>(end - firstResponseMs_);
    entry.requestId = requestId_;
    entry.failureReason = failureReason(failure_);
    if (auth_.enforced) {
      entry.resolvedUser = auth_.resolvedUser();
      entry.authDeniedReason = auth_.deniedBy;
      if (const snapshot::Caller* caller = auth_.caller) {
        entry.callerPrincipal = caller->identity.arn;
        entry.callerPrincipalOrgID = caller->identity.orgId;
        entry.callerPrincipalTags = caller->tagsJson;
      }
    }
    entry.destinations = service_->accessLogs;
    w_.log(std::move(entry));
  }
  down_.exchangeDone();  // destroys this exchange
}

}  // namespace trellis::proxy
