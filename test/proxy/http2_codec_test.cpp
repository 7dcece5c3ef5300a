// The HTTP/2 codec in memory: an Http2ClientSession and an Http2ServerSession joined back to back, each
// one's output fed to the other, so every frame the server sees was produced by nghttp2's client side.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "proxy/http/http2_codec.h"

namespace trellis::proxy {
namespace {

std::vector<HeaderView> views(const Headers& headers) {
  return {headers.begin(), headers.end()};
}

struct StreamLog {
  RequestHead request;
  ResponseHead response;
  bool gotHead = false;
  std::string malformed;
  std::string body;
  Headers trailers;
  bool complete = false;
  bool closed = false;
  uint32_t closeCode = 0;
  int drained = 0;
};

// Records everything; consumes received DATA at once unless `holdBody`.
class ServerSide : public Http2ServerHandler {
 public:
  void onRequestHead(int32_t stream, RequestHead& head) override {
    streams[stream].request = std::move(head);
    streams[stream].gotHead = true;
    order.push_back(stream);
  }
  void onMalformedRequest(int32_t stream, std::string_view reason) override {
    streams[stream].malformed = reason;
    session->submitResponse(stream, 400, {{"content-length", "0"}}, true);
  }
  void onBody(int32_t stream, std::string_view data) override {
    streams[stream].body.append(data);
    if (!holdBody) session->consume(stream, data.size());
  }
  void onTrailers(int32_t stream, Headers& trailers) override { streams[stream].trailers = trailers; }
  void onComplete(int32_t stream) override { streams[stream].complete = true; }
  void onStreamClosed(int32_t stream, uint32_t code) override {
    streams[stream].closed = true;
    streams[stream].closeCode = code;
  }
  void onStreamDrained(int32_t stream) override { ++streams[stream].drained; }

  Http2ServerSession* session = nullptr;
  bool holdBody = false;
  std::map<int32_t, StreamLog> streams;
  std::vector<int32_t> order;
};

class ClientSide : public Http2ClientHandler {
 public:
  void onResponseHead(int32_t stream, ResponseHead& head) override {
    streams[stream].response = std::move(head);
    streams[stream].gotHead = true;
  }
  void onBody(int32_t stream, std::string_view data) override {
    streams[stream].body.append(data);
    if (!holdBody) session->consume(stream, data.size());
  }
  void onTrailers(int32_t stream, Headers& trailers) override { streams[stream].trailers = trailers; }
  void onComplete(int32_t stream) override { streams[stream].complete = true; }
  void onStreamClosed(int32_t stream, uint32_t code) override {
    streams[stream].closed = true;
    streams[stream].closeCode = code;
  }
  void onStreamDrained(int32_t stream) override { ++streams[stream].drained; }
  void onGoaway(int32_t lastStreamId, uint32_t) override { goaway = lastStreamId; }

  Http2ClientSession* session = nullptr;
  bool holdBody = false;
  std::map<int32_t, StreamLog> streams;
  int32_t goaway = -1;
};

const std::string* find(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return &v;
  }
  return nullptr;
}

class Http2CodecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    serverSide.session = &server;
    clientSide.session = &client;
  }
  // Moves bytes both ways until neither side has anything to say; false when a side failed.
  bool pump() {
    for (int round = 0; round < 1000; ++round) {
      std::string toServer, toClient;
      if (!client.send(toServer) || !server.send(toClient)) return false;
      if (toServer.empty() && toClient.empty()) return true;
      if (!toServer.empty() && !server.receive(toServer)) return false;
      if (!toClient.empty() && !client.receive(toClient)) return false;
    }
    return false;
  }

  ServerSide serverSide;
  ClientSide clientSide;
  Http2ServerSession server{serverSide};
  Http2ClientSession client{clientSide};
};

