// Upstream HTTP/2 for target groups with protocolVersion HTTP2 or GRPC: one connection to a target carries
// many requests at once (Http2ClientSession), and each worker keeps a small pool of such connections per
// target (Http2UpstreamPool), opening another only when the ones it has are full (the target's
// SETTINGS_MAX_CONCURRENT_STREAMS) or going away (GOAWAY).
//
// A request is a stream with a sink: the exchange it belongs to. The connection lives in its worker's
// epoll set as an adopted Pollable (Worker::adopt), so the worker sweeps it (connect timeout, idle close)
// and retires it at shutdown like any other connection it does not drive itself.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/http2_codec.h"
#include "proxy/metrics.h"
#include "proxy/worker.h"
#include "tls/tls.h"

namespace trellis::proxy {

// The exchange side of one upstream stream. Called on the worker thread, never from inside the sink's
// own calls into the connection (those only queue; the connection writes later in the loop turn).
// After a failed attempt, which requests may go to a target again (RFC 9110 9.2.2: a request that may
// have been processed is repeated only when its method is idempotent, or its rule says it may be).
enum class Resend {
  Any,         // the target cannot have processed it: the connection never came up, the stream was refused
  Idempotent,  // it was sent and nothing came back
  No,          // a response had begun, or the target broke the protocol
};

class UpstreamStreamSink {
 public:
  virtual ~UpstreamStreamSink() = default;
  virtual void onUpstreamHead(ResponseHead& head) = 0;
  // Response body; its window stays closed for `data.size()` until Http2UpstreamConnection::consumed().
  virtual void onUpstreamBody(std::string_view data) = 0;
  virtual void onUpstreamTrailers(Headers& trailers) = 0;
  // The response ended; the stream is forgotten (no further calls).
  virtual void onUpstreamComplete() = 0;
  // The stream failed (failureReason of the access log, docs/architecture.md); `resend` says whether
  // another attempt may carry the request. The stream is forgotten.
  virtual void onUpstreamFailed(const char* reason, Resend resend) = 0;
  // The request body backlog fell below kStreamLowWater: send more.
  virtual void onUpstreamDrained() {}
};

class Http2UpstreamPool;

class Http2UpstreamConnection : public Pollable, private Http2ClientHandler {
 public:
  // Starts a non-blocking connect to `target` (TLS with ALPN h2 when `tls` is set: targets are not
  // verified) and adopts the socket into `w`. Null when the socket cannot even be created.
  static Http2UpstreamConnection* open(Worker& w, Http2UpstreamPool* pool, const snapshot::Target& target,
                                       SSL_CTX* tls, TargetGroupCounters& stats);
  ~Http2UpstreamConnection() override;

  // A new request stream; `headers` as for Http2ClientSession::submitRequest. -1 when the connection takes
  // no more streams (then nothing is called on `sink`).
  int32_t openStream(std::string_view method, std::string_view scheme, std::string_view authority,
                     std::string_view path, const Headers& headers, bool endStream, UpstreamStreamSink* sink);
  // Request body; returns the stream's backlog (compare with kStreamHighWater to pause the source).
  size_t sendBody(int32_t stream, std::string_view data);
  void endRequest(int32_t stream, const Headers& trailers = {});
  // The exchange gives up on the stream (client gone, timeout): RST_STREAM CANCEL, the sink is forgotten.
  void cancel(int32_t stream);
  // `bytes` of the stream's response body went on downstream: open its window again.
  void consumed(int32_t stream, size_t bytes);

  bool canOpenStream() const { return !closed_ && session_.canOpenStream(); }
  size_t activeStreams() const { return sinks_.size(); }
  bool connected() const { return connected_; }
  const std::string& key() const { return key_; }

  void onEvents(uint32_t events) override;
  void onSweep(int64_t nowMillis, bool stopping) override;

 private:
  friend class Http2UpstreamPool;
  Http2UpstreamConnection(Worker& w, Http2UpstreamPool* pool, std::string key, TargetGroupCounters& stats);
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
  // Fails every stream with `reason` and retires the connection.
  void fail(const char* reason);
  UpstreamStreamSink* sinkOf(int32_t stream) const;

  struct StreamState {
    UpstreamStreamSink* sink = nullptr;
    bool gotHead = false;
    bool complete = false;
  };

  Worker& w_;
  Http2UpstreamPool* pool_;
  std::string key_;
  TargetGroupCounters& stats_;
  Http2ClientSession session_;
  std::unique_ptr<tls::TlsSession> tls_;
  std::string plainOut_;  // frames not yet encrypted (TLS only)
  std::string wire_;      // bytes for the socket
  size_t wireOffset_ = 0;
  std::unordered_map<int32_t, StreamState> sinks_;
  bool connected_ = false;
  bool closed_ = false;
  bool inSession_ = false;     // inside session_.receive()/send(): a flush must wait
  bool flushPending_ = false;
  bool flushScheduled_ = false;
  int64_t openedAt_ = 0, idleSince_ = 0;
};

// A worker's HTTP/2 connections by target ("10.0.0.1:50051", "tls 10.0.0.1:443"). Worker thread only.
class Http2UpstreamPool {
 public:
  explicit Http2UpstreamPool(Worker& w) : w_(w) {}
  ~Http2UpstreamPool();
  Http2UpstreamPool(const Http2UpstreamPool&) = delete;
  Http2UpstreamPool& operator=(const Http2UpstreamPool&) = delete;

  // A connection with room for one more stream: an open one if any, else a new one unless `maxConnections`
  // to the target are open already (then null with `atLimit`). Null when no socket.
  Http2UpstreamConnection* connectionFor(const snapshot::Target& target, SSL_CTX* tls, TargetGroupCounters& stats,
                                         int maxConnections, bool& atLimit);
  size_t connections() const;

 private:
  friend class Http2UpstreamConnection;
  void forget(Http2UpstreamConnection* connection);

  Worker& w_;
  std::unordered_map<std::string, std::vector<Http2UpstreamConnection*>> byTarget_;
};

}  // namespace trellis::proxy
