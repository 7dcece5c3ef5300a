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

#include <cerrno>
#include <cstring>

#include "common/crypto.h"
#include "common/log.h"
#include "common/strings.h"
#include "proxy/auth.h"
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
constexpr int64_t kMaxConnectionAgeMs = 10 * 60 * 1000;  // spec 5.10
const std::string kTlsPoolPrefix = "tls ";  // pool key of HTTPS target connections: "tls 10.0.0.1:443"

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

// Headers a client may not set: the proxy owns them (spec 5.7, "unspoofable").
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
      if (fd < 0) return;  // EAGAIN, or a transient error (EMFILE...) retried on the next event
      w_.accepted(fd, port_, peer);
    }
  }

 private:
  Worker& w_;
  uint16_t port_;
};

// One request/response on a downstream connection: the stream of the codec/stream/router layering.
struct Exchange {
  snapshot::SnapshotPtr snap;  // pinned for the whole exchange
  RequestHead head;
  std::string requestId;
  const snapshot::Service* service = nullptr;
  const snapshot::TargetGroup* group = nullptr;
  const snapshot::Target* target = nullptr;
  const snapshot::Vpc* vpc = nullptr;  // the client's source VPC in `snap`
  const snapshot::ServiceNetwork* network = nullptr;
  AuthOutcome auth;  // who the caller is (spec 5.6), for the identity headers and the access log
  // The worker's counters for `service` and `group`, looked up once per exchange instead of by id at
  // every event.
  RequestCounters* serviceStats = nullptr;
  TargetGroupCounters* groupStats = nullptr;
  UpstreamConnection* up = nullptr;
  bool local = false;           // answered by the proxy itself; request body is discarded
  bool requestDone = false;     // the whole request was parsed
  bool responseHeadSent = false;
  bool responseDone = false;
  bool responseStarted = false;  // some byte came from the target: no retry after this
  bool interim = false;          // the response being parsed is 1xx
  bool clientChunked = false;
  bool upstreamKeepAlive = true;
  std::string replay;  // request bytes sent so far, for a retry; cleared when too big
  bool replayValid = true;
  int attempts = 0;
  Headers requestTrailers, responseTrailers;
  int status = 0;
  const char* failureReason = "";
  double startMs = 0, requestSentMs = 0, firstResponseMs = 0;
  int64_t startWall = 0;
  uint64_t bytesReceived = 0, bytesSent = 0;
  int64_t upstreamDeadline = 0;
};

class UpstreamConnection : public Pollable, public Http1ResponseHandler {
 public:
  UpstreamConnection(Worker& w, std::string key, std::string groupId)
      : w_(w), key_(std::move(key)), groupId_(std::move(groupId)), stats_(w.stats().targetGroups[groupId_]),
        parser_(*this) {}

  void onEvents(uint32_t events) override;
  void flush();
  void processInput();
  void attach(Exchange* ex, DownstreamConnection* down) {
    ex_ = ex;
    down_ = down;
    parser_.expectBodyless(ex->head.method == "HEAD");
  }
  void detach() {
    ex_ = nullptr;
    down_ = nullptr;
  }
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
  DownstreamConnection* down_ = nullptr;
  bool connected_ = false;
  bool reused_ = false;
  bool eof_ = false;
  int64_t openedAt_ = 0, idleSince_ = 0;
};

