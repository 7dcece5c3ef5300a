#include "proxy/http/http2_codec.h"

#include <algorithm>
#include <cstring>

#include "common/request_target.h"
#include "common/strings.h"

namespace trellis::proxy {
namespace {

// The connection-level receive window: large, so one stream whose consumer stalls (its own 256 KiB window
// closed) never holds up the others.
constexpr int32_t kConnectionWindow = 16 * 1024 * 1024;
constexpr uint32_t kUpstreamMaxStreams = 100;  // until the target's SETTINGS say otherwise

std::string_view view(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// Request ids are unique per message: indexing them in the HPACK dynamic table only evicts what repeats
// (and cost 8% of an h2c request's instructions).
bool neverRepeats(std::string_view name) { return name == "x-amzn-requestid"; }

nghttp2_nv makeNv(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          static_cast<uint8_t>(neverRepeats(name) ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE)};
}

// Appends the headers HTTP/2 may carry.
template <typename HeaderList>  // Headers or std::vector<HeaderView>
void appendHeaders(std::vector<nghttp2_nv>& nv, const HeaderList& headers) {
  for (const auto& [name, value] : headers) {
    if (name.empty() || name[0] == ':' || isConnectionSpecific(name, value)) continue;
    nv.push_back(makeNv(name, value));
  }
}

bool parseLength(std::string_view text, uint64_t& out) {
  if (text.empty() || text.size() > 19) return false;
  out = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

}  // namespace

// ---------------- Http2Session ----------------

Http2Session::Http2Session(Http2StreamEvents& events) : events_(events) {}

Http2Session::~Http2Session() {
  if (session_) nghttp2_session_del(session_);
}

nghttp2_session_callbacks* Http2Session::makeCallbacks() {
  // Built once; nghttp2 copies them into each session.
  static nghttp2_session_callbacks* callbacks = [] {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBeginHeadersCb);
    nghttp2_session_callbacks_set_on_header_callback(cb, onHeaderCb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrameRecvCb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onDataChunkCb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamCloseCb);
    return cb;
  }();
  return callbacks;
}

nghttp2_option* Http2Session::makeOptions() {
  static nghttp2_option* options = [] {
    nghttp2_option* o = nullptr;
    nghttp2_option_new(&o);
    nghttp2_option_set_no_auto_window_update(o, 1);  // consume() opens the windows: that is the backpressure
    nghttp2_option_set_peer_max_concurrent_streams(o, kUpstreamMaxStreams);
    return o;
  }();
  return options;
}

Http2Session::Stream* Http2Session::find(int32_t stream) const {
  for (const auto& s : streams_)
    if (s->id == stream) return s.get();
  return nullptr;
}

Http2Session::Stream& Http2Session::create(int32_t stream) {
  if (Stream* s = find(stream)) return *s;
  std::unique_ptr<Stream> s;
  if (spare_.empty()) {
    s = std::make_unique<Stream>();
  } else {
    s = std::move(spare_.back());
    spare_.pop_back();
  }
  s->id = stream;
  streams_.push_back(std::move(s));
  return *streams_.back();
}

void Http2Session::recycle(std::unique_ptr<Stream> s) {
  constexpr size_t kSpareStreams = 16;
  constexpr size_t kKeptBuffer = 64 * 1024;  // a stream that buffered more gives its memory back
  if (spare_.size() >= kSpareStreams || s->out.capacity() > kKeptBuffer) return;
  std::string out = std::move(s->out);
  Headers headers = std::move(s->headers);
  *s = Stream{};
  out.clear();
  headers.clear();
  s->out = std::move(out);
  s->headers = std::move(headers);
  spare_.push_back(std::move(s));
}

nghttp2_data_provider Http2Session::provider() {
  nghttp2_data_provider p{};
  p.read_callback = readDataCb;
  return p;
}

void Http2Session::fail(const char* what, int code) {
  failed_ = true;
  if (error_.empty()) error_ = std::string(what) + ": " + nghttp2_strerror(code);
}

bool Http2Session::receive(std::string_view data) {
  if (failed_ || terminated_) return false;
  receivedBytes_ += data.size();
  ssize_t n = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data.data()), data.size());
  if (n < 0) fail("receive", static_cast<int>(n));
  return !failed_ && !terminated_;
}

bool Http2Session::send(std::string& wire, size_t limit) {
  if (failed_) return false;
  do {
    while (wire.size() < limit) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        fail("send", static_cast<int>(n));
        return false;
      }
      if (n == 0) break;
      wire.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    // Told only now: the owner may add data to the drained streams, which mem_send must not see mid-call.
    drainedNow_.clear();
    drainedNow_.swap(drained_);
    for (int32_t id : drainedNow_) {
      if (find(id)) events_.onStreamDrained(id);
    }
  } while (!drained_.empty() && wire.size() < limit);
  return true;
}

