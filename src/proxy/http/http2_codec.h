// HTTP/2 codec on nghttp2 (RFC 9113), in memory like the TLS layer: the connection feeds bytes read from
// the socket to receive() and pulls bytes to write with send(); no sockets, no timers here.
//   Http2ServerSession — downstream (client → proxy): one RequestHead, body pieces, trailers per stream,
//                        the same events the HTTP/1 codec produces, plus the stream id.
//   Http2ClientSession — upstream (proxy → target): many requests multiplexed on one connection.
//
// Flow control is explicit both ways, so backpressure crosses the proxy as it does for HTTP/1:
//   - received DATA is not acknowledged (no WINDOW_UPDATE) until the owner calls consume() for it, which
//     it does once the bytes have gone on; a stalled peer stalls only its own stream's window;
//   - bytes handed to sendData() wait in the stream's buffer until the peer's windows let them out;
//     bufferedBytes() is that backlog, and onStreamDrained() says when it fell below kStreamLowWater.
// Header limits are Lattice's (docs/architecture.md, "Limits"): a request header block over kMaxHeaderBytes
// or kMaxHeaders is reported with onMalformedRequest(), which the owner answers like any other 400.
#pragma once
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/failure.h"
#include "proxy/http/http1_codec.h"
#include "snapshot/snapshot.h"

namespace trellis::proxy {

inline constexpr size_t kStreamHighWater = 256 * 1024;  // a stream's unsent backlog at which its source pauses
inline constexpr size_t kStreamLowWater = 64 * 1024;    // ... and resumes below this
inline constexpr uint32_t kMaxConcurrentStreams = 128;  // advertised to clients
// What HPACK decoding may cost (RFC 9113 10.5.1; RFC 7541 7.3): an oversized header block is decoded on
// only up to this many bytes, a connection sends at most kMaxOversizedBlocks of them, and all its header
// blocks decode to at most kDecodedAllowance + kDecodedPerReceivedByte x the bytes it sent; past either,
// GOAWAY ENHANCE_YOUR_CALM.
inline constexpr size_t kCutOversizedBlockAt = 4 * kMaxHeaderBytes;
inline constexpr int kMaxOversizedBlocks = 8;
inline constexpr uint64_t kDecodedAllowance = 16 << 20;
inline constexpr uint64_t kDecodedPerReceivedByte = 256;
inline constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// Events common to both directions. Stream ids are the peer's; callbacks come from inside receive() and
// send(), and the owner may call the session back (submit, sendData, endStream, reset, consume) from them,
// but not receive() or send(): nghttp2 is not re-entrant.
class Http2StreamEvents {
 public:
  virtual ~Http2StreamEvents() = default;
  // A piece of the stream's body; the session's receive window stays closed by `data.size()` until
  // consume() is called for it.
  virtual void onBody(int32_t stream, std::string_view data) = 0;
  // A trailer section (HEADERS after the body), before onComplete().
  virtual void onTrailers(int32_t stream, Headers& trailers) = 0;
  // The peer ended its side of the stream (END_STREAM).
  virtual void onComplete(int32_t stream) = 0;
  // The stream is gone: both sides ended (errorCode 0) or it was reset (RST_STREAM, GOAWAY, connection
  // error) by either end. No event for `stream` follows; unconsumed bytes are released by the session.
  virtual void onStreamClosed(int32_t stream, uint32_t errorCode) = 0;
  // The stream's send backlog fell below kStreamLowWater after having reached kStreamHighWater.
  virtual void onStreamDrained(int32_t /*stream*/) {}
};

class Http2ServerHandler : public Http2StreamEvents {
 public:
  // A request head; pseudo-headers are folded into the HTTP/1-shaped RequestHead (see Http2ServerSession).
  virtual void onRequestHead(int32_t stream, RequestHead& head) = 0;
  // A request the proxy must answer with 400 (header limits, missing :authority/Host, CONNECT). Its body,
  // if any, is read and dropped; onStreamClosed() still follows.
  virtual void onMalformedRequest(int32_t stream, std::string_view reason) = 0;
};

class Http2ClientHandler : public Http2StreamEvents {
 public:
  // The final response head (1xx heads are dropped: the downstream side never asked for them).
  virtual void onResponseHead(int32_t stream, ResponseHead& head) = 0;
  // The server sent GOAWAY: streams above `lastStreamId` close with REFUSED_STREAM (safe to retry), and no
  // new stream may be opened on this connection.
  virtual void onGoaway(int32_t /*lastStreamId*/, uint32_t /*errorCode*/) {}
};

class Http2Session {
 public:
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;
  virtual ~Http2Session();

