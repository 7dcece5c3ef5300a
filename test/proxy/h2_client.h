// A blocking h2c (prior knowledge) client on our own codec, for tests that need to see frames or to pace
// a request body: what curl and nghttp do not let a test control.
#pragma once
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>

#include "proxy/http/http2_codec.h"
#include "proxy/proxy_harness.h"

namespace trellis::testing {

class H2Client : public proxy::Http2ClientHandler {
 public:
  explicit H2Client(uint16_t port) : fd_(connectTo(port)), session_(*this) {}
  ~H2Client() override { ::close(fd_); }

  int32_t get(const std::string& host, const std::string& path) {
    int32_t id = session_.submitRequest("GET", "http", host, path, {}, true);
    exchange();
    return id;
  }
  // Opens a POST whose body follows through sendBody().
  int32_t startPost(const std::string& host, const std::string& path, size_t contentLength) {
    return session_.submitRequest("POST", "http", host, path, {{"content-length", std::to_string(contentLength)}},
                                  false);
  }
  void sendBody(int32_t stream, std::string_view data, bool last) {
    session_.sendData(stream, data);
    if (last) session_.endStream(stream);
  }
  // Sends what is pending, then reads and decodes until `done` holds or the server closes.
  void exchange(const std::function<bool()>& done = {}) {
    while (true) {
      flush();
      if (done ? done() : complete_ > 0) return;
      if (!readOnce(-1)) return;
    }
  }
  // Sends what is pending (as far as flow control lets it) and takes what arrives, for `duration`.
  void pump(std::chrono::milliseconds duration) {
    auto until = std::chrono::steady_clock::now() + duration;
    while (!closed_) {
      flush();
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !readOnce(static_cast<int>(left.count()))) return;
    }
  }

  void onResponseHead(int32_t, proxy::ResponseHead& head) override { status_ = head.status; }
  void onBody(int32_t stream, std::string_view data) override { session_.consume(stream, data.size()); }
  void onTrailers(int32_t, proxy::Headers&) override {}
  void onComplete(int32_t) override { ++complete_; }
  void onStreamClosed(int32_t, uint32_t) override {}
  void onGoaway(int32_t lastStreamId, uint32_t errorCode) override {
    goawayLast_ = lastStreamId;
    goawayError_ = static_cast<int>(errorCode);
  }

  int fd_;
  proxy::Http2ClientSession session_;
  int status_ = 0, complete_ = 0;
  int32_t goawayLast_ = -1;
  int goawayError_ = -1;
  bool closed_ = false;

 private:
  void flush() {
    std::string out;
    session_.send(out);
    if (!out.empty()) ::send(fd_, out.data(), out.size(), MSG_NOSIGNAL);
  }
  // Waits up to `timeoutMs` (-1: forever) for bytes and decodes them; false once the server closed.
  bool readOnce(int timeoutMs) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeoutMs) == 0) return true;
    char buffer[16384];
    ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    session_.receive(std::string_view(buffer, static_cast<size_t>(n)));
    return true;
  }
};

}  // namespace trellis::testing
