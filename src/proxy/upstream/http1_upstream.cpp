#include "proxy/upstream/http1_upstream.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>

#include "common/log.h"
#include "proxy/upstream/connect.h"

namespace trellis::proxy {

Http1UpstreamConnection::Http1UpstreamConnection(Http1UpstreamPool& pool, std::string key, TargetGroupCounters& stats)
    : pool_(pool), key_(std::move(key)), stats_(stats), parser_(*this) {}

void Http1UpstreamConnection::attach(UpstreamStreamSink& sink, const UpstreamRequest& request) {
  sink_ = &sink;
  ++attachments_;
  const RequestHead& h = request.head;
  parser_.expectBodyless(h.method == "HEAD");
  sent_ = received_ = gotFinalHead_ = false;
  keepAlive_ = true;
  lastStatus_ = 0;
  requestChunked_ = h.chunked;
  requestEnded_ = !h.hasBody();
  appendRequestHead(out_.tail(), h, request.fields);
  scheduleFlush();
}

void Http1UpstreamConnection::sendBody(std::string_view data) {
  if (requestChunked_) {
    appendChunk(out_.tail(), data);
  } else {
    out_.tail().append(data);
  }
  scheduleFlush();
}

void Http1UpstreamConnection::sendEnd(const Headers& trailers) {
  if (requestChunked_) appendLastChunk(out_.tail(), trailers);
  requestEnded_ = true;
  scheduleFlush();
}

// Once per loop turn: a head and the body that came with it leave in one write.
void Http1UpstreamConnection::scheduleFlush() {
  if (flushQueued_) return;
  flushQueued_ = true;
  pool_.loop_.atEndOfTurn(this);
}

void Http1UpstreamConnection::onEndOfTurn() {
  flushQueued_ = false;
  if (!dead()) flush();
}

void Http1UpstreamConnection::resumeResponse() {
  if (!in_.empty()) {
    uint64_t attachment = attachments_;
    pool_.loop_.defer([this, attachment] {
      if (!dead() && sink_ && attachments_ == attachment) processInput();
    });
  }
  updateInterest();
}

void Http1UpstreamConnection::cancel() {
  sink_ = nullptr;
  pool_.loop_.retire(this);
}

Resend Http1UpstreamConnection::resendNow() const {
  return received_ ? Resend::No : sent_ ? Resend::Idempotent : Resend::Any;
}

Resend Http1UpstreamConnection::resendIfAbandoned() const { return resendNow(); }

void Http1UpstreamConnection::fail(UpstreamFailure failure) {
  UpstreamStreamSink* sink = sink_;
  sink_ = nullptr;
  pool_.loop_.retire(this);
  if (sink) sink->onUpstreamFailed(failure);
}

void Http1UpstreamConnection::complete() {
  UpstreamStreamSink* sink = sink_;
  sink_ = nullptr;
  if (keepAlive_ && requestEnded_ && out_.empty() && in_.empty()) {
    pool_.release(this);
  } else {
    pool_.loop_.retire(this);
  }
  sink->onUpstreamComplete();
}

void Http1UpstreamConnection::onEvents(uint32_t events) {
  if (!connected_) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      ++stats_.connectionErrors;
      if (sink_) return fail({Failure::TargetConnectionError, Resend::Any});
      return pool_.loop_.retire(this);
    }
    if (!(events & EPOLLOUT)) return;
    connected_ = true;
  }
  if (events & EPOLLOUT) flush();
  if (dead()) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    if (!sink_) return pool_.loop_.retire(this);  // an idle pooled connection closed or misbehaved
    if (eof_) return pool_.loop_.setInterest(this, 0);
    ssize_t n = tls_ ? readTls() : readInto(fd_, in_);
    if (n == -1) return;
    if (n > 0) {
      stats_.receivedBytes += static_cast<uint64_t>(n);
      sink_->onUpstreamActive();
      return processInput();
    }
    eof_ = true;
    if (in_.empty()) return handleEof();
    pool_.loop_.setInterest(this, 0);  // processInput() handles the EOF once the buffered bytes are through
  }
}

void Http1UpstreamConnection::handleEof() {
  // A response delimited by EOF ends here; anything else is a failure.
  if (parser_.inMessage() && gotFinalHead_ && parser_.finish() == ParseStatus::Ok) return complete();
  // Nothing came back (typically a reused keep-alive connection the target had closed): the request
  // can go to another target, if it is safe to repeat.
  fail({Failure::TargetConnectionClosed, resendNow()});
}

void Http1UpstreamConnection::flush() {
  if (!connected_) return updateInterest();
  uint64_t sent = 0;
  bool ok = tls_ ? writeTls(sent) : writeFrom(fd_, out_, &sent);
  if (sent && sink_) sent_ = true;
  if (!ok) {
    if (!sink_) return pool_.loop_.retire(this);
    return fail({Failure::TargetConnectionClosed, resendNow()});
  }
  if (sent) {
    stats_.sentBytes += sent;
    if (sink_) sink_->onUpstreamActive();
  }
  // Upstream drained: let the client's body flow again.
  if (sink_ && out_.size() < kLowWater) sink_->onUpstreamDrained();
  updateInterest();
}

void Http1UpstreamConnection::updateInterest() {
  if (dead()) return;
  uint32_t events = 0;
  if (!connected_ || !out_.empty() || !rawOut_.empty()) events |= EPOLLOUT;
  if (connected_ && (!sink_ || !sink_->responseBlocked())) events |= EPOLLIN;
  pool_.loop_.setInterest(this, events);
}