  // Bytes from the peer. False on a connection error: send() what is pending (a GOAWAY, when nghttp2 made
  // one), then close. error() says why.
  bool receive(std::string_view data);
  // Appends frames to `wire` until nothing is ready or `wire` holds at least `limit` bytes. False on a
  // fatal error.
  bool send(std::string& wire, size_t limit = SIZE_MAX);
  bool wantsWrite() const { return nghttp2_session_want_write(session_) != 0; }
  // True when the connection has nothing left to do: GOAWAY exchanged and every stream closed, or the
  // session failed. Close it once the output is flushed.
  bool finished() const;

  // Appends to the stream's body; returns the stream's backlog (bytes not yet framed).
  size_t sendData(int32_t stream, std::string_view data);
  // Ends the stream's sending side after the buffered body, with trailers when `trailers` is not empty.
  void endStream(int32_t stream, const Headers& trailers = {});
  // RST_STREAM (e.g. NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR). onStreamClosed() follows.
  void resetStream(int32_t stream, uint32_t errorCode);
  size_t bufferedBytes(int32_t stream) const;
  // Opens the receive window again for `bytes` of the stream's DATA that went on.
  void consume(int32_t stream, size_t bytes);
  // Graceful GOAWAY: streams already started finish, new ones are refused. Idempotent.
  void goAway();
  bool goingAway() const { return goAwaySent_; }
  size_t openStreams() const { return streams_.size(); }
  const std::string& error() const { return error_; }
  bool terminated() const { return terminated_; }  // GOAWAY ENHANCE_YOUR_CALM: see terminate()

 protected:
  struct Stream {
    int32_t id = 0;
    std::string out;  // body bytes not yet framed
    size_t outOffset = 0;
    bool hasProvider = false;  // a data provider is attached (HEADERS went without END_STREAM)
    bool ending = false;       // endStream() called: END_STREAM (or trailers) after `out`
    bool deferred = false;     // the provider returned DEFERRED and waits for resume
    bool aboveHighWater = false;
    Headers trailersOut;
    bool headSeen = false;     // the first (final, for responses) HEADERS arrived; later HEADERS are trailers
    bool announced = false;    // the owner knows this stream (it got a head or a malformed report)
    bool malformed = false;    // reported with onMalformedRequest(): later events are not the owner's
    bool requestHead = false;  // client side: the request was HEAD (the response has no body)
    size_t unconsumed = 0;     // DATA bytes received and not yet consume()d
    // The header block being received.
    Headers headers;
    size_t headerBytes = 0;
    const char* tooLarge = nullptr;  // which limit the block broke
    std::string method, scheme, authority, path, status;
  };

  explicit Http2Session(Http2StreamEvents& events);
  // Callbacks and the options both sides share; the subclass picks client or server.
  static nghttp2_session_callbacks* makeCallbacks();
  static nghttp2_option* makeOptions();
  Stream* find(int32_t stream) const;
  Stream& create(int32_t stream);
  void recycle(std::unique_ptr<Stream> s);  // a closed stream, kept for reuse
  nghttp2_data_provider provider();
  void fail(const char* what, int code);

  // Called by the shared callbacks.
  virtual void headBlockDone(Stream& s, bool endStream) = 0;
  // A header block over the limits that went on decoding past kCutOversizedBlockAt: nghttp2 resets the
  // stream and skips the rest of the block.
  virtual void headerBlockCut(Stream& /*s*/) {}
  virtual void goAwayReceived(int32_t /*lastStreamId*/, uint32_t /*errorCode*/) {}
  int onHeader(Stream& s, std::string_view name, std::string_view value, uint8_t flags);
  void trailersDone(Stream& s);
  // GOAWAY ENHANCE_YOUR_CALM: the peer makes us work out of proportion with what it sends. receive()
  // answers false from then on; send() still writes the GOAWAY. Returns what a callback returns.
  int terminate(const char* reason);
  bool tooManyOversizedBlocks();  // counts one more

  static int onBeginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int onHeaderCb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t nameLength,
                        const uint8_t* value, size_t valueLength, uint8_t flags, void* self);
  static int onFrameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int onDataChunkCb(nghttp2_session*, uint8_t flags, int32_t stream, const uint8_t* data, size_t length,
                           void* self);
  static int onStreamCloseCb(nghttp2_session*, int32_t stream, uint32_t errorCode, void* self);
  static ssize_t readDataCb(nghttp2_session*, int32_t stream, uint8_t* buffer, size_t length, uint32_t* flags,
                            nghttp2_data_source* source, void* self);

  Http2StreamEvents& events_;
  nghttp2_session* session_ = nullptr;
  // Open streams, found by a linear scan: at most kMaxConcurrentStreams, mostly a handful. Closed ones are kept
  // in spare_ for reuse with their buffers, so a request costs no stream allocation.
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<Stream>> spare_;
  std::vector<int32_t> drained_;  // streams to tell onStreamDrained() once send() is done
  std::vector<int32_t> drainedNow_;  // send()'s copy of drained_ while it tells them
  bool goAwaySent_ = false;
  bool failed_ = false;
  bool terminated_ = false;  // terminate() was called
  std::string error_;
  uint64_t receivedBytes_ = 0, decodedHeaderBytes_ = 0;
  int oversizedBlocks_ = 0;
};

