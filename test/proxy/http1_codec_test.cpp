// The HTTP/1 request parser on its own, fed whole and one byte at a time: the head checks llhttp leaves
// to us (bare LF, obs-fold) must hold however the bytes are split across reads.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "proxy/http/http1_codec.h"

namespace trellis::proxy {
namespace {

class Recorder : public Http1RequestHandler {
 public:
  void onRequestHead(RequestHead& head) override { heads.push_back(std::move(head)); }
  void onBody(std::string_view data) override { body.append(data); }
  void onTrailers(Headers&) override {}
  void onComplete() override { ++completed; }
  std::vector<RequestHead> heads;
  std::string body;
  int completed = 0;
};

// Feeds `bytes` in pieces of `step` bytes, resuming after each message; the last status seen.
ParseStatus feed(Http1RequestParser& parser, const std::string& bytes, size_t step) {
  ParseStatus status = ParseStatus::Ok;
  size_t at = 0;
  while (at < bytes.size()) {
    size_t consumed = 0;
    status = parser.parse(bytes.data() + at, std::min(step, bytes.size() - at), consumed);
    if (status == ParseStatus::Error) return status;
    at += consumed;
    if (status == ParseStatus::Paused) parser.resume();
  }
  return status;
}

TEST(Http1RequestParser, PipelinedRequestsWholeAndByteByByte) {
  const std::string bytes =
      "GET /a HTTP/1.1\r\nHost: Example.COM:8080\r\nX-Long: " + std::string(300, 'v') +
      "\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
      "GET /c HTTP/1.1\r\nHost: h\r\nX-Sp: a b\r\n\r\n";
  for (size_t step : {bytes.size(), size_t{1}, size_t{7}}) {
    Recorder recorder;
    Http1RequestParser parser(recorder);
    EXPECT_NE(feed(parser, bytes, step), ParseStatus::Error) << "step " << step << ": " << parser.error();
    ASSERT_EQ(recorder.heads.size(), 3u) << "step " << step;
    EXPECT_EQ(recorder.completed, 3);
    EXPECT_EQ(recorder.heads[0].host, "example.com");
    EXPECT_EQ(*recorder.heads[0].header("x-long"), std::string(300, 'v'));
    EXPECT_EQ(recorder.heads[1].target, "/b");
    EXPECT_EQ(recorder.body, "hello");
    EXPECT_EQ(*recorder.heads[2].header("x-sp"), "a b");
  }
}

TEST(Http1RequestParser, BareLfAndObsFoldRejectedHoweverSplit) {
  const std::vector<std::string> shapes = {
      "GET / HTTP/1.1\nHost: h\n\n",
      "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\n\n",
      "GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n\tb\r\n\r\n",
      // The second request of a pipeline gets the same scrutiny as the first.
      "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
  };
  for (const auto& shape : shapes) {
    for (size_t step : {shape.size(), size_t{1}, size_t{2}, size_t{3}}) {
      Recorder recorder;
      Http1RequestParser parser(recorder);
      EXPECT_EQ(feed(parser, shape, step), ParseStatus::Error) << "step " << step << ": " << shape;
      EXPECT_FALSE(parser.error().empty());
    }
  }
}

TEST(Http1RequestParser, BodyBytesAreNotScannedAsHead) {
  // A body may hold anything, bare LFs and leading spaces included.
  const std::string bytes = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\n a\nb\n ";
  for (size_t step : {bytes.size(), size_t{1}}) {
    Recorder recorder;
    Http1RequestParser parser(recorder);
    EXPECT_NE(feed(parser, bytes, step), ParseStatus::Error) << parser.error();
    EXPECT_EQ(recorder.body, " a\nb\n ");
  }
}

// What llhttp 8.1 lets through (docs/architecture.md, "Limits"), however the bytes are split.
TEST(Http1RequestParser, LoneCrAndTrailerFramingRejectedHoweverSplit) {
  const std::string post = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::vector<std::string> shapes = {
      "GET /a HTTP/1.1\r\nHost: h\r\n\rXGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /a HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
      "GET /a HTTP/1.1\r\nHost: h\r\r\n\r\n",
      post + "0\r\nX: y\r\n\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
      post + "0\r\n\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
      post + "0\r\nX: y\r\n z\r\n\r\n",
      post + "0\r\nX: y\r\n\rZ",
      post + "3\r\nabc\r\n0\r\nX: y\rZ: w\r\n\r\n",
      post + "5\r\nhelloXX0\r\n\r\n",
      post + "5;e=" + std::string(5000, 'x') + "\r\nhello\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc",
      "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
  };
  for (const auto& shape : shapes) {
    for (size_t step : {shape.size(), size_t{1}, size_t{2}, size_t{5}}) {
      Recorder recorder;
      Http1RequestParser parser(recorder);
      EXPECT_EQ(feed(parser, shape, step), ParseStatus::Error) << "step " << step << ": " << shape;
      EXPECT_LE(recorder.completed, 0) << shape;
    }
  }
}

TEST(Http1RequestParser, TrailersAndPipelinesAfterThemStillParseHoweverSplit) {
  const std::string bytes =
      "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
      "GET /c HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n";
  for (size_t step : {bytes.size(), size_t{1}, size_t{3}}) {
    Recorder recorder;
    Http1RequestParser parser(recorder);
    EXPECT_NE(feed(parser, bytes, step), ParseStatus::Error) << "step " << step << ": " << parser.error();
    ASSERT_EQ(recorder.heads.size(), 3u) << "step " << step;
    EXPECT_EQ(recorder.body, "abc");
    EXPECT_EQ(recorder.completed, 3);
  }
}

class ResponseRecorder : public Http1ResponseHandler {
 public:
  void onResponseHead(ResponseHead& head) override { statuses.push_back(head.status); }
  void onBody(std::string_view data) override { body.append(data); }
  void onTrailers(Headers&) override {}
  void onComplete() override { ++completed; }
  std::vector<int> statuses;
  std::string body;
  int completed = 0;
};

TEST(Http1ResponseParser, NoBodyAfter204Or304OrInterimWhateverContentLengthSays) {
  for (std::string first : {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
                            "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
                            "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n"}) {
    std::string bytes = first + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    ResponseRecorder recorder;
    Http1ResponseParser parser(recorder);
    size_t at = 0;
    while (at < bytes.size()) {
      size_t consumed = 0;
      ParseStatus status = parser.parse(bytes.data() + at, bytes.size() - at, consumed);
      ASSERT_NE(status, ParseStatus::Error) << first << parser.error();
      at += consumed;
      if (status == ParseStatus::Paused) parser.resume();
    }
    EXPECT_EQ(recorder.statuses, (std::vector<int>{std::atoi(first.c_str() + 9), 200})) << first;
    EXPECT_EQ(recorder.body, "ok") << first;
  }
  for (std::string bad : {"HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 101 Switching Protocols\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"}) {
    ResponseRecorder recorder;
    Http1ResponseParser parser(recorder);
    size_t consumed = 0;
    EXPECT_EQ(parser.parse(bad.data(), bad.size(), consumed), ParseStatus::Error) << bad;
  }
}

// The encoders, without a socket: what a target and a client receive.
TEST(Http1Encoding, ARequestHeadCarriesTheFieldsGivenAndItsOwnFraming) {
  RequestHead head;
  head.method = "POST";
  head.target = "/orders?x=1";
  head.chunked = true;
  std::string out;
  appendRequestHead(out, head, {{"host", "svc"}, {"x-forwarded-for", "10.0.0.1"}});
  EXPECT_EQ(out, "POST /orders?x=1 HTTP/1.1\r\nhost: svc\r\nx-forwarded-for: 10.0.0.1\r\n"
                 "transfer-encoding: chunked\r\n\r\n");
  head.chunked = false;
  head.hasContentLength = true;
  head.contentLength = 5;
  out.clear();
  appendRequestHead(out, head, {});
  EXPECT_EQ(out, "POST /orders?x=1 HTTP/1.1\r\ncontent-length: 5\r\n\r\n");
}

TEST(Http1Encoding, AResponseHeadGetsTheProxysFramingAndRequestId) {
  RequestHead request;
  request.method = "GET";
  ResponseHead head;
  head.status = 200;
  head.headers = {{"connection", "keep-alive"}, {"transfer-encoding", "chunked"}, {"x-amzn-requestid", "forged"},
                  {"content-type", "text/plain"}};
  bool close = false, chunked = false;
  std::string out;
  appendResponseHead(out, head, request, "req-1", close, chunked);  // no length: chunked to an HTTP/1.1 client
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-amzn-requestid: req-1\r\n"
                 "transfer-encoding: chunked\r\n\r\n");
  EXPECT_TRUE(chunked);
  EXPECT_FALSE(close);

  request.versionMinor = 0;  // HTTP/1.0: the body ends with the connection
  out.clear();
  appendResponseHead(out, head, request, "req-2", close, chunked);
  EXPECT_FALSE(chunked);
  EXPECT_TRUE(close);
  EXPECT_NE(out.find("connection: close\r\n"), std::string::npos);

  ResponseHead empty;  // an HTTP/2 target's 200 that ended with its head
  empty.status = 200;
  empty.bodyless = true;
  request.versionMinor = 1;
  close = false;
  out.clear();
  appendResponseHead(out, empty, request, "req-3", close, chunked);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nx-amzn-requestid: req-3\r\ncontent-length: 0\r\n\r\n");
}

}  // namespace
}  // namespace trellis::proxy
