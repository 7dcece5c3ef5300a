#include "proxy/upstream/http2_upstream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

#include "common/log.h"
#include "proxy/io/buffer.h"
#include "proxy/upstream/connect.h"

namespace trellis::proxy {
namespace {

constexpr size_t kWireLimit = kHighWater;  // frames pulled from the session ahead of the socket
constexpr int64_t kIdleMs = 60000;
constexpr std::string_view kAlpnH2{"\x02h2", 3};

}  // namespace

// ---------------- Http2UpstreamStream ----------------

void Http2UpstreamStream::sendBody(std::string_view data) {
  Http2UpstreamConnection& c = connection_;
  blocked_ = c.session_.sendData(id_, data) >= kStreamHighWater;
  c.stats_.sentBytes += data.size();
  c.scheduleFlush();
}

void Http2UpstreamStream::sendEnd(const Headers& trailers) {
  connection_.session_.endStream(id_, trailers);
  connection_.scheduleFlush();
}

void Http2UpstreamStream::resumeResponse() {
  if (held_ == 0) return;
  connection_.session_.consume(id_, held_);
  held_ = 0;
  connection_.scheduleFlush();
}

void Http2UpstreamStream::cancel() {
  Http2UpstreamConnection& c = connection_;
  int32_t id = id_;
  c.streams_.erase(id);  // destroys this stream
  c.session_.resetStream(id, NGHTTP2_CANCEL);
  if (c.streams_.empty()) c.idleSince_ = c.loop_.nowMillis();
  c.scheduleFlush();
}

// ---------------- Http2UpstreamConnection ----------------

Http2UpstreamConnection::Http2UpstreamConnection(EventLoop& loop, Http2UpstreamPool* pool, std::string key,
                                                 TargetGroupCounters& stats)
    : loop_(loop), pool_(pool), key_(std::move(key)), stats_(stats), session_(*this) {}

Http2UpstreamConnection::~Http2UpstreamConnection() {
  if (pool_) pool_->forget(this);  // retired by the loop itself (shutdown) without failing first
}

Http2UpstreamConnection* Http2UpstreamConnection::open(EventLoop& loop, Http2UpstreamPool* pool,
                                                       const snapshot::Target& target, SSL_CTX* tls,
                                                       TargetGroupCounters& stats) {
  // gRPC servers insist on ALPN h2 over TLS.
  std::optional<TargetSocket> socket = openTargetSocket(target, tls != nullptr, tls, kAlpnH2, stats);
  if (!socket) return nullptr;
  auto* c = new Http2UpstreamConnection(loop, pool, targetKey(target, tls != nullptr), stats);
  c->fd_ = socket->fd;
  c->tls_ = std::move(socket->tls);
  c->connected_ = socket->connected;
  c->openedAt_ = c->idleSince_ = loop.nowMillis();
  ++stats.activeConnections;
  loop.adopt(c, EPOLLOUT | EPOLLIN);
  return c;
}

Http2UpstreamStream* Http2UpstreamConnection::openStream(const UpstreamRequest& request, bool tls,
                                                         UpstreamStreamSink& sink) {
  if (!canOpenStream()) return nullptr;
  const RequestHead& head = request.head;
  bool endStream = !head.hasBody();
  int32_t id = session_.submitRequest(head.method, tls ? "https" : "http", "", head.target, request.fields, endStream);
  if (id < 0) return nullptr;
  Http2UpstreamStream* stream = &streams_.try_emplace(id, *this, id, sink).first->second;
  scheduleFlush();
  return stream;
}

void Http2UpstreamConnection::scheduleFlush() {
  if (flushScheduled_ || closed_) return;
  flushScheduled_ = true;
  // Retired connections are freed only after the turn's deferred tasks ran, so `this` is still there.
  loop_.defer([this] {
    flushScheduled_ = false;
    flush();
  });
}

Http2UpstreamStream* Http2UpstreamConnection::streamOf(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : &it->second;
}

void Http2UpstreamConnection::onResponseHead(int32_t id, ResponseHead& head) {
  Http2UpstreamStream* stream = streamOf(id);
  if (!stream) return;
  stream->gotHead_ = true;
  UpstreamStreamSink* sink = stream->sink_;
  sink->onUpstreamHead(head);
  if (streamOf(id)) sink->onUpstreamReadDone();
}

void Http2UpstreamConnection::onBody(int32_t id, std::string_view data) {
  Http2UpstreamStream* stream = streamOf(id);
  if (!stream) {
    session_.consume(id, data.size());  // a cancelled stream's leftovers
    return;
  }
  UpstreamStreamSink* sink = stream->sink_;
  sink->onUpstreamBody(data);
  if (!(stream = streamOf(id))) return;
  // Acknowledged to the target once the client keeps up; else when it drains (resumeResponse).
  if (sink->responseBlocked()) {
    stream->held_ += data.size();
  } else {
    session_.consume(id, data.size());
  }
  sink->onUpstreamReadDone();
}

void Http2UpstreamConnection::onTrailers(int32_t id, Headers& trailers) {
  if (Http2UpstreamStream* stream = streamOf(id)) stream->sink_->onUpstreamTrailers(trailers);
}

void Http2UpstreamConnection::onComplete(int32_t id) {
  Http2UpstreamStream* stream = streamOf(id);
  if (!stream) return;
  UpstreamStreamSink* sink = stream->sink_;
  streams_.erase(id);
  if (streams_.empty()) idleSince_ = loop_.nowMillis();
  // The target answered before the request ended: the rest of the request has nowhere to go.
  if (session_.bufferedBytes(id) > 0) session_.resetStream(id, NGHTTP2_NO_ERROR);
  sink->onUpstreamComplete();
}

void Http2UpstreamConnection::onStreamClosed(int32_t id, uint32_t errorCode) {
  Http2UpstreamStream* stream = streamOf(id);
  if (!stream) return;
  UpstreamStreamSink* sink = stream->sink_;
  bool gotHead = stream->gotHead_;
  streams_.erase(id);
  if (streams_.empty()) idleSince_ = loop_.nowMillis();
  // REFUSED_STREAM (GOAWAY, or the target's own refusal) promises the request was not processed.
  bool refused = errorCode == NGHTTP2_REFUSED_STREAM && !gotHead;
  sink->onUpstreamFailed({errorCode == NGHTTP2_NO_ERROR || refused ? Failure::TargetConnectionClosed
                                                                   : Failure::TargetProtocolError,
                          refused ? Resend::Any : Resend::No});
}

void Http2UpstreamConnection::onStreamDrained(int32_t id) {
  Http2UpstreamStream* stream = streamOf(id);
  if (!stream) return;
  stream->blocked_ = false;
  stream->sink_->onUpstreamDrained();
}

void Http2UpstreamConnection::onGoaway(int32_t, uint32_t) {
  // Streams above the last id close as refused on their own; this connection takes no new ones.
  if (pool_) pool_->forget(this);
}

void Http2UpstreamConnection::onEvents(uint32_t events) {
  if (closed_) return;
  if (!connected_) {
    int err = 0;
    socklen_t length = sizeof err;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &length);
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
      ++stats_.connectionErrors;
      return fail(Failure::TargetConnectionError);
    }
    if (!(events & EPOLLOUT)) return;
    connected_ = true;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readable();
  flush();
}