class DownstreamConnection : public Pollable, public Http1RequestHandler {
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
    if (events & (EPOLLIN | EPOLLHUP)) readable();
    if (!dead_ && (events & EPOLLOUT)) flush();
  }

  void readable() {
    ssize_t n = transport_.plain() ? readInto(fd_, in_) : readTransport();
    if (n == -1) return;
    if (n <= 0) {
      peerClosed_ = true;
      if (exchange_ && !exchange_->requestDone) return abort("ClientConnectionClosed");
      if (!exchange_) return close();
      updateInterest();  // finish the response, then close
      return;
    }
    lastActive_ = w_.nowMillis();
    process();
  }

  bool bodyBlocked() const {
    return exchange_ && exchange_->up && !exchange_->local && exchange_->up->out_.size() >= kHighWater;
  }

  // Feeds buffered bytes to the parser as far as backpressure and pipelining allow.
  void process() {
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

  void updateInterest() {
    if (dead_) return;
    uint32_t events = 0;
    if (!peerClosed_ && !closing_ && in_.size() < kReadChunk && !bodyBlocked()) events |= EPOLLIN;
    if (!out_.empty() || !rawOut_.empty()) events |= EPOLLOUT;
    w_.setInterest(this, events);
  }

  void flush() {
    uint64_t sent = 0;
    if (!(transport_.plain() ? writeFrom(fd_, out_, &sent) : writeTransport(sent))) {
      return abort("ClientConnectionClosed");
    }
    if (exchange_) exchange_->bytesSent += sent;
    if (out_.empty() && rawOut_.empty() && (closing_ || (peerClosed_ && !exchange_))) return close();
    // Downstream drained: let the target's response flow again.
    if (exchange_ && exchange_->up && out_.size() < kLowWater && exchange_->up->in_.size() > 0) {
      UpstreamConnection* up = exchange_->up;
      w_.defer([this, up] {
        if (!dead_ && !up->dead_ && exchange_ && exchange_->up == up) up->processInput();
      });
    }
    if (exchange_ && exchange_->up && out_.size() < kLowWater) exchange_->up->updateInterest();
    updateInterest();
  }

  // --- downstream codec events ---
  void onRequestHead(RequestHead& head) override;
  void onBody(std::string_view data) override;
  void onTrailers(Headers& trailers) override {
    if (exchange_) exchange_->requestTrailers = std::move(trailers);
  }
  void onComplete() override;

  // --- exchange life ---
  void startUpstream(const snapshot::Target* avoid);
  void upstreamFailed(const char* reason, bool retriable);
  // `body`: a text body (the 403 of an auth denial); none otherwise.
  void respondLocal(int status, const char* failureReason = "", std::string_view body = {});
  void responseHead(const ResponseHead& head);
  void responseBody(std::string_view data);
  void responseComplete();
  void finishExchange();
  void badRequest();
  void abort(const char* reason);
  void close();

  Worker& w_;
  uint16_t port_;
  sockaddr_storage peer_{};
  snapshot::Address peerAddress_;
  std::string peerIp_, peerIpPort_;
  Http1RequestParser parser_;
  Buffer in_, out_;
  std::unique_ptr<Exchange> exchange_;
  std::string spareReplay_;  // the last exchange's replay buffer, for its capacity
  std::string forwardedHeaders_;  // x-forwarded-for/-port/-proto lines, built at the first request
  bool paused_ = false;  // a request completed; the next one waits until its exchange is done
  bool peerClosed_ = false;
  bool closeAfterResponse_ = false;
  bool closing_ = false;  // close once out_ is flushed
  int64_t createdAt_ = 0, lastActive_ = 0;
  int idleTimeoutSeconds_ = 60;

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
    epoll_ctl(w_.epollFd(), EPOLL_CTL_DEL, fd, nullptr);
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
  lastActive_ = w_.nowMillis();
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
  auto ex = std::make_unique<Exchange>();
  ex->startMs = monotonicMillisPrecise();
  ex->snap = w_.snapshot();
  ex->head = std::move(head);
  ex->replay = std::move(spareReplay_);
  ex->replay.clear();
  ex->bytesReceived = ex->head.headerBytes;
  const std::string* id = ex->head.header("x-amzn-requestid");
  ex->requestId = id && !id->empty() ? id->substr(0, 512) : w_.newRequestId();
  if (!ex->head.keepAlive) closeAfterResponse_ = true;
  exchange_ = std::move(ex);
  Exchange& e = *exchange_;
  // Per request, not per connection: the snapshot (and with it the VPC's associations) may have changed.
  e.vpc = e.snap->sourceVpc(peerAddress_);

  RouteResult r = route(*e.snap, e.vpc, port_, e.head);
  if (r.kind == RouteResult::Kind::NoService) {
    ++(r.unreachable ? w_.stats().unreachableService : w_.stats().unknownHost);
    return respondLocal(404);
  }
  // Ports may carry listeners of different protocols: the one that matched must be this connection's. Over
  // TLS the Host must also name the service the SNI did, whose certificate this connection was shown.
  if (transport_.tls() && r.service->id != transport_.serviceId()) return respondLocal(421, "ClientProtocolError");
  if (r.listener->protocol != (transport_.tls() ? "HTTPS" : "HTTP")) return respondLocal(400, "ClientProtocolError");
  e.service = r.service;
  idleTimeoutSeconds_ = r.service->idleTimeoutSeconds;
  e.network = r.network;
  e.serviceStats = &w_.stats().services[r.service->id];
  ++e.serviceStats->active;
  if (r.service->usesIam || (r.network && r.network->usesIam)) {
    std::string denial;
    AuthRequest request{*e.snap, *r.service, r.network, e.vpc, e.head, port_, peerIp_, transport_.tls() != nullptr};
    if (!RequestAuthorizer::forThisThread().authorize(request, e.auth, denial)) {
      return respondLocal(403, "ClientAccessDenied", denial);
    }
  }
  if (r.action->kind == snapshot::Action::Kind::FixedResponse) return respondLocal(r.action->statusCode);
  const snapshot::WeightedTargetGroup* weighted = w_.router().pickTargetGroup(*r.action);
  if (!weighted || !weighted->group) return respondLocal(503);
  e.group = weighted->group;
  e.groupStats = &w_.stats().targetGroups[e.group->id];
  startUpstream(nullptr);
}

