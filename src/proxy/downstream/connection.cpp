#include "proxy/downstream/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>

#include <algorithm>

#include "common/log.h"
#include "proxy/passthrough.h"
#include "proxy/server/worker_context.h"

namespace trellis::proxy {
namespace {

constexpr size_t kSpareReplayCapacity = 4096;  // kept between a connection's requests (a typical head)
constexpr int kDefaultIdleTimeoutSeconds = 60;  // Lattice's, for a connection nothing was routed on yet

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

}  // namespace

DownstreamConnection::DownstreamConnection(WorkerContext& w, int fd, uint16_t port, const sockaddr_storage& peer,
                                           const snapshot::Address& address)
    : w_(w), parser_(*this), idleTimeoutSeconds_(kDefaultIdleTimeoutSeconds) {
  fd_ = fd;
  client_.port = port;
  client_.portText = std::to_string(port);
  client_.address = address;
  client_.ip = ipOf(peer);
  bool bracketed = peer.ss_family == AF_INET6 && client_.ip.find(':') != std::string::npos;
  client_.ipPort = (bracketed ? "[" + client_.ip + "]" : client_.ip) + ":" + std::to_string(portOf(peer));
  createdAt_ = lastActive_ = w.nowMillis();
}

DownstreamConnection::~DownstreamConnection() = default;

void DownstreamConnection::onEvents(uint32_t events) {
  // EPOLLHUP cannot be masked: once the peer is gone for good there is nothing left to do.
  if ((events & EPOLLERR) || ((events & EPOLLHUP) && peerClosed_)) return abort(Failure::ClientConnectionClosed);
  if (draining_) return drain();
  if (events & (EPOLLIN | EPOLLHUP)) readable();
  if (!dead() && (events & EPOLLOUT)) flush();
}

void DownstreamConnection::readable() {
  // The first byte of a request head (or of the TLS handshake before it) starts its deadline.
  if (!h2_ && !exchange_ && headStartedAt_ == 0) headStartedAt_ = w_.nowMillis();
  ssize_t n = client_.transport.plain() ? readInto(fd_, in_) : readTransport();
  if (n == -1) return;
  if (n <= 0) {
    peerClosed_ = true;
    if (h2_) return h2_->idle() ? close() : abort(Failure::ClientConnectionClosed);
    if (exchange_ && !exchange_->requestDone()) return abort(Failure::ClientConnectionClosed);
    if (!exchange_) return close();
    updateInterest();  // finish the response, then close
    return;
  }
  // HTTP/2: frames alone (PING, SETTINGS, a header block sent a byte at a time) do not keep a connection
  // without streams from its idle timeout; streams starting and ending do.
  if (!h2_) lastActive_ = w_.nowMillis();
  process();
}

void DownstreamConnection::process() {
  if (!codecChosen_ && !chooseCodec()) return updateInterest();
  if (h2_) return processHttp2();
  while (!dead() && !in_.empty() && !paused_ && !bodyBlocked()) {
    size_t consumed = 0;
    ParseStatus status = parser_.parse(in_.data(), std::min(in_.size(), kReadChunk), consumed);
    in_.consume(consumed);
    if (dead()) return;
    if (status == ParseStatus::Error) return badRequest();
    if (status == ParseStatus::Paused) paused_ = true;
  }
  if (!dead()) updateInterest();
}

bool DownstreamConnection::chooseCodec() {
  if (const TlsSession* tls = client_.transport.tls()) {
    if (tls->alpn() == "h2") h2_ = std::make_unique<Http2Downstream>(static_cast<Http2ConnectionSide&>(*this));
  } else {
    PrefaceMatch match = matchHttp2Preface(in_.view());
    if (match == PrefaceMatch::Partial) return false;
    if (match == PrefaceMatch::Yes) h2_ = std::make_unique<Http2Downstream>(static_cast<Http2ConnectionSide&>(*this));
  }
  codecChosen_ = true;
  return true;
}

void DownstreamConnection::processHttp2() {
  inHttp2_ = true;
  bool ok = h2_->session().receive(in_.view());
  inHttp2_ = false;
  in_.clear();
  if (dead()) return;
  if (!ok) {
    logDebug("proxy: HTTP/2 from ", client_.ipPort, ": ", h2_->session().error());
    ++(h2_->session().terminated() ? w_.stats().http2Terminated : w_.stats().badRequests);
    h2_->abortAll(Failure::ClientProtocolError);
    closing_ = true;
  } else {
    h2_->startUpstreams();
    if (dead()) return;
  }
  flush();
}

void DownstreamConnection::updateInterest() {
  if (dead()) return;
  uint32_t events = 0;
  if (!peerClosed_ && !closing_ && in_.size() < kReadChunk && !bodyBlocked()) events |= EPOLLIN;
  if (!out_.empty() || !rawOut_.empty()) events |= EPOLLOUT;
  w_.loop().setInterest(this, events);
}

void DownstreamConnection::pullHttp2() {
  if (inHttp2_) {
    http2FlushPending_ = true;
    return;
  }
  do {
    http2FlushPending_ = false;
    inHttp2_ = true;
    bool ok = h2_->session().send(out_.tail(), out_.tail().size() - out_.size() + kHighWater);
    inHttp2_ = false;
    if (!ok) closing_ = true;
  } while (http2FlushPending_ && !closing_);
}

void DownstreamConnection::flush() {
  if (dead()) return;
  if (h2_) {
    if (inHttp2_) {
      http2FlushPending_ = true;
    } else if (!flushAtEndOfTurn_) {
      flushAtEndOfTurn_ = true;
      w_.loop().atEndOfTurn(this);
    }
    return;
  }
  uint64_t sent = 0;
  if (!(client_.transport.plain() ? writeFrom(fd_, out_, &sent) : writeTransport(sent))) {
    return abort(Failure::ClientConnectionClosed);
  }
  if (exchange_) exchange_->countSent(sent);
  if (out_.empty() && rawOut_.empty() && (closing_ || (peerClosed_ && !exchange_))) return closeAfterDraining();
  // Downstream drained: let the target's response flow again.
  if (exchange_ && out_.size() < kLowWater) exchange_->downstreamDrained();
  updateInterest();
}

void DownstreamConnection::flushHttp2Now() {
  flushAtEndOfTurn_ = false;
  if (dead()) return;
  // A few rounds while the socket takes everything and the session has more; EPOLLOUT does the rest.
  for (int round = 0; round < 16; ++round) {
    pullHttp2();
    uint64_t sent = 0;
    if (!(client_.transport.plain() ? writeFrom(fd_, out_, &sent) : writeTransport(sent))) {
      return abort(Failure::ClientConnectionClosed);
    }
    if (dead()) return;
    if (!out_.empty() || !rawOut_.empty() || closing_ || !h2_->session().wantsWrite()) break;
  }
  // While out_ was full every stream counted as blocked (Http2Stream::bufferedBytes): wake them all.
  if (http2OutHigh_ && out_.size() < kLowWater) {
    http2OutHigh_ = false;
    h2_->drained();
  }
  if (out_.size() >= kHighWater) http2OutHigh_ = true;
  if (out_.empty() && rawOut_.empty() && (closing_ || h2_->session().finished() || (peerClosed_ && h2_->idle()))) {
    return close();
  }
  updateInterest();
}

void DownstreamConnection::onBody(std::string_view data) {
  if (exchange_) exchange_->requestBody(data);
}

void DownstreamConnection::onTrailers(Headers& trailers) {
  if (exchange_) exchange_->requestTrailers(std::move(trailers));
}

void DownstreamConnection::onComplete() {
  if (exchange_) exchange_->requestComplete();
}

void DownstreamConnection::sendContinue(const RequestHead& request) {
  if (request.versionMinor >= 1) out_.tail().append("HTTP/1.1 100 Continue\r\n\r\n");
}

void DownstreamConnection::sendBody(std::string_view data) {
  if (responseChunked_) {
    appendChunk(out_.tail(), data);
  } else {
    out_.tail().append(data);
  }
}

void DownstreamConnection::sendEnd(const Headers& trailers) {
  if (responseChunked_) appendLastChunk(out_.tail(), trailers);
}

void DownstreamConnection::resumeRequestBody() {
  if (!in_.empty() && !paused_) {
    w_.loop().defer([this] {
      if (!dead()) process();
    });
  }
  updateInterest();
}

void DownstreamConnection::routedTo(const snapshot::Service& service) {
  // HTTP/1.1: the service of the latest request; HTTP/2, whose streams may go to several: the longest.
  if (!h2_ || !served_ || service.idleTimeoutSeconds > idleTimeoutSeconds_) {
    idleTimeoutSeconds_ = service.idleTimeoutSeconds;
  }
  served_ = true;
}

void DownstreamConnection::streamActivity() { lastActive_ = w_.nowMillis(); }

void DownstreamConnection::closeAfterDraining() {
  if (peerClosed_ || w_.stopping()) return close();
  if (!draining_) {
    ::shutdown(fd_, SHUT_WR);
    draining_ = true;
    drainUntil_ = w_.nowMillis() + kDrainMs;
  }
  w_.loop().setInterest(this, EPOLLIN);
}

void DownstreamConnection::drain() {
  static thread_local char scratch[kReadChunk];
  for (int i = 0; i < 16; ++i) {  // at most 1 MiB a turn: a client that never stops is cut at kDrainMs
    ssize_t n = ::read(fd_, scratch, sizeof scratch);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    return close();  // the client closed too (or the socket failed)
  }
}

// Reads ciphertext (or the first bytes of an undecided connection) and appends the plaintext to in_.
// Returns plaintext bytes, 0 at the end of the stream, -1 when there is nothing for the codec (yet).
ssize_t DownstreamConnection::readTransport() {
  static thread_local Buffer raw;  // per worker: nothing kept per idle connection
  raw.clear();
  ssize_t n = readInto(fd_, raw);
  if (n <= 0) return n;
  std::string& plain = in_.tail();
  size_t before = plain.size();
  const snapshot::Snapshot& snap = *w_.snapshot();
  DownstreamTransport& transport = client_.transport;
  auto status = transport.receive(raw.view(), plain, rawOut_.tail(), snap, snap.sourceVpc(client_.address),
                                  client_.port, w_.tls());
  auto got = static_cast<ssize_t>(plain.size() - before);
  using Status = DownstreamTransport::Status;
  if (status == Status::Passthrough) {
    // The splice owns the socket from here on (passthrough.h); this connection just goes away.
    const snapshot::Service* service = snap.serviceByHost(transport.serverName());
    int fd = releaseFd(w_.loop());
    startPassthrough(w_.loop(), w_.router(), snap, fd, client_.ipPort, *service,
                     *service->listenerOnPort(client_.port), transport.takeBufferedBytes());
    close();
    return -1;
  }
  if (status == Status::Refused) {
    logDebug("proxy: TLS from ", client_.ipPort, " refused: ", transport.failure());
    in_.clear();
    closing_ = true;
    flush();
    return -1;
  }
  if (status == Status::Closed && got == 0) return 0;
  if (!rawOut_.empty()) flush();  // handshake messages
  if (dead()) return -1;
  if (!h2_) lastActive_ = w_.nowMillis();
  return got > 0 ? got : -1;
}

// Writes rawOut_, encrypting out_ into it only as fast as the socket takes it, so out_'s size keeps
// meaning "unsent response bytes" for backpressure. Counts plaintext bytes in `sent`.
bool DownstreamConnection::writeTransport(uint64_t& sent) {
  DownstreamTransport& transport = client_.transport;
  while (true) {
    if (!writeFrom(fd_, rawOut_)) return false;
    if (!rawOut_.empty()) return true;  // the socket is full
    if (!transport.tls()) return true;
    if (out_.empty()) {
      if (!closing_) return true;
      transport.tls()->shutdown(rawOut_.tail());  // close_notify, once
      if (rawOut_.empty()) return true;
      continue;
    }
    long taken = transport.send(std::string_view(out_.data(), std::min(out_.size(), kReadChunk)), rawOut_.tail());
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
  responseChunked_ = false;
  exchange_ = std::make_unique<Exchange>(w_, client_, *this);
  exchange_->giveReplayStorage(std::move(spareReplay_));
  exchange_->start(std::move(head));
}

void DownstreamConnection::sendHead(const ResponseHead& head, const RequestHead& request, std::string_view requestId) {
  if (w_.stopping() || w_.nowMillis() - createdAt_ > w_.snapshot()->connectionLifetimeMs) closeAfterResponse_ = true;
  appendResponseHead(out_.tail(), head, request, requestId, closeAfterResponse_, responseChunked_);
}

void DownstreamConnection::exchangeDone() {
  std::unique_ptr<Exchange> ex = std::move(exchange_);
  // The next request on this connection reuses this one's storage instead of allocating its own.
  parser_.recycle(std::move(const_cast<RequestHead&>(ex->head()).headers));
  std::string replay = ex->takeReplayStorage();
  if (replay.capacity() <= kSpareReplayCapacity) spareReplay_ = std::move(replay);
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
  if (!dead() && !in_.empty()) {
    w_.loop().defer([this] {
      if (!dead()) process();
    });
  }
}

void DownstreamConnection::sweep(int64_t now, bool stopping) {
  const snapshot::Snapshot& snap = *w_.snapshot();
  if (draining_) {
    if (stopping || now > drainUntil_) close();
    return;
  }
  bool old = now - createdAt_ > snap.connectionLifetimeMs;
  bool idle = now - lastActive_ > int64_t{idleTimeoutSeconds_} * 1000;
  if (h2_) {
    // Past its lifetime (Lattice's 10 minutes) a connection takes no new streams; the open ones finish.
    if ((stopping || old) && !h2_->session().goingAway()) {
      h2_->session().goAway();
      flushHttp2Now();  // now: an expired connection closes right below
      if (dead()) return;
    }
    if (h2_->idle() && (stopping || idle || old) && out_.empty()) close();
    return;
  }
  if (!exchange_) {
    if (stopping || idle || old) {
      if (out_.empty()) close();
    } else if (headStartedAt_ != 0 && now - headStartedAt_ > snap.requestHeadTimeoutMs) {
      headTimedOut();
    }
    return;
  }
  if (stopping || old) closeAfterResponse_ = true;
  int minRate = snap.requestBodyMinBytesPerSecond;
  if (minRate > 0 && bodyTooSlow(now, minRate)) bodyTimedOut();
}

void DownstreamConnection::headTimedOut() {
  ++w_.stats().headTimeouts;
  logDebug("proxy: 408 to ", client_.ipPort, ": request head not complete within ",
           w_.snapshot()->requestHeadTimeoutMs, " ms");
  const TlsSession* tls = client_.transport.tls();
  // Before the codec or the TLS session is there, there is no one to answer in the client's protocol.
  if (!codecChosen_ || h2_ || (tls ? !tls->established() : !client_.transport.plain())) return close();
  paused_ = true;  // nothing more of this connection is parsed
  closeAfterResponse_ = true;
  exchange_ = std::make_unique<Exchange>(w_, client_, *this);
  exchange_->reject(408);
}

bool DownstreamConnection::bodyTooSlow(int64_t now, int minBytesPerSecond) {
  constexpr int64_t kWindowMs = 10000;
  const Exchange& e = *exchange_;
  // Only while the proxy is the one waiting: not under backpressure, nor for a 100 Continue the client
  // asked for before it sends anything.
  bool waiting = !e.requestDone() && !peerClosed_ && !bodyBlocked() &&
                 !(e.bytesReceived() == e.head().headerBytes && e.head().header("expect"));
  if (waiting && now - bodyWindowStart_ < kWindowMs) return false;
  bool slow = waiting && e.bytesReceived() - bodyWindowBytes_ < uint64_t(minBytesPerSecond) * (kWindowMs / 1000);
  bodyWindowStart_ = now;  // a new window: after one that was met, or one the proxy was not waiting in
  bodyWindowBytes_ = e.bytesReceived();
  return slow;
}

void DownstreamConnection::bodyTimedOut() {
  ++w_.stats().bodyTooSlow;
  logDebug("proxy: request body from ", client_.ipPort, " below ", w_.snapshot()->requestBodyMinBytesPerSecond,
           " bytes/s");
  if (exchange_->responseHeadSent()) return abort(Failure::ClientProtocolError);
  abandonRequest();
  paused_ = true;
  exchange_->reject(408);
}

void DownstreamConnection::badRequest() {
  ++w_.stats().badRequests;
  logDebug("proxy: 400 from ", client_.ipPort, ": ", parser_.error());
  closeAfterResponse_ = true;
  if (exchange_ && exchange_->responseHeadSent()) return abort(Failure::ClientProtocolError);
  if (!exchange_) exchange_ = std::make_unique<Exchange>(w_, client_, *this);
  exchange_->reject(400);
}

void DownstreamConnection::abort(Failure failure) {
  if (dead()) return;
  if (h2_) {
    h2_->abortAll(failure);
  } else if (exchange_) {
    closing_ = true;
    out_.clear();
    exchange_->abort(failure);
  }
  close();
}

void DownstreamConnection::close() {
  if (dead()) return;
  if (exchange_) exchange_->dropUpstream();
  if (h2_) h2_->dropUpstreams();
  w_.connectionClosed(this);
  w_.loop().retire(this);
}

}  // namespace trellis::proxy