void Http2UpstreamConnection::readable() {
  static thread_local char buffer[kReadChunk];
  ssize_t n = ::read(fd_, buffer, sizeof buffer);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) return fail(Failure::TargetConnectionClosed);
  stats_.receivedBytes += static_cast<uint64_t>(n);
  std::string_view data(buffer, static_cast<size_t>(n));
  std::string plain;
  if (tls_) {
    if (!tls_->receive(data, plain, wire_)) {
      logInfo("proxy: TLS to ", key_, " failed: ", tls_->error());
      return fail(Failure::TargetConnectionError);
    }
    if (tls_->peerClosed()) return fail(Failure::TargetConnectionClosed);
    data = plain;
  }
  if (data.empty()) return;
  inSession_ = true;
  bool ok = session_.receive(data);
  inSession_ = false;
  if (!ok) {
    logInfo("proxy: HTTP/2 from ", key_, ": ", session_.error());
    flush();  // a GOAWAY nghttp2 made, if any
    return fail(Failure::TargetProtocolError);
  }
}

void Http2UpstreamConnection::flush() {
  if (closed_) return;
  if (inSession_) {
    flushPending_ = true;  // nghttp2 is not re-entrant: after the current call returns
    return;
  }
  if (!connected_) return updateInterest();
  std::string& frames = tls_ ? plainOut_ : wire_;
  do {
    flushPending_ = false;
    if (wire_.size() - wireOffset_ >= kWireLimit) break;  // the socket is behind: the streams keep their backlog
    inSession_ = true;
    bool ok = session_.send(frames, wireOffset_ + kWireLimit);
    inSession_ = false;
    if (!ok) return fail(Failure::TargetProtocolError);
    if (closed_) return;
  } while (flushPending_);
  if (tls_ && (!plainOut_.empty() || !tls_->established())) {
    long taken = tls_->send(plainOut_, wire_);  // the first call starts the handshake
    if (taken < 0) return fail(Failure::TargetConnectionError);
    plainOut_.erase(0, static_cast<size_t>(taken));
  }
  while (wireOffset_ < wire_.size()) {
    ssize_t n = ::send(fd_, wire_.data() + wireOffset_, wire_.size() - wireOffset_, MSG_NOSIGNAL);
    if (n > 0) {
      wireOffset_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return fail(Failure::TargetConnectionClosed);
  }
  if (wireOffset_ == wire_.size()) {
    wire_.clear();
    wireOffset_ = 0;
  } else if (wireOffset_ >= kReadChunk) {
    wire_.erase(0, wireOffset_);
    wireOffset_ = 0;
  }
  // Nothing left to carry: a GOAWAY came or the session is done.
  if (streams_.empty() && (session_.goAwayReceived() || session_.finished()) && wire_.empty()) return fail(Failure::None);
  updateInterest();
}

void Http2UpstreamConnection::updateInterest() {
  if (closed_) return;
  uint32_t events = EPOLLIN;
  if (!connected_ || !wire_.empty() || !plainOut_.empty() || session_.wantsWrite()) events |= EPOLLOUT;
  loop_.setInterest(this, events);
}

void Http2UpstreamConnection::onSweep(int64_t nowMillis, bool stopping) {
  if (closed_) return;
  if (!connected_ && nowMillis - openedAt_ > kConnectTimeoutMs) {
    ++stats_.connectionTimeouts;
    return fail(Failure::TargetConnectionError);
  }
  if (streams_.empty() && (stopping || nowMillis - idleSince_ > kIdleMs)) {
    session_.goAway();
    flush();
    fail(Failure::None);
  }
}

void Http2UpstreamConnection::fail(Failure failure) {
  if (closed_) return;
  closed_ = true;
  if (pool_) pool_->forget(this);
  --stats_.activeConnections;
  auto streams = std::move(streams_);
  streams_.clear();
  loop_.retire(this);  // freed at the end of the loop turn: the calls below may still reach us
  // Before the connection (and its TLS session) was up, no request left this proxy.
  bool nothingSent = !connected_ || (tls_ && !tls_->established());
  for (auto& [id, stream] : streams) {
    stream.sink_->onUpstreamFailed({failure, stream.gotHead_ ? Resend::No : nothingSent ? Resend::Any : Resend::Idempotent});
  }
}

// ---------------- Http2UpstreamPool ----------------

Http2UpstreamPool::~Http2UpstreamPool() {
  for (auto& [key, list] : byTarget_) {
    for (auto* c : list) c->pool_ = nullptr;
  }
}

UpstreamPool::Opened Http2UpstreamPool::open(const UpstreamRequest& request, UpstreamStreamSink& sink,
                                             SSL_CTX* clientTls, int maxConnections) {
  bool tls = request.group.protocol == snapshot::TargetProtocol::Https;
  if (tls && !clientTls) return {nullptr, false, {Failure::TargetConnectionError, Resend::No}};
  auto& list = byTarget_[targetKey(request.target, tls)];
  Http2UpstreamConnection* connection = nullptr;
  for (auto* c : list) {
    if (c->canOpenStream()) {
      connection = c;
      break;
    }
  }
  if (!connection) {
    if (list.size() >= static_cast<size_t>(maxConnections)) return {nullptr, true, {}};
    connection = Http2UpstreamConnection::open(loop_, this, request.target, tls ? clientTls : nullptr, request.stats);
    if (!connection) return {nullptr, false, {Failure::TargetConnectionError, Resend::Any}};
    list.push_back(connection);
  }
  Http2UpstreamStream* stream = connection->openStream(request, tls, sink);
  if (!stream) return {nullptr, false, {Failure::TargetConnectionError, Resend::Any}};
  return {stream, false, {}};
}

size_t Http2UpstreamPool::connections() const {
  size_t n = 0;
  for (const auto& [key, list] : byTarget_) n += list.size();
  return n;
}

void Http2UpstreamPool::forget(Http2UpstreamConnection* connection) {
  auto it = byTarget_.find(connection->key_);
  if (it != byTarget_.end()) std::erase(it->second, connection);
  connection->pool_ = nullptr;
}

}  // namespace trellis::proxy
