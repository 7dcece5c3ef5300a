#include "proxy/worker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstring>

#include "common/assert.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/request_target.h"
#include "common/strings.h"
#include "proxy/auth.h"
#include "proxy/connect.h"
#include "proxy/http2_codec.h"
#include "proxy/http2_upstream.h"
#include "proxy/passthrough.h"
#include "proxy/tls_contexts.h"
#include "proxy/tls_transport.h"

namespace trellis::proxy {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kHighWater = 256 * 1024;  // stop reading the other side above this much unsent data
constexpr size_t kLowWater = 64 * 1024;    // ... and resume below this
constexpr size_t kMaxReplay = 64 * 1024;   // request bytes kept for a retry on another target
constexpr size_t kSpareReplayCapacity = 4096;  // kept between a connection's requests (a typical head)
constexpr size_t kMaxIdlePerTarget = 256;
constexpr int64_t kConnectTimeoutMs = 5000;
constexpr int64_t kPoolIdleMs = 60000;
const std::string kTlsPoolPrefix = "tls ";  // pool key of HTTPS target connections: "tls 10.0.0.1:443"
constexpr int kDefaultIdleTimeoutSeconds = 60;  // Lattice's, for a connection nothing was routed on yet

int64_t monotonicMillis() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double monotonicMillisPrecise() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1000.0 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// Headers a client may not set: the proxy owns them (docs/architecture.md, "Forward").
bool strippedFromClient(std::string_view name) {
  if (name.size() < 15 || name[0] != 'x') return false;  // asked for every request header: most are not ours
  return name == "x-forwarded-for" || name == "x-forwarded-port" || name == "x-forwarded-proto" ||
         name == "x-amzn-lattice-identity" || name == "x-amzn-lattice-identity-tags" ||
         name == "x-amzn-lattice-network" || name == "x-amzn-lattice-target" || name == "x-amzn-source-vpc" ||
         name == "x-amzn-requestid";
}

std::string ipOf(const sockaddr_storage& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&a)->sin_addr, buf, sizeof buf);
  } else {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      inet_ntop(AF_INET, v6->sin6_addr.s6_addr + 12, buf, sizeof buf);
    } else {
      inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
    }
  }
  return buf;
}

uint16_t portOf(const sockaddr_storage& a) {
  return ntohs(a.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&a)->sin_port
                                      : reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port);
}

class Buffer {
 public:
  size_t size() const { return data_.size() - offset_; }
  bool empty() const { return size() == 0; }
  const char* data() const { return data_.data() + offset_; }
  std::string& tail() { return data_; }  // append here
  void consume(size_t n) {
    offset_ += n;
    if (offset_ == data_.size()) {
      data_.clear();
      offset_ = 0;
    } else if (offset_ >= kReadChunk && offset_ * 2 >= data_.size()) {
      data_.erase(0, offset_);
      offset_ = 0;
    }
  }
  void clear() {
    data_.clear();
    offset_ = 0;
  }

 private:
  std::string data_;
  size_t offset_ = 0;
};

// Reads once into `buffer`; returns bytes read, 0 on EOF, -1 on EAGAIN, -2 on error.
ssize_t readInto(int fd, Buffer& buffer) {
  // Through a per-thread scratch area: growing the string by kReadChunk first would zero 64 KiB per
  // read (the profile's top item), while copying what arrived costs only its size.
  static thread_local char scratch[kReadChunk];
  ssize_t n = ::read(fd, scratch, kReadChunk);
  if (n > 0) buffer.tail().append(scratch, static_cast<size_t>(n));
  if (n >= 0) return n;
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
}

// Writes as much as the socket takes; false on a hard error.
bool writeFrom(int fd, Buffer& buffer, uint64_t* counter = nullptr) {
  while (!buffer.empty()) {
    ssize_t n = ::send(fd, buffer.data(), buffer.size(), MSG_NOSIGNAL);
    if (n > 0) {
      buffer.consume(static_cast<size_t>(n));
      if (counter) *counter += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
  return true;
}

}  // namespace

class ListenSocket : public Pollable {
 public:
  ListenSocket(Worker& w, uint16_t port, int fd) : w_(w), port_(port) { fd_ = fd; }
  void onEvents(uint32_t) override {
    for (int i = 0; i < 64; ++i) {
      sockaddr_storage peer{};
      socklen_t length = sizeof peer;
      int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        w_.accepted(fd, port_, peer);
        continue;
      }
      // Out of descriptors (or kernel memory): the connection stays queued and the level-triggered
      // listener ready, so polling it again now would only spin. The worker stops for a moment.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) w_.pauseAccepting(errno);
      return;  // EAGAIN, or a transient error such as ECONNABORTED: the next event retries
    }
  }

 private:
  Worker& w_;
  uint16_t port_;
};

// The client side of one exchange: the current request of an HTTP/1.1 connection, or one HTTP/2 stream.
// The exchange (routing, headers, upstream, logging) talks only to this, never to the connection's codec.
class DownstreamStream {
 public:
  virtual ~DownstreamStream() = default;
  virtual bool http2() const = 0;
  // The final response head: `head.headers` minus hop-by-hop ones and x-amzn-requestid, plus `requestId`.
  virtual void sendHead(const ResponseHead& head, std::string_view requestId) = 0;
  virtual void sendContinue() = 0;  // a target's 100 Continue, where the client can take it
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
  virtual void abortStream(const char* reason) = 0;
  // Writes what the exchange produced.
  virtual void flushOutput() = 0;
};

// One request/response: the stream of the codec/stream/router layering. Routing (router.h), auth (5.6), the
// protocol matrix (5.4), headers (5.7/5.8), the upstream (a pooled HTTP/1.1 connection or a stream on a
// multiplexed HTTP/2 one), retries, logging and metrics. Owned by its DownstreamStream.
class Exchange : public UpstreamStreamSink {
 public:
  Exchange(DownstreamConnection& connection, DownstreamStream& stream);
  ~Exchange() override;

  void start(RequestHead&& requestHead);
  void startUpstream(const snapshot::Target* avoid);
  void requestBody(std::string_view data);
  // The request's body as it goes to the current attempt (bytes already counted).
  void forwardBody(std::string_view data);
  void requestComplete();
  // The upstream cannot take more request body right now.
  bool bodyBlocked() const;
  void upstreamFailed(const char* reason, Resend resend);
  // `body`: a text body (the 403 of an auth denial); none otherwise. `location`: a redirect's Location.
  void respondLocal(int status, const char* reason = "", std::string_view body = {}, std::string_view location = {});
  void responseHead(const ResponseHead& response);
  void responseBody(std::string_view data);
  void responseComplete();
  // The client took enough of the response: read the target again.
  void downstreamDrained();
  // Metrics and the access log, then the stream lets go of (and destroys) the exchange.
  void finish();
  // Lets go of the upstream without a response: the HTTP/1.1 connection is retired, the HTTP/2 stream reset.
  void dropUpstream();
  bool hasUpstream() const { return up || h2up; }
  // A rule deadline or retry backoff came due (Worker::armTimer).
  void onTimer(int64_t now);
  // When onTimer wants to run next; 0: never.
  int64_t nextTimer() const;

  // UpstreamStreamSink: an HTTP/2 target group's stream.
  void onUpstreamHead(ResponseHead& response) override;
  void onUpstreamBody(std::string_view data) override;
  void onUpstreamTrailers(Headers& trailers) override;
  void onUpstreamComplete() override;
  void onUpstreamFailed(const char* reason, Resend resend) override;
  void onUpstreamDrained() override;

  DownstreamConnection& conn;
  DownstreamStream& down;
  Worker& w;
  const uint64_t serial;       // tells a deferred task whether its exchange is still this one
  snapshot::SnapshotPtr snap;  // pinned for the whole exchange
  RequestHead head;
  std::string requestId;
  const snapshot::Service* service = nullptr;
  const snapshot::Rule* rule = nullptr;  // the rule routed to (null: the default action), for its extensions
  const snapshot::TargetGroup* group = nullptr;
  const snapshot::Target* target = nullptr;
  const snapshot::Vpc* vpc = nullptr;  // the client's source VPC in `snap`
  const snapshot::ServiceNetwork* network = nullptr;
  AuthOutcome auth;  // who the caller is, for the identity headers and the access log
  // The worker's counters for `service` and `group`, looked up once per exchange instead of by id at
  // every event.
  RequestCounters* serviceStats = nullptr;
  TargetGroupCounters* groupStats = nullptr;
  UpstreamConnection* up = nullptr;
  // HTTP2/GRPC target groups: the stream on a pooled multiplexed connection.
  Http2UpstreamConnection* h2up = nullptr;
  int32_t h2stream = -1;
  size_t upstreamHeld = 0;       // response bytes from h2up not yet acknowledged (the client is behind)
  bool upstreamBlocked = false;  // h2up's request backlog reached kStreamHighWater
  bool grpc = false;             // a gRPC request: log grpcResponseCode
  int grpcCode = -1;
  bool local = false;           // answered by the proxy itself; request body is discarded
  bool requestDone = false;     // the whole request was parsed
  bool responseHeadSent = false;
  bool responseDone = false;
  bool responseStarted = false;  // some byte came from the target: no retry after this
  bool attemptSent = false;      // some byte of this attempt went to the target's socket
  // HTTP/2 clients: the upstream starts once the read's frames are handled (Http2Downstream::startUpstreams);
  // what the stream's body brings meanwhile waits here.
  bool awaitingStart = false;
  std::string earlyBody;
  bool interim = false;          // the response being parsed is 1xx
  bool clientChunked = false;
  bool upstreamKeepAlive = true;
  std::string replay;  // request bytes sent so far, for a retry (HTTP/2 targets: the body only)
  bool replayValid = true;
  int attempts = 0;
  Headers requestTrailers, responseTrailers;
  int status = 0;
  const char* failureReason = "";
  double startMs = 0, requestSentMs = 0, firstResponseMs = 0;
  uint64_t bytesReceived = 0, bytesSent = 0;
  int64_t upstreamDeadline = 0;
  int64_t idleTimeoutMs = kDefaultIdleTimeoutSeconds * 1000;  // the routed service's: how long a target may be silent
  // Rule extensions (0: none): the whole exchange's and this attempt's deadline, until the response head
  // comes; when a retry waits for its backoff, and the target it avoids.
  int64_t requestDeadline = 0, attemptDeadline = 0, retryAt = 0;
  const snapshot::Target* retryAvoid = nullptr;
  const char* retryReason = "";
  bool timed = false;  // in the worker's timers

 private:
  // Extra tries after a failure that sent nothing downstream (`connectionFailure`: the target never got
  // the request, so even a rule without `retry` gets the proxy's one retry on another target).
  int retriesAllowed(bool connectionFailure) const;
  // A retry of the request on another target (the same one when it is the only one), after the rule's
  // backoff; `later`: not from here even without one (we are inside the failed target's callbacks).
  void retry(const snapshot::Target* failed, const char* reason, bool later);
  // A response head whose status the rule retries: dropped and retried; false when it goes downstream.
  bool retriedStatus(int responseStatus);

  void startHttp2Upstream();
  void keepForReplay(std::string_view bytes);

 public:
  // The target sent or took bytes: it has the service's idle timeout again.
  void refreshDeadline();
  // The upstream of an HTTP/2 stream's exchange (awaitingStart), with what came of the request meanwhile.
  void startDeferred();

 private:
  // Runs finish() at the end of the loop turn if the exchange is still there and `ready` holds then.
  void finishLater(bool needRequestDone);
  // Runs `task` at the end of the loop turn if this exchange is still there.
  template <typename Task>
  void atEndOfTurn(Task task);
  // Whether a failure that allows `resend` lets this request go to a target again.
  bool mayResend(Resend resend) const;
};