bool Http2Session::finished() const {
  return failed_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_));
}

size_t Http2Session::sendData(int32_t stream, std::string_view data) {
  Stream* s = find(stream);
  if (!s || !s->hasProvider || s->ending) return 0;
  if (s->outOffset > 0 && s->outOffset * 2 >= s->out.size()) {
    s->out.erase(0, s->outOffset);
    s->outOffset = 0;
  }
  s->out.append(data);
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(session_, stream);
  }
  size_t backlog = s->out.size() - s->outOffset;
  if (backlog >= kStreamHighWater) s->aboveHighWater = true;
  return backlog;
}

void Http2Session::endStream(int32_t stream, const Headers& trailers) {
  Stream* s = find(stream);
  if (!s || !s->hasProvider || s->ending) return;
  s->ending = true;
  s->trailersOut = trailers;
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(session_, stream);
  }
}

void Http2Session::resetStream(int32_t stream, uint32_t errorCode) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, errorCode);
}

size_t Http2Session::bufferedBytes(int32_t stream) const {
  Stream* s = find(stream);
  return s ? s->out.size() - s->outOffset : 0;
}

void Http2Session::consume(int32_t stream, size_t bytes) {
  Stream* s = find(stream);
  if (!s) return;
  bytes = std::min(bytes, s->unconsumed);
  if (bytes == 0) return;
  s->unconsumed -= bytes;
  nghttp2_session_consume(session_, stream, bytes);
}

void Http2Session::goAway() {
  if (goAwaySent_ || failed_) return;
  goAwaySent_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
}

int Http2Session::terminate(const char* reason) {
  if (!terminated_) error_ = reason;
  terminated_ = true;
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);  // and nghttp2 ignores the rest
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

bool Http2Session::tooManyOversizedBlocks() { return ++oversizedBlocks_ > kMaxOversizedBlocks; }

int Http2Session::onHeader(Stream& s, std::string_view name, std::string_view value, uint8_t /*flags*/) {
  // HPACK lets one byte stand for a 4 KiB dynamic-table entry, and nghttp2 checks every decoded value:
  // what a connection may make us decode is bounded by what it sent.
  size_t bytes = name.size() + value.size();
  decodedHeaderBytes_ += bytes;
  if (decodedHeaderBytes_ > kDecodedAllowance + kDecodedPerReceivedByte * receivedBytes_) {
    return terminate("header blocks decode to far more than was received");
  }
  s.headerBytes += bytes;
  if (s.tooLarge) {
    // Kept decoding (HPACK state is shared) but nothing kept: an honest oversized block ends soon and is
    // answered at its end. One that goes on is cut here, and nghttp2 skips the rest of it without calling
    // back (it resets the stream).
    if (s.headerBytes <= kCutOversizedBlockAt) return 0;
    if (tooManyOversizedBlocks()) return terminate("too many oversized header blocks");
    headerBlockCut(s);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  if (s.headerBytes > kMaxHeaderBytes) {
    s.tooLarge = "header block too large";
  } else if (!name.empty() && name[0] == ':') {
    if (name == ":method") s.method = value;
    else if (name == ":path") s.path = value;
    else if (name == ":authority") s.authority = value;
    else if (name == ":scheme") s.scheme = value;
    else if (name == ":status") s.status = value;
    return 0;
  } else if (s.headers.size() >= kMaxHeaders) {
    s.tooLarge = "too many headers";
  } else {
    s.headers.emplace_back(name, value);
    return 0;
  }
  Headers().swap(s.headers);
  return 0;
}

void Http2Session::trailersDone(Stream& s) {
  if (s.tooLarge) {
    if (tooManyOversizedBlocks()) terminate("too many oversized header blocks");
    resetStream(s.id, NGHTTP2_PROTOCOL_ERROR);
    return;
  }
  Headers trailers = std::move(s.headers);
  s.headers.clear();
  events_.onTrailers(s.id, trailers);
}

int Http2Session::onBeginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  auto* session = static_cast<Http2Session*>(self);
  int32_t id = frame->hd.stream_id;
  Stream* s = frame->headers.cat == NGHTTP2_HCAT_REQUEST ? &session->create(id) : session->find(id);
  if (!s) return 0;
  s->headers.clear();
  s->headerBytes = 0;
  s->tooLarge = nullptr;
  s->method.clear();
  s->scheme.clear();
  s->authority.clear();
  s->path.clear();
  s->status.clear();
  return 0;
}