void DownstreamConnection::startUpstream(const snapshot::Target* avoid) {
  Exchange& e = *exchange_;
  const snapshot::Target* target = w_.router().pickTarget(*e.group, avoid);
  if (!target) target = avoid && !avoid->draining ? avoid : nullptr;  // a lone target gets its retry too
  if (!target) return respondLocal(503);
  e.target = target;
  ++e.attempts;
  bool tls = e.group->protocol == "HTTPS";
  UpstreamConnection* up = e.attempts == 1 ? w_.takeIdleUpstream(*target, tls) : nullptr;
  if (!up) up = w_.connectUpstream(*target, e.group->id, tls);
  if (!up) return upstreamFailed("TargetConnectionError", true);
  e.up = up;
  up->attach(&e, this);
  e.upstreamDeadline = w_.nowMillis() + int64_t{idleTimeoutSeconds_} * 1000;
  ++e.groupStats->requests.active;
  if (e.attempts > 1) {
    // Retry: the same bytes again, and whatever the client sends next follows.
    up->out_.tail().append(e.replay);
    return up->flush();
  }
  std::string& o = up->out_.tail();
  size_t start = o.size();
  const RequestHead& h = e.head;
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
  if (forwardedHeaders_.empty()) {  // the same for every request of the connection
    forwardedHeaders_.append("x-forwarded-for: ").append(peerIp_).append("\r\n");
    forwardedHeaders_.append("x-forwarded-port: ").append(std::to_string(port_)).append("\r\n");
    forwardedHeaders_.append(transport_.tls() ? "x-forwarded-proto: https\r\n" : "x-forwarded-proto: http\r\n");
  }
  o.append(forwardedHeaders_);
  o.append("x-amzn-requestid: ").append(e.requestId).append("\r\n");
  o.append("x-amzn-lattice-target: ServiceArn=").append(e.service->arn);
  o.append("; ServiceNetworkArn=").append(e.network ? e.network->arn : "");
  o.append("; TargetGroupArn=").append(e.group->arn).append("\r\n");
  if (e.vpc) {
    o.append("x-amzn-lattice-network: SourceVpcArn=").append(e.vpc->arn).append("\r\n");
    o.append("x-amzn-source-vpc: ").append(e.vpc->id).append("\r\n");
  }
  if (e.auth.caller) o.append(e.auth.caller->identityHeaders);  // spec 5.7: only after SigV4 auth succeeded
  if (h.chunked) {
    o.append("transfer-encoding: chunked\r\n");
  } else if (h.hasContentLength) {
    o.append("content-length: ").append(std::to_string(h.contentLength)).append("\r\n");
  }
  o.append("\r\n");
  e.replay.assign(o, start, std::string::npos);
  if (e.requestDone) e.requestSentMs = monotonicMillisPrecise();
}

