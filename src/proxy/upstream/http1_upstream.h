// HTTP/1.1 to targets: one request at a time per connection, connections pooled per target and worker
// (kept-alive ones reused by first attempts, at most maxConnectionsPerTarget open).
#pragma once
#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proxy/http/http1_codec.h"
#include "proxy/io/buffer.h"
#include "proxy/metrics.h"
#include "proxy/server/event_loop.h"
#include "tls/tls.h"
#include "proxy/upstream/upstream.h"

namespace trellis::proxy {

class Http1UpstreamPool;

class Http1UpstreamConnection : public Pollable, public UpstreamStream, private Http1ResponseHandler {
 public:
  Http1UpstreamConnection(Http1UpstreamPool& pool, std::string key, TargetGroupCounters& stats);

  // UpstreamStream
  void sendBody(std::string_view data) override;
  void sendEnd(const Headers& trailers) override;
  bool blocked() const override { return out_.size() >= kHighWater; }
  void resumeResponse() override;
  void cancel() override;
  Resend resendIfAbandoned() const override;

  // Pollable
  void onEvents(uint32_t events) override;
  void onEndOfTurn() override;
  void onRetire() override;

 private:
  friend class Http1UpstreamPool;
  // Takes `request` for `sink`: its head is encoded now and written at the end of the loop turn.
  void attach(UpstreamStreamSink& sink, const UpstreamRequest& request);
  void flush();
  void scheduleFlush();
  void updateInterest();
  void processInput();
  void handleEof();
  // The response ended: the connection goes back to the pool or closes, then the sink hears of it.
  void complete();
  void fail(UpstreamFailure failure);
  // What a failure of this attempt allows: nothing came back yet, nothing went out yet.
  Resend resendNow() const;
  ssize_t readTls();
  bool writeTls(uint64_t& sent);

  // Http1ResponseHandler
  void onResponseHead(ResponseHead& head) override;
  void onBody(std::string_view data) override;
  void onTrailers(Headers& trailers) override;
  void onComplete() override {}

  Http1UpstreamPool& pool_;
  std::string key_;
  TargetGroupCounters& stats_;  // the worker's counters of the group it was opened for (never removed)
  Http1ResponseParser parser_;
  Buffer in_, out_;
  std::unique_ptr<tls::TlsSession> tls_;  // HTTPS target group: in_/out_ are plaintext, rawOut_ ciphertext
  Buffer rawOut_;
  UpstreamStreamSink* sink_ = nullptr;  // the exchange of the request it carries; null: idle
  uint64_t attachments_ = 0;            // tells a deferred read whether it is still for the same request
  bool connected_ = false;
  bool eof_ = false;
  bool flushQueued_ = false;
  // The current request's: what went out and came back, and how it is framed.
  bool sent_ = false, received_ = false;
  bool requestChunked_ = false, requestEnded_ = false;
  int lastStatus_ = 0;  // of the last head parsed: 1xx heads are followed by the real one
  bool gotFinalHead_ = false, keepAlive_ = true;
  int64_t openedAt_ = 0, idleSince_ = 0;
};

class Http1UpstreamPool {
 public:
  Http1UpstreamPool(EventLoop& loop) : loop_(loop) {}
  Http1UpstreamPool(const Http1UpstreamPool&) = delete;
  Http1UpstreamPool& operator=(const Http1UpstreamPool&) = delete;

  // A pooled connection to the request's target (first attempts only), else a new one unless
  // `maxConnections` are open to it. `clientTls`: HTTPS target groups' client context (null: none).
  UpstreamPool::Opened open(const UpstreamRequest& request, UpstreamStreamSink& sink, SSL_CTX* clientTls,
                            int maxConnections);
  void sweep(int64_t nowMillis, bool stopping);
  void closeAll();

 private:
  friend class Http1UpstreamConnection;
  static constexpr size_t kMaxIdlePerTarget = 256;
  static constexpr int64_t kIdleMs = 60000;
  void release(Http1UpstreamConnection* connection);  // idle again: kept, or closed when the pool is full
  void forget(Http1UpstreamConnection* connection);   // retired

  EventLoop& loop_;
  std::unordered_set<Http1UpstreamConnection*> all_;
  std::unordered_map<std::string, std::vector<Http1UpstreamConnection*>> idle_;  // by targetKey
  std::unordered_map<std::string, int> open_;  // connections by targetKey, in use or idle
  bool stopping_ = false;
};

}  // namespace trellis::proxy