int Http2Session::onHeaderCb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t nameLength,
                             const uint8_t* value, size_t valueLength, uint8_t flags, void* self) {
  auto* session = static_cast<Http2Session*>(self);
  Stream* s = session->find(frame->hd.stream_id);
  if (!s || s->malformed) return 0;
  return session->onHeader(*s, view(name, nameLength), view(value, valueLength), flags);
}

int Http2Session::onFrameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  auto* session = static_cast<Http2Session*>(self);
  int32_t id = frame->hd.stream_id;
  bool endStream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      Stream* s = session->find(id);
      if (!s || s->malformed) return 0;
      if (!s->headSeen) {
        session->headBlockDone(*s, endStream);
        return 0;
      }
      session->trailersDone(*s);
      if (endStream && session->find(id)) session->events_.onComplete(id);
      return 0;
    }
    case NGHTTP2_DATA: {
      Stream* s = session->find(id);
      if (endStream && s && s->announced && !s->malformed) session->events_.onComplete(id);
      return 0;
    }
    case NGHTTP2_GOAWAY:
      session->goAwayReceived(frame->goaway.last_stream_id, frame->goaway.error_code);
      return 0;
    default:
      return 0;
  }
}

int Http2Session::onDataChunkCb(nghttp2_session* ng, uint8_t, int32_t stream, const uint8_t* data, size_t length,
                                void* self) {
  auto* session = static_cast<Http2Session*>(self);
  Stream* s = session->find(stream);
  if (!s || !s->announced || s->malformed || !s->headSeen) {
    nghttp2_session_consume(ng, stream, length);  // nobody will: release the window now
    return 0;
  }
  s->unconsumed += length;
  session->events_.onBody(stream, view(data, length));
  return 0;
}

int Http2Session::onStreamCloseCb(nghttp2_session* ng, int32_t stream, uint32_t errorCode, void* self) {
  auto* session = static_cast<Http2Session*>(self);
  auto& open = session->streams_;
  auto it = std::find_if(open.begin(), open.end(), [&](const auto& s) { return s->id == stream; });
  if (it == open.end()) return 0;
  std::unique_ptr<Stream> s = std::move(*it);
  *it = std::move(open.back());
  open.pop_back();
  // What the owner never consumed still counts against the connection window.
  if (s->unconsumed > 0) nghttp2_session_consume_connection(ng, s->unconsumed);
  if (s->announced) session->events_.onStreamClosed(stream, errorCode);
  session->recycle(std::move(s));
  return 0;
}

ssize_t Http2Session::readDataCb(nghttp2_session* ng, int32_t stream, uint8_t* buffer, size_t length,
                                 uint32_t* flags, nghttp2_data_source*, void* self) {
  auto* session = static_cast<Http2Session*>(self);
  Stream* s = session->find(stream);
  if (!s) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  size_t available = s->out.size() - s->outOffset;
  size_t n = std::min(length, available);
  std::memcpy(buffer, s->out.data() + s->outOffset, n);
  s->outOffset += n;
  available -= n;
  if (available == 0) {
    s->out.clear();
    s->outOffset = 0;
  }
  if (s->aboveHighWater && available < kStreamLowWater) {
    s->aboveHighWater = false;
    session->drained_.push_back(stream);
  }
  if (available == 0) {
    if (s->ending) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!s->trailersOut.empty()) {
        std::vector<nghttp2_nv> nv;
        appendHeaders(nv, s->trailersOut);
        if (!nv.empty()) {
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          nghttp2_submit_trailer(ng, stream, nv.data(), nv.size());
        }
      }
    } else if (n == 0) {
      s->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return static_cast<ssize_t>(n);
}

// ---------------- Http2ServerSession ----------------

Http2ServerSession::Http2ServerSession(Http2ServerHandler& handler) : Http2Session(handler), handler_(handler) {
  nghttp2_session_server_new2(&session_, makeCallbacks(), this, makeOptions());
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamHighWater},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
}