void DownstreamConnection::onBody(std::string_view data) {
  if (!exchange_) return;
  Exchange& e = *exchange_;
  e.bytesReceived += data.size();
  if (e.local || !e.up) return;  // answered already: the body is read and dropped
  std::string& o = e.up->out_.tail();
  size_t start = o.size();
  if (e.head.chunked) {
    appendChunk(o, data);
  } else {
    o.append(data);
  }
  if (e.replayValid) {
    if (e.replay.size() + (o.size() - start) > kMaxReplay) {
      e.replayValid = false;
      e.replay.clear();
      e.replay.shrink_to_fit();
    } else {
      e.replay.append(o, start, std::string::npos);
    }
  }
}

void DownstreamConnection::onComplete() {
  if (!exchange_) return;
  Exchange& e = *exchange_;
  e.requestDone = true;
  if (!e.local && e.up) {
    if (e.head.chunked) {
      std::string& o = e.up->out_.tail();
      size_t start = o.size();
      appendLastChunk(o, e.requestTrailers);
      if (e.replayValid) e.replay.append(o, start, std::string::npos);
    }
    e.requestSentMs = monotonicMillisPrecise();
  }
  if (e.responseDone) {
    w_.defer([this] {
      if (!dead_ && exchange_ && exchange_->responseDone && exchange_->requestDone) finishExchange();
    });
  }
}

void DownstreamConnection::upstreamFailed(const char* reason, bool retriable) {
  Exchange& e = *exchange_;
  if (e.up) {
    --e.groupStats->requests.active;
    UpstreamConnection* up = e.up;
    up->detach();
    e.up = nullptr;
    w_.retire(up);
  }
  const snapshot::Target* failed = e.target;
  if (retriable && !e.responseStarted && e.replayValid && e.attempts < 2) {
    logDebug("proxy: ", reason, " to ", failed ? failed->ipPort : "-", ", retrying on another target");
    return startUpstream(failed);
  }
  if (!e.responseHeadSent) {
    logInfo("proxy: ", reason, " for ", e.service->id, " via ", failed ? failed->ipPort : "-");
    if (!e.requestDone) closeAfterResponse_ = true;
    return respondLocal(std::strcmp(reason, "TargetDataTimeout") == 0 ? 504 : 502, reason);
  }
  // The response was already under way: all we can do is cut the client off.
  e.failureReason = reason;
  abort(reason);
}

void DownstreamConnection::respondLocal(int status, const char* failureReason, std::string_view body) {
  Exchange& e = *exchange_;
  e.local = true;
  e.status = status;
  e.failureReason = failureReason;
  e.responseHeadSent = e.responseDone = true;
  std::string& o = out_.tail();
  o.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(reasonPhrase(status));
  o.append("\r\ncontent-length: ").append(std::to_string(body.size()));
  if (!body.empty()) o.append("\r\ncontent-type: text/plain");
  o.append("\r\nx-amzn-requestid: ").append(e.requestId).append("\r\n");
  if (closeAfterResponse_) o.append("connection: close\r\n");
  o.append("\r\n");
  if (e.head.method != "HEAD") o.append(body);
  if (e.requestDone || closeAfterResponse_) {
    w_.defer([this] {
      if (!dead_ && exchange_ && exchange_->responseDone) finishExchange();
    });
  }
  flush();
}

