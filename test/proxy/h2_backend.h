// A real HTTP/2 (h2c, prior knowledge) server on loopback for tests: nghttp2 through Http2ServerSession,
// one thread per connection. Every request is answered once its body has ended:
//   200, content-type application/grpc, body "echo <method> <path> <body>", trailers grpc-status 0 and
//   x-request-trailer (the request's trailer x-checksum, if any);
// a path starting "/status/N" answers N with no body and grpc-status from "?grpc=M" in the trailers.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/http/http2_codec.h"

namespace trellis::testing {

class H2Backend {
 public:
  H2Backend() {
    listenFd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listenFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listenFd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(listenFd_, 64);
    socklen_t length = sizeof a;
    getsockname(listenFd_, reinterpret_cast<sockaddr*>(&a), &length);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }
  ~H2Backend() {
    stopping_ = true;
    shutdown(listenFd_, SHUT_RDWR);
    ::close(listenFd_);
    acceptor_.join();
    std::lock_guard lock(mutex_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    for (auto& t : connections_) t.join();
  }
  uint16_t port() const { return port_; }
  int connectionsAccepted() const { return accepted_; }
  int requestsSeen() const { return requests_; }
  // After this many requests on a connection, the backend sends GOAWAY (and finishes what it started).
  void goAwayAfter(int requests) { goAwayAfter_ = requests; }

 private:
  class Connection : public proxy::Http2ServerHandler {
   public:
    explicit Connection(H2Backend& owner) : owner_(owner), session_(*this) {}
    void run(int fd) {
      char buffer[16384];
      std::string out;
      while (true) {
        out.clear();
        if (!session_.send(out)) break;
        if (!out.empty() && ::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) break;
        if (session_.finished()) break;
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0 || !session_.receive(std::string_view(buffer, static_cast<size_t>(n)))) break;
      }
      ::close(fd);
    }
    void onRequestHead(int32_t stream, proxy::RequestHead& head) override {
      ++owner_.requests_;
      requests_[stream].head = std::move(head);
      if (owner_.goAwayAfter_ > 0 && ++count_ >= owner_.goAwayAfter_) session_.goAway();
    }
    void onMalformedRequest(int32_t stream, std::string_view) override {
      session_.submitResponse(stream, 400, {}, true);
    }
    void onBody(int32_t stream, std::string_view data) override {
      requests_[stream].body.append(data);
      session_.consume(stream, data.size());
    }
    void onTrailers(int32_t stream, proxy::Headers& trailers) override { requests_[stream].trailers = trailers; }
    void onComplete(int32_t stream) override {
      Request& r = requests_[stream];
      std::string path = r.head.target;
      if (path.rfind("/status/", 0) == 0) {
        int status = std::atoi(path.c_str() + 8);
        size_t grpc = path.find("?grpc=");
        session_.submitResponse(stream, status, {{"content-type", "application/grpc"}}, false);
        session_.endStream(stream, {{"grpc-status", grpc == std::string::npos ? "0" : path.substr(grpc + 6)}});
        return;
      }
      session_.submitResponse(stream, 200, {{"content-type", "application/grpc"}}, false);
      session_.sendData(stream, "echo " + r.head.method + " " + path + " " + r.body);
      proxy::Headers trailers{{"grpc-status", "0"}};
      for (const auto& [name, value] : r.trailers) {
        if (name == "x-checksum") trailers.emplace_back("x-request-trailer", value);
      }
      session_.endStream(stream, trailers);
    }
    void onStreamClosed(int32_t stream, uint32_t) override { requests_.erase(stream); }

   private:
    struct Request {
      proxy::RequestHead head;
      std::string body;
      proxy::Headers trailers;
    };
    H2Backend& owner_;
    proxy::Http2ServerSession session_;
    std::map<int32_t, Request> requests_;
    int count_ = 0;
  };

  void acceptLoop() {
    while (!stopping_) {
      int fd = accept(listenFd_, nullptr, nullptr);
      if (fd < 0) return;
      ++accepted_;
      std::lock_guard lock(mutex_);
      fds_.push_back(fd);
      connections_.emplace_back([this, fd] {
        Connection c(*this);
        c.run(fd);
      });
    }
  }

  int listenFd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0}, requests_{0}, goAwayAfter_{0};
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<int> fds_;
  std::vector<std::thread> connections_;
};

}  // namespace trellis::testing
