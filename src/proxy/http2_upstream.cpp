#include "proxy/http2_upstream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

#include "common/log.h"
#include "proxy/connect.h"

namespace trellis::proxy {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kWireLimit = 256 * 1024;  // frames pulled from the session ahead of the socket
constexpr int64_t kConnectTimeoutMs = 5000;
constexpr int64_t kIdleMs = 60000;
const std::string kTlsPrefix = "tls ";
constexpr std::string_view kAlpnH2{"\x02h2", 3};

}  // namespace

Http2UpstreamConnection::Http2UpstreamConnection(Worker& w, Http2UpstreamPool* pool, std::string key,
                                                 TargetGroupCounters& stats)
    : w_(w), pool_(pool), key_(std::move(key)), stats_(stats), session_(*this) {}

Http2UpstreamConnection::~Http2UpstreamConnection() {
  if (pool_) pool_->forget(this);  // retired by the worker itself (shutdown) without failing first
}

Http2UpstreamConnection* Http2UpstreamConnection::open(Worker& w, Http2UpstreamPool* pool,
                                                       const snapshot::Target& target, SSL_CTX* tls,
                                                       TargetGroupCounters& stats) {
  // gRPC servers insist on ALPN h2 over TLS.
  std::optional<TargetSocket> socket = openTargetSocket(target, tls != nullptr, tls, kAlpnH2, stats);
  if (!socket) return nullptr;
  auto* c = new Http2UpstreamConnection(w, pool, (tls ? kTlsPrefix : std::string()) + target.ipPort, stats);
  c->fd_ = socket->fd;
  c->tls_ = std::move(socket->tls);
  c->connected_ = socket->connected;
  c->openedAt_ = c->idleSince_ = w.nowMillis();
  ++stats.activeConnections;
  w.adopt(c, EPOLLOUT | EPOLLIN);
  return c;
}

int32_t Http2UpstreamConnection::openStream(std::string_view method, std::string_view scheme,
                                            std::string_view authority, std::string_view path,
                                            const Headers& headers, bool endStream, UpstreamStreamSink* sink) {
  if (!canOpenStream()) return -1;
  int32_t id = session_.submitRequest(method, scheme, authority, path, headers, endStream);
  if (id < 0) return -1;
  sinks_[id].sink = sink;
  scheduleFlush();
  return id;
}

size_t Http2UpstreamConnection::sendBody(int32_t stream, std::string_view data) {
  size_t backlog = session_.sendData(stream, data);
  stats_.sentBytes += data.size();
  scheduleFlush();
  return backlog;
}

void Http2UpstreamConnection::endRequest(int32_t stream, const Headers& trailers) {
  session_.endStream(stream, trailers);
  scheduleFlush();
}

void Http2UpstreamConnection::cancel(int32_t stream) {
  if (sinks_.erase(stream) == 0) return;
  session_.resetStream(stream, NGHTTP2_CANCEL);
  if (sinks_.empty()) idleSince_ = w_.nowMillis();
  scheduleFlush();
}

void Http2UpstreamConnection::consumed(int32_t stream, size_t bytes) {
  session_.consume(stream, bytes);
  scheduleFlush();
}

void Http2UpstreamConnection::scheduleFlush() {
  if (flushScheduled_ || closed_) return;
  flushScheduled_ = true;
  // Retired connections are freed only after the turn's deferred tasks ran, so `this` is still there.
  w_.defer([this] {
    flushScheduled_ = false;
    flush();
  });
}

UpstreamStreamSink* Http2UpstreamConnection::sinkOf(int32_t stream) const {
  auto it = sinks_.find(stream);
  return it == sinks_.end() ? nullptr : it->second.sink;
}

void Http2UpstreamConnection::onResponseHead(int32_t stream, ResponseHead& head) {
  auto it = sinks_.find(stream);
  if (it == sinks_.end()) return;
  it->second.gotHead = true;
  it->second.sink->onUpstreamHead(head);
}

void Http2UpstreamConnection::onBody(int32_t stream, std::string_view data) {
  if (UpstreamStreamSink* sink = sinkOf(stream)) return sink->onUpstreamBody(data);
  session_.consume(stream, data.size());  // a cancelled stream's leftovers
}

void Http2UpstreamConnection::onTrailers(int32_t stream, Headers& trailers) {
  if (UpstreamStreamSink* sink = sinkOf(stream)) sink->onUpstreamTrailers(trailers);
}

void Http2UpstreamConnection::onComplete(int32_t stream) {
  auto it = sinks_.find(stream);
  if (it == sinks_.end()) return;
  UpstreamStreamSink* sink = it->second.sink;
  sinks_.erase(it);
  if (sinks_.empty()) idleSince_ = w_.nowMillis();
  // The target answered before the request ended: the rest of the request has nowhere to go.
  if (session_.bufferedBytes(stream) > 0) session_.resetStream(stream, NGHTTP2_NO_ERROR);
  sink->onUpstreamComplete();
}

