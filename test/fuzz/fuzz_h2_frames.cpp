// libFuzzer target for the downstream HTTP/2 frame path: an Http2ServerSession fed arbitrary bytes after
// the client preface, in splits chosen by the first byte, through the same callbacks the proxy uses. The
// handler answers every request with a body and trailers, consumes or holds request DATA, and resets some
// streams, so flow control, trailers and stream teardown run too.
#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/http/http2_codec.h"

namespace {

using namespace trellis;

class Handler : public proxy::Http2ServerHandler {
 public:
  void onRequestHead(int32_t stream, proxy::RequestHead& head) override {
    if (head.host.empty() || head.method.empty()) __builtin_trap();  // the codec promised both
    if (head.target.size() % 7 == 3) return session->resetStream(stream, NGHTTP2_CANCEL);
    session->submitResponse(stream, 200, {{"content-type", "text/plain"}, {"connection", "x"}}, false);
    session->sendData(stream, head.target);
  }
  void onMalformedRequest(int32_t stream, std::string_view) override {
    session->submitResponse(stream, 400, {}, true);
  }
  void onBody(int32_t stream, std::string_view data) override {
    if (data.size() % 2 == 0) session->consume(stream, data.size());  // hold some bytes back
    session->sendData(stream, data);
  }
  void onTrailers(int32_t, proxy::Headers& trailers) override { kept += trailers.size(); }
  void onComplete(int32_t stream) override { session->endStream(stream, {{"grpc-status", "0"}}); }
  void onStreamClosed(int32_t, uint32_t) override {}

  proxy::Http2ServerSession* session = nullptr;
  size_t kept = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t split = 1 + data[0] % 128;
  std::string input(proxy::kHttp2Preface);
  input.append(reinterpret_cast<const char*>(data + 1), size - 1);
  Handler handler;
  proxy::Http2ServerSession session(handler);
  handler.session = &session;
  std::string wire;
  for (size_t at = 0; at < input.size(); at += split) {
    if (!session.receive(std::string_view(input).substr(at, split))) break;
    wire.clear();
    if (!session.send(wire, 1 << 20)) break;
  }
  wire.clear();
  session.send(wire);
  return 0;
}