void DownstreamConnection::responseHead(const ResponseHead& head) {
  Exchange& e = *exchange_;
  if (e.firstResponseMs == 0) e.firstResponseMs = monotonicMillisPrecise();
  if (head.status < 200) {
    e.interim = true;
    if (head.status == 100 && e.head.versionMinor >= 1) out_.tail().append("HTTP/1.1 100 Continue\r\n\r\n");
    return;
  }
  e.interim = false;
  e.status = head.status;
  e.responseHeadSent = true;
  e.upstreamKeepAlive = head.keepAlive;
  if (w_.stopping() || w_.nowMillis() - createdAt_ > kMaxConnectionAgeMs) closeAfterResponse_ = true;
  std::string& o = out_.tail();
  o.append("HTTP/1.1 ").append(std::to_string(head.status)).append(" ");
  o.append(head.reason.empty() ? std::string(reasonPhrase(head.status)) : head.reason).append("\r\n");
  for (const auto& [name, value] : head.headers) {
    if (isHopByHop(name) || name == "x-amzn-requestid" || (name == "content-length" && !head.bodyless)) continue;
    o.append(name).append(": ").append(value).append("\r\n");
  }
  o.append("x-amzn-requestid: ").append(e.requestId).append("\r\n");
  if (!head.bodyless) {
    if (head.hasContentLength) {
      o.append("content-length: ").append(std::to_string(head.contentLength)).append("\r\n");
    } else if (e.head.versionMinor >= 1) {
      e.clientChunked = true;
      o.append("transfer-encoding: chunked\r\n");
    } else {
      closeAfterResponse_ = true;  // HTTP/1.0: the end of the body is the end of the connection
    }
  }
  if (closeAfterResponse_) {
    o.append("connection: close\r\n");
  } else if (e.head.versionMinor == 0) {
    o.append("connection: keep-alive\r\n");
  }
  o.append("\r\n");
}

void DownstreamConnection::responseBody(std::string_view data) {
  Exchange& e = *exchange_;
  if (e.clientChunked) {
    appendChunk(out_.tail(), data);
  } else {
    out_.tail().append(data);
  }
}

void DownstreamConnection::responseComplete() {
  Exchange& e = *exchange_;
  if (e.clientChunked) appendLastChunk(out_.tail(), e.responseTrailers);
  e.responseDone = true;
  UpstreamConnection* up = e.up;
  e.up = nullptr;
  --e.groupStats->requests.active;
  up->detach();
  if (e.upstreamKeepAlive && e.requestDone && up->out_.empty() && up->in_.empty()) {
    w_.releaseUpstream(up);
  } else {
    w_.retire(up);
  }
  if (!e.requestDone) closeAfterResponse_ = true;  // the rest of the request body has nowhere to go
  finishExchange();
}

void DownstreamConnection::finishExchange() {
  std::unique_ptr<Exchange> ex = std::move(exchange_);
  Exchange& e = *ex;
  double end = monotonicMillisPrecise();
  double ms = end - e.startMs;
  int status = e.status ? e.status : 400;
  if (e.serviceStats) {
    auto& c = *e.serviceStats;
    c.record(status, ms);
    --c.active;
    if (status == 504) ++c.timeouts;
  }
  if (e.groupStats) {
    auto& c = e.groupStats->requests;
    c.record(status, ms);
    if (status == 504) ++c.timeouts;
  }
  if (e.service && !e.service->accessLogs.empty()) {
    AccessLogEntry entry;
    entry.startTimeSeconds = time(nullptr) - static_cast<int64_t>(ms / 1000);
    entry.serviceArn = e.service->arn;
    if (e.network) entry.serviceNetworkArn = e.network->arn;
    if (e.group) {
      entry.targetGroupArn = e.group->arn;
      entry.destinationVpcId = e.group->vpcId;
    }
    if (e.vpc) {
      entry.sourceVpcId = e.vpc->id;
      entry.sourceVpcArn = e.vpc->arn;
    }
    entry.sourceIpPort = peerIpPort_;
    if (e.target && e.firstResponseMs > 0) entry.targetIpPort = e.target->ipPort;
    entry.requestMethod = e.head.method;
    entry.requestPath = e.head.target;
    entry.protocol = e.head.versionMinor >= 1 ? "HTTP/1.1" : "HTTP/1.0";
    if (const auto* host = e.head.header("host")) entry.hostHeader = *host;
    if (const auto* ua = e.head.header("user-agent")) entry.userAgent = *ua;
    if (const TlsSession* tls = transport_.tls()) {
      entry.tlsVersion = tls->version();
      entry.sslCipher = tls->cipher();
      entry.serverNameIndication = transport_.serverName();
    }
    entry.responseCode = status;
    entry.bytesReceived = e.bytesReceived;
    entry.bytesSent = e.bytesSent + out_.size();
    entry.durationMs = static_cast<int64_t>(ms);
    if (e.requestSentMs > 0) entry.requestToTargetDurationMs = static_cast<int64_t>(e.requestSentMs - e.startMs);
    if (e.firstResponseMs > 0) entry.responseFromTargetDurationMs = static_cast<int64_t>(end - e.firstResponseMs);
    entry.requestId = e.requestId;
    entry.failureReason = e.failureReason;
    if (e.auth.enforced) {
      entry.resolvedUser = e.auth.resolvedUser();
      entry.authDeniedReason = e.auth.deniedBy;
      if (const snapshot::Caller* caller = e.auth.caller) {
        entry.callerPrincipal = caller->identity.arn;
        entry.callerPrincipalOrgID = caller->identity.orgId;
        entry.callerPrincipalTags = caller->tagsJson;
      }
    }
    entry.destinations = e.service->accessLogs;
    w_.log(std::move(entry));
  }
  // The next request on this connection reuses this one's storage instead of allocating its own.
  parser_.recycle(std::move(e.head.headers));
  if (e.replay.capacity() <= kSpareReplayCapacity) spareReplay_ = std::move(e.replay);
  if (closeAfterResponse_ || peerClosed_ || w_.stopping()) {
    closing_ = true;
    return flush();
  }
  parser_.resume();
  paused_ = false;
  lastActive_ = w_.nowMillis();
  flush();
  if (!dead_ && !in_.empty()) {
    w_.defer([this] {
      if (!dead_) process();
    });
  }
}