class UpstreamConnection : public Pollable, public Http1ResponseHandler {
 public:
  UpstreamConnection(Worker& w, std::string key, std::string groupId)
      : w_(w), key_(std::move(key)), groupId_(std::move(groupId)), stats_(w.stats().targetGroups[groupId_]),
        parser_(*this) {}

  void onEvents(uint32_t events) override;
  void flush();
  void processInput();
  void attach(Exchange* ex) {
    ex_ = ex;
    parser_.expectBodyless(ex->head.method == "HEAD");
  }
  void detach() { ex_ = nullptr; }
  void updateInterest();
  void handleEof();

  void onResponseHead(ResponseHead& head) override;
  void onBody(std::string_view data) override;
  void onTrailers(Headers& trailers) override;
  void onComplete() override {}

  Worker& w_;
  std::string key_, groupId_;
  TargetGroupCounters& stats_;  // the worker's counters for groupId_ (entries are never removed)
  Http1ResponseParser parser_;
  Buffer in_, out_;
  std::unique_ptr<TlsSession> tls_;  // HTTPS target group: in_/out_ are plaintext, rawOut_ ciphertext
  Buffer rawOut_;
  ssize_t readTls();
  bool writeTls(uint64_t& sent);
  Exchange* ex_ = nullptr;
  bool connected_ = false;
  bool reused_ = false;
  bool eof_ = false;
  int64_t openedAt_ = 0, idleSince_ = 0;
};

class Http2Downstream;

// One HTTP/2 stream of a downstream connection: the DownstreamStream of one exchange.
class Http2Stream : public DownstreamStream {
 public:
  Http2Stream(DownstreamConnection& c, Http2Downstream& h2, int32_t id) : c_(c), h2_(h2), id_(id) {}
  bool http2() const override { return true; }
  void sendHead(const ResponseHead& head, std::string_view requestId) override;
  void sendContinue() override {}
  void sendBody(std::string_view data) override;
  void sendEnd(const Headers& trailers) override;
  size_t bufferedBytes() const override;
  void resumeRequestBody() override;
  void abandonRequest() override {}
  bool endsBeforeRequest() const override { return true; }  // the rest of the request body is dropped
  void exchangeDone() override;
  void abortStream(const char* reason) override;
  void flushOutput() override;

  DownstreamConnection& c_;
  Http2Downstream& h2_;
  int32_t id_;
  std::unique_ptr<Exchange> exchange;
  bool ended_ = false;  // the response head carried END_STREAM
};

// The HTTP/2 codec of a downstream connection (ALPN h2, or h2c with prior knowledge) and its streams.
class Http2Downstream : public Http2ServerHandler {
 public:
  explicit Http2Downstream(DownstreamConnection& c) : c_(c), session_(*this) {}

  void onRequestHead(int32_t id, RequestHead& head) override;
  void onMalformedRequest(int32_t id, std::string_view reason) override;
  void onBody(int32_t id, std::string_view data) override;
  void onTrailers(int32_t id, Headers& trailers) override;
  void onComplete(int32_t id) override;
  void onStreamClosed(int32_t id, uint32_t errorCode) override;
  void onStreamDrained(int32_t id) override;

  Exchange* exchangeOf(int32_t id) const {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second->exchange.get();
  }
  // Ends every exchange (logged with `reason`) before the connection closes.
  void abortAll(const char* reason);
  // After a read's frames: the upstreams of the streams it opened that are still there. A stream reset in
  // the same read (rapid reset, CVE-2023-44487) never reaches a target.
  void startUpstreams();
  void dropUpstreams();
  bool idle() const { return streams_.empty(); }

  DownstreamConnection& c_;
  Http2ServerSession session_;
  std::unordered_map<int32_t, std::unique_ptr<Http2Stream>> streams_;
  std::vector<HeaderView> headScratch_;  // Http2Stream::sendHead's
  std::vector<int32_t> opened_;  // streams whose exchanges wait for startUpstreams()
};

class DownstreamConnection : public Pollable, public Http1RequestHandler, public DownstreamStream {
 public:
  DownstreamConnection(Worker& w, int fd, uint16_t port, const sockaddr_storage& peer, const snapshot::Address& address)
      : w_(w), port_(port), peer_(peer), peerAddress_(address), parser_(*this) {
    fd_ = fd;
    peerIp_ = ipOf(peer_);
    peerIpPort_ = (peer_.ss_family == AF_INET6 && peerIp_.find(':') != std::string::npos ? "[" + peerIp_ + "]"
                                                                                          : peerIp_) +
                  ":" + std::to_string(portOf(peer_));
    createdAt_ = lastActive_ = w.nowMillis();
  }

  void onEvents(uint32_t events) override {
    // EPOLLHUP cannot be masked: once the peer is gone for good there is nothing left to do.
    if ((events & EPOLLERR) || ((events & EPOLLHUP) && peerClosed_)) return abort("ClientConnectionClosed");
    if (draining_) return drain();
    if (events & (EPOLLIN | EPOLLHUP)) readable();
    if (!dead_ && (events & EPOLLOUT)) flush();
  }

  void readable() {
    // The first byte of a request head (or of the TLS handshake before it) starts its deadline.
    if (!h2_ && !exchange_ && headStartedAt_ == 0) headStartedAt_ = w_.nowMillis();
    ssize_t n = transport_.plain() ? readInto(fd_, in_) : readTransport();
    if (n == -1) return;
    if (n <= 0) {
      peerClosed_ = true;
      if (h2_) return h2_->idle() ? close() : abort("ClientConnectionClosed");
      if (exchange_ && !exchange_->requestDone) return abort("ClientConnectionClosed");
      if (!exchange_) return close();
      updateInterest();  // finish the response, then close
      return;
    }
    // HTTP/2: frames alone (PING, SETTINGS, a header block sent a byte at a time) do not keep a connection
    // without streams from its idle timeout; streams starting and ending do.
    if (!h2_) lastActive_ = w_.nowMillis();
    process();
  }

  bool bodyBlocked() const { return exchange_ && exchange_->bodyBlocked(); }

  // Feeds buffered bytes to the codec (HTTP/1.1: as far as backpressure and pipelining allow).
  void process() {
    if (!codecChosen_ && !chooseCodec()) return updateInterest();
    if (h2_) return processHttp2();
    while (!dead_ && !in_.empty() && !paused_ && !bodyBlocked()) {
      size_t consumed = 0;
      ParseStatus status = parser_.parse(in_.data(), std::min(in_.size(), kReadChunk), consumed);
      in_.consume(consumed);
      if (dead_) return;
      if (status == ParseStatus::Error) return badRequest();
      if (status == ParseStatus::Paused) paused_ = true;
    }
    if (dead_) return;
    if (exchange_ && exchange_->up) exchange_->up->flush();
    if (!dead_) updateInterest();
  }

  // HTTP/2 over TLS when ALPN chose h2; in plaintext when the client's first bytes are the HTTP/2
  // preface (h2c with prior knowledge). False while the first bytes do not tell yet.
  bool chooseCodec() {
    if (const TlsSession* tls = transport_.tls()) {
      if (tls->alpn() == "h2") h2_ = std::make_unique<Http2Downstream>(*this);
    } else {
      PrefaceMatch match = matchHttp2Preface(std::string_view(in_.data(), in_.size()));
      if (match == PrefaceMatch::Partial) return false;
      if (match == PrefaceMatch::Yes) h2_ = std::make_unique<Http2Downstream>(*this);
    }
    codecChosen_ = true;
    return true;
  }

  void processHttp2() {
    inHttp2_ = true;
    bool ok = h2_->session_.receive(std::string_view(in_.data(), in_.size()));
    inHttp2_ = false;
    in_.clear();
    if (dead_) return;
    if (!ok) {
      logDebug("proxy: HTTP/2 from ", peerIpPort_, ": ", h2_->session_.error());
      ++(h2_->session_.terminated() ? w_.stats().http2Terminated : w_.stats().badRequests);
      h2_->abortAll("ClientProtocolError");
      closing_ = true;
    } else {
      h2_->startUpstreams();
      if (dead_) return;
    }
    flush();
  }

  void updateInterest() {
    if (dead_) return;
    uint32_t events = 0;
    if (!peerClosed_ && !closing_ && in_.size() < kReadChunk && !bodyBlocked()) events |= EPOLLIN;
    if (!out_.empty() || !rawOut_.empty()) events |= EPOLLOUT;
    w_.setInterest(this, events);
  }

  // HTTP/2: moves frames from the session to out_, up to kHighWater unsent bytes (beyond that the streams
  // keep their backlog, which is what holds their targets back). Not from inside the session's callbacks.
  void pullHttp2() {
    if (inHttp2_) {
      http2FlushPending_ = true;
      return;
    }
    do {
      http2FlushPending_ = false;
      inHttp2_ = true;
      bool ok = h2_->session_.send(out_.tail(), out_.tail().size() - out_.size() + kHighWater);
      inHttp2_ = false;
      if (!ok) closing_ = true;
    } while (http2FlushPending_ && !closing_);
  }

  void flush() {
    if (dead_) return;
    if (h2_) return flushHttp2();
    uint64_t sent = 0;
    if (!(transport_.plain() ? writeFrom(fd_, out_, &sent) : writeTransport(sent))) {
      return abort("ClientConnectionClosed");
    }
    if (exchange_) exchange_->bytesSent += sent;
    if (out_.empty() && rawOut_.empty() && (closing_ || (peerClosed_ && !exchange_))) return closeAfterDraining();
    // Downstream drained: let the target's response flow again.
    if (exchange_ && out_.size() < kLowWater) exchange_->downstreamDrained();
    updateInterest();
  }

  void flushHttp2() {
    if (inHttp2_) {
      http2FlushPending_ = true;
      return;
    }
    if (!flushAtEndOfTurn_) {
      flushAtEndOfTurn_ = true;
      w_.flushAtEndOfTurn(this);
    }
  }

  // Worker::runEndOfTurn: what the turn's events left for the client.
  void flushHttp2Now() {
    flushAtEndOfTurn_ = false;
    if (dead_) return;
    // A few rounds while the socket takes everything and the session has more; EPOLLOUT does the rest.
    for (int round = 0; round < 16; ++round) {
      pullHttp2();
      uint64_t sent = 0;
      if (!(transport_.plain() ? writeFrom(fd_, out_, &sent) : writeTransport(sent))) {
        return abort("ClientConnectionClosed");
      }
      if (dead_) return;
      if (!out_.empty() || !rawOut_.empty() || closing_ || !h2_->session_.wantsWrite()) break;
    }
    // While out_ was full every stream counted as blocked (Http2Stream::bufferedBytes): wake them all.
    if (http2OutHigh_ && out_.size() < kLowWater) {
      http2OutHigh_ = false;
      for (const auto& [id, stream] : h2_->streams_) {
        if (stream->exchange) stream->exchange->downstreamDrained();
      }
    }
    if (out_.size() >= kHighWater) http2OutHigh_ = true;
    if (out_.empty() && rawOut_.empty() && (closing_ || h2_->session_.finished() || (peerClosed_ && h2_->idle()))) {
      return close();
    }
    updateInterest();
  }

  // --- downstream codec events (HTTP/1.1) ---
  void onRequestHead(RequestHead& head) override;
  void onBody(std::string_view data) override {
    if (exchange_) exchange_->requestBody(data);
  }
  void onTrailers(Headers& trailers) override {
    if (exchange_) exchange_->requestTrailers = std::move(trailers);
  }
  void onComplete() override {
    if (exchange_) exchange_->requestComplete();
  }