TEST_F(Http2CodecTest, RequestBecomesAnHttp1ShapedHeadAndResponseCarriesTrailers) {
  int32_t id = client.submitRequest("GET", "https", "Svc.Example:8443", "/a/b?x=1",
                                    {{"user-agent", "t"}, {"cookie", "a=1"}, {"cookie", "b=2"},
                                     {"connection", "close"}, {"te", "trailers"}},
                                    true);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(pump());
  ASSERT_TRUE(serverSide.streams[id].gotHead);
  const RequestHead& h = serverSide.streams[id].request;
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/a/b?x=1");
  EXPECT_EQ(h.path(), "/a/b");
  EXPECT_EQ(h.host, "svc.example");
  ASSERT_NE(h.header("host"), nullptr);
  EXPECT_EQ(*h.header("host"), "Svc.Example:8443");
  EXPECT_EQ(h.headers.front().first, "host");
  ASSERT_NE(h.header("cookie"), nullptr);
  EXPECT_EQ(*h.header("cookie"), "a=1; b=2");
  EXPECT_EQ(h.header("connection"), nullptr);  // never sent: connection-specific
  ASSERT_NE(h.header("te"), nullptr);
  EXPECT_FALSE(h.hasBody());
  EXPECT_TRUE(serverSide.streams[id].complete);

  ASSERT_TRUE(server.submitResponse(id, 200, {{"content-type", "application/grpc"}, {"transfer-encoding", "chunked"}},
                                    false));
  server.sendData(id, "hello ");
  server.sendData(id, "world");
  server.endStream(id, {{"grpc-status", "0"}, {"grpc-message", "fine"}});
  ASSERT_TRUE(pump());
  StreamLog& c = clientSide.streams[id];
  ASSERT_TRUE(c.gotHead);
  EXPECT_EQ(c.response.status, 200);
  EXPECT_EQ(find(c.response.headers, "transfer-encoding"), nullptr);
  EXPECT_EQ(c.body, "hello world");
  EXPECT_EQ(grpcStatus(c.trailers), 0);
  ASSERT_NE(find(c.trailers, "grpc-message"), nullptr);
  EXPECT_TRUE(c.complete);
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.closeCode, 0u);
  EXPECT_TRUE(serverSide.streams[id].closed);
  EXPECT_EQ(server.openStreams(), 0u);
}

TEST_F(Http2CodecTest, RequestBodyFramingAndTrailers) {
  // content-length known; unknown length (chunked for HTTP/1.1); and request trailers.
  int32_t sized = client.submitRequest("POST", "http", "h", "/sized", {{"content-length", "5"}}, false);
  int32_t unsized = client.submitRequest("POST", "http", "h", "/unsized", {}, false);
  client.sendData(sized, "12345");
  client.endStream(sized);
  client.sendData(unsized, "abc");
  client.endStream(unsized, {{"x-checksum", "9"}});
  ASSERT_TRUE(pump());
  const StreamLog& a = serverSide.streams[sized];
  EXPECT_TRUE(a.request.hasContentLength);
  EXPECT_EQ(a.request.contentLength, 5u);
  EXPECT_FALSE(a.request.chunked);
  EXPECT_EQ(a.body, "12345");
  EXPECT_TRUE(a.complete);
  const StreamLog& b = serverSide.streams[unsized];
  EXPECT_TRUE(b.request.chunked);
  EXPECT_TRUE(b.request.hasBody());
  EXPECT_EQ(b.body, "abc");
  ASSERT_NE(find(b.trailers, "x-checksum"), nullptr);
  EXPECT_TRUE(b.complete);
}

TEST_F(Http2CodecTest, ManyConcurrentStreamsKeepTheirOwnBodies) {
  std::vector<int32_t> ids;
  for (int i = 0; i < 100; ++i) {
    ids.push_back(client.submitRequest("POST", "http", "h", "/s/" + std::to_string(i), {}, false));
    ASSERT_GT(ids.back(), 0);
  }
  // Interleave the bodies across streams.
  for (int piece = 0; piece < 3; ++piece) {
    for (int i = 0; i < 100; ++i) client.sendData(ids[i], std::to_string(i) + ":" + std::to_string(piece) + ";");
    ASSERT_TRUE(pump());
  }
  for (int i = 0; i < 100; ++i) client.endStream(ids[i]);
  ASSERT_TRUE(pump());
  ASSERT_EQ(serverSide.order.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    const StreamLog& s = serverSide.streams[ids[i]];
    EXPECT_EQ(s.request.target, "/s/" + std::to_string(i));
    std::string n = std::to_string(i);
    EXPECT_EQ(s.body, n + ":0;" + n + ":1;" + n + ":2;");
    EXPECT_TRUE(s.complete);
    ASSERT_TRUE(server.submitResponse(ids[i], 204, {}, true));
  }
  ASSERT_TRUE(pump());
  for (int32_t id : ids) {
    EXPECT_EQ(clientSide.streams[id].response.status, 204);
    EXPECT_TRUE(clientSide.streams[id].response.bodyless);
    EXPECT_TRUE(clientSide.streams[id].closed);
  }
  EXPECT_EQ(server.openStreams(), 0u);
  EXPECT_EQ(client.openStreams(), 0u);
}