void DownstreamConnection::badRequest() {
  ++w_.stats().badRequests;
  logDebug("proxy: 400 from ", peerIpPort_, ": ", parser_.error());
  closeAfterResponse_ = true;
  if (exchange_ && exchange_->responseHeadSent) return abort("ClientProtocolError");
  if (exchange_ && exchange_->up) {
    --exchange_->groupStats->requests.active;
    UpstreamConnection* up = exchange_->up;
    up->detach();
    exchange_->up = nullptr;
    w_.retire(up);
  }
  if (!exchange_) {
    exchange_ = std::make_unique<Exchange>();
    exchange_->startMs = monotonicMillisPrecise();
    exchange_->requestId = w_.newRequestId();
  }
  exchange_->requestDone = true;
  respondLocal(400, "ClientProtocolError");
}

void DownstreamConnection::abort(const char* reason) {
  if (dead_) return;
  if (exchange_) {
    if (!*exchange_->failureReason) exchange_->failureReason = reason;
    if (exchange_->up) {
      if (exchange_->groupStats) --exchange_->groupStats->requests.active;
      UpstreamConnection* up = exchange_->up;
      up->detach();
      exchange_->up = nullptr;
      w_.retire(up);
    }
    closing_ = true;
    out_.clear();
    finishExchange();
  }
  close();
}

void DownstreamConnection::close() {
  if (dead_) return;
  if (exchange_ && exchange_->up) {
    UpstreamConnection* up = exchange_->up;
    up->detach();
    exchange_->up = nullptr;
    w_.retire(up);
  }
  w_.downstreams_.erase(this);
  --w_.stats().activeDownstreamConnections;
  w_.retire(this);
}

// ---------------- UpstreamConnection ----------------

void UpstreamConnection::onEvents(uint32_t events) {
  if (!connected_) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      ++stats_.connectionErrors;
      if (down_) return down_->upstreamFailed("TargetConnectionError", true);
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
      ex_->upstreamDeadline = w_.nowMillis() + int64_t{down_->idleTimeoutSeconds_} * 1000;
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
    return down_->responseComplete();
  }
  // Nothing came back (typically a reused keep-alive connection the target had closed): the request
  // can go to another target.
  bool nothingYet = !ex_->responseStarted;
  down_->upstreamFailed("TargetConnectionClosed", nothingYet);
}

void UpstreamConnection::flush() {
  if (!connected_) return updateInterest();
  uint64_t sent = 0;
  if (!(tls_ ? writeTls(sent) : writeFrom(fd_, out_, &sent))) {
    if (down_) return down_->upstreamFailed("TargetConnectionClosed", !ex_->responseStarted);
    return w_.retire(this);
  }
  if (sent) {
    stats_.sentBytes += sent;
    if (ex_) ex_->upstreamDeadline = w_.nowMillis() + int64_t{down_->idleTimeoutSeconds_} * 1000;
  }
  // Upstream drained: let the client's body flow again.
  if (down_ && out_.size() < kLowWater) {
    DownstreamConnection* down = down_;
    if (!down->in_.empty() && !down->paused_) {
      w_.defer([down] {
        if (!down->dead_) down->process();
      });
    }
    down->updateInterest();
  }
  updateInterest();
}