  // --- DownstreamStream (HTTP/1.1: the connection's current exchange) ---
  bool http2() const override { return false; }
  void sendHead(const ResponseHead& head, std::string_view requestId) override;
  void sendContinue() override {
    if (exchange_->head.versionMinor >= 1) out_.tail().append("HTTP/1.1 100 Continue\r\n\r\n");
  }
  void sendBody(std::string_view data) override {
    if (exchange_->clientChunked) {
      appendChunk(out_.tail(), data);
    } else {
      out_.tail().append(data);
    }
  }
  void sendEnd(const Headers& trailers) override {
    if (exchange_->clientChunked) appendLastChunk(out_.tail(), trailers);
  }
  size_t bufferedBytes() const override { return out_.size(); }
  void resumeRequestBody() override {
    if (!in_.empty() && !paused_) {
      w_.defer([this] {
        if (!dead_) process();
      });
    }
    updateInterest();
  }
  void abandonRequest() override { closeAfterResponse_ = true; }
  bool endsBeforeRequest() const override { return closeAfterResponse_; }
  void exchangeDone() override;
  void abortStream(const char* reason) override { abort(reason); }
  void flushOutput() override { flush(); }

  // An exchange was routed to `service`: the connection's idle timeout is that service's (HTTP/1.1: the
  // service of its latest request), or on HTTP/2, whose streams may go to several, the longest of theirs.
  void servedService(const snapshot::Service& service) {
    if (!h2_ || !served_ || service.idleTimeoutSeconds > idleTimeoutSeconds_) {
      idleTimeoutSeconds_ = service.idleTimeoutSeconds;
    }
    served_ = true;
  }

  // RFC 9112 9.6: closes the sending side only, then reads and drops what the client still sends until it
  // closes too (or kDrainMs pass): closing with its bytes unread would send a reset, and a reset can destroy
  // the response the client has not read yet (a 400, a 408).
  void closeAfterDraining() {
    if (peerClosed_ || w_.stopping()) return close();
    if (!draining_) {
      ::shutdown(fd_, SHUT_WR);
      draining_ = true;
      drainUntil_ = w_.nowMillis() + kDrainMs;
    }
    w_.setInterest(this, EPOLLIN);
  }
  void drain() {
    static thread_local char scratch[kReadChunk];
    for (int i = 0; i < 16; ++i) {  // at most 1 MiB a turn: a client that never stops is cut at kDrainMs
      ssize_t n = ::read(fd_, scratch, sizeof scratch);
      if (n > 0) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      return close();  // the client closed too (or the socket failed)
    }
  }
  static constexpr int64_t kDrainMs = 2000;

  void badRequest();
  // Slow clients (Worker::sweep): a head not whole in time answers 408; so does a body below the minimum
  // rate (checked over 10 s windows), or the connection is cut once the response has begun.
  void headTimedOut();
  bool bodyTooSlow(int64_t now, int minBytesPerSecond);
  void bodyTimedOut();
  void abort(const char* reason);
  void close();

  Worker& w_;
  uint16_t port_;
  sockaddr_storage peer_{};
  snapshot::Address peerAddress_;
  std::string peerIp_, peerIpPort_;
  Http1RequestParser parser_;
  Buffer in_, out_;
  std::unique_ptr<Exchange> exchange_;  // HTTP/1.1 only: the request being served
  std::string spareReplay_;  // the last exchange's replay buffer, for its capacity
  std::string forwardedHeaders_;  // x-forwarded-for/-port/-proto lines, built at the first request
  bool paused_ = false;  // a request completed; the next one waits until its exchange is done
  bool peerClosed_ = false;
  bool closeAfterResponse_ = false;
  bool closing_ = false;  // close once out_ is flushed
  int64_t createdAt_ = 0, lastActive_ = 0;
  int64_t headStartedAt_ = 0;  // HTTP/1.1: when the head being received began; 0: none is
  // HTTP/1.1 request body rate: bytes of the exchange at the start of the current 10 s window.
  int64_t bodyWindowStart_ = 0;
  uint64_t bodyWindowBytes_ = 0;
  int idleTimeoutSeconds_ = kDefaultIdleTimeoutSeconds;  // see servedService()
  bool draining_ = false;  // closeAfterDraining(): half-closed, dropping what still comes until drainUntil_
  int64_t drainUntil_ = 0;
  bool served_ = false;  // an exchange was routed on this connection
  // HTTP/2: decided by the first bytes (chooseCodec); then in_ goes to the session and out_ gets its frames.
  bool codecChosen_ = false;
  std::unique_ptr<Http2Downstream> h2_;
  bool inHttp2_ = false;  // inside the session: output waits (nghttp2 is not re-entrant)
  bool http2FlushPending_ = false;
  bool flushAtEndOfTurn_ = false;  // queued with Worker::flushAtEndOfTurn
  bool http2OutHigh_ = false;  // out_ reached kHighWater: the streams' targets wait for it to drain

  // Plaintext HTTP, TLS terminated here, or a passthrough handoff (tls_transport.h). Unless plaintext, in_
  // and out_ hold plaintext and rawOut_ what goes on the wire.
  DownstreamTransport transport_;
  Buffer rawOut_;
  ssize_t readTransport();
  bool writeTransport(uint64_t& sent);
};

// ---------------- DownstreamConnection ----------------

// Like readInto, for a connection that is not plain TCP: reads ciphertext (or the first bytes of an
// undecided connection) and appends the plaintext to in_. Returns plaintext bytes, 0 at the end of the
// stream, -1 when there is nothing for the codec (yet).
ssize_t DownstreamConnection::readTransport() {
  static thread_local Buffer raw;  // per worker: nothing kept per idle connection
  raw.clear();
  ssize_t n = readInto(fd_, raw);
  if (n <= 0) return n;
  std::string& plain = in_.tail();
  size_t before = plain.size();
  const snapshot::Snapshot& snap = *w_.snapshot();
  auto status = transport_.receive(std::string_view(raw.data(), raw.size()), plain, rawOut_.tail(), snap,
                                   snap.sourceVpc(peerAddress_), port_, w_.tls());
  auto got = static_cast<ssize_t>(plain.size() - before);
  using Status = DownstreamTransport::Status;
  if (status == Status::Passthrough) {
    // The splice owns the socket from here on (passthrough.h); this connection just goes away.
    const snapshot::Service* service = snap.serviceByHost(transport_.serverName());
    int fd = fd_;
    w_.unwatch(this);
    fd_ = -1;
    startPassthrough(w_, fd, peerIpPort_, *service, *service->listenerOnPort(port_), transport_.takeBufferedBytes());
    close();
    return -1;
  }
  if (status == Status::Refused) {
    logDebug("proxy: TLS from ", peerIpPort_, " refused: ", transport_.failure());
    in_.clear();
    closing_ = true;
    flush();
    return -1;
  }
  if (status == Status::Closed && got == 0) return 0;
  if (!rawOut_.empty()) flush();  // handshake messages
  if (dead_) return -1;
  if (!h2_) lastActive_ = w_.nowMillis();
  return got > 0 ? got : -1;
}

// Writes rawOut_, encrypting out_ into it only as fast as the socket takes it, so out_'s size keeps
// meaning "unsent response bytes" for backpressure. Counts plaintext bytes in `sent`.
bool DownstreamConnection::writeTransport(uint64_t& sent) {
  while (true) {
    if (!writeFrom(fd_, rawOut_)) return false;
    if (!rawOut_.empty()) return true;  // the socket is full
    if (!transport_.tls()) return true;
    if (out_.empty()) {
      if (!closing_) return true;
      transport_.tls()->shutdown(rawOut_.tail());  // close_notify, once
      if (rawOut_.empty()) return true;
      continue;
    }
    long taken = transport_.send(std::string_view(out_.data(), std::min(out_.size(), kReadChunk)), rawOut_.tail());
    if (taken < 0) return false;
    out_.consume(static_cast<size_t>(taken));
    sent += static_cast<uint64_t>(taken);
    if (taken == 0 && rawOut_.empty()) return true;  // handshake still under way
  }
}

void DownstreamConnection::onRequestHead(RequestHead& head) {
  if (!head.keepAlive) closeAfterResponse_ = true;
  headStartedAt_ = 0;
  bodyWindowStart_ = w_.nowMillis();
  bodyWindowBytes_ = head.headerBytes;
  exchange_ = std::make_unique<Exchange>(*this, *this);
  exchange_->replay = std::move(spareReplay_);
  exchange_->replay.clear();
  exchange_->start(std::move(head));
}

void DownstreamConnection::sendHead(const ResponseHead& head, std::string_view requestId) {
  Exchange& e = *exchange_;
  if (w_.stopping() || w_.nowMillis() - createdAt_ > w_.snapshot()->connectionLifetimeMs) closeAfterResponse_ = true;
  std::string& o = out_.tail();
  o.append("HTTP/1.1 ").append(std::to_string(head.status)).append(" ");
  o.append(head.reason.empty() ? std::string(reasonPhrase(head.status)) : head.reason).append("\r\n");
  bool lengthGiven = false;
  for (const auto& [name, value] : head.headers) {
    if (isHopByHop(name) || name == "x-amzn-requestid" || (name == "content-length" && !head.bodyless)) continue;
    lengthGiven = lengthGiven || name == "content-length";
    o.append(name).append(": ").append(value).append("\r\n");
  }
  o.append("x-amzn-requestid: ").append(requestId).append("\r\n");
  if (!head.bodyless) {
    if (head.hasContentLength) {
      o.append("content-length: ").append(std::to_string(head.contentLength)).append("\r\n");
    } else if (e.head.versionMinor >= 1) {
      e.clientChunked = true;
      o.append("transfer-encoding: chunked\r\n");
    } else {
      closeAfterResponse_ = true;  // HTTP/1.0: the end of the body is the end of the connection
    }
  } else if (!lengthGiven && head.status >= 200 && head.status != 204 && head.status != 304 &&
             e.head.method != "HEAD") {
    o.append("content-length: 0\r\n");  // an HTTP/2 target's response that ended with its head
  }
  if (closeAfterResponse_) {
    o.append("connection: close\r\n");
  } else if (e.head.versionMinor == 0) {
    o.append("connection: keep-alive\r\n");
  }
  o.append("\r\n");
}

void DownstreamConnection::exchangeDone() {
  std::unique_ptr<Exchange> ex = std::move(exchange_);
  // The next request on this connection reuses this one's storage instead of allocating its own.
  parser_.recycle(std::move(ex->head.headers));
  if (ex->replay.capacity() <= kSpareReplayCapacity) spareReplay_ = std::move(ex->replay);
  ex.reset();
  if (closeAfterResponse_ || peerClosed_ || w_.stopping()) {
    closing_ = true;
    return flush();
  }
  parser_.resume();
  paused_ = false;
  lastActive_ = w_.nowMillis();
  headStartedAt_ = in_.empty() ? 0 : lastActive_;  // a pipelined request's head is under way
  flush();
  if (!dead_ && !in_.empty()) {
    w_.defer([this] {
      if (!dead_) process();
    });
  }
}

void DownstreamConnection::headTimedOut() {
  ++w_.stats().headTimeouts;
  logDebug("proxy: 408 to ", peerIpPort_, ": request head not complete within ",
           w_.snapshot()->requestHeadTimeoutMs, " ms");
  const TlsSession* tls = transport_.tls();
  // Before the codec or the TLS session is there, there is no one to answer in the client's protocol.
  if (!codecChosen_ || h2_ || (tls ? !tls->established() : !transport_.plain())) return close();
  paused_ = true;  // nothing more of this connection is parsed
  closeAfterResponse_ = true;
  exchange_ = std::make_unique<Exchange>(*this, *this);
  exchange_->requestId = w_.newRequestId();
  exchange_->requestDone = true;
  exchange_->respondLocal(408, "ClientProtocolError");
}

