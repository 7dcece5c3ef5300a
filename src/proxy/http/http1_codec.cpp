#include "proxy/http/http1_codec.h"

#include <cstring>

#include "common/request_target.h"
#include "common/strings.h"

namespace trellis::proxy {
namespace {

// Calls `each` with every comma-separated element of `list`, trimmed, while it returns true; whether it
// always did.
template <typename Each>
bool eachElement(std::string_view list, Each each) {
  while (true) {
    size_t comma = list.find(',');
    if (!each(trim(list.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

Http1Parser::Http1Parser(llhttp_type_t type) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = [](llhttp_t* p) {
    auto* s = self(p);
    s->inMessage_ = true;
    s->headers_.clear();
    s->headers_.reserve(16);  // a no-op after recycle(); else one allocation instead of five regrowths
    s->field_.clear();
    s->value_.clear();
    s->inValue_ = false;
    s->inTrailers_ = false;
    s->headerBytes_ = 0;
    s->connectionHeaders_ = 0;
    s->transferEncodingHeader_ = false;
    return 0;
  };
  settings_.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
    auto* s = self(p);
    if (s->inValue_) s->flushHeader();
    s->headerBytes_ += n;
    if (s->headerBytes_ > kMaxHeaderBytes) return s->fail("header block too large");
    s->field_.append(at, n);
    return 0;
  };
  settings_.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
    auto* s = self(p);
    s->inValue_ = true;
    s->headerBytes_ += n;
    if (s->headerBytes_ > kMaxHeaderBytes) return s->fail("header block too large");
    s->value_.append(at, n);
    return 0;
  };
  settings_.on_header_value_complete = [](llhttp_t* p) {
    auto* s = self(p);
    if (s->field_.empty()) return s->fail("empty header name");
    s->flushHeader();
    if (s->headers_.size() > kMaxHeaders) return s->fail("too many headers");
    for (char c : s->headers_.back().first) {
      if (c == ' ' || c == '\t') return s->fail("whitespace in header name");
    }
    return 0;
  };
  settings_.on_headers_complete = [](llhttp_t* p) {
    auto* s = self(p);
    s->inTrailers_ = true;
    return s->headersComplete();
  };
  // Chunk extensions are never forwarded, but llhttp 8.1 reads any amount of them (CVE-2024-22019) and
  // lets DEL through in quoted ones: bounded and checked here.
  auto extension = [](llhttp_t* p, const char* at, size_t n) {
    auto* s = self(p);
    s->chunkExtensionBytes_ += n;
    if (s->chunkExtensionBytes_ > kMaxChunkExtensionBytes) return s->fail("chunk extension too long");
    for (size_t i = 0; i < n; ++i) {
      auto c = static_cast<unsigned char>(at[i]);
      if ((c < 0x20 && c != '\t') || c == 0x7f) return s->fail("control character in chunk extension");
    }
    return 0;
  };
  settings_.on_chunk_extension_name = extension;
  settings_.on_chunk_extension_value = extension;
  settings_.on_chunk_header = [](llhttp_t* p) {
    auto* s = self(p);
    s->chunkExtensionBytes_ = 0;
    if (p->content_length != 0) return 0;
    // The last chunk: what follows is the trailer section, which parse() scans as it does a head.
    s->trailersNext_ = true;
    return static_cast<int>(HPE_PAUSED);
  };
  settings_.on_body = [](llhttp_t* p, const char* at, size_t n) {
    self(p)->handler().onBody(std::string_view(at, n));
    return 0;
  };
  settings_.on_message_complete = [](llhttp_t* p) {
    auto* s = self(p);
    if (!s->headers_.empty()) s->handler().onTrailers(s->headers_);
    s->inMessage_ = false;
    s->handler().onComplete();
    return static_cast<int>(HPE_PAUSED);  // one message at a time: the next waits for resume()
  };
  llhttp_init(&parser_, type, &settings_);
  parser_.data = this;
}

int Http1Parser::fail(const char* reason) {
  error_ = reason;
  return -1;
}

void Http1Parser::flushHeader() {
  if (field_.empty() && value_.empty()) return;
  for (auto& c : field_) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  // Noted for readFraming, by length first: asked of every header.
  if (field_.size() == 10 && field_ == "connection" && connectionHeaders_++ == 0) firstConnection_ = headers_.size();
  if (field_.size() == 17 && field_ == "transfer-encoding") transferEncodingHeader_ = true;
  headers_.emplace_back(std::move(field_), std::move(value_));
  field_.clear();
  value_.clear();
  inValue_ = false;
}

const char* Http1Parser::readFraming(const Headers& headers, bool& chunked, bool& hasContentLength,
                                     uint64_t& contentLength, bool& keepAlive) {
  chunked = (parser_.flags & F_CHUNKED) != 0;
  hasContentLength = (parser_.flags & F_CONTENT_LENGTH) != 0;
  contentLength = hasContentLength ? parser_.content_length : 0;
  keepAlive = llhttp_should_keep_alive(&parser_) != 0;
  // What llhttp 8.1 leaves open (RFC 9112 6.1, 6.3, 9.6): an empty Transfer-Encoding beside a
  // Content-Length, codings the proxy would drop while forwarding the body, and "close" with a tab after it.
  // Looked for only when such a header came (llhttp flags no empty Transfer-Encoding).
  auto close = [&](std::string_view option) {
    if (iequals(option, "close")) keepAlive = false;
    return true;
  };
  bool transferEncoding = transferEncodingHeader_;
  if (!transferEncoding && connectionHeaders_ <= 1) {  // most messages: the one header, found at once
    if (connectionHeaders_ == 1) eachElement(headers[firstConnection_].second, close);
    return nullptr;
  }
  for (const auto& [name, value] : headers) {
    if (name == "transfer-encoding") {
      if (!eachElement(value, [](std::string_view coding) { return iequals(coding, "chunked"); })) {
        return "transfer coding other than chunked";
      }
    } else if (name == "connection") {
      eachElement(value, close);
    }
  }
  if (transferEncoding && hasContentLength) return "Content-Length with Transfer-Encoding";
  if (transferEncoding && !chunked) return "Transfer-Encoding without chunked framing";
  return nullptr;
}

bool Http1Parser::scanHead(const char* data, size_t length) {
  // Line by line with memchr: only line starts and ends matter, and a byte-at-a-time loop here was a
  // sixth of the proxy's instructions per request.
  const char* p = data;
  const char* end = data + length;
  while (p < end && !headScanned_) {
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* lineEnd = lf ? lf : end;
    if (p < lineEnd) {
      if ((*p == ' ' || *p == '\t') && lastByte_ == '\n' && headScanLines_ > 0) {
        error_ = "obsolete line folding";
        return false;
      }
      if (lastLineEmpty_) {
        for (const char* q = p; q < lineEnd; ++q) {
          if (*q != '\r') {
            lastLineEmpty_ = false;
            break;
          }
        }
      }
      lastByte_ = lineEnd[-1];
    }
    if (!lf) break;
    if (lastByte_ != '\r') {
      error_ = "bare LF in message head";
      return false;
    }
    ++headScanLines_;
    lastByte_ = '\n';
    // The head ends at an empty line (CRLF right after CRLF); the body is not ours to scan.
    if (lastLineEmpty_ && headScanLines_ > 1) headScanned_ = true;
    lastLineEmpty_ = true;
    p = lf + 1;
  }
  return true;
}

ParseStatus Http1Parser::parse(const char* data, size_t length, size_t& consumed) {
  consumed = 0;
  if (!error_.empty()) return ParseStatus::Error;
  // llhttp 8.1 accepts a bare LF ending the head or the trailers, and obs-fold lines; we do not (smuggling
  // vectors; a lone CR strict llhttp refuses itself). Scan them (up to their blank line) before handing
  // them over.
  if (!(inTrailers_ && !scanningTrailers_) && !scanHead(data, length)) return ParseStatus::Error;
  size_t done = 0;
  llhttp_errno_t err = llhttp_execute(&parser_, data, length);
  while (err == HPE_PAUSED && trailersNext_) {
    trailersNext_ = false;
    done = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    llhttp_resume(&parser_);
    // The trailer section starts right after the last chunk's line, like a head after its first line.
    scanningTrailers_ = true;
    headScanned_ = false;
    headScanLines_ = 1;
    lastByte_ = '\n';
    lastLineEmpty_ = true;
    if (!scanHead(data + done, length - done)) return ParseStatus::Error;
    err = llhttp_execute(&parser_, data + done, length - done);
  }
  if (err == HPE_OK) {
    consumed = length;
    return ParseStatus::Ok;
  }
  if (err == HPE_PAUSED) {
    consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    return ParseStatus::Paused;
  }
  if (error_.empty()) error_ = llhttp_get_error_reason(&parser_) ? llhttp_get_error_reason(&parser_) : "malformed";
  return ParseStatus::Error;
}

void Http1Parser::recycle(Headers&& headers) {
  if (!headers_.empty() || headers.capacity() <= headers_.capacity()) return;  // never drop parsed trailers
  headers.clear();
  headers_ = std::move(headers);
}

void Http1Parser::resume() {
  llhttp_resume(&parser_);
  inTrailers_ = false;
  scanningTrailers_ = false;
  lastByte_ = '\n';  // a message's first line starts fresh
  headScanLines_ = 0;
  lastLineEmpty_ = true;
  headScanned_ = false;
}

ParseStatus Http1Parser::finish() {
  if (!error_.empty()) return ParseStatus::Error;
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (err == HPE_OK || err == HPE_PAUSED) return inMessage_ ? ParseStatus::Error : ParseStatus::Ok;
  if (error_.empty()) error_ = "message cut short";
  return ParseStatus::Error;
}

Http1RequestParser::Http1RequestParser(Http1RequestHandler& handler) : Http1Parser(HTTP_REQUEST), handler_(handler) {
  settings_.on_url = [](llhttp_t* p, const char* at, size_t n) {
    auto* s = static_cast<Http1RequestParser*>(self(p));
    if (!s->inMessage_) return 0;
    s->headerBytes_ += n;
    if (s->headerBytes_ > kMaxHeaderBytes) return s->fail("request line too long");
    s->url_.append(at, n);
    return 0;
  };
}

int Http1RequestParser::headersComplete() {
  RequestHead head;
  head.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  head.target = std::move(url_);
  url_.clear();
  // llhttp 8.1 takes "HTTP/2.0" and a line without a version (HTTP/0.9) too.
  if (parser_.http_major != 1) return fail("HTTP version not supported");
  head.versionMinor = parser_.http_minor;
  if (const char* error = readFraming(headers_, head.chunked, head.hasContentLength, head.contentLength,
                                      head.keepAlive)) {
    return fail(error);
  }
  if (head.versionMinor == 0 && head.chunked) return fail("Transfer-Encoding in an HTTP/1.0 request");
  head.headers = std::move(headers_);
  headers_.clear();
  head.headerBytes = headerBytes_;
  int hosts = 0;
  for (const auto& [name, value] : head.headers) {
    if (name != "host") continue;
    ++hosts;
    head.host = toLower(hostOfAuthority(value));
  }
  if (hosts > 1) return fail("duplicate Host header");
  if (head.versionMinor >= 1 && parser_.http_major == 1 && hosts == 0) return fail("missing Host header");
  if (parser_.upgrade) return fail("protocol upgrade not supported");
  handler_.onRequestHead(head);
  return 0;
}

Http1ResponseParser::Http1ResponseParser(Http1ResponseHandler& handler)
    : Http1Parser(HTTP_RESPONSE), handler_(handler) {
  settings_.on_status = [](llhttp_t* p, const char* at, size_t n) {
    auto* s = static_cast<Http1ResponseParser*>(self(p));
    s->headerBytes_ += n;
    if (s->headerBytes_ > kMaxHeaderBytes) return s->fail("status line too long");
    s->reason_.append(at, n);
    return 0;
  };
}

int Http1ResponseParser::headersComplete() {
  ResponseHead head;
  head.status = parser_.status_code;
  head.reason = std::move(reason_);
  reason_.clear();
  if (head.status < 100 || head.status > 999) return fail("invalid status code");
  if (head.status == 101) return fail("protocol switch not requested");
  head.versionMinor = parser_.http_major == 1 ? parser_.http_minor : 0;
  if (const char* error = readFraming(headers_, head.chunked, head.hasContentLength, head.contentLength,
                                      head.keepAlive)) {
    return fail(error);
  }
  head.headers = std::move(headers_);
  headers_.clear();
  head.bodyless = headRequest_ || head.status < 200 || head.status == 204 || head.status == 304;
  handler_.onResponseHead(head);
  recycle(std::move(head.headers));  // the handler has copied what it needs
  // 1: no body follows, whatever the headers say. llhttp 8.1 would read a Content-Length body after a
  // 1xx, 204 or 304 out of the next response on the connection.
  return head.bodyless ? 1 : 0;
}

void appendChunk(std::string& out, std::string_view data) {
  if (data.empty()) return;
  char size[24];
  int n = snprintf(size, sizeof size, "%zx\r\n", data.size());
  out.append(size, static_cast<size_t>(n));
  out.append(data);
  out.append("\r\n");
}

void appendLastChunk(std::string& out, const Headers& trailers) {
  out.append("0\r\n");
  for (const auto& [name, value] : trailers) {
    if (isHopByHop(name) || name == "content-length") continue;
    out.append(name).append(": ").append(value).append("\r\n");
  }
  out.append("\r\n");
}

void appendRequestHead(std::string& o, const RequestHead& h, const std::vector<HeaderView>& fields) {
  o.append(h.method).append(" ").append(h.target).append(" HTTP/1.1\r\n");
  // Sized once and copied in place: the fields are most of a forwarded head, and appending each piece
  // (four per field) cost more than the copying itself.
  size_t size = 0;
  for (const auto& [name, value] : fields) size += name.size() + value.size() + 4;
  size_t at = o.size();
  o.resize(at + size);
  char* p = o.data() + at;
  for (const auto& [name, value] : fields) {
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p++ = '\n';
  }
  if (h.chunked) {
    o.append("transfer-encoding: chunked\r\n");
  } else if (h.hasContentLength) {
    o.append("content-length: ").append(std::to_string(h.contentLength)).append("\r\n");
  }
  o.append("\r\n");
}

void appendResponseHead(std::string& o, const ResponseHead& head, const RequestHead& request,
                        std::string_view requestId, bool& closeAfter, bool& chunked) {
  o.append("HTTP/1.1 ").append(std::to_string(head.status)).append(" ");
  o.append(head.reason.empty() ? reasonPhrase(head.status) : std::string_view(head.reason)).append("\r\n");
  bool lengthGiven = false;
  for (const auto& [name, value] : head.headers) {
    if (isHopByHop(name) || name == "x-amzn-requestid" || (name == "content-length" && !head.bodyless)) continue;
    lengthGiven = lengthGiven || name == "content-length";
    o.append(name).append(": ").append(value).append("\r\n");
  }
  o.append("x-amzn-requestid: ").append(requestId).append("\r\n");
  chunked = false;
  if (!head.bodyless) {
    if (head.hasContentLength) {
      o.append("content-length: ").append(std::to_string(head.contentLength)).append("\r\n");
    } else if (request.versionMinor >= 1) {
      chunked = true;
      o.append("transfer-encoding: chunked\r\n");
    } else {
      closeAfter = true;  // HTTP/1.0: the end of the body is the end of the connection
    }
  } else if (!lengthGiven && head.status >= 200 && head.status != 204 && head.status != 304 &&
             request.method != "HEAD") {
    o.append("content-length: 0\r\n");  // an HTTP/2 target's response that ended with its head
  }
  if (closeAfter) {
    o.append("connection: close\r\n");
  } else if (request.versionMinor == 0) {
    o.append("connection: keep-alive\r\n");
  }
  o.append("\r\n");
}

}  // namespace trellis::proxy
