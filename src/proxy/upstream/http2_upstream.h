// Upstream HTTP/2 for target groups with protocolVersion HTTP2 or GRPC: one connection to a target carries
// many requests at once (Http2ClientSession), and each worker keeps a small pool of such connections per
// target (Http2UpstreamPool), opening another only when the ones it has are full (the target's
// SETTINGS_MAX_CONCURRENT_STREAMS) or going away (GOAWAY).
//
// A request is a stream (an UpstreamStream) with a sink: the exchange it belongs to. The connection is
// adopted by its event loop (EventLoop::adopt), which sweeps it (connect timeout, idle close) and retires
// it at shutdown like any other connection nobody else drives.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/http/http2_codec.h"
#include "proxy/metrics.h"
#include "proxy/server/event_loop.h"
#include "tls/tls.h"
#include "proxy/upstream/upstream.h"

namespace trellis::proxy {

class Http2UpstreamPool;

class Http2UpstreamConnection;

// One request on an Http2UpstreamConnection.
class Http2UpstreamStream : public UpstreamStream {
 public:
  Http2UpstreamStream(Http2UpstreamConnection& connection, int32_t id, UpstreamStreamSink& sink)
      : connection_(connection), id_(id), sink_(&sink) {}
  void sendBody(std::string_view data) override;
  void sendEnd(const Headers& trailers) override;
  bool blocked() const override { return blocked_; }
  void resumeResponse() override;
  // RST_STREAM CANCEL; the stream is freed.
  void cancel() override;
  Resend resendIfAbandoned() const override { return gotHead_ ? Resend::No : Resend::Idempotent; }

 private:
  friend class Http2UpstreamConnection;
  Http2UpstreamConnection& connection_;
  int32_t id_;
  UpstreamStreamSink* sink_;
  bool gotHead_ = false;
  bool blocked_ = false;  // the request's backlog reached kStreamHighWater
  size_t held_ = 0;       // response bytes not acknowledged yet: the client is behind
};

class Http2UpstreamConnection : public Pollable, private Http2ClientHandler {
 public:
  // Starts a non-blocking connect to `target` (TLS with ALPN h2 when `tls` is set: targets are not
  // verified) and adopts the socket into `loop`. Null when the socket cannot even be created.
  static Http2UpstreamConnection* open(EventLoop& loop, Http2UpstreamPool* pool, const snapshot::Target& target,
                                       SSL_CTX* tls, TargetGroupCounters& stats);
  ~Http2UpstreamConnection() override;

  // A new request stream with `request`'s head; null when the connection takes no more streams (then
  // nothing is called on `sink`).
  Http2UpstreamStream* openStream(const UpstreamRequest& request, bool tls, UpstreamStreamSink& sink);

  bool canOpenStream() const { return !closed_ && session_.canOpenStream(); }
  size_t activeStreams() const { return streams_.size(); }
  bool connected() const { return connected_; }
  const std::string& key() const { return key_; }

  void onEvents(uint32_t events) override;
  void onSweep(int64_t nowMillis, bool stopping) override;

 private:
  friend class Http2UpstreamPool;
  friend class Http2UpstreamStream;
  Http2UpstreamConnection(EventLoop& loop, Http2UpstreamPool* pool, std::string key, TargetGroupCounters& stats);
  // Http2ClientHandler: per-stream events to the stream's sink.
  void onResponseHead(int32_t stream, ResponseHead& head) override;
  void onBody(int32_t stream, std::string_view data) override;
  void onTrailers(int32_t stream, Headers& trailers) override;
  void onComplete(int32_t stream) override;
  void onStreamClosed(int32_t stream, uint32_t errorCode) override;
  void onStreamDrained(int32_t stream) override;
  void onGoaway(int32_t lastStreamId, uint32_t errorCode) override;

  void readable();
  void flush();
  void scheduleFlush();  // once per loop turn, so the calls above never reach a sink before they return
  void updateInterest();
  // Fails every stream with `failure` (None: the connection just closes) and retires the connection.
  void fail(Failure failure);
  Http2UpstreamStream* streamOf(int32_t id);

  EventLoop& loop_;
  Http2UpstreamPool* pool_;
  std::string key_;
  TargetGroupCounters& stats_;
  Http2ClientSession session_;
  std::unique_ptr<tls::TlsSession> tls_;
  std::string plainOut_;  // frames not yet encrypted (TLS only)
  std::string wire_;      // bytes for the socket
  size_t wireOffset_ = 0;
  std::unordered_map<int32_t, Http2UpstreamStream> streams_;  // nodes: the exchanges hold pointers to them
  bool connected_ = false;
  bool closed_ = false;
  bool inSession_ = false;     // inside session_.receive()/send(): a flush must wait
  bool flushPending_ = false;
  bool flushScheduled_ = false;
  int64_t openedAt_ = 0, idleSince_ = 0;
};

// A worker's HTTP/2 connections by target (targetKey). Worker thread only.
class Http2UpstreamPool {
 public:
  explicit Http2UpstreamPool(EventLoop& loop) : loop_(loop) {}
  ~Http2UpstreamPool();
  Http2UpstreamPool(const Http2UpstreamPool&) = delete;
  Http2UpstreamPool& operator=(const Http2UpstreamPool&) = delete;

  // A stream for `request` on a connection with room for it: an open one if any, else a new one unless
  // `maxConnections` to the target are open already. `clientTls`: HTTPS target groups' client context.
  UpstreamPool::Opened open(const UpstreamRequest& request, UpstreamStreamSink& sink, SSL_CTX* clientTls,
                            int maxConnections);
  size_t connections() const;

 private:
  friend class Http2UpstreamConnection;
  void forget(Http2UpstreamConnection* connection);

  EventLoop& loop_;
  std::unordered_map<std::string, std::vector<Http2UpstreamConnection*>> byTarget_;
};

}  // namespace trellis::proxy