bool DownstreamConnection::bodyTooSlow(int64_t now, int minBytesPerSecond) {
  constexpr int64_t kWindowMs = 10000;
  Exchange& e = *exchange_;
  // Only while the proxy is the one waiting: not under backpressure, nor for a 100 Continue the client
  // asked for before it sends anything.
  bool waiting = !e.requestDone && !peerClosed_ && !bodyBlocked() &&
                 !(e.bytesReceived == e.head.headerBytes && e.head.header("expect"));
  if (waiting && now - bodyWindowStart_ < kWindowMs) return false;
  bool slow = waiting && e.bytesReceived - bodyWindowBytes_ < uint64_t(minBytesPerSecond) * (kWindowMs / 1000);
  bodyWindowStart_ = now;  // a new window: after one that was met, or one the proxy was not waiting in
  bodyWindowBytes_ = e.bytesReceived;
  return slow;
}

void DownstreamConnection::bodyTimedOut() {
  ++w_.stats().bodyTooSlow;
  Exchange& e = *exchange_;
  logDebug("proxy: request body from ", peerIpPort_, " below ", w_.snapshot()->requestBodyMinBytesPerSecond,
           " bytes/s");
  if (e.responseHeadSent) {
    e.failureReason = "ClientProtocolError";
    return abort("ClientProtocolError");
  }
  e.dropUpstream();
  abandonRequest();
  paused_ = true;
  e.respondLocal(408, "ClientProtocolError");
}

void DownstreamConnection::badRequest() {
  ++w_.stats().badRequests;
  logDebug("proxy: 400 from ", peerIpPort_, ": ", parser_.error());
  closeAfterResponse_ = true;
  if (exchange_ && exchange_->responseHeadSent) return abort("ClientProtocolError");
  if (exchange_) exchange_->dropUpstream();
  if (!exchange_) {
    exchange_ = std::make_unique<Exchange>(*this, *this);
    exchange_->requestId = w_.newRequestId();
  }
  exchange_->requestDone = true;
  exchange_->respondLocal(400, "ClientProtocolError");
}

void DownstreamConnection::abort(const char* reason) {
  if (dead_) return;
  if (h2_) {
    h2_->abortAll(reason);
  } else if (exchange_) {
    if (!*exchange_->failureReason) exchange_->failureReason = reason;
    exchange_->dropUpstream();
    closing_ = true;
    out_.clear();
    exchange_->finish();
  }
  close();
}

void DownstreamConnection::close() {
  if (dead_) return;
  if (exchange_) exchange_->dropUpstream();
  if (h2_) h2_->dropUpstreams();
  w_.downstreams_.erase(this);
  --w_.stats().activeDownstreamConnections;
  w_.retire(this);
}

// ---------------- HTTP/2 downstream ----------------

void Http2Stream::sendHead(const ResponseHead& head, std::string_view requestId) {
  std::vector<HeaderView>& headers = h2_.headScratch_;  // views into `head`: nothing copied twice
  headers.clear();
  for (const auto& [name, value] : head.headers) {
    if (isHopByHop(name) || name == "x-amzn-requestid" || name == "content-length") continue;
    headers.emplace_back(name, value);
  }
  headers.emplace_back("x-amzn-requestid", requestId);
  char length[24];
  if (head.hasContentLength && head.status >= 200 && head.status != 204) {
    char* end = std::to_chars(length, length + sizeof length, head.contentLength).ptr;
    headers.emplace_back("content-length", std::string_view(length, static_cast<size_t>(end - length)));
  }
  ended_ = head.bodyless;
  h2_.session_.submitResponse(id_, head.status, headers, head.bodyless);
}

void Http2Stream::sendBody(std::string_view data) {
  if (ended_) return;
  if (exchange) exchange->bytesSent += data.size();
  h2_.session_.sendData(id_, data);
}

void Http2Stream::sendEnd(const Headers& trailers) {
  if (!ended_) h2_.session_.endStream(id_, trailers);
  ended_ = true;
}

size_t Http2Stream::bufferedBytes() const {
  // The connection's own unsent bytes count too: frames are pulled only while the socket keeps up.
  return h2_.session_.bufferedBytes(id_) + (c_.out_.size() >= kHighWater ? c_.out_.size() : 0);
}

void Http2Stream::resumeRequestBody() {
  h2_.session_.consume(id_, SIZE_MAX);  // everything received and held back so far
  c_.flush();
}

void Http2Stream::abortStream(const char* reason) {
  if (!exchange) return;
  if (!*exchange->failureReason) exchange->failureReason = reason;
  exchange->dropUpstream();
  h2_.session_.resetStream(id_, NGHTTP2_INTERNAL_ERROR);
  exchange->finish();  // destroys it
  c_.flush();
}

void Http2Stream::flushOutput() { c_.flush(); }

void Http2Stream::exchangeDone() {
  exchange.reset();
  c_.flush();  // the response's last frames
}

void Http2Downstream::onRequestHead(int32_t id, RequestHead& head) {
  c_.lastActive_ = c_.w_.nowMillis();
  auto& stream = streams_[id];
  stream = std::make_unique<Http2Stream>(c_, *this, id);
  stream->exchange = std::make_unique<Exchange>(c_, *stream);
  stream->exchange->start(std::move(head));
  if (stream->exchange && stream->exchange->awaitingStart) opened_.push_back(id);
}

void Http2Downstream::startUpstreams() {
  for (size_t i = 0; i < opened_.size() && !c_.dead_; ++i) {
    Exchange* e = exchangeOf(opened_[i]);
    if (e && e->awaitingStart) e->startDeferred();
  }
  opened_.clear();
}

void Http2Downstream::onMalformedRequest(int32_t id, std::string_view reason) {
  ++c_.w_.stats().badRequests;
  logDebug("proxy: 400 from ", c_.peerIpPort_, " (HTTP/2 stream ", id, "): ", reason);
  auto& stream = streams_[id];
  stream = std::make_unique<Http2Stream>(c_, *this, id);
  stream->exchange = std::make_unique<Exchange>(c_, *stream);
  stream->exchange->requestId = c_.w_.newRequestId();
  stream->exchange->requestDone = true;
  stream->exchange->respondLocal(400, "ClientProtocolError");
}

void Http2Downstream::onBody(int32_t id, std::string_view data) {
  Exchange* e = exchangeOf(id);
  if (e) e->requestBody(data);
  // Acknowledged now unless the target is behind; then when it drains (resumeRequestBody).
  e = exchangeOf(id);
  if (!e || !e->bodyBlocked()) session_.consume(id, data.size());
}

void Http2Downstream::onTrailers(int32_t id, Headers& trailers) {
  if (Exchange* e = exchangeOf(id)) e->requestTrailers = std::move(trailers);
}

void Http2Downstream::onComplete(int32_t id) {
  if (Exchange* e = exchangeOf(id)) e->requestComplete();
}

void Http2Downstream::onStreamClosed(int32_t id, uint32_t errorCode) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  std::unique_ptr<Http2Stream> stream = std::move(it->second);
  streams_.erase(it);
  if (Exchange* e = stream->exchange.get()) {
    // Reset by the client, or the connection went: whatever the exchange was doing ends here.
    if (!e->responseDone || errorCode != NGHTTP2_NO_ERROR) {
      if (!*e->failureReason) e->failureReason = "ClientConnectionClosed";
      e->dropUpstream();
    }
    e->finish();
  }
  c_.lastActive_ = c_.w_.nowMillis();
}

void Http2Downstream::onStreamDrained(int32_t id) {
  if (Exchange* e = exchangeOf(id)) e->downstreamDrained();
}

void Http2Downstream::abortAll(const char* reason) {
  std::vector<int32_t> ids;
  for (const auto& [id, stream] : streams_) ids.push_back(id);
  for (int32_t id : ids) {
    auto it = streams_.find(id);
    if (it == streams_.end() || !it->second->exchange) continue;
    Exchange& e = *it->second->exchange;
    if (!*e.failureReason) e.failureReason = reason;
    e.dropUpstream();
    e.finish();
  }
}

void Http2Downstream::dropUpstreams() {
  for (auto& [id, stream] : streams_) {
    if (stream->exchange) stream->exchange->dropUpstream();
  }
}

// ---------------- Exchange ----------------

Exchange::Exchange(DownstreamConnection& connection, DownstreamStream& stream)
    : conn(connection), down(stream), w(connection.w_), serial(w.newExchangeSerial()) {
  startMs = monotonicMillisPrecise();
  w.exchanges().insert(this);
}

Exchange::~Exchange() {
  snapshot::releaseSnapshot(std::move(snap));
  w.exchanges().erase(this);
  if (timed) w.disarmTimer(this);
}

void Exchange::start(RequestHead&& requestHead) {
  snapshot::releaseSnapshot(std::move(snap));  // a reused exchange's previous one
  snap = w.snapshot();
  head = std::move(requestHead);
  bytesReceived = head.headerBytes;
  const std::string* id = head.header("x-amzn-requestid");
  requestId = id && !id->empty() ? id->substr(0, 512) : w.newRequestId();
  // Per request, not per connection: the snapshot (and with it the VPC's associations) may have changed.
  vpc = snap->sourceVpc(conn.peerAddress_);
  // One form of the target for the rules, auth, rewrites, the access log and the target
  // (docs/request-paths.md); absolute-form's authority replaces the Host header (RFC 9112 3.2.2).
  std::string authority;
  if (const char* error =
          normalizeRequestTarget(head.target, head.method, !down.http2(), snap->encodedSlashes, authority)) {
    logDebug("proxy: 400 from ", conn.peerIpPort_, ": ", error);
    ++w.stats().badRequests;
    return respondLocal(400, "ClientProtocolError");
  }
  if (!authority.empty()) {
    head.host = toLower(hostOfAuthority(authority));
    std::erase_if(head.headers, [](const auto& h) { return h.first == "host"; });
    head.headers.insert(head.headers.begin(), {"host", std::move(authority)});
  }

  RouteResult r = route(*snap, vpc, conn.port_, head);
  if (r.kind == RouteResult::Kind::NoService) {
    ++(r.unreachable ? w.stats().unreachableService : w.stats().unknownHost);
    return respondLocal(404);
  }
  // Ports may carry listeners of different protocols: the one that matched must be this connection's. Over
  // TLS the Host must also name the service the SNI did, whose certificate this connection was shown.
  const DownstreamTransport& transport = conn.transport_;
  if (transport.tls() && r.service->id != transport.serviceId()) return respondLocal(421, "ClientProtocolError");
  if (r.listener->protocol != (transport.tls() ? snapshot::ListenerProtocol::Https : snapshot::ListenerProtocol::Http))
    return respondLocal(400, "ClientProtocolError");
  service = r.service;
  idleTimeoutMs = int64_t{r.service->idleTimeoutSeconds} * 1000;
  conn.servedService(*r.service);
  network = r.network;
  serviceStats = &w.stats().services[r.service->id];
  ++serviceStats->active;
  if (r.service->usesIam || (r.network && r.network->usesIam)) {
    std::string denial;
    AuthRequest request{*snap, *r.service, r.network, vpc, head, conn.port_, conn.peerIp_, transport.tls() != nullptr};
    if (!RequestAuthorizer::forThisThread().authorize(request, auth, denial)) {
      return respondLocal(403, "ClientAccessDenied", denial);
    }
  }
  // Trellis rule extensions: a redirect answers here; a rewrite and header modifier change what is forwarded.
  rule = r.rule;
  if (rule && rule->redirect.enabled)
    return respondLocal(rule->redirect.statusCode, "", {},
                        redirectLocation(*rule, head, transport.tls() != nullptr, conn.port_));
  if (rule) rewriteRequest(*rule, head);
  if (r.action->kind == snapshot::Action::Kind::FixedResponse) return respondLocal(r.action->statusCode);
  const snapshot::WeightedTargetGroup* weighted = w.router().pickTargetGroup(*r.action);
  if (!weighted || !weighted->group) return respondLocal(503);
  // Which request protocols a target group's protocolVersion can carry (docs/architecture.md, "HTTP/2 and
  // gRPC").
  RequestProtocol protocol = requestProtocol(down.http2(), head);
  grpc = protocol == RequestProtocol::Grpc;
  ProtocolVerdict verdict = checkProtocolCompatibility(protocol, weighted->group->protocolVersion, head.method);
  if (!verdict.ok()) return respondLocal(verdict.status, verdict.failureReason);
  group = weighted->group;
  groupStats = &w.stats().targetGroups[group->id];
  if (rule && rule->requestTimeoutMs > 0) {
    requestDeadline = w.nowMillis() + rule->requestTimeoutMs;
    w.armTimer(this, requestDeadline);
  }
  if (!down.http2()) return startUpstream(nullptr);
  awaitingStart = true;  // Http2Downstream::startUpstreams(), once the read's frames are all handled
}

