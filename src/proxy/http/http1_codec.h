// HTTP/1.1 codec on llhttp, built strict (LLHTTP_STRICT_MODE) with no lenient flags, plus the checks
// Debian's llhttp 8.1 leaves to us (bare LF, lone CR and obs-fold in heads and trailers, transfer codings,
// chunk extensions, bodies after 1xx/204/304: docs/architecture.md, "Limits"; header count and size
// limits as Lattice's). One parser per connection direction:
//   Http1RequestParser  — downstream (client → proxy) requests.
//   Http1ResponseParser — upstream (target → proxy) responses.
// Both push events into a handler and never buffer bodies: each body piece is handed on as it is
// parsed. An HTTP/2 codec later produces the same RequestHead/body/trailer events per stream.
#pragma once
#include <llhttp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/http/message.h"

namespace trellis::proxy {

class Http1Handler {
 public:
  virtual ~Http1Handler() = default;
  virtual void onBody(std::string_view data) = 0;
  virtual void onTrailers(Headers& trailers) = 0;  // only when the message had a non-empty trailer section
  virtual void onComplete() = 0;
};

class Http1RequestHandler : public Http1Handler {
 public:
  virtual void onRequestHead(RequestHead& head) = 0;
};

class Http1ResponseHandler : public Http1Handler {
 public:
  virtual void onResponseHead(ResponseHead& head) = 0;
};

inline constexpr size_t kMaxHeaderBytes = 60 * 1024;  // Lattice's: more, or more than 100 headers, is a 400
inline constexpr size_t kMaxHeaders = 100;
inline constexpr size_t kMaxChunkExtensionBytes = 4096;  // per chunk

enum class ParseStatus {
  Ok,      // everything given was consumed
  Paused,  // a message completed; call resume() before parsing the next (pipelining)
  Error,   // malformed: answer 400 (requests) / 502 (responses) and close
};

class Http1Parser {
 public:
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;
  virtual ~Http1Parser() = default;

  // Parses from `data`; `consumed` tells how many bytes were used (all of them unless Paused/Error).
  ParseStatus parse(const char* data, size_t length, size_t& consumed);
  // After Paused: continue with the next message.
  void resume();
  // Gives back a finished head's header vector so the next head reuses its storage (no allocation).
  void recycle(Headers&& headers);
  // The peer closed: completes a message delimited by EOF; Error when a message was cut short.
  ParseStatus finish();
  const std::string& error() const { return error_; }
  // True between the first byte of a message and its completion.
  bool inMessage() const { return inMessage_; }

 protected:
  Http1Parser(llhttp_type_t type);
  static Http1Parser* self(llhttp_t* p) { return static_cast<Http1Parser*>(p->data); }
  int fail(const char* reason);
  // Rejects what llhttp lets through in a head or a trailer section: bare LF and obs-fold (a CR not
  // followed by LF strict llhttp refuses itself). False (with error_) when found.
  bool scanHead(const char* data, size_t length);
  void flushHeader();
  // The message's framing from llhttp, checked against `headers`; why it is refused, or nullptr.
  const char* readFraming(const Headers& headers, bool& chunked, bool& hasContentLength, uint64_t& contentLength,
                          bool& keepAlive);
  virtual Http1Handler& handler() = 0;
  virtual int headersComplete() = 0;

  llhttp_t parser_;
  llhttp_settings_t settings_;
  std::string error_;
  Headers headers_;  // the head's headers, then the trailers
  std::string field_, value_;
  bool inValue_ = false;
  bool inTrailers_ = false;
  bool inMessage_ = false;
  size_t headerBytes_ = 0;
  char lastByte_ = '\n';  // for detecting a bare LF split across reads
  int headScanLines_ = 0;     // lines seen in the current head
  bool lastLineEmpty_ = true;  // nothing but CR since the last LF
  bool headScanned_ = false;   // the current head's blank line was seen
  int connectionHeaders_ = 0;            // Connection headers of the current message
  size_t firstConnection_ = 0;           // the first one's index in headers_
  bool transferEncodingHeader_ = false;  // it has a Transfer-Encoding header
  bool trailersNext_ = false;  // the last chunk's line was parsed: llhttp paused before the trailers
  bool scanningTrailers_ = false;  // scanHead runs over the trailer section
  size_t chunkExtensionBytes_ = 0;  // of the current chunk
};

class Http1RequestParser : public Http1Parser {
 public:
  explicit Http1RequestParser(Http1RequestHandler& handler);

 private:
  Http1Handler& handler() override { return handler_; }
  int headersComplete() override;
  Http1RequestHandler& handler_;
  std::string url_;
  friend class Http1Parser;
};

class Http1ResponseParser : public Http1Parser {
 public:
  explicit Http1ResponseParser(Http1ResponseHandler& handler);
  // Set before each response: whether it answers a HEAD (then it has no body).
  void expectBodyless(bool headRequest) { headRequest_ = headRequest; }

 private:
  Http1Handler& handler() override { return handler_; }
  int headersComplete() override;
  Http1ResponseHandler& handler_;
  std::string reason_;
  bool headRequest_ = false;
  friend class Http1Parser;
};

// Appends one chunk in chunked framing.
void appendChunk(std::string& out, std::string_view data);
// Appends the last chunk with trailers.
void appendLastChunk(std::string& out, const Headers& trailers);

// The head of a request to a target: `head`'s request line, `fields` (exchange/forwarded_headers.h), then
// its framing (chunked, or its Content-Length).
void appendRequestHead(std::string& out, const RequestHead& head, const std::vector<HeaderView>& fields);
// The head of the response to `request` with `requestId`, in HTTP/1.1. Hop-by-hop fields do not cross; the
// framing is the proxy's: Content-Length when known, else chunked (`chunked` set), else for an HTTP/1.0
// client the end of the connection. `closeAfter`: the connection closes after this response (in), or must
// (out).
void appendResponseHead(std::string& out, const ResponseHead& head, const RequestHead& request,
                        std::string_view requestId, bool& closeAfter, bool& chunked);

}  // namespace trellis::proxy