void UpstreamConnection::updateInterest() {
  if (dead_) return;
  uint32_t events = 0;
  if (!connected_ || !out_.empty() || !rawOut_.empty()) events |= EPOLLOUT;
  if (connected_ && (!down_ || down_->out_.size() < kHighWater)) events |= EPOLLIN;
  w_.setInterest(this, events);
}

void UpstreamConnection::processInput() {
  while (ex_ && !in_.empty() && down_->out_.size() < kHighWater) {
    ex_->responseStarted = true;
    size_t consumed = 0;
    ParseStatus status = parser_.parse(in_.data(), std::min(in_.size(), kReadChunk), consumed);
    in_.consume(consumed);
    if (status == ParseStatus::Error) {
      logInfo("proxy: bad response from ", key_, ": ", parser_.error());
      return down_->upstreamFailed("TargetProtocolError", false);
    }
    if (status == ParseStatus::Paused) {
      parser_.resume();
      if (ex_->interim) continue;
      DownstreamConnection* down = down_;
      down->responseComplete();
      return;
    }
  }
  if (ex_ && eof_ && in_.empty()) return handleEof();
  if (down_) down_->flush();
  if (!dead_ && !eof_) updateInterest();
}

void UpstreamConnection::onResponseHead(ResponseHead& head) { down_->responseHead(head); }

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

void UpstreamConnection::onBody(std::string_view data) { down_->responseBody(data); }

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
  epoll_ctl(epollFd_, EPOLL_CTL_ADD, wakeFd_, &ev);
  randomBytes(requestIdState_, sizeof requestIdState_);
  requestIdState_[0] |= 1;
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
  listeners_[port] = l;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = l;
  epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev);
  l->interest_ = EPOLLIN;
}

void Worker::removeListener(uint16_t port) {
  auto it = listeners_.find(port);
  if (it == listeners_.end()) return;
  retire(it->second);
  listeners_.erase(it);
}

