// One request and its response: routing (router.h), the listener's protocol, auth (auth.h), rule
// extensions, the protocol matrix of target groups, the forwarded fields, the attempts at targets with
// their retries and deadlines, then metrics and the access log. Owned by its DownstreamStream; talks to
// the client only through it and to targets only through an UpstreamStream (upstream/upstream.h), so it
// is the same for HTTP/1.1 and HTTP/2 on either side.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/auth.h"
#include "proxy/downstream/stream.h"
#include "proxy/failure.h"
#include "proxy/http/message.h"
#include "proxy/metrics.h"
#include "proxy/upstream/upstream.h"
#include "snapshot/snapshot.h"

namespace trellis::proxy {

class WorkerContext;

class Exchange : public UpstreamStreamSink {
 public:
  Exchange(WorkerContext& worker, ClientConnection& client, DownstreamStream& stream);
  ~Exchange() override;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // --- from the downstream ---
  void start(RequestHead&& requestHead);
  // A request the downstream codec refused (a 400) or gave up waiting for (a 408): answered here.
  void reject(int status);
  void requestBody(std::string_view data);
  void requestTrailers(Headers&& trailers) { requestTrailers_ = std::move(trailers); }
  void requestComplete();
  // The upstream cannot take more request body right now: read no more of it.
  bool bodyBlocked() const;
  // The client took enough of the response: read the target again.
  void downstreamDrained();
  // HTTP/2 clients: the upstream starts once the read's frames are handled (rapid reset, CVE-2023-44487):
  // true until startDeferred() runs it, with what came of the request meanwhile.
  bool awaitingStart() const { return awaitingStart_; }
  void startDeferred();
  // The client side ends the exchange: the upstream goes (HTTP/1.1 connection closed, HTTP/2 stream reset),
  // `failure` is logged unless one was already, then finish().
  void abort(Failure failure);
  // Lets go of the upstream without a response.
  void dropUpstream();
  // Metrics and the access log, then the stream lets go of (and destroys) the exchange.
  void finish();
  void countSent(uint64_t bytes) { bytesSent_ += bytes; }

  const RequestHead& head() const { return head_; }
  uint64_t bytesReceived() const { return bytesReceived_; }
  bool requestDone() const { return requestDone_; }
  bool responseDone() const { return responseDone_; }
  bool responseHeadSent() const { return responseHeadSent_; }
  // Keeps the request's replay storage for the connection's next exchange (its capacity, not its bytes).
  std::string takeReplayStorage() { return std::move(replay_); }
  void giveReplayStorage(std::string storage);

  // --- from the worker ---
  // A rule deadline or retry backoff came due (WorkerContext::armTimer); when it wants to run next (0: never).
  void onTimer(int64_t now);
  int64_t nextTimer() const;
  // Once a second: a target silent past the service's idle timeout fails the attempt.
  void onSweep(int64_t now);
  // Tells a deferred task whether its exchange is still this one.
  uint64_t serial() const { return serial_; }

  // --- UpstreamStreamSink ---
  void onUpstreamHead(ResponseHead& response) override;
  void onUpstreamBody(std::string_view data) override;
  void onUpstreamTrailers(Headers& trailers) override { responseTrailers_ = std::move(trailers); }
  void onUpstreamComplete() override;
  void onUpstreamFailed(UpstreamFailure failure) override;
  void onUpstreamDrained() override { down_.resumeRequestBody(); }
  void onUpstreamActive() override { refreshDeadline(); }
  bool responseBlocked() const override;
  void onUpstreamReadDone() override { down_.flushOutput(); }

 private:
  void startUpstream(const snapshot::Target* avoid);
  void forwardBody(std::string_view data);
  void upstreamFailed(UpstreamFailure failure);
  // `body`: a text body (the 403 of an auth denial); none otherwise. `location`: a redirect's Location.
  void respondLocal(int status, Failure failure = Failure::None, std::string_view body = {},
                    std::string_view location = {});
  void responseComplete();
  // Extra tries after a failure that sent nothing downstream (`ofConnection`: the target may never have
  // got the request, so even a rule without `retry` gets the proxy's one retry on another target).
  int retriesAllowed(bool ofConnection) const;
  // A retry on another target (the same one when it is the only one), after the rule's backoff; `later`:
  // not from here even without one (we are inside the failed target's callbacks).
  void retry(const snapshot::Target* failed, const char* why, bool later);
  // A response head whose status the rule retries: dropped and retried; false when it goes downstream.
  bool retriedStatus(int responseStatus);
  // Whether a failure that allows `resend` lets this request go to a target again.
  bool mayResend(Resend resend) const;
  void keepForReplay(std::string_view bytes);
  // The target sent or took bytes: it has the service's idle timeout again.
  void refreshDeadline();
  // Runs finish() at the end of the loop turn if the exchange is still there and `needRequestDone` holds.
  void finishLater(bool needRequestDone);
  template <typename Task>
  void atEndOfTurn(Task task);
  void armTimer(int64_t atMillis);

  WorkerContext& w_;
  ClientConnection& client_;
  DownstreamStream& down_;
  const uint64_t serial_;
  snapshot::SnapshotPtr snap_;  // pinned for the whole exchange
  RequestHead head_;
  std::string requestId_;
  const snapshot::Service* service_ = nullptr;
  const snapshot::Rule* rule_ = nullptr;  // the rule routed to (null: the default action), for its extensions
  const snapshot::TargetGroup* group_ = nullptr;
  const snapshot::Target* target_ = nullptr;
  const snapshot::Vpc* vpc_ = nullptr;  // the client's source VPC in snap_
  const snapshot::ServiceNetwork* network_ = nullptr;
  AuthOutcome auth_;  // who the caller is, for the identity fields and the access log
  // The worker's counters for service_ and group_, looked up once instead of by id at every event.
  RequestCounters* serviceStats_ = nullptr;
  TargetGroupCounters* groupStats_ = nullptr;
  UpstreamStream* upstream_ = nullptr;  // the current attempt's
  bool grpc_ = false;  // a gRPC request: log grpcResponseCode
  int grpcCode_ = -1;
  bool local_ = false;  // answered by the proxy itself; the request body is dropped
  bool requestDone_ = false;
  bool responseHeadSent_ = false;
  bool responseDone_ = false;
  bool responseStarted_ = false;  // the target's final head came: no retry after this
  bool awaitingStart_ = false;
  std::string earlyBody_;  // what came of the body while awaitingStart_
  bool upstreamKeepAlive_ = true;
  std::string replay_;  // the request body sent so far, for a retry
  bool replayValid_ = true;
  int attempts_ = 0;
  Headers requestTrailers_, responseTrailers_;
  int status_ = 0;
  Failure failure_ = Failure::None;
  double startMs_ = 0, requestSentMs_ = 0, firstResponseMs_ = 0;
  uint64_t bytesReceived_ = 0, bytesSent_ = 0;
  int64_t upstreamDeadline_ = 0;
  int64_t idleTimeoutMs_;  // the routed service's: how long a target may be silent
  // Rule extensions (0: none): the whole exchange's and this attempt's deadline, until the response head
  // comes; when a retry waits for its backoff, and the target it avoids.
  int64_t requestDeadline_ = 0, attemptDeadline_ = 0, retryAt_ = 0;
  const snapshot::Target* retryAvoid_ = nullptr;
  const char* retryReason_ = "";
  bool timed_ = false;  // armed a timer at least once: the worker may have it
};

}  // namespace trellis::proxy