void Http2ServerSession::headBlockDone(Stream& s, bool endStream) {
  s.headSeen = true;
  s.announced = true;
  auto malformed = [&](const char* reason) {
    s.malformed = true;
    Headers().swap(s.headers);
    handler_.onMalformedRequest(s.id, reason);
  };
  if (s.tooLarge) {
    if (tooManyOversizedBlocks()) terminate("too many oversized header blocks");
    return malformed(s.tooLarge);
  }
  if (s.method == "CONNECT") return malformed("CONNECT not supported");
  RequestHead head;
  head.method = std::move(s.method);
  head.target = std::move(s.path);
  head.versionMinor = 1;
  head.keepAlive = true;
  head.headerBytes = s.headerBytes;
  head.headers.reserve(s.headers.size() + 1);
  std::string authority = std::move(s.authority);
  std::string cookie;
  for (auto& [name, value] : s.headers) {
    if (name == "host") {
      if (authority.empty()) authority = value;  // :authority wins when both are present (RFC 9113 8.3.1)
      continue;
    }
    if (name == "cookie") {  // HTTP/2 may split it into crumbs; HTTP/1.1 wants one line (RFC 9113 8.2.3)
      if (!cookie.empty()) cookie.append("; ");
      cookie.append(value);
      continue;
    }
    if (name == "content-length") {
      head.hasContentLength = parseLength(value, head.contentLength);  // nghttp2 checked it against DATA
    }
    head.headers.emplace_back(std::move(name), std::move(value));
  }
  s.headers.clear();
  if (authority.empty()) return malformed("missing :authority");
  std::string_view host = hostOfAuthority(authority);
  if (host.empty()) return malformed("no host in :authority");  // ":80", "  ": nothing to route by
  head.host = toLower(host);
  head.headers.insert(head.headers.begin(), {"host", std::move(authority)});
  if (!cookie.empty()) head.headers.emplace_back("cookie", std::move(cookie));
  if (endStream) {
    head.hasContentLength = false;
    head.contentLength = 0;
  } else if (!head.hasContentLength) {
    head.chunked = true;  // a body of unknown length: an HTTP/1.1 upstream gets it chunked
  }
  handler_.onRequestHead(s.id, head);
  if (endStream && find(s.id)) handler_.onComplete(s.id);
}

void Http2ServerSession::headerBlockCut(Stream& s) {
  // The block will not end for us: the 400 goes now, ahead of the reset nghttp2 queues.
  s.headSeen = s.announced = s.malformed = true;
  Headers().swap(s.headers);
  handler_.onMalformedRequest(s.id, s.tooLarge);
}

bool Http2ServerSession::submitResponse(int32_t stream, int status, const std::vector<HeaderView>& headers,
                                        bool endStream) {
  Stream* s = find(stream);
  if (!s) return false;
  status %= 1000;
  const char statusText[3] = {static_cast<char>('0' + status / 100), static_cast<char>('0' + status / 10 % 10),
                              static_cast<char>('0' + status % 10)};
  std::vector<nghttp2_nv>& nv = nvScratch_;  // nghttp2 copies the head: the scratch is free again on return
  nv.clear();
  nv.push_back(makeNv(":status", std::string_view(statusText, 3)));
  appendHeaders(nv, headers);
  nghttp2_data_provider p = provider();
  s->hasProvider = !endStream;
  int rc = nghttp2_submit_response(session_, stream, nv.data(), nv.size(), endStream ? nullptr : &p);
  if (rc != 0) s->hasProvider = false;
  return rc == 0;
}

// ---------------- Http2ClientSession ----------------

Http2ClientSession::Http2ClientSession(Http2ClientHandler& handler) : Http2Session(handler), handler_(handler) {
  nghttp2_session_client_new2(&session_, makeCallbacks(), this, makeOptions());
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamHighWater},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
}

int32_t Http2ClientSession::submitRequest(std::string_view method, std::string_view scheme,
                                          std::string_view authority, std::string_view path,
                                          const std::vector<HeaderView>& headers, bool endStream) {
  if (!canOpenStream()) return -1;
  if (authority.empty()) {
    for (const auto& [name, value] : headers) {
      if (name == "host") authority = value;
    }
  }
  std::vector<nghttp2_nv> nv;
  nv.reserve(headers.size() + 4);
  nv.push_back(makeNv(":method", method));
  nv.push_back(makeNv(":scheme", scheme));
  if (!authority.empty()) nv.push_back(makeNv(":authority", authority));
  nv.push_back(makeNv(":path", path));
  for (const auto& [name, value] : headers) {
    if (name == "host" || name.empty() || name[0] == ':' || isConnectionSpecific(name, value)) continue;
    nv.push_back(makeNv(name, value));
  }
  nghttp2_data_provider p = provider();
  int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(), endStream ? nullptr : &p, nullptr);
  if (id < 0) return -1;
  Stream& s = create(id);
  s.announced = true;
  s.hasProvider = !endStream;
  s.requestHead = method == "HEAD";
  return id;
}