void Worker::setInterest(Pollable* p, uint32_t events) {
  if (p->dead_ || p->interest_ == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = p;
  // Registered with no events at first so MOD always works; interest_ tracks what epoll has.
  epoll_ctl(epollFd_, EPOLL_CTL_MOD, p->fd_, &ev);
  p->interest_ = events;
}

void Worker::retire(Pollable* p) {
  if (p->dead_) return;
  p->dead_ = true;
  epoll_ctl(epollFd_, EPOLL_CTL_DEL, p->fd_, nullptr);
  adopted_.erase(p);
  if (auto* up = dynamic_cast<UpstreamConnection*>(p)) {
    upstreams_.erase(up);
    --up->stats_.activeConnections;
    auto idle = idle_.find(up->key_);
    if (idle != idle_.end()) std::erase(idle->second, up);
  }
  ::close(p->fd_);
  p->fd_ = -1;
  graveyard_.push_back(p);
}

void Worker::accepted(int fd, uint16_t port, const sockaddr_storage& peer) {
  // Spec 5.1: only clients in a VPC, and of those only what the association's security groups allow,
  // get a connection. Refused before any byte is read, with a reset as a firewall's REJECT would.
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
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto* d = new DownstreamConnection(*this, fd, port, peer, address);
  downstreams_.insert(d);
  ++metrics_.downstreamConnections;
  ++metrics_.activeDownstreamConnections;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = d;
  epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev);
  d->interest_ = EPOLLIN;
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

UpstreamConnection* Worker::connectUpstream(const snapshot::Target& target, const std::string& targetGroupId,
                                            bool tls) {
  auto& stats = metrics_.targetGroups[targetGroupId];
  ++stats.totalConnections;
  // Spec 5.4: TLS to targets without verifying their certificates.
  std::unique_ptr<TlsSession> session = tls && tls_ ? TlsSession::client(tls_->clientContext(), "") : nullptr;
  if (tls && !session) {
    ++stats.connectionErrors;
    return nullptr;
  }
  int fd = socket(target.socketAddress.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ++stats.connectionErrors;
    return nullptr;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&target.socketAddress.storage), target.socketAddress.length);
  if (rc != 0 && errno != EINPROGRESS) {
    ::close(fd);
    ++stats.connectionErrors;
    return nullptr;
  }
  auto* up = new UpstreamConnection(*this, tls ? kTlsPoolPrefix + target.ipPort : target.ipPort, targetGroupId);
  up->tls_ = std::move(session);
  up->fd_ = fd;
  up->connected_ = rc == 0;
  up->openedAt_ = nowMillis_;
  upstreams_.insert(up);
  ++stats.activeConnections;
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLIN;
  ev.data.ptr = up;
  epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev);
  up->interest_ = ev.events;
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
  snapshot_ = source_.current();
  router_.reset();  // its state is keyed by the old snapshot's objects
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
  std::vector<DownstreamConnection*> expired, connectTimeouts, dataTimeouts;
  for (auto* d : downstreams_) {
    if (d->dead_) continue;
    Exchange* e = d->exchange_.get();
    if (!e) {
      if (stopping_ || nowMillis_ - d->lastActive_ > int64_t{d->idleTimeoutSeconds_} * 1000 ||
          nowMillis_ - d->createdAt_ > kMaxConnectionAgeMs) {
        if (d->out_.empty()) expired.push_back(d);
      }
      continue;
    }
    if (stopping_ || nowMillis_ - d->createdAt_ > kMaxConnectionAgeMs) d->closeAfterResponse_ = true;
    if (e->up && !e->up->connected_ && nowMillis_ - e->up->openedAt_ > kConnectTimeoutMs) {
      connectTimeouts.push_back(d);
    } else if (e->up && nowMillis_ > e->upstreamDeadline) {
      dataTimeouts.push_back(d);
    }
  }
  for (auto* d : expired) d->close();
  for (auto* d : connectTimeouts) {
    if (d->dead_ || !d->exchange_ || !d->exchange_->up) continue;
    ++metrics_.targetGroups[d->exchange_->group->id].connectionTimeouts;
    d->upstreamFailed("TargetConnectionError", true);
  }
  for (auto* d : dataTimeouts) {
    if (!d->dead_ && d->exchange_ && d->exchange_->up) d->upstreamFailed("TargetDataTimeout", false);
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

void Worker::adopt(Pollable* p, uint32_t events) {
  adopted_.insert(p);
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = p;
  epoll_ctl(epollFd_, EPOLL_CTL_ADD, p->fd_, &ev);
  p->interest_ = events;
}

void Worker::run() {
  logDebug("proxy: worker ", index_, " running");
  epoll_event events[256];
  while (true) {
    nowMillis_ = monotonicMillis();
    refreshSnapshot();
    int n = epoll_wait(epollFd_, events, 256, 250);
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
    while (!deferred_.empty()) {
      std::vector<std::function<void()>> deferred;
      deferred.swap(deferred_);
      for (auto& task : deferred) task();
    }
    if (nowMillis_ - lastSweep_ >= 1000) {
      lastSweep_ = nowMillis_;
      sweep();
    }
    for (auto* p : graveyard_) delete p;
    graveyard_.clear();
    if (!accessLogBatch_.empty()) accessLogs_.submit(std::move(accessLogBatch_));
    accessLogBatch_.clear();
    if (stopping_ && (downstreams_.empty() || nowMillis_ >= stopDeadline_)) break;
  }
  for (auto* d : std::vector<DownstreamConnection*>(downstreams_.begin(), downstreams_.end())) d->close();
  for (auto* u : std::vector<UpstreamConnection*>(upstreams_.begin(), upstreams_.end())) retire(u);
  for (auto* p : std::vector<Pollable*>(adopted_.begin(), adopted_.end())) retire(p);
  for (auto* p : graveyard_) delete p;
  graveyard_.clear();
  if (!accessLogBatch_.empty()) accessLogs_.submit(std::move(accessLogBatch_));
}

}  // namespace trellis::proxy