template <typename Task>
void Exchange::atEndOfTurn(Task task) {
  Worker* worker = &w;
  Exchange* self = this;
  uint64_t id = serial;
  w.defer([worker, self, id, task] {
    if (worker->exchanges().count(self) && self->serial == id) task(*self);
  });
}

void Exchange::startDeferred() {
  awaitingStart = false;
  // In order, as if it had started at once: the head, what of the body came meanwhile, its end. Each
  // step may end the exchange (a local answer, a failure).
  bool ended = requestDone;
  requestDone = false;
  std::string body = std::move(earlyBody);
  Worker& worker = w;
  uint64_t id = serial;
  auto alive = [&] { return worker.exchanges().count(this) && serial == id; };
  startUpstream(nullptr);
  if (!body.empty()) {
    if (!alive()) return;
    forwardBody(body);
  }
  if (ended) {
    if (!alive()) return;
    requestComplete();
  }
  if (!body.empty() && alive() && !bodyBlocked()) down.resumeRequestBody();  // the window held back meanwhile
}

void Exchange::refreshDeadline() { upstreamDeadline = w.nowMillis() + idleTimeoutMs; }

void Exchange::startUpstream(const snapshot::Target* avoid) {
  target = w.router().pickTarget(*group, avoid);
  if (!target) target = avoid && !avoid->draining ? avoid : nullptr;  // a lone target gets its retry too
  if (!target) return respondLocal(503);
  ++attempts;
  attemptSent = false;
  if (rule && rule->backendTimeoutMs > 0) {
    attemptDeadline = w.nowMillis() + rule->backendTimeoutMs;
    w.armTimer(this, attemptDeadline);
  }
  if (upstreamIsHttp2(group->protocolVersion)) return startHttp2Upstream();
  bool tls = group->protocol == snapshot::TargetProtocol::Https;
  UpstreamConnection* connection = attempts == 1 ? w.takeIdleUpstream(*target, tls) : nullptr;
  if (!connection && w.atConnectionLimit(*target, tls)) return respondLocal(503, "TargetConnectionError");
  if (!connection) connection = w.connectUpstream(*target, group->id, tls);
  if (!connection) return upstreamFailed("TargetConnectionError", Resend::Any);
  up = connection;
  up->attach(this);
  refreshDeadline();
  ++groupStats->requests.active;
  if (attempts > 1) {
    // Retry: the same bytes again, and whatever the client sends next follows.
    up->out_.tail().append(replay);
    return up->flush();
  }
  std::string& o = up->out_.tail();
  size_t start = o.size();
  const RequestHead& h = head;
  o.append(h.method).append(" ").append(h.target).append(" HTTP/1.1\r\n");
  std::vector<std::string> connectionTokens;
  for (const auto& [name, value] : h.headers) {
    if (name != "connection") continue;
    for (auto token : split(value, ',')) connectionTokens.push_back(toLower(trim(token)));
  }
  for (const auto& [name, value] : h.headers) {
    if (isHopByHop(name) || name == "content-length" || strippedFromClient(name)) continue;
    if (!connectionTokens.empty() &&
        std::find(connectionTokens.begin(), connectionTokens.end(), name) != connectionTokens.end()) {
      continue;
    }
    o.append(name).append(": ").append(value).append("\r\n");
  }
  std::string& forwarded = conn.forwardedHeaders_;
  if (forwarded.empty()) {  // the same for every request of the connection
    forwarded.append("x-forwarded-for: ").append(conn.peerIp_).append("\r\n");
    forwarded.append("x-forwarded-port: ").append(std::to_string(conn.port_)).append("\r\n");
    forwarded.append(conn.transport_.tls() ? "x-forwarded-proto: https\r\n" : "x-forwarded-proto: http\r\n");
  }
  o.append(forwarded);
  o.append("x-amzn-requestid: ").append(requestId).append("\r\n");
  o.append("x-amzn-lattice-target: ServiceArn=").append(service->arn);
  o.append("; ServiceNetworkArn=").append(network ? network->arn : "");
  o.append("; TargetGroupArn=").append(group->arn).append("\r\n");
  if (vpc) {
    o.append("x-amzn-lattice-network: SourceVpcArn=").append(vpc->arn).append("\r\n");
    o.append("x-amzn-source-vpc: ").append(vpc->id).append("\r\n");
  }
  if (auth.caller) o.append(auth.caller->identityHeaders);  // only after SigV4 auth succeeded
  if (h.chunked) {
    o.append("transfer-encoding: chunked\r\n");
  } else if (h.hasContentLength) {
    o.append("content-length: ").append(std::to_string(h.contentLength)).append("\r\n");
  }
  o.append("\r\n");
  replay.assign(o, start, std::string::npos);
  if (requestDone) requestSentMs = monotonicMillisPrecise();
  if (down.http2()) up->flush();  // an HTTP/1.1 client's connection flushes it after parsing
}