// Request heads come out shaped like HTTP/1.1 ones, so routing, auth and the HTTP/1.1 upstream path take
// them unchanged: :method → method, :path → target, :authority (or Host) → host and a "host" header,
// cookie crumbs joined with "; ", a body without content-length marked `chunked` (length unknown).
// versionMinor is 0 and `keepAlive` true; RequestHead::headerBytes counts names and values.
class Http2ServerSession : public Http2Session {
 public:
  // Queues the server's SETTINGS. The client's preface is expected first in receive().
  explicit Http2ServerSession(Http2ServerHandler& handler);

  // The response head; `headers` lower-case (connection-specific ones are dropped), copied before this
  // returns. `endStream`: no body.
  bool submitResponse(int32_t stream, int status, const std::vector<HeaderView>& headers, bool endStream);

 private:
  std::vector<nghttp2_nv> nvScratch_;
  void headBlockDone(Stream& s, bool endStream) override;
  void headerBlockCut(Stream& s) override;
  Http2ServerHandler& handler_;
};

// The proxy's side of an upstream HTTP/2 connection (prior knowledge: over TLS the target is not asked for
// ALPN h2, as Lattice does not either for protocolVersion HTTP2/GRPC).
class Http2ClientSession : public Http2Session {
 public:
  // Queues the connection preface and SETTINGS.
  explicit Http2ClientSession(Http2ClientHandler& handler);

  // Opens a stream; `headers` as for submitResponse ("host" becomes :authority when `authority` is empty).
  // Returns the stream id, or -1 when no stream can be opened (GOAWAY, stream ids exhausted).
  int32_t submitRequest(std::string_view method, std::string_view scheme, std::string_view authority,
                        std::string_view path, const std::vector<HeaderView>& headers, bool endStream);
  // Whether another stream fits under the target's SETTINGS_MAX_CONCURRENT_STREAMS and no GOAWAY came.
  bool canOpenStream() const;
  bool goAwayReceived() const { return goAwayReceived_; }

 private:
  void headBlockDone(Stream& s, bool endStream) override;
  void goAwayReceived(int32_t lastStreamId, uint32_t errorCode) override;
  Http2ClientHandler& handler_;
  bool goAwayReceived_ = false;
};

// h2c with prior knowledge (RFC 9113 3.3): whether a plaintext connection's first bytes are the client
// preface. Partial: a prefix of it, read more before deciding (an HTTP/1 request differs by its 1st byte but
// "PRI" is a valid HTTP/1 method token, so the whole 24 bytes decide).
enum class PrefaceMatch { No, Partial, Yes };
PrefaceMatch matchHttp2Preface(std::string_view firstBytes);

// ---- protocol rules (docs/architecture.md, "HTTP/2 and gRPC") ----

enum class RequestProtocol { Http1, Http2, Grpc };

// gRPC: an HTTP/2 request with content-type application/grpc (or application/grpc+proto, ;charset...).
bool isGrpcContentType(std::string_view contentType);
RequestProtocol requestProtocol(bool http2, const RequestHead& head);
std::string_view protocolName(RequestProtocol protocol);  // "HTTP/1.1", "HTTP/2", "gRPC"

struct ProtocolVerdict {
  int status = 0;  // 0: forward; otherwise answer this status locally
  Failure failure = Failure::None;
  bool ok() const { return status == 0; }
};

// The compatibility matrix of Lattice's target groups, request protocol × target group protocolVersion
// (HTTP1 | HTTP2 | GRPC) × method. The documented "error" cells answer 400 with failureReason ClientProtocolError: the
// request cannot be carried to that target group (Lattice documents no other status for it).
ProtocolVerdict checkProtocolCompatibility(RequestProtocol request, snapshot::ProtocolVersion protocolVersion,
                                           std::string_view method);
// Target groups whose targets are spoken to in HTTP/2.
inline bool upstreamIsHttp2(snapshot::ProtocolVersion protocolVersion) {
  return protocolVersion == snapshot::ProtocolVersion::Http2 || protocolVersion == snapshot::ProtocolVersion::Grpc;
}

// The grpc-status of a trailer section (or of a trailers-only response's head); -1 when absent or invalid.
int grpcStatus(const Headers& headers);

// Header names HTTP/2 forbids (RFC 9113 8.2.2), beyond pseudo-headers: dropped when converting from HTTP/1.
// "te" is allowed with the value "trailers" only.
bool isConnectionSpecific(std::string_view lowerName, std::string_view value);

}  // namespace trellis::proxy