void Http2UpstreamConnection::onStreamClosed(int32_t stream, uint32_t errorCode) {
  auto it = sinks_.find(stream);
  if (it == sinks_.end()) return;
  StreamState state = it->second;
  sinks_.erase(it);
  if (sinks_.empty()) idleSince_ = w_.nowMillis();
  // REFUSED_STREAM (GOAWAY, or the target's own refusal) promises the request was not processed.
  bool refused = errorCode == NGHTTP2_REFUSED_STREAM && !state.gotHead;
  state.sink->onUpstreamFailed(errorCode == NGHTTP2_NO_ERROR || refused ? "TargetConnectionClosed"
                                                                        : "TargetProtocolError",
                               refused ? Resend::Any : Resend::No);
}

void Http2UpstreamConnection::onStreamDrained(int32_t stream) {
  if (UpstreamStreamSink* sink = sinkOf(stream)) sink->onUpstreamDrained();
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
      return fail("TargetConnectionError");
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
  if (n <= 0) return fail("TargetConnectionClosed");
  stats_.receivedBytes += static_cast<uint64_t>(n);
  std::string_view data(buffer, static_cast<size_t>(n));
  std::string plain;
  if (tls_) {
    if (!tls_->receive(data, plain, wire_)) {
      logInfo("proxy: TLS to ", key_, " failed: ", tls_->error());
      return fail("TargetConnectionError");
    }
    if (tls_->peerClosed()) return fail("TargetConnectionClosed");
    data = plain;
  }
  if (data.empty()) return;
  inSession_ = true;
  bool ok = session_.receive(data);
  inSession_ = false;
  if (!ok) {
    logInfo("proxy: HTTP/2 from ", key_, ": ", session_.error());
    flush();  // a GOAWAY nghttp2 made, if any
    return fail("TargetProtocolError");
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
    if (!ok) return fail("TargetProtocolError");
    if (closed_) return;
  } while (flushPending_);
  if (tls_ && (!plainOut_.empty() || !tls_->established())) {
    long taken = tls_->send(plainOut_, wire_);  // the first call starts the handshake
    if (taken < 0) return fail("TargetConnectionError");
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
    return fail("TargetConnectionClosed");
  }
  if (wireOffset_ == wire_.size()) {
    wire_.clear();
    wireOffset_ = 0;
  } else if (wireOffset_ >= kReadChunk) {
    wire_.erase(0, wireOffset_);
    wireOffset_ = 0;
  }
  // Nothing left to carry: a GOAWAY came or the session is done.
  if (sinks_.empty() && (session_.goAwayReceived() || session_.finished()) && wire_.empty()) return fail("");
  updateInterest();
}

void Http2UpstreamConnection::updateInterest() {
  if (closed_) return;
  uint32_t events = EPOLLIN;
  if (!connected_ || !wire_.empty() || !plainOut_.empty() || session_.wantsWrite()) events |= EPOLLOUT;
  w_.setInterest(this, events);
}

void Http2UpstreamConnection::onSweep(int64_t nowMillis, bool stopping) {
  if (closed_) return;
  if (!connected_ && nowMillis - openedAt_ > kConnectTimeoutMs) {
    ++stats_.connectionTimeouts;
    return fail("TargetConnectionError");
  }
  if (sinks_.empty() && (stopping || nowMillis - idleSince_ > kIdleMs)) {
    session_.goAway();
    flush();
    fail("");
  }
}

void Http2UpstreamConnection::fail(const char* reason) {
  if (closed_) return;
  closed_ = true;
  if (pool_) pool_->forget(this);
  --stats_.activeConnections;
  auto sinks = std::move(sinks_);
  sinks_.clear();
  w_.retire(this);  // freed at the end of the loop turn: the calls below may still reach us
  // Before the connection (and its TLS session) was up, no request left this proxy.
  bool nothingSent = !connected_ || (tls_ && !tls_->established());
  for (auto& [id, state] : sinks) {
    state.sink->onUpstreamFailed(reason, state.gotHead ? Resend::No : nothingSent ? Resend::Any : Resend::Idempotent);
  }
}

// ---------------- Http2UpstreamPool ----------------

Http2UpstreamPool::~Http2UpstreamPool() {
  for (auto& [key, list] : byTarget_) {
    for (auto* c : list) c->pool_ = nullptr;
  }
}

Http2UpstreamConnection* Http2UpstreamPool::connectionFor(const snapshot::Target& target, SSL_CTX* tls,
                                                          TargetGroupCounters& stats, int maxConnections,
                                                          bool& atLimit) {
  auto& list = byTarget_[tls ? kTlsPrefix + target.ipPort : target.ipPort];
  for (auto* c : list) {
    if (c->canOpenStream()) return c;
  }
  atLimit = list.size() >= static_cast<size_t>(maxConnections);
  if (atLimit) return nullptr;
  Http2UpstreamConnection* c = Http2UpstreamConnection::open(w_, this, target, tls, stats);
  if (c) list.push_back(c);
  return c;
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