// HTTP2 and GRPC target groups: a stream on a pooled connection, with the same added headers as fields.
void Exchange::startHttp2Upstream() {
  bool tls = group->protocol == snapshot::TargetProtocol::Https;
  SSL_CTX* context = tls && w.tls() ? w.tls()->clientContext() : nullptr;
  if (tls && !context) return upstreamFailed("TargetConnectionError", Resend::No);
  bool atLimit = false;
  Http2UpstreamConnection* connection =
      w.http2Upstreams().connectionFor(*target, context, *groupStats, w.connectionsPerTarget(), atLimit);
  if (atLimit) {
    ++w.stats().targetConnectionLimit;
    return respondLocal(503, "TargetConnectionError");
  }
  if (!connection) return upstreamFailed("TargetConnectionError", Resend::Any);
  Headers headers;
  headers.reserve(head.headers.size() + 9);
  for (const auto& [name, value] : head.headers) {
    if ((isHopByHop(name) && name != "te") || strippedFromClient(name)) continue;
    headers.emplace_back(name, value);
  }
  headers.emplace_back("x-forwarded-for", conn.peerIp_);
  headers.emplace_back("x-forwarded-port", std::to_string(conn.port_));
  headers.emplace_back("x-forwarded-proto", conn.transport_.tls() ? "https" : "http");
  headers.emplace_back("x-amzn-requestid", requestId);
  headers.emplace_back("x-amzn-lattice-target", "ServiceArn=" + service->arn + "; ServiceNetworkArn=" +
                                                    (network ? network->arn : "") + "; TargetGroupArn=" + group->arn);
  if (vpc) {
    headers.emplace_back("x-amzn-lattice-network", "SourceVpcArn=" + vpc->arn);
    headers.emplace_back("x-amzn-source-vpc", vpc->id);
  }
  if (auth.caller) {  // prepared as HTTP/1 lines: "name: value\r\n"
    for (auto line : split(auth.caller->identityHeaders, '\n')) {
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      headers.emplace_back(std::string(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
    }
  }
  bool noBody = !head.hasBody();
  int32_t id = connection->openStream(head.method, tls ? "https" : "http", "", head.target, headers, noBody, this);
  if (id < 0) return upstreamFailed("TargetConnectionError", Resend::Any);
  h2up = connection;
  h2stream = id;
  refreshDeadline();
  ++groupStats->requests.active;
  if (noBody) {
    requestSentMs = monotonicMillisPrecise();
    return;
  }
  if (attempts > 1 && !replay.empty()) upstreamBlocked = h2up->sendBody(h2stream, replay) >= kStreamHighWater;
  if (requestDone) {
    h2up->endRequest(h2stream, requestTrailers);
    requestSentMs = monotonicMillisPrecise();
  }
}

void Exchange::keepForReplay(std::string_view bytes) {
  if (!replayValid) return;
  // While a retry waits, an HTTP/2 client may still send what its stream window allows (bodyBlocked stops
  // the window from reopening, but cannot take back what it granted): kept as well, so a body that was
  // small enough when the attempt failed is retried whatever arrives meanwhile. HTTP/1.1 clients are not
  // read from meanwhile.
  size_t limit = retryAt != 0 && down.http2() ? kMaxReplay + kStreamHighWater : kMaxReplay;
  if (replay.size() + bytes.size() > limit) {
    replayValid = false;
    replay.clear();
    replay.shrink_to_fit();
  } else {
    replay.append(bytes);
  }
}

bool Exchange::bodyBlocked() const {
  if (local) return false;
  // While a retry or the deferred start waits, what the client sends is kept for it: not more than that.
  return awaitingStart || retryAt != 0 || (up && up->out_.size() >= kHighWater) || (h2up && upstreamBlocked);
}

void Exchange::requestBody(std::string_view data) {
  bytesReceived += data.size();
  if (awaitingStart && !local) {
    earlyBody.append(data);  // bounded by the stream window: bodyBlocked() keeps it shut meanwhile
    return;
  }
  forwardBody(data);
}

void Exchange::forwardBody(std::string_view data) {
  if (local) return;  // answered already: the body is read and dropped
  if (h2up) {
    upstreamBlocked = h2up->sendBody(h2stream, data) >= kStreamHighWater;
    keepForReplay(data);
    refreshDeadline();
    return;
  }
  if (!up) {
    if (retryAt == 0) return;
    // Between attempts: kept as the next target will get it (HTTP/1.1 targets: in the request's framing).
    if (head.chunked && !upstreamIsHttp2(group->protocolVersion)) {
      std::string chunk;
      appendChunk(chunk, data);
      keepForReplay(chunk);
    } else {
      keepForReplay(data);
    }
    return;
  }
  std::string& o = up->out_.tail();
  size_t start = o.size();
  if (head.chunked) {
    appendChunk(o, data);
  } else {
    o.append(data);
  }
  keepForReplay(std::string_view(o).substr(start));
  if (down.http2()) up->flush();
}

void Exchange::requestComplete() {
  requestDone = true;
  if (!local && h2up) {
    if (head.hasBody()) h2up->endRequest(h2stream, requestTrailers);
    requestSentMs = monotonicMillisPrecise();
  } else if (!local && up) {
    if (head.chunked) {
      std::string& o = up->out_.tail();
      size_t start = o.size();
      appendLastChunk(o, requestTrailers);
      keepForReplay(std::string_view(o).substr(start));
    }
    requestSentMs = monotonicMillisPrecise();
    if (down.http2()) up->flush();
  } else if (!local && retryAt != 0 && head.chunked && !upstreamIsHttp2(group->protocolVersion)) {
    std::string last;
    appendLastChunk(last, requestTrailers);
    keepForReplay(last);
  }
  if (responseDone) finishLater(true);
}

void Exchange::finishLater(bool needRequestDone) {
  atEndOfTurn([needRequestDone](Exchange& e) {
    if (e.responseDone && (!needRequestDone || e.requestDone)) e.finish();
  });
}

void Exchange::dropUpstream() {
  if (up) {
    if (groupStats) --groupStats->requests.active;
    UpstreamConnection* connection = up;
    connection->detach();
    up = nullptr;
    w.retire(connection);
  }
  if (h2up) {
    if (groupStats) --groupStats->requests.active;
    h2up->cancel(h2stream);
    h2up = nullptr;
    h2stream = -1;
    upstreamHeld = 0;
  }
}

bool Exchange::mayResend(Resend resend) const {
  if (resend == Resend::Any) return true;
  if (resend == Resend::No) return false;
  // RFC 9110 9.2.2: the target may have acted on it. PUT and DELETE are idempotent by definition; any
  // other method goes again only when the rule's own retry policy says so.
  const std::string& m = head.method;
  bool idempotent = m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
  return idempotent || (rule && rule->retry.attempts > 0);
}

int Exchange::retriesAllowed(bool connectionFailure) const {
  int configured = rule ? rule->retry.attempts : 0;
  return connectionFailure ? std::max(configured, 1) : configured;
}

void Exchange::retry(const snapshot::Target* failed, const char* reason, bool later) {
  if (groupStats) ++groupStats->retries;
  logDebug("proxy: ", reason, " from ", failed ? failed->ipPort : "-", " (attempt ", attempts, "), retrying");
  responseStarted = interim = false;
  int backoff = rule ? rule->retry.backoffMs : 0;
  if (backoff == 0 && !later) return startUpstream(failed);
  retryAvoid = failed;
  retryReason = reason;
  retryAt = w.nowMillis() + backoff;
  w.armTimer(this, retryAt);
}

bool Exchange::retriedStatus(int responseStatus) {
  if (!rule || attempts > retriesAllowed(false) || !replayValid || !rule->retry.retriesStatus(responseStatus)) {
    return false;
  }
  logDebug("proxy: ", service->id, " rule ", rule->id, " retries status ", responseStatus);
  dropUpstream();
  retry(target, "RetriedStatus", true);
  return true;
}

void Exchange::onTimer(int64_t now) {
  if (responseHeadSent) {
    requestDeadline = attemptDeadline = retryAt = 0;
    return;
  }
  if (requestDeadline != 0 && now >= requestDeadline) {
    logInfo("proxy: request timeout (", rule->requestTimeoutMs, " ms) for ", service->id, " rule ", rule->id,
            " after ", attempts, " attempt(s)");
    requestDeadline = attemptDeadline = retryAt = 0;
    dropUpstream();
    if (!requestDone) down.abandonRequest();
    return respondLocal(504, "TargetDataTimeout");
  }
  if (retryAt != 0 && now >= retryAt) {
    retryAt = 0;
    if (!replayValid) {  // the client sent more than can be kept while the retry waited
      logInfo("proxy: ", retryReason, " for ", service->id, ": request body too large to retry");
      if (!requestDone) down.abandonRequest();
      return respondLocal(502, "TargetConnectionError");
    }
    down.resumeRequestBody();
    return startUpstream(retryAvoid);
  }
  if (attemptDeadline != 0 && now >= attemptDeadline && hasUpstream()) {
    attemptDeadline = 0;
    upstreamFailed("TargetDataTimeout", attemptSent || h2up ? Resend::Idempotent : Resend::Any);
  }
}

int64_t Exchange::nextTimer() const {
  if (responseHeadSent) return 0;
  int64_t next = 0;
  for (int64_t t : {requestDeadline, hasUpstream() ? attemptDeadline : 0, retryAt}) {
    if (t != 0 && (next == 0 || t < next)) next = t;
  }
  return next;
}

void Exchange::upstreamFailed(const char* reason, Resend resend) {
  dropUpstream();
  const snapshot::Target* failed = target;
  bool connectionFailure = std::strcmp(reason, "TargetDataTimeout") != 0;
  if (mayResend(resend) && !responseStarted && replayValid && attempts <= retriesAllowed(connectionFailure)) {
    return retry(failed, reason, false);
  }
  bool methodStopsIt = resend == Resend::Idempotent && !responseStarted && replayValid;
  if (methodStopsIt && attempts <= retriesAllowed(connectionFailure)) {
    logInfo("proxy: ", head.method, " for ", service->id, " not retried: it may have reached ",
            failed ? failed->ipPort : "-", " (RFC 9110 9.2.2; a rule with a retry policy allows it)");
  }
  if (!responseHeadSent) {
    logInfo("proxy: ", reason, " for ", service->id, " via ", failed ? failed->ipPort : "-");
    if (!requestDone) down.abandonRequest();
    return respondLocal(std::strcmp(reason, "TargetDataTimeout") == 0 ? 504 : 502, reason);
  }
  // The response was already under way: all we can do is cut the client off.
  failureReason = reason;
  down.abortStream(reason);
}

void Exchange::respondLocal(int code, const char* reason, std::string_view body, std::string_view location) {
  local = true;
  status = code;
  failureReason = reason;
  responseHeadSent = responseDone = true;
  ResponseHead response;
  response.status = code;
  response.hasContentLength = true;
  response.contentLength = body.size();
  // Empty ends with the head: on HTTP/2, HEADERS with END_STREAM (no DATA frame to follow, which a reset
  // right behind a cut header block would drop).
  response.bodyless = head.method == "HEAD" || body.empty();
  if (response.bodyless) response.headers.emplace_back("content-length", std::to_string(body.size()));
  if (!body.empty()) response.headers.emplace_back("content-type", "text/plain");
  if (!location.empty()) response.headers.emplace_back("location", location);
  down.sendHead(response, requestId);
  if (!response.bodyless && !body.empty()) down.sendBody(body);
  down.sendEnd({});
  if (requestDone || down.endsBeforeRequest()) finishLater(false);
  down.flushOutput();
}

void Exchange::responseHead(const ResponseHead& response) {
  if (firstResponseMs == 0) firstResponseMs = monotonicMillisPrecise();
  if (response.status < 200) {
    interim = true;
    if (response.status == 100) down.sendContinue();
    return;
  }
  interim = false;
  if (rule && rule->retry.attempts > 0 && retriedStatus(response.status)) return;
  status = response.status;
  responseHeadSent = true;
  upstreamKeepAlive = response.keepAlive;
  if (grpc) grpcCode = grpcStatus(response.headers);  // a trailers-only response has it here
  if (rule && !rule->responseHeaders.empty()) {
    ResponseHead modified = response;
    applyHeaderModifier(rule->responseHeaders, modified.headers);
    down.sendHead(modified, requestId);
  } else {
    down.sendHead(response, requestId);
  }
}

void Exchange::responseBody(std::string_view data) { down.sendBody(data); }

void Exchange::responseComplete() {
  down.sendEnd(responseTrailers);
  if (grpc && grpcStatus(responseTrailers) >= 0) grpcCode = grpcStatus(responseTrailers);
  responseDone = true;
  --groupStats->requests.active;
  if (up) {
    UpstreamConnection* connection = up;
    up = nullptr;
    connection->detach();
    if (upstreamKeepAlive && requestDone && connection->out_.empty() && connection->in_.empty()) {
      w.releaseUpstream(connection);
    } else {
      w.retire(connection);
    }
  }
  h2up = nullptr;  // its stream is over: the connection already let go of this exchange
  if (!requestDone) down.abandonRequest();  // the rest of the request body has nowhere to go
  finish();
}

void Exchange::downstreamDrained() {
  if (up) {
    UpstreamConnection* connection = up;
    if (connection->in_.size() > 0) {
      atEndOfTurn([connection](Exchange& e) {
        if (e.up == connection && !connection->dead_) connection->processInput();
      });
    }
    connection->updateInterest();
  }
  if (h2up && upstreamHeld > 0) {
    h2up->consumed(h2stream, upstreamHeld);
    upstreamHeld = 0;
  }
}

void Exchange::onUpstreamHead(ResponseHead& response) {
  responseStarted = true;
  refreshDeadline();
  responseHead(response);
  down.flushOutput();
}

void Exchange::onUpstreamBody(std::string_view data) {
  refreshDeadline();
  responseBody(data);
  // Acknowledged to the target once the client keeps up; else when it drains (downstreamDrained).
  if (down.bufferedBytes() < kHighWater) {
    h2up->consumed(h2stream, data.size());
  } else {
    upstreamHeld += data.size();
  }
  down.flushOutput();
}

void Exchange::onUpstreamTrailers(Headers& trailers) { responseTrailers = std::move(trailers); }

void Exchange::onUpstreamComplete() {
  responseComplete();  // finishes (and destroys) the exchange
}

void Exchange::onUpstreamFailed(const char* reason, Resend resend) {
  if (h2up) {
    if (groupStats) --groupStats->requests.active;
    h2up = nullptr;  // the connection already let go of this stream
    h2stream = -1;
  }
  upstreamFailed(reason, resend);
}

void Exchange::onUpstreamDrained() {
  upstreamBlocked = false;
  down.resumeRequestBody();
}

void Exchange::finish() {
  double end = monotonicMillisPrecise();
  double ms = end - startMs;
  int code = status ? status : 400;
  if (serviceStats) {
    auto& c = *serviceStats;
    c.record(code, ms);
    --c.active;
    if (code == 504) ++c.timeouts;
  }
  if (groupStats) {
    auto& c = groupStats->requests;
    c.record(code, ms);
    if (code == 504) ++c.timeouts;
  }
  if (service && !service->accessLogs.empty()) {
    AccessLogEntry entry;
    entry.startTimeSeconds = time(nullptr) - static_cast<int64_t>(ms / 1000);
    entry.serviceArn = service->arn;
    if (network) entry.serviceNetworkArn = network->arn;
    if (group) {
      entry.targetGroupArn = group->arn;
      entry.destinationVpcId = group->vpcId;
    }
    if (vpc) {
      entry.sourceVpcId = vpc->id;
      entry.sourceVpcArn = vpc->arn;
    }
    entry.sourceIpPort = conn.peerIpPort_;
    if (target && firstResponseMs > 0) entry.targetIpPort = target->ipPort;
    entry.requestMethod = head.method;
    entry.requestPath = head.target;
    entry.protocol = down.http2() ? "HTTP/2" : head.versionMinor >= 1 ? "HTTP/1.1" : "HTTP/1.0";
    if (const auto* host = head.header("host")) entry.hostHeader = *host;
    if (const auto* ua = head.header("user-agent")) entry.userAgent = *ua;
    if (const TlsSession* tls = conn.transport_.tls()) {
      entry.tlsVersion = tls->version();
      entry.sslCipher = tls->cipher();
      entry.serverNameIndication = conn.transport_.serverName();
    }
    entry.responseCode = code;
    if (grpc) entry.grpcResponseCode = grpcCode;
    entry.bytesReceived = bytesReceived;
    entry.bytesSent = bytesSent + (down.http2() ? 0 : conn.out_.size());
    entry.durationMs = static_cast<int64_t>(ms);
    if (requestSentMs > 0) entry.requestToTargetDurationMs = static_cast<int64_t>(requestSentMs - startMs);
    if (firstResponseMs > 0) entry.responseFromTargetDurationMs = static_cast<int64_t>(end - firstResponseMs);
    entry.requestId = requestId;
    entry.failureReason = failureReason;
    if (auth.enforced) {
      entry.resolvedUser = auth.resolvedUser();
      entry.authDeniedReason = auth.deniedBy;
      if (const snapshot::Caller* caller = auth.caller) {
        entry.callerPrincipal = caller->identity.arn;
        entry.callerPrincipalOrgID = caller->identity.orgId;
        entry.callerPrincipalTags = caller->tagsJson;
      }
    }
    entry.destinations = service->accessLogs;
    w.log(std::move(entry));
  }
  down.exchangeDone();  // destroys this exchange
}

// ---------------- UpstreamConnection ----------------

void UpstreamConnection::onEvents(uint32_t events) {
  if (!connected_) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      ++stats_.connectionErrors;
      if (ex_) return ex_->upstreamFailed("TargetConnectionError", Resend::Any);
      return w_.retire(this);
    }
    if (!(events & EPOLLOUT)) return;
    connected_ = true;
  }
  if (events & EPOLLOUT) flush();
  if (dead_) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    if (!ex_) return w_.retire(this);  // an idle pooled connection closed or misbehaved
    if (eof_) return w_.setInterest(this, 0);
    ssize_t n = tls_ ? readTls() : readInto(fd_, in_);
    if (n == -1) return;
    if (n > 0) {
      stats_.receivedBytes += static_cast<uint64_t>(n);
      ex_->refreshDeadline();
      return processInput();
    }
    eof_ = true;
    if (in_.empty()) return handleEof();
    w_.setInterest(this, 0);  // processInput() handles the EOF once the buffered bytes are through
  }
}