void Http2ClientSession::goAwayReceived(int32_t lastStreamId, uint32_t errorCode) {
  goAwayReceived_ = true;
  handler_.onGoaway(lastStreamId, errorCode);
}

bool Http2ClientSession::canOpenStream() const {
  if (failed_ || goAwayReceived_ || goAwaySent_ || !nghttp2_session_check_request_allowed(session_)) return false;
  uint32_t limit = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return streams_.size() < std::min(limit, kUpstreamMaxStreams * 10);
}

void Http2ClientSession::headBlockDone(Stream& s, bool endStream) {
  int status = 0;
  for (char c : s.status) status = status * 10 + (c - '0');  // nghttp2 checked: three digits
  if (status < 200) {  // interim: the final head is still to come
    s.headers.clear();
    return;
  }
  s.headSeen = true;
  ResponseHead head;
  head.status = status;
  head.versionMinor = 1;
  head.keepAlive = true;
  // Ended with its head: nothing follows (a gRPC trailers-only response keeps that shape downstream).
  head.bodyless = s.requestHead || status == 204 || status == 304 || endStream;
  head.headers = std::move(s.headers);
  s.headers.clear();
  for (const auto& [name, value] : head.headers) {
    if (name == "content-length") head.hasContentLength = parseLength(value, head.contentLength);
  }
  if (s.tooLarge) {
    if (tooManyOversizedBlocks()) terminate("too many oversized header blocks");
    resetStream(s.id, NGHTTP2_PROTOCOL_ERROR);
    return;
  }
  handler_.onResponseHead(s.id, head);
  if (endStream && find(s.id)) handler_.onComplete(s.id);
}

PrefaceMatch matchHttp2Preface(std::string_view firstBytes) {
  size_t n = std::min(firstBytes.size(), kHttp2Preface.size());
  if (firstBytes.substr(0, n) != kHttp2Preface.substr(0, n)) return PrefaceMatch::No;
  return n == kHttp2Preface.size() ? PrefaceMatch::Yes : PrefaceMatch::Partial;
}

// ---------------- protocol rules ----------------

bool isGrpcContentType(std::string_view contentType) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (contentType.size() < kGrpc.size() || !iequals(contentType.substr(0, kGrpc.size()), kGrpc)) return false;
  return contentType.size() == kGrpc.size() || contentType[kGrpc.size()] == '+' || contentType[kGrpc.size()] == ';';
}

RequestProtocol requestProtocol(bool http2, const RequestHead& head) {
  if (!http2) return RequestProtocol::Http1;
  const std::string* type = head.header("content-type");
  return type && isGrpcContentType(*type) ? RequestProtocol::Grpc : RequestProtocol::Http2;
}

std::string_view protocolName(RequestProtocol protocol) {
  switch (protocol) {
    case RequestProtocol::Http1: return "HTTP/1.1";
    case RequestProtocol::Http2: return "HTTP/2";
    case RequestProtocol::Grpc: return "gRPC";
  }
  return "-";
}

ProtocolVerdict checkProtocolCompatibility(RequestProtocol request, snapshot::ProtocolVersion protocolVersion,
                                           std::string_view method) {
  constexpr ProtocolVerdict kOk{};
  constexpr ProtocolVerdict kIncompatible{400, Failure::ClientProtocolError};
  switch (protocolVersion) {
    case snapshot::ProtocolVersion::Http2:
      return request == RequestProtocol::Http1 ? kIncompatible : kOk;
    case snapshot::ProtocolVersion::Grpc:
      if (request == RequestProtocol::Http1) return kIncompatible;
      if (request == RequestProtocol::Http2 && method != "POST") return kIncompatible;
      return kOk;
    case snapshot::ProtocolVersion::Http1:
      break;
  }
  return request == RequestProtocol::Grpc ? kIncompatible : kOk;  // HTTP1
}

int grpcStatus(const Headers& headers) {
  for (const auto& [name, value] : headers) {
    if (name != "grpc-status") continue;
    uint64_t code = 0;
    return parseLength(value, code) && code <= 1000 ? static_cast<int>(code) : -1;
  }
  return -1;
}

bool isConnectionSpecific(std::string_view name, std::string_view value) {
  switch (name.size()) {
    case 2: return name == "te" && !iequals(value, "trailers");
    case 7: return name == "upgrade";
    case 10: return name == "connection" || name == "keep-alive";
    case 13: return name == "http2-settings";
    case 16: return name == "proxy-connection";
    case 17: return name == "transfer-encoding";
    default: return false;
  }
}

}  // namespace trellis::proxy