TEST_F(Http2CodecTest, UnconsumedRequestBodyStopsTheSenderAndConsumeResumesIt) {
  serverSide.holdBody = true;
  int32_t id = client.submitRequest("POST", "http", "h", "/upload", {}, false);
  const std::string mb(1024 * 1024, 'x');
  EXPECT_GE(client.sendData(id, mb), kStreamHighWater);
  ASSERT_TRUE(pump());
  // The server's stream window (kStreamHighWater) is all the client may send before consume().
  EXPECT_EQ(serverSide.streams[id].body.size(), kStreamHighWater);
  EXPECT_EQ(client.bufferedBytes(id), mb.size() - kStreamHighWater);
  EXPECT_EQ(clientSide.streams[id].drained, 0);
  // Another stream is not held up by the stalled one.
  int32_t other = client.submitRequest("POST", "http", "h", "/other", {}, false);
  client.sendData(other, "fine");
  client.endStream(other);
  ASSERT_TRUE(pump());
  EXPECT_EQ(serverSide.streams[other].body, "fine");
  EXPECT_TRUE(serverSide.streams[other].complete);
  // Consuming in steps lets the rest through; the client hears its backlog drained.
  while (serverSide.streams[id].body.size() < mb.size()) {
    size_t before = serverSide.streams[id].body.size();
    server.consume(id, before);
    ASSERT_TRUE(pump());
    ASSERT_GT(serverSide.streams[id].body.size(), before);
  }
  EXPECT_EQ(client.bufferedBytes(id), 0u);
  EXPECT_EQ(clientSide.streams[id].drained, 1);
}

TEST_F(Http2CodecTest, UnconsumedResponseBodyBuildsTheServersBacklog) {
  clientSide.holdBody = true;
  int32_t id = client.submitRequest("GET", "http", "h", "/download", {}, true);
  ASSERT_TRUE(pump());
  ASSERT_TRUE(server.submitResponse(id, 200, {}, false));
  const std::string mb(1024 * 1024, 'y');
  server.sendData(id, mb);
  ASSERT_TRUE(pump());
  EXPECT_EQ(clientSide.streams[id].body.size(), kStreamHighWater);
  EXPECT_EQ(server.bufferedBytes(id), mb.size() - kStreamHighWater);
  EXPECT_EQ(serverSide.streams[id].drained, 0);
  clientSide.holdBody = false;
  client.consume(id, kStreamHighWater);
  ASSERT_TRUE(pump());
  EXPECT_EQ(clientSide.streams[id].body, mb);
  EXPECT_EQ(serverSide.streams[id].drained, 1);  // the server may read its source again
  EXPECT_FALSE(clientSide.streams[id].complete);
  server.endStream(id);
  ASSERT_TRUE(pump());
  EXPECT_TRUE(clientSide.streams[id].complete);
}

TEST_F(Http2CodecTest, HeaderLimitsAreA400) {
  Headers hundred;
  for (int i = 0; i < 100; ++i) hundred.emplace_back("x-h" + std::to_string(i), "v");
  Headers hundredOne = hundred;
  hundredOne.emplace_back("x-one-more", "v");
  Headers big;
  // Over 60 KiB, yet under the 64 KiB nghttp2's client side will send.
  for (int i = 0; i < 4; ++i) big.emplace_back("x-big" + std::to_string(i), std::string(15 * 1024 + 512, 'b'));
  int32_t ok = client.submitRequest("GET", "http", "h", "/", views(hundred), true);
  int32_t many = client.submitRequest("GET", "http", "h", "/", views(hundredOne), true);
  int32_t large = client.submitRequest("POST", "http", "h", "/", views(big), false);
  client.sendData(large, "dropped");
  client.endStream(large);
  ASSERT_TRUE(pump());
  EXPECT_TRUE(serverSide.streams[ok].gotHead);
  EXPECT_EQ(serverSide.streams[ok].request.headers.size(), 101u);  // + host
  EXPECT_EQ(serverSide.streams[many].malformed, "too many headers");
  EXPECT_FALSE(serverSide.streams[many].gotHead);
  EXPECT_EQ(serverSide.streams[large].malformed, "header block too large");
  EXPECT_EQ(serverSide.streams[large].body, "");  // the body of a rejected request is not the owner's
  EXPECT_EQ(clientSide.streams[many].response.status, 400);
  EXPECT_EQ(clientSide.streams[large].response.status, 400);
  EXPECT_TRUE(serverSide.streams[large].closed);
  // The connection is still good.
  int32_t after = client.submitRequest("GET", "http", "h", "/after", {}, true);
  ASSERT_TRUE(pump());
  EXPECT_TRUE(serverSide.streams[after].gotHead);
}

