// One accepted client connection: its socket, its transport (plaintext, TLS terminated here, or handed
// to a passthrough splice: tls_transport.h) and its codec, chosen by the first bytes. HTTP/1.1 serves one
// exchange at a time, the connection itself being that exchange's DownstreamStream; HTTP/2 serves one per
// stream (http2_stream.h).
#pragma once
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>

#include "proxy/downstream/http2_stream.h"
#include "proxy/downstream/stream.h"
#include "proxy/exchange/exchange.h"
#include "proxy/http/http1_codec.h"
#include "proxy/io/buffer.h"
#include "proxy/server/event_loop.h"

namespace trellis::proxy {

class WorkerContext;

class DownstreamConnection : public Pollable,
                             public DownstreamStream,
                             private Http1RequestHandler,
                             private Http2ConnectionSide {
 public:
  DownstreamConnection(WorkerContext& w, int fd, uint16_t port, const sockaddr_storage& peer, const snapshot::Address& address);
  ~DownstreamConnection() override;

  void onEvents(uint32_t events) override;
  void onEndOfTurn() override { flushHttp2Now(); }
  // Once a second (Worker::sweep): idle and lifetime limits, slow clients, the end of a drain.
  void sweep(int64_t now, bool stopping);
  // Closes now, ending whatever exchange is under way.
  void close();

  // --- DownstreamStream (HTTP/1.1: the connection's current exchange) ---
  bool http2() const override { return false; }
  void routedTo(const snapshot::Service& service) override;
  void sendHead(const ResponseHead& head, const RequestHead& request, std::string_view requestId) override;
  void sendContinue(const RequestHead& request) override;
  void sendBody(std::string_view data) override;
  void sendEnd(const Headers& trailers) override;
  size_t bufferedBytes() const override { return out_.size(); }
  void resumeRequestBody() override;
  void abandonRequest() override { closeAfterResponse_ = true; }
  bool endsBeforeRequest() const override { return closeAfterResponse_; }
  void exchangeDone() override;
  void abortStream(Failure failure) override { abort(failure); }
  void flushOutput() override { flush(); }

 private:
  void readable();
  bool bodyBlocked() const { return exchange_ && exchange_->bodyBlocked(); }
  // Feeds buffered bytes to the codec (HTTP/1.1: as far as backpressure and pipelining allow).
  void process();
  // HTTP/2 over TLS when ALPN chose h2; in plaintext when the client's first bytes are the HTTP/2
  // preface (h2c with prior knowledge). False while the first bytes do not tell yet.
  bool chooseCodec();
  void processHttp2();
  void updateInterest();
  // HTTP/2: moves frames from the session to out_, up to kHighWater unsent bytes (beyond that the streams
  // keep their backlog, which is what holds their targets back). Not from inside the session's callbacks.
  void pullHttp2();
  void flush() override;
  // HTTP/2: what the turn's events left for the client, at the end of the turn.
  void flushHttp2Now();
  // RFC 9112 9.6: closes the sending side only, then reads and drops what the client still sends until it
  // closes too (or kDrainMs pass): closing with its bytes unread would send a reset, and a reset can destroy
  // the response the client has not read yet (a 400, a 408).
  void closeAfterDraining();
  void drain();
  void badRequest();
  // Slow clients: a head not whole in time answers 408; so does a body below the minimum rate (checked
  // over 10 s windows), or the connection is cut once the response has begun.
  void headTimedOut();
  bool bodyTooSlow(int64_t now, int minBytesPerSecond);
  void bodyTimedOut();
  void abort(Failure failure);
  // Like readInto for a connection that is not plain TCP (tls_transport.h).
  ssize_t readTransport();
  bool writeTransport(uint64_t& sent);

  // Http1RequestHandler
  void onRequestHead(RequestHead& head) override;
  void onBody(std::string_view data) override;
  void onTrailers(Headers& trailers) override;
  void onComplete() override;

  // Http2ConnectionSide
  WorkerContext& worker() override { return w_; }
  ClientConnection& client() override { return client_; }
  void streamActivity() override;
  size_t unsentBytes() const override { return out_.size(); }
  bool closed() const override { return dead(); }

  static constexpr int64_t kDrainMs = 2000;

  WorkerContext& w_;
  ClientConnection client_;
  Http1RequestParser parser_;
  Buffer in_, out_;
  std::unique_ptr<Exchange> exchange_;  // HTTP/1.1 only: the request being served
  std::string spareReplay_;  // the last exchange's replay buffer, for its capacity
  bool paused_ = false;  // a request completed; the next one waits until its exchange is done
  bool peerClosed_ = false;
  bool closeAfterResponse_ = false;
  bool closing_ = false;  // close once out_ is flushed
  bool responseChunked_ = false;  // the current response goes out in chunked framing
  int64_t createdAt_ = 0, lastActive_ = 0;
  int64_t headStartedAt_ = 0;  // HTTP/1.1: when the head being received began; 0: none is
  // HTTP/1.1 request body rate: bytes of the exchange at the start of the current 10 s window.
  int64_t bodyWindowStart_ = 0;
  uint64_t bodyWindowBytes_ = 0;
  int idleTimeoutSeconds_;  // see routedTo()
  bool served_ = false;  // an exchange was routed on this connection
  bool draining_ = false;  // closeAfterDraining(): half-closed, dropping what still comes until drainUntil_
  int64_t drainUntil_ = 0;
  // HTTP/2: decided by the first bytes (chooseCodec); then in_ goes to the session and out_ gets its frames.
  bool codecChosen_ = false;
  std::unique_ptr<Http2Downstream> h2_;
  bool inHttp2_ = false;  // inside the session: output waits (nghttp2 is not re-entrant)
  bool http2FlushPending_ = false;
  bool flushAtEndOfTurn_ = false;  // queued with EventLoop::atEndOfTurn
  bool http2OutHigh_ = false;  // out_ reached kHighWater: the streams' targets wait for it to drain
  Buffer rawOut_;  // unless plaintext: what goes on the wire (in_ and out_ hold plaintext)
};

}  // namespace trellis::proxy
