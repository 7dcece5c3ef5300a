// HTTP/2 from clients (ALPN h2, or h2c with prior knowledge): the session of one connection and its
// streams, each the DownstreamStream of one exchange.
#pragma once
#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/downstream/stream.h"
#include "proxy/exchange/exchange.h"
#include "proxy/http/http2_codec.h"

namespace trellis::proxy {

class WorkerContext;

// What the streams need of the connection they share.
class Http2ConnectionSide {
 public:
  virtual ~Http2ConnectionSide() = default;
  virtual WorkerContext& worker() = 0;
  virtual ClientConnection& client() = 0;
  // Streams opening and closing keep the connection from its idle timeout (frames alone do not).
  virtual void streamActivity() = 0;
  virtual void routedTo(const snapshot::Service& service) = 0;
  // The connection's bytes not yet on the wire.
  virtual size_t unsentBytes() const = 0;
  // Writes what the session has for the client (at the end of the loop turn).
  virtual void flush() = 0;
  virtual bool closed() const = 0;
};

class Http2Downstream;

class Http2Stream : public DownstreamStream {
 public:
  Http2Stream(Http2Downstream& h2, int32_t id) : h2_(h2), id_(id) {}
  bool http2() const override { return true; }
  void routedTo(const snapshot::Service& service) override;
  void sendHead(const ResponseHead& head, const RequestHead& request, std::string_view requestId) override;
  void sendContinue(const RequestHead&) override {}
  void sendBody(std::string_view data) override;
  void sendEnd(const Headers& trailers) override;
  size_t bufferedBytes() const override;
  void resumeRequestBody() override;
  void abandonRequest() override {}
  bool endsBeforeRequest() const override { return true; }  // the rest of the request body is dropped
  void exchangeDone() override;
  void abortStream(Failure failure) override;
  void flushOutput() override;

 private:
  friend class Http2Downstream;
  Http2Downstream& h2_;
  int32_t id_;
  std::unique_ptr<Exchange> exchange_;
  bool ended_ = false;  // the response head carried END_STREAM
};

class Http2Downstream : public Http2ServerHandler {
 public:
  explicit Http2Downstream(Http2ConnectionSide& connection) : c_(connection), session_(*this) {}

  Http2ServerSession& session() { return session_; }
  // Ends every exchange (logged with `failure`) before the connection closes.
  void abortAll(Failure failure);
  // After a read's frames: the upstreams of the streams it opened that are still there. A stream reset in
  // the same read (rapid reset, CVE-2023-44487) never reaches a target.
  void startUpstreams();
  void dropUpstreams();
  // The connection's bytes went out: every stream counted as blocked while they were above kHighWater.
  void drained();
  bool idle() const { return streams_.empty(); }

 private:
  friend class Http2Stream;
  void onRequestHead(int32_t id, RequestHead& head) override;
  void onMalformedRequest(int32_t id, std::string_view reason) override;
  void onBody(int32_t id, std::string_view data) override;
  void onTrailers(int32_t id, Headers& trailers) override;
  void onComplete(int32_t id) override;
  void onStreamClosed(int32_t id, uint32_t errorCode) override;
  void onStreamDrained(int32_t id) override;
  Exchange* exchangeOf(int32_t id) const;
  Http2Stream& newStream(int32_t id);

  Http2ConnectionSide& c_;
  Http2ServerSession session_;
  std::unordered_map<int32_t, std::unique_ptr<Http2Stream>> streams_;
  std::vector<HeaderView> headScratch_;  // Http2Stream::sendHead's
  std::vector<int32_t> opened_;  // streams whose exchanges wait for startUpstreams()
};

}  // namespace trellis::proxy