TEST_F(Http2CodecTest, GoawayLetsOpenStreamsFinishAndRefusesNewOnes) {
  int32_t id = client.submitRequest("GET", "http", "h", "/slow", {}, true);
  ASSERT_TRUE(pump());
  server.goAway();
  ASSERT_TRUE(pump());
  EXPECT_EQ(clientSide.goaway, id);
  EXPECT_FALSE(client.canOpenStream());
  EXPECT_EQ(client.submitRequest("GET", "http", "h", "/late", {}, true), -1);
  EXPECT_FALSE(server.finished());  // the open stream still runs
  ASSERT_TRUE(server.submitResponse(id, 200, {}, false));
  server.sendData(id, "done");
  server.endStream(id);
  ASSERT_TRUE(pump());
  EXPECT_EQ(clientSide.streams[id].body, "done");
  EXPECT_TRUE(clientSide.streams[id].complete);
  EXPECT_TRUE(server.finished());
}

TEST_F(Http2CodecTest, ResetsReachTheOtherSide) {
  int32_t id = client.submitRequest("POST", "http", "h", "/", {}, false);
  client.sendData(id, "part");
  ASSERT_TRUE(pump());
  client.resetStream(id, NGHTTP2_CANCEL);
  ASSERT_TRUE(pump());
  EXPECT_TRUE(serverSide.streams[id].closed);
  EXPECT_EQ(serverSide.streams[id].closeCode, static_cast<uint32_t>(NGHTTP2_CANCEL));
  EXPECT_FALSE(serverSide.streams[id].complete);
  EXPECT_EQ(server.openStreams(), 0u);

  int32_t second = client.submitRequest("GET", "http", "h", "/", {}, true);
  ASSERT_TRUE(pump());
  server.resetStream(second, NGHTTP2_INTERNAL_ERROR);
  ASSERT_TRUE(pump());
  EXPECT_TRUE(clientSide.streams[second].closed);
  EXPECT_EQ(clientSide.streams[second].closeCode, static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR));
  EXPECT_FALSE(clientSide.streams[second].gotHead);
}