void Http1UpstreamConnection::processInput() {
  while (sink_ && !in_.empty() && !sink_->responseBlocked()) {
    received_ = true;
    size_t consumed = 0;
    ParseStatus status = parser_.parse(in_.data(), std::min(in_.size(), kReadChunk), consumed);
    in_.consume(consumed);
    if (!sink_) return;  // the exchange let go (a status its rule retries): this connection is retired
    if (status == ParseStatus::Error) {
      logInfo("proxy: bad response from ", key_, ": ", parser_.error());
      return fail({Failure::TargetProtocolError, Resend::No});
    }
    if (status == ParseStatus::Paused) {
      parser_.resume();
      if (lastStatus_ < 200) continue;  // an interim response: the real one follows
      return complete();
    }
  }
  if (sink_ && eof_ && in_.empty()) return handleEof();
  if (sink_) sink_->onUpstreamReadDone();
  if (!dead() && !eof_) updateInterest();
}

void Http1UpstreamConnection::onResponseHead(ResponseHead& head) {
  lastStatus_ = head.status;
  if (head.status >= 200) {
    gotFinalHead_ = true;
    keepAlive_ = head.keepAlive;
  }
  sink_->onUpstreamHead(head);
}

void Http1UpstreamConnection::onBody(std::string_view data) {
  if (sink_) sink_->onUpstreamBody(data);  // none: a retried response's body, dropped with this connection
}

void Http1UpstreamConnection::onTrailers(Headers& trailers) {
  if (sink_) sink_->onUpstreamTrailers(trailers);
}

// Like readInto for an HTTPS target: plaintext into in_; 0 at the end of the stream or on a TLS failure.
ssize_t Http1UpstreamConnection::readTls() {
  static thread_local Buffer raw;
  raw.clear();
  ssize_t n = readInto(fd_, raw);
  if (n <= 0) return n;
  std::string& plain = in_.tail();
  size_t before = plain.size();
  if (!tls_->receive(raw.view(), plain, rawOut_.tail())) {
    logInfo("proxy: TLS to ", key_, " failed: ", tls_->error());
    return 0;
  }
  auto got = static_cast<ssize_t>(plain.size() - before);
  if (!rawOut_.empty() || (tls_->established() && !out_.empty())) flush();  // handshake, then the request
  if (dead()) return -1;
  if (got > 0) return got;
  return tls_->peerClosed() ? 0 : -1;
}

// Encrypts out_ into rawOut_ as the socket takes it (the first call sends the ClientHello).
bool Http1UpstreamConnection::writeTls(uint64_t& sent) {
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

void Http1UpstreamConnection::onRetire() { pool_.forget(this); }

// ---------------- Http1UpstreamPool ----------------

UpstreamPool::Opened Http1UpstreamPool::open(const UpstreamRequest& request, UpstreamStreamSink& sink,
                                             SSL_CTX* clientTls, int maxConnections) {
  bool tls = request.group.protocol == snapshot::TargetProtocol::Https;
  std::string key = targetKey(request.target, tls);
  Http1UpstreamConnection* c = nullptr;
  if (request.firstAttempt) {
    auto it = idle_.find(key);
    if (it != idle_.end() && !it->second.empty()) {
      c = it->second.back();
      it->second.pop_back();
    }
  }
  if (!c) {
    auto count = open_.find(key);
    if (count != open_.end() && count->second >= maxConnections) return {nullptr, true, {}};
    std::optional<TargetSocket> socket = openTargetSocket(request.target, tls, clientTls, {}, request.stats);
    if (!socket) return {nullptr, false, {Failure::TargetConnectionError, Resend::Any}};
    c = new Http1UpstreamConnection(*this, key, request.stats);
    c->tls_ = std::move(socket->tls);
    c->fd_ = socket->fd;
    c->connected_ = socket->connected;
    c->openedAt_ = loop_.nowMillis();
    all_.insert(c);
    ++open_[key];
    ++request.stats.activeConnections;
    if (!loop_.watch(c, EPOLLOUT | EPOLLIN)) {
      loop_.retire(c);
      return {nullptr, false, {Failure::TargetConnectionError, Resend::Any}};
    }
  }
  c->attach(sink, request);
  return {c, false, {}};
}

void Http1UpstreamPool::release(Http1UpstreamConnection* c) {
  auto& list = idle_[c->key_];
  if (list.size() >= kMaxIdlePerTarget || stopping_) return loop_.retire(c);
  c->idleSince_ = loop_.nowMillis();
  list.push_back(c);
  c->updateInterest();
}

void Http1UpstreamPool::forget(Http1UpstreamConnection* c) {
  all_.erase(c);
  if (auto count = open_.find(c->key_); count != open_.end() && --count->second == 0) open_.erase(count);
  --c->stats_.activeConnections;
  if (auto idle = idle_.find(c->key_); idle != idle_.end()) std::erase(idle->second, c);
}

void Http1UpstreamPool::sweep(int64_t now, bool stopping) {
  stopping_ = stopping;
  // Collect first: failing or retiring a connection changes the sets.
  std::vector<Http1UpstreamConnection*> connectTimeouts, stale;
  for (auto* c : all_) {
    if (c->sink_ && !c->connected_ && now - c->openedAt_ > kConnectTimeoutMs) connectTimeouts.push_back(c);
  }
  for (auto& [key, list] : idle_) {
    for (auto* c : list) {
      if (stopping || now - c->idleSince_ > kIdleMs) stale.push_back(c);
    }
  }
  for (auto* c : connectTimeouts) {
    if (c->dead() || !c->sink_) continue;
    ++c->stats_.connectionTimeouts;
    c->fail({Failure::TargetConnectionError, Resend::Any});
  }
  for (auto* c : stale) loop_.retire(c);
}

void Http1UpstreamPool::closeAll() {
  for (auto* c : std::vector<Http1UpstreamConnection*>(all_.begin(), all_.end())) loop_.retire(c);
}

}  // namespace trellis::proxy