void UpstreamConnection::handleEof() {
  // A response delimited by EOF ends here; anything else is a failure.
  if (parser_.inMessage() && ex_->responseHeadSent && parser_.finish() == ParseStatus::Ok) {
    return ex_->responseComplete();
  }
  // Nothing came back (typically a reused keep-alive connection the target had closed): the request
  // can go to another target, if it is safe to repeat.
  Resend resend = ex_->responseStarted ? Resend::No : ex_->attemptSent ? Resend::Idempotent : Resend::Any;
  ex_->upstreamFailed("TargetConnectionClosed", resend);
}

void UpstreamConnection::flush() {
  if (!connected_) return updateInterest();
  uint64_t sent = 0;
  bool ok = tls_ ? writeTls(sent) : writeFrom(fd_, out_, &sent);
  if (sent && ex_) ex_->attemptSent = true;
  if (!ok) {
    if (!ex_) return w_.retire(this);
    Resend resend = ex_->responseStarted ? Resend::No : ex_->attemptSent ? Resend::Idempotent : Resend::Any;
    return ex_->upstreamFailed("TargetConnectionClosed", resend);
  }
  if (sent) {
    stats_.sentBytes += sent;
    if (ex_) ex_->refreshDeadline();
  }
  // Upstream drained: let the client's body flow again.
  if (ex_ && out_.size() < kLowWater) ex_->down.resumeRequestBody();
  updateInterest();
}

void UpstreamConnection::updateInterest() {
  if (dead_) return;
  uint32_t events = 0;
  if (!connected_ || !out_.empty() || !rawOut_.empty()) events |= EPOLLOUT;
  if (connected_ && (!ex_ || ex_->down.bufferedBytes() < kHighWater)) events |= EPOLLIN;
  w_.setInterest(this, events);
}

void UpstreamConnection::processInput() {
  while (ex_ && !in_.empty() && ex_->down.bufferedBytes() < kHighWater) {
    ex_->responseStarted = true;
    size_t consumed = 0;
    ParseStatus status = parser_.parse(in_.data(), std::min(in_.size(), kReadChunk), consumed);
    in_.consume(consumed);
    if (!ex_) return;  // the exchange retries elsewhere (a status its rule retries): this one is retired
    if (status == ParseStatus::Error) {
      logInfo("proxy: bad response from ", key_, ": ", parser_.error());
      return ex_->upstreamFailed("TargetProtocolError", Resend::No);
    }
    if (status == ParseStatus::Paused) {
      parser_.resume();
      if (ex_->interim) continue;
      return ex_->responseComplete();
    }
  }
  if (ex_ && eof_ && in_.empty()) return handleEof();
  if (ex_) ex_->down.flushOutput();
  if (!dead_ && !eof_) updateInterest();
}

void UpstreamConnection::onResponseHead(ResponseHead& head) { ex_->responseHead(head); }

// Like readInto for an HTTPS target: plaintext into in_; 0 at the end of the stream or on a TLS failure.
ssize_t UpstreamConnection::readTls() {
  static thread_local Buffer raw;
  raw.clear();
  ssize_t n = readInto(fd_, raw);
  if (n <= 0) return n;
  std::string& plain = in_.tail();
  size_t before = plain.size();
  if (!tls_->receive(std::string_view(raw.data(), raw.size()), plain, rawOut_.tail())) {
    logInfo("proxy: TLS to ", key_, " failed: ", tls_->error());
    return 0;
  }
  auto got = static_cast<ssize_t>(plain.size() - before);
  if (!rawOut_.empty() || (tls_->established() && !out_.empty())) flush();  // handshake, then the request
  if (dead_) return -1;
  if (got > 0) return got;
  return tls_->peerClosed() ? 0 : -1;
}

// Encrypts out_ into rawOut_ as the socket takes it (the first call sends the ClientHello).
bool UpstreamConnection::writeTls(uint64_t& sent) {
  while (true) {
    if (!writeFrom(fd_, rawOut_)) return false;
    if (!rawOut_.empty()) return true;
    long taken = tls_->send(std::string_view(out_.data(), std::min(out_.size(), kReadChunk)), rawOut_.tail());
    if (taken < 0) return false;
    out_.consume(static_cast<size_t>(taken));
    sent += static_cast<uint64_t>(taken);
    if (rawOut_.empty()) return true;  // nothing left to send, or the handshake waits for the target
  }
}

void UpstreamConnection::onBody(std::string_view data) {
  if (ex_) ex_->responseBody(data);  // none: a retried response's body, dropped with this connection
}

void UpstreamConnection::onTrailers(Headers& trailers) {
  if (ex_) ex_->responseTrailers = std::move(trailers);
}

// ---------------- Worker ----------------

Worker::Worker(int index, snapshot::SnapshotSource& source, AccessLogWriter& accessLogs)
    : index_(index), source_(source), accessLogs_(accessLogs) {
  epollFd_ = epoll_create1(EPOLL_CLOEXEC);
  wakeFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epollFd_ < 0 || wakeFd_ < 0) throw std::runtime_error("proxy: cannot create event loop");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the wake-up eventfd
  if (epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_, &ev) != 0) {
    throw std::runtime_error(std::string("proxy: cannot watch the wake-up eventfd: ") + std::strerror(errno));
  }
  randomBytes(requestIdState_, sizeof requestIdState_);
  requestIdState_[0] |= 1;
  http2Upstreams_ = std::make_unique<Http2UpstreamPool>(*this);
}