TEST_F(Http2CodecTest, HeadResponseIsBodylessAndARequestWithoutAuthorityIsReset) {
  int32_t head = client.submitRequest("HEAD", "http", "h", "/", {}, true);
  int32_t noAuthority = client.submitRequest("GET", "http", "", "/", {}, true);
  ASSERT_TRUE(pump());
  // nghttp2's own checks (RFC 9113 8.3.1) reset it before the owner hears of it.
  EXPECT_EQ(serverSide.streams.count(noAuthority), 0u);
  EXPECT_TRUE(clientSide.streams[noAuthority].closed);
  EXPECT_EQ(clientSide.streams[noAuthority].closeCode, static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  ASSERT_TRUE(server.submitResponse(head, 200, {{"content-length", "10"}}, true));
  ASSERT_TRUE(pump());
  EXPECT_TRUE(clientSide.streams[head].response.bodyless);
  EXPECT_TRUE(clientSide.streams[head].complete);
}

TEST(Http2ServerSession, RejectsAConnectionWithoutThePreface) {
  ServerSide side;
  Http2ServerSession server(side);
  side.session = &server;
  EXPECT_FALSE(server.receive("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
  EXPECT_TRUE(server.finished());
  EXPECT_FALSE(server.error().empty());
}

TEST(Http2ServerSession, ProtocolErrorEndsTheConnectionWithGoaway) {
  ServerSide side;
  Http2ServerSession server(side);
  side.session = &server;
  std::string bytes(kHttp2Preface);
  // A DATA frame on stream 0 is a connection error (RFC 9113 6.1).
  bytes += std::string("\x00\x00\x01\x00\x00\x00\x00\x00\x00", 9) + "x";
  server.receive(bytes);
  std::string out;
  server.send(out);
  // Among the frames written, a GOAWAY (type 7) with PROTOCOL_ERROR (1).
  uint32_t goawayError = ~0u;
  for (size_t at = 0; at + 9 <= out.size();) {
    auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(out[i])); };
    size_t length = byte(at) << 16 | byte(at + 1) << 8 | byte(at + 2);
    if (byte(at + 3) == 7 && length >= 8) {
      goawayError = byte(at + 13) << 24 | byte(at + 14) << 16 | byte(at + 15) << 8 | byte(at + 16);
    }
    at += 9 + length;
  }
  EXPECT_EQ(goawayError, 1u);
  EXPECT_TRUE(server.finished());
}

TEST(Http2Preface, DecidesOnlyOnWholePrefaceOrFirstMismatch) {
  EXPECT_EQ(matchHttp2Preface(""), PrefaceMatch::Partial);
  EXPECT_EQ(matchHttp2Preface("PRI * HTTP/2"), PrefaceMatch::Partial);
  EXPECT_EQ(matchHttp2Preface(std::string(kHttp2Preface) + "\x00\x00"), PrefaceMatch::Yes);
  EXPECT_EQ(matchHttp2Preface("GET / HTTP/1.1\r\n"), PrefaceMatch::No);
  EXPECT_EQ(matchHttp2Preface("PRI * HTTP/1.1\r\n"), PrefaceMatch::No);
}

struct MatrixRow {
  RequestProtocol request;
  snapshot::ProtocolVersion version;
  const char* method;
  int status;
};

TEST(ProtocolCompatibility, Spec54Matrix) {
  using snapshot::ProtocolVersion;
  const MatrixRow rows[] = {
      {RequestProtocol::Http1, ProtocolVersion::Http1, "GET", 0},
      {RequestProtocol::Http2, ProtocolVersion::Http1, "GET", 0},
      {RequestProtocol::Grpc, ProtocolVersion::Http1, "POST", 400},
      {RequestProtocol::Http1, ProtocolVersion::Http2, "GET", 400},
      {RequestProtocol::Http2, ProtocolVersion::Http2, "GET", 0},
      {RequestProtocol::Grpc, ProtocolVersion::Http2, "POST", 0},
      {RequestProtocol::Http1, ProtocolVersion::Grpc, "POST", 400},
      {RequestProtocol::Http2, ProtocolVersion::Grpc, "POST", 0},
      {RequestProtocol::Http2, ProtocolVersion::Grpc, "GET", 400},
      {RequestProtocol::Grpc, ProtocolVersion::Grpc, "POST", 0},
  };
  for (const auto& row : rows) {
    ProtocolVerdict v = checkProtocolCompatibility(row.request, row.version, row.method);
    EXPECT_EQ(v.status, row.status) << protocolName(row.request) << " → version " << int(row.version) << " "
                                    << row.method;
    if (!v.ok()) EXPECT_STREQ(failureReason(v.failure), "ClientProtocolError");
  }
}

TEST(ProtocolCompatibility, RequestProtocolAndGrpcHelpers) {
  RequestHead head;
  head.headers = {{"content-type", "application/grpc+proto"}};
  EXPECT_EQ(requestProtocol(true, head), RequestProtocol::Grpc);
  EXPECT_EQ(requestProtocol(false, head), RequestProtocol::Http1);
  head.headers = {{"content-type", "application/grpc-web"}};
  EXPECT_EQ(requestProtocol(true, head), RequestProtocol::Http2);
  EXPECT_TRUE(isGrpcContentType("application/grpc"));
  EXPECT_TRUE(isGrpcContentType("Application/GRPC;charset=utf-8"));
  EXPECT_FALSE(isGrpcContentType("application/grpcx"));
  EXPECT_EQ(grpcStatus({{"grpc-status", "14"}}), 14);
  EXPECT_EQ(grpcStatus({{"grpc-status", "x"}}), -1);
  EXPECT_EQ(grpcStatus({}), -1);
  EXPECT_TRUE(upstreamIsHttp2(snapshot::ProtocolVersion::Grpc));
  EXPECT_TRUE(upstreamIsHttp2(snapshot::ProtocolVersion::Http2));
  EXPECT_FALSE(upstreamIsHttp2(snapshot::ProtocolVersion::Http1));
  EXPECT_TRUE(isConnectionSpecific("te", "gzip"));
  EXPECT_FALSE(isConnectionSpecific("te", "trailers"));
  EXPECT_TRUE(isConnectionSpecific("transfer-encoding", "chunked"));
}

}  // namespace
}  // namespace trellis::proxy