Worker::~Worker() {
  if (thread_.joinable()) stop(0);
  for (auto& [port, l] : listeners_) delete l;
  for (auto* d : downstreams_) delete d;
  for (auto* u : upstreams_) delete u;
  for (auto* p : graveyard_) delete p;
  ::close(epollFd_);
  ::close(wakeFd_);
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::stop(int graceMillis) {
  post([this, graceMillis] {
    stopping_ = true;
    stopDeadline_ = monotonicMillis() + graceMillis;
    for (auto& [port, l] : listeners_) retire(l);
    listeners_.clear();
    lastSweep_ = 0;  // sweep now: idle connections close right away
  });
  if (thread_.joinable()) thread_.join();
}

void Worker::post(std::function<void()> task) {
  {
    std::lock_guard lock(tasksMutex_);
    tasks_.push_back(std::move(task));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wakeFd_, &one, sizeof one);
}

void Worker::addListener(uint16_t port, int fd) {
  removeListener(port);
  auto* l = new ListenSocket(*this, port, fd);
  if (!watch(l, EPOLLIN)) {
    logError("proxy: worker ", index_, " cannot serve port ", port, ": epoll: ", std::strerror(errno));
    delete l;
    return;
  }
  listeners_[port] = l;
  if (acceptPausedUntil_ != 0) setInterest(l, 0);
}

bool Worker::watch(Pollable* p, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = p;
  // Fails for want of kernel memory or of max_user_watches: the caller treats it as a failed connection.
  if (epoll_ctl(epollFd_, EPOLL_CTL_ADD, p->fd_, &ev) != 0) return false;
  p->watched_ = true;
  p->interest_ = events;
  return true;
}

void Worker::unwatch(Pollable* p) {
  if (!p->watched_) return;
  p->watched_ = false;
  TRELLIS_ASSERT(epoll_ctl(epollFd_, EPOLL_CTL_DEL, p->fd_, nullptr) == 0);  // a watched descriptor
}

void Worker::pauseAccepting(int error) {
  if (acceptPausedUntil_ != 0) return;
  ++metrics_.acceptPaused;
  // Once per episode, not once per pause: the condition lasts as long as the connections do.
  if (!acceptPauseLogged_) {
    logWarn("proxy: worker ", index_, ": cannot accept connections (", std::strerror(error), "); pausing ",
            kAcceptPauseMs, " ms at a time until descriptors are free (trellis_proxy_accept_paused_total)");
    acceptPauseLogged_ = true;
  }
  acceptPausedUntil_ = nowMillis_ + kAcceptPauseMs;
  for (auto& [port, listener] : listeners_) setInterest(listener, 0);
}

void Worker::resumeAcceptingIfDue() {
  if (acceptPausedUntil_ == 0 || nowMillis_ < acceptPausedUntil_) return;
  acceptPausedUntil_ = 0;
  for (auto& [port, listener] : listeners_) setInterest(listener, EPOLLIN);
}

void Worker::removeListener(uint16_t port) {
  auto it = listeners_.find(port);
  if (it == listeners_.end()) return;
  retire(it->second);
  listeners_.erase(it);
}

void Worker::setInterest(Pollable* p, uint32_t events) {
  if (p->dead_ || !p->watched_ || p->interest_ == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = p;
  // interest_ tracks what epoll has; MOD of a watched descriptor only fails on a bug.
  TRELLIS_ASSERT(epoll_ctl(epollFd_, EPOLL_CTL_MOD, p->fd_, &ev) == 0);
  p->interest_ = events;
}

void Worker::retire(Pollable* p) {
  if (p->dead_) return;
  p->dead_ = true;
  unwatch(p);
  adopted_.erase(p);
  if (auto* up = dynamic_cast<UpstreamConnection*>(p)) {
    upstreams_.erase(up);
    if (auto count = openToTarget_.find(up->key_); count != openToTarget_.end() && --count->second == 0) {
      openToTarget_.erase(count);
    }
    --up->stats_.activeConnections;
    auto idle = idle_.find(up->key_);
    if (idle != idle_.end()) std::erase(idle->second, up);
  }
  ::close(p->fd_);
  p->fd_ = -1;
  graveyard_.push_back(p);
}

void Worker::accepted(int fd, uint16_t port, const sockaddr_storage& peer) {
  // Only clients in a VPC, and of those only what the association's security groups allow, get a connection
  // (docs/configuration.md, "Who reaches what"). Refused before any byte is read, with a reset as a firewall's
  // REJECT would.
  snapshot::Address address;
  const snapshot::Vpc* vpc = nullptr;
  if (snapshot::addressOf(reinterpret_cast<const sockaddr*>(&peer), address)) vpc = snapshot_->sourceVpc(address);
  if (!vpc || !vpc->admits(address, port)) {
    ++(vpc ? metrics_.deniedSecurityGroup : metrics_.deniedNoVpc);
    linger reset{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    ::close(fd);
    return;
  }
  if (acceptPauseLogged_) {
    logInfo("proxy: worker ", index_, ": accepting connections again");
    acceptPauseLogged_ = false;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto* d = new DownstreamConnection(*this, fd, port, peer, address);
  downstreams_.insert(d);
  ++metrics_.downstreamConnections;
  ++metrics_.activeDownstreamConnections;
  if (!watch(d, EPOLLIN)) d->close();
}

UpstreamConnection* Worker::takeIdleUpstream(const snapshot::Target& target, bool tls) {
  auto it = tls ? idle_.find(kTlsPoolPrefix + target.ipPort) : idle_.find(target.ipPort);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  UpstreamConnection* up = it->second.back();
  it->second.pop_back();
  up->reused_ = true;
  return up;
}

void Worker::releaseUpstream(UpstreamConnection* up) {
  auto& list = idle_[up->key_];
  if (list.size() >= kMaxIdlePerTarget || stopping_) return retire(up);
  up->idleSince_ = nowMillis_;
  list.push_back(up);
  up->updateInterest();
}

int Worker::connectionsPerTarget() const {
  return (snapshot_->maxConnectionsPerTarget + workerCount_ - 1) / workerCount_;  // the proxy's share of it
}

bool Worker::atConnectionLimit(const snapshot::Target& target, bool tls) {
  auto it = openToTarget_.find(tls ? kTlsPoolPrefix + target.ipPort : target.ipPort);
  if (it == openToTarget_.end() || it->second < connectionsPerTarget()) return false;
  ++metrics_.targetConnectionLimit;
  return true;
}

UpstreamConnection* Worker::connectUpstream(const snapshot::Target& target, const std::string& targetGroupId,
                                            bool tls) {
  auto& stats = metrics_.targetGroups[targetGroupId];
  std::optional<TargetSocket> socket =
      openTargetSocket(target, tls, tls_ ? tls_->clientContext() : nullptr, {}, stats);
  if (!socket) return nullptr;
  int fd = socket->fd;
  auto* up = new UpstreamConnection(*this, tls ? kTlsPoolPrefix + target.ipPort : target.ipPort, targetGroupId);
  up->tls_ = std::move(socket->tls);
  up->fd_ = fd;
  up->connected_ = socket->connected;
  up->openedAt_ = nowMillis_;
  upstreams_.insert(up);
  ++openToTarget_[up->key_];
  ++stats.activeConnections;
  if (!watch(up, EPOLLOUT | EPOLLIN)) {
    retire(up);
    return nullptr;  // a failed connection to the caller
  }
  return up;
}

std::string Worker::newRequestId() {
  // xorshift128+: request ids need to be unique, not secret; seeded from OpenSSL per worker.
  auto next = [this] {
    uint64_t s1 = requestIdState_[0];
    const uint64_t s0 = requestIdState_[1];
    requestIdState_[0] = s0;
    s1 ^= s1 << 23;
    requestIdState_[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return requestIdState_[1] + s0;
  };
  uint64_t a = next(), b = next();
  a = (a & 0xffffffffffff0fffull) | 0x4000;                 // version 4
  b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // variant
  // 8-4-4-4-12 hex digits: a's 16 then b's 16. Written by hand: snprintf was 7% of a request.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(36, '-');
  char* out = id.data();
  for (int i = 0; i < 16; ++i) *out++ = kHex[(a >> (60 - 4 * i)) & 0xf], out += (i == 7 || i == 11);
  out += 1;  // the dash after a's digits
  for (int i = 0; i < 16; ++i) *out++ = kHex[(b >> (60 - 4 * i)) & 0xf], out += (i == 3);
  return id;
}

void Worker::refreshSnapshot() {
  uint64_t generation = source_.generation();
  if (generation == generation_) return;
  generation_ = generation;
  snapshot::releaseSnapshot(std::move(snapshot_));
  snapshot_ = source_.current();
  router_.snapshotChanged();
}

void Worker::runTasks() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(tasksMutex_);
    tasks.swap(tasks_);
  }
  for (auto& task : tasks) task();
}

void Worker::sweep() {
  // Collect first: acting on a connection can close it and change downstreams_.
  std::vector<DownstreamConnection*> expired, goingAway, slowHeads, slowBodies;
  for (auto* d : downstreams_) {
    if (d->dead_) continue;
    if (d->draining_) {
      if (stopping_ || nowMillis_ > d->drainUntil_) expired.push_back(d);
      continue;
    }
    bool old = nowMillis_ - d->createdAt_ > snapshot_->connectionLifetimeMs;
    bool idle = nowMillis_ - d->lastActive_ > int64_t{d->idleTimeoutSeconds_} * 1000;
    if (d->h2_) {
      // Past its lifetime (Lattice's 10 minutes) a connection takes no new streams; the open ones finish.
      if ((stopping_ || old) && !d->h2_->session_.goingAway()) goingAway.push_back(d);
      if (d->h2_->idle() && (stopping_ || idle || old) && d->out_.empty()) expired.push_back(d);
      continue;
    }
    if (!d->exchange_) {
      if (stopping_ || idle || old) {
        if (d->out_.empty()) expired.push_back(d);
      } else if (d->headStartedAt_ != 0 && nowMillis_ - d->headStartedAt_ > snapshot_->requestHeadTimeoutMs) {
        slowHeads.push_back(d);
      }
      continue;
    }
    if (stopping_ || old) d->closeAfterResponse_ = true;
    int minRate = snapshot_->requestBodyMinBytesPerSecond;
    if (minRate > 0 && d->bodyTooSlow(nowMillis_, minRate)) slowBodies.push_back(d);
  }
  for (auto* d : slowHeads) {
    if (!d->dead_ && !d->exchange_) d->headTimedOut();
  }
  for (auto* d : slowBodies) {
    if (!d->dead_ && d->exchange_ && !d->exchange_->requestDone) d->bodyTimedOut();
  }
  for (auto* d : goingAway) {
    if (d->dead_) continue;
    d->h2_->session_.goAway();
    d->flushHttp2Now();  // now: an expired connection closes right below
  }
  for (auto* d : expired) d->close();
  std::vector<Exchange*> connectTimeouts, dataTimeouts;
  for (Exchange* e : exchanges_) {
    if (e->up && !e->up->connected_ && nowMillis_ - e->up->openedAt_ > kConnectTimeoutMs) {
      connectTimeouts.push_back(e);
    } else if (e->hasUpstream() && nowMillis_ > e->upstreamDeadline) {
      dataTimeouts.push_back(e);
    }
  }
  for (Exchange* e : connectTimeouts) {
    if (!exchanges_.count(e) || !e->up) continue;
    ++metrics_.targetGroups[e->group->id].connectionTimeouts;
    e->upstreamFailed("TargetConnectionError", Resend::Any);
  }
  for (Exchange* e : dataTimeouts) {
    if (exchanges_.count(e) && e->hasUpstream()) e->upstreamFailed("TargetDataTimeout", Resend::No);
  }
  std::vector<UpstreamConnection*> stale;
  for (auto& [key, list] : idle_) {
    for (auto* up : list) {
      if (stopping_ || nowMillis_ - up->idleSince_ > kPoolIdleMs) stale.push_back(up);
    }
  }
  for (auto* up : stale) retire(up);
  for (auto* p : std::vector<Pollable*>(adopted_.begin(), adopted_.end())) {
    if (!p->dead_) p->onSweep(nowMillis_, stopping_);
  }
}

void Worker::armTimer(Exchange* e, int64_t atMillis) {
  e->timed = true;
  timed_.insert(e);
  nextTimer_ = std::min(nextTimer_, atMillis);
}

void Worker::runTimers() {
  if (nowMillis_ < nextTimer_) return;
  std::vector<Exchange*> due;
  for (auto it = timed_.begin(); it != timed_.end();) {
    int64_t at = (*it)->nextTimer();
    if (at == 0) {
      (*it)->timed = false;
      it = timed_.erase(it);
      continue;
    }
    if (at <= nowMillis_) due.push_back(*it);
    ++it;
  }
  for (Exchange* e : due) {
    if (timed_.count(e)) e->onTimer(nowMillis_);  // may end other exchanges of the list
  }
  nextTimer_ = INT64_MAX;
  for (Exchange* e : timed_) {
    if (int64_t at = e->nextTimer(); at != 0) nextTimer_ = std::min(nextTimer_, at);
  }
}

int Worker::waitMillis() const {
  if (!deferred_.empty() || !endOfTurnFlushes_.empty()) return 0;
  int64_t next = acceptPausedUntil_ != 0 ? std::min(nextTimer_, acceptPausedUntil_) : nextTimer_;
  if (next == INT64_MAX) return 250;
  return static_cast<int>(std::clamp<int64_t>(next - monotonicMillis(), 0, 250));
}

void Worker::adopt(Pollable* p, uint32_t events) {
  adopted_.insert(p);
  if (watch(p, events)) return;
  // Not watched: it fails as a socket error would, once the caller has finished setting it up.
  defer([p] {
    if (!p->dead_) p->onEvents(EPOLLERR | EPOLLHUP);
  });
}

void Worker::runEndOfTurn() {
  while (!deferred_.empty() || !endOfTurnFlushes_.empty()) {
    std::vector<std::function<void()>> deferred;
    deferred.swap(deferred_);
    for (auto& task : deferred) task();
    flushingNow_.swap(endOfTurnFlushes_);
    for (DownstreamConnection* c : flushingNow_) c->flushHttp2Now();  // dead ones are freed only after this
    flushingNow_.clear();
  }
}

void Worker::run() {
  logDebug("proxy: worker ", index_, " running");
  epoll_event events[256];
  while (true) {
    nowMillis_ = monotonicMillis();
    refreshSnapshot();
    int n = epoll_wait(epollFd_, events, 256, waitMillis());
    nowMillis_ = monotonicMillis();
    refreshSnapshot();
    for (int i = 0; i < n; ++i) {
      auto* p = static_cast<Pollable*>(events[i].data.ptr);
      if (!p) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wakeFd_, &count, sizeof count);
        runTasks();
        continue;
      }
      if (!p->dead_) p->onEvents(events[i].events);
    }
    runTimers();
    resumeAcceptingIfDue();
    if (nowMillis_ - lastSweep_ >= 1000) {
      lastSweep_ = nowMillis_;
      sweep();
    }
    runEndOfTurn();
    for (auto* p : graveyard_) delete p;
    graveyard_.clear();
    if (!accessLogBatch_.empty()) accessLogs_.submit(std::move(accessLogBatch_));
    accessLogBatch_.clear();
    if (stopping_ && (downstreams_.empty() || nowMillis_ >= stopDeadline_)) break;
  }
  runEndOfTurn();  // the GOAWAYs the last sweep queued
  for (auto* d : std::vector<DownstreamConnection*>(downstreams_.begin(), downstreams_.end())) d->close();
  for (auto* u : std::vector<UpstreamConnection*>(upstreams_.begin(), upstreams_.end())) retire(u);
  for (auto* p : std::vector<Pollable*>(adopted_.begin(), adopted_.end())) retire(p);
  for (auto* p : graveyard_) delete p;
  graveyard_.clear();
  if (!accessLogBatch_.empty()) accessLogs_.submit(std::move(accessLogBatch_));
}

}  // namespace trellis::proxy
