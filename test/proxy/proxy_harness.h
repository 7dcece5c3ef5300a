// Real sockets on loopback: backends started by the test, a blocking HTTP/1.1 client, and a
// DataPlane fed snapshots compiled from store documents (docs/store-schema.md).
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/http_server.h"
#include "common/strings.h"
#include "compile/compiler.h"
#include "compile/store_fixture.h"
#include "proxy/data_plane.h"
#include "snapshot/source.h"

namespace trellis::testing {

// A port nobody listens on, for a data-plane listener (or a target that refuses connections), kept from
// every other process while this one runs: ctest -j runs test binaries side by side, and a port that was
// only bound and closed could go to both. The reservation stays bound, not listening, with SO_REUSEPORT
// set after the bind: the data plane's own SO_REUSEPORT sockets may share the port, any other bind fails.
inline uint16_t freePort() {
  static std::vector<int> reservations;  // closed when the test process exits
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  reservations.push_back(fd);
  return ntohs(a.sin_port);
}

// Connects to 127.0.0.1:port from `source` (any 127.0.0.0/8 address: a client in another "VPC");
// empty: the kernel's choice.
inline int connectTo(uint16_t port, const std::string& source = {}) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (!source.empty()) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    if (inet_pton(AF_INET, source.c_str(), &from.sin_addr) != 1 ||
        bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      close(fd);
      return -1;
    }
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

struct Response {
  int status = 0;  // 0: connection closed / no response
  HeaderList headers;
  std::string body;
  std::string trailers;
  const std::string* header(const std::string& lowerName) const {
    for (const auto& [n, v] : headers) {
      if (n == lowerName) return &v;
    }
    return nullptr;
  }
};

// A deliberately simple, independent HTTP/1.1 response reader (not the proxy's codec).
class Client {
 public:
  explicit Client(uint16_t port, const std::string& source = {}) : fd_(connectTo(port, source)) {}
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }
  bool connected() const { return fd_ >= 0; }
  bool send(const std::string& data) { return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == (ssize_t)data.size(); }

  Response read(bool headRequest = false) {
    Response r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    auto lines = split(head, '\n');
    r.status = std::atoi(std::string(lines[0].substr(9, 3)).c_str());
    bool chunked = false;
    long length = -1;
    for (size_t i = 1; i < lines.size(); ++i) {
      auto line = lines[i];
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      auto colon = line.find(':');
      std::string name = toLower(line.substr(0, colon));
      std::string value(trim(line.substr(colon + 1)));
      if (name == "content-length") length = std::stol(value);
      if (name == "transfer-encoding" && iequals(value, "chunked")) chunked = true;
      r.headers.emplace_back(name, value);
    }
    if (headRequest || r.status == 204 || r.status == 304 || r.status < 200) return r;
    if (chunked) {
      while (true) {
        size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          if (!fill()) return {};
        }
        size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
        buf_.erase(0, eol + 2);
        if (size == 0) {
          while ((eol = buf_.find("\r\n")) != 0) {
            if (eol == std::string::npos) {
              if (!fill()) return {};
              continue;
            }
            r.trailers += buf_.substr(0, eol + 2);
            buf_.erase(0, eol + 2);
          }
          buf_.erase(0, 2);
          return r;
        }
        while (buf_.size() < size + 2) {
          if (!fill()) return {};
        }
        r.body += buf_.substr(0, size);
        buf_.erase(0, size + 2);
      }
    }
    if (length >= 0) {
      while (buf_.size() < static_cast<size_t>(length)) {
        if (!fill()) return {};
      }
      r.body = buf_.substr(0, length);
      buf_.erase(0, length);
      return r;
    }
    while (fill()) {
    }
    r.body = std::move(buf_);
    buf_.clear();
    return r;
  }

  Response get(const std::string& host, const std::string& path = "/", const std::string& extra = {}) {
    send("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "\r\n");
    return read();
  }

  // True when the peer closed the connection (after any pending bytes).
  bool closedByPeer() {
    char c;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return false;
    return recv(fd_, &c, 1, 0) == 0;
  }
  int fd() const { return fd_; }

 private:
  bool fill() {
    char tmp[65536];
    ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, n);
    return true;
  }
  int fd_;
  std::string buf_;
};

// A backend that answers every request with its name and the request headers as JSON.
class EchoBackend {
 public:
  explicit EchoBackend(std::string name, int status = 200) : name_(std::move(name)), status_(status) {
    server_ = std::make_unique<HttpServer>(name_, [this](const HttpRequest& req) { return handle(req); },
                                           64 << 20);
    server_->start("127.0.0.1:0");
    port_ = server_->port();
  }
  ~EchoBackend() { stop(); }
  void stop() {
    if (server_) server_->stop(0);
    server_.reset();
  }
  // Starts again on the same port.
  void restart() {
    server_ = std::make_unique<HttpServer>(name_, [this](const HttpRequest& req) { return handle(req); },
                                           64 << 20);
    server_->start("127.0.0.1:" + std::to_string(port_));
  }
  uint16_t port() const { return port_; }
  int requests() const { return requests_.load(); }
  int healthChecks() const { return healthChecks_.load(); }
  void setStatus(int s) { status_ = s; }

 private:
  HttpResponse handle(const HttpRequest& req) {
    const std::string* ua = req.header("user-agent");
    if (ua && *ua == "Amazon-VPC-Lattice-HealthChecks") {
      ++healthChecks_;
      return {status_.load(), {}, "ok"};
    }
    ++requests_;
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& [n, v] : req.headers) headers[n] = v;
    nlohmann::json body = {{"backend", name_}, {"method", req.method}, {"target", req.target},
                           {"headers", headers}, {"bodySize", req.body.size()}};
    return {status_.load(), {{"content-type", "application/json"}, {"x-amzn-requestid", "backend-made-up"}},
            body.dump()};
  }

  std::string name_;
  std::atomic<int> status_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
  std::atomic<int> requests_{0}, healthChecks_{0};
};

// A listening TCP socket on 127.0.0.1 with a port from the OS.
inline int listenOnLoopback(int backlog, uint16_t& port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  listen(fd, backlog);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// The test backends' accept loop: listens on 127.0.0.1 (port from the OS) when made, hands each accepted
// connection to `serve` once started, and on stop() (or destruction) closes the listener and joins every
// thread it started. A backend declares it as its last member, so it stops before anything `serve` uses goes.
class LoopbackAcceptor {
 public:
  enum class Mode {
    kOneAtATime,           // connections served in turn on the accept thread
    kThreadPerConnection,  // each on a thread of its own
  };
  explicit LoopbackAcceptor(int backlog) { fd_ = listenOnLoopback(backlog, port_); }
  ~LoopbackAcceptor() { stop(); }
  LoopbackAcceptor(const LoopbackAcceptor&) = delete;
  LoopbackAcceptor& operator=(const LoopbackAcceptor&) = delete;

  // Call once, at the end of the owner's constructor: `serve` owns the connection's descriptor.
  void start(Mode mode, std::function<void(int)> serve) {
    serve_ = std::move(serve);
    thread_ = std::thread([this, mode] {
      for (int c; (c = accept(fd_, nullptr, nullptr)) >= 0;) {
        if (mode == Mode::kThreadPerConnection) {
          connections_.emplace_back([this, c] { serve_(c); });
        } else {
          serve_(c);
        }
      }
    });
  }
  void stop() {
    if (fd_ < 0) return;
    shutdown(fd_, SHUT_RDWR);  // wakes the blocked accept(); close() alone would not
    if (thread_.joinable()) thread_.join();
    for (auto& t : connections_) t.join();  // the accept thread's only: joined after it
    connections_.clear();
    close(fd_);
    fd_ = -1;
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::function<void(int)> serve_;
  std::thread thread_;
  std::vector<std::thread> connections_;
};

// A backend that reads one request per connection raw and answers with a scripted response.
class RawBackend {
 public:
  explicit RawBackend(std::string response) : response_(std::move(response)) {
    acceptor_.start(LoopbackAcceptor::Mode::kOneAtATime, [this](int c) { serve(c); });
  }
  uint16_t port() const { return acceptor_.port(); }
  std::string received() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  uint64_t receivedBytes() const { return receivedBytes_.load(); }
  // Reads until `terminator` appears (or `countOnly` bytes counted) before answering.
  std::string terminator = "\r\n\r\n";
  uint64_t expectBodyBytes = 0;  // when set: count that many bytes after the head, keep none

 private:
  void serve(int c) {
    std::string got;
    char buf[65536];
    uint64_t bodySeen = 0;
    bool headDone = false;
    while (true) {
      ssize_t n = recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      receivedBytes_ += n;
      if (expectBodyBytes && headDone) {
        bodySeen += n;
      } else {
        got.append(buf, n);
        if (expectBodyBytes) {
          auto end = got.find("\r\n\r\n");
          if (end != std::string::npos) {
            headDone = true;
            bodySeen = got.size() - end - 4;
            got.resize(end + 4);
          }
        }
      }
      if (expectBodyBytes ? (headDone && bodySeen >= expectBodyBytes) : got.find(terminator) != std::string::npos) {
        break;
      }
    }
    {
      std::lock_guard lock(mutex_);
      received_ = got;
    }
    ::send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
    close(c);
  }
  std::string response_;
  std::mutex mutex_;
  std::string received_;
  std::atomic<uint64_t> receivedBytes_{0};
  LoopbackAcceptor acceptor_{16};  // last: stops first
};

// A backend that reads whole HTTP/1.1 requests (Content-Length bodies) and answers each with what `answer`
// returns for it, after the reply's delay; one request per connection (it closes after answering). For
// scripted failures: a slow answer, a status that changes from request to request.
class ScriptedBackend {
 public:
  struct Reply {
    int status = 200;
    int delayMs = 0;
  };
  // `index`: 0 for the first request this backend got (health checks are answered 200 and not counted).
  using Answer = std::function<Reply(int index)>;
  explicit ScriptedBackend(Answer answer) : answer_(std::move(answer)) {
    acceptor_.start(LoopbackAcceptor::Mode::kThreadPerConnection, [this](int c) { serve(c); });
  }
  uint16_t port() const { return acceptor_.port(); }
  int requests() const { return requests_.load(); }
  // The requests received so far (head and body), in arrival order.
  std::vector<std::string> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  void serve(int c) {
    std::string got;
    char buf[65536];
    size_t need = std::string::npos;
    while (need == std::string::npos || got.size() < need) {
      ssize_t n = recv(c, buf, sizeof buf, 0);
      if (n <= 0) {
        close(c);
        return;
      }
      got.append(buf, n);
      size_t end = got.find("\r\n\r\n");
      if (need == std::string::npos && end != std::string::npos) {
        size_t length = 0;
        for (auto line : split(std::string_view(got).substr(0, end), '\n')) {
          auto colon = line.find(':');
          if (colon != std::string_view::npos && iequals(trim(line.substr(0, colon)), "content-length"))
            length = std::stoul(std::string(trim(line.substr(colon + 1))));
        }
        need = end + 4 + length;
      }
    }
    Reply reply;
    if (got.find("Amazon-VPC-Lattice-HealthChecks") == std::string::npos) {
      int index = requests_++;
      {
        std::lock_guard lock(mutex_);
        received_.push_back(got);
      }
      reply = answer_(index);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(reply.delayMs));
    std::string body = "answer " + std::to_string(requests_.load());
    std::string response = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\ncontent-length: " +
                           std::to_string(body.size()) + "\r\nconnection: close\r\n\r\n" + body;
    ::send(c, response.data(), response.size(), MSG_NOSIGNAL);
    close(c);
  }

  Answer answer_;
  std::mutex mutex_;
  std::vector<std::string> received_;
  std::atomic<int> requests_{0};
  LoopbackAcceptor acceptor_{64};  // last: stops first
};

// trellisd's development VPC: every loopback client is in it. Services are reachable from it only once
// associated (StoreFixture::reachableFrom).
inline const std::string kLoopbackVpc = "vpc-0123456789abcdef0";
inline model::Config loopbackConfig() {
  model::Config config;
  config.vpcs.push_back({kLoopbackVpc, {"127.0.0.0/8", "::1/128"}});
  return config;
}

// Store documents → snapshot → a running DataPlane.
class ProxyHarness {
 public:
  explicit ProxyHarness(model::Config config = loopbackConfig(), int workers = 2, std::string dataDir = "/tmp")
      : config_(std::move(config)) {
    proxy::DataPlaneOptions options;
    options.workers = workers;
    options.dataDir = std::move(dataDir);
    options.gracefulStopMillis = 2000;
    dataPlane_ = std::make_unique<proxy::DataPlane>(options, holder_);
  }
  ~ProxyHarness() { dataPlane_->stop(); }

  StoreFixture store;
  // As trellisd does: the first snapshot from everything, each later one from the changes since.
  void publish() {
    published_ = published_ ? compiler_.update(store.changesSince(published_->revision))
                            : compiler_.compile(store.contents(), config_);
    holder_.publish(published_);
  }
  void start() {
    publish();
    dataPlane_->start();
  }
  // Waits until `port` accepts connections (listeners open asynchronously).
  bool waitListening(uint16_t port) {
    for (int i = 0; i < 200; ++i) {
      int fd = connectTo(port);
      if (fd >= 0) {
        close(fd);
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  proxy::DataPlane& dataPlane() { return *dataPlane_; }
  snapshot::SnapshotHolder& holder() { return holder_; }

 private:
  model::Config config_;
  compile::HealthCells cells_;
  compile::SnapshotCompiler compiler_{&cells_};
  snapshot::SnapshotPtr published_;
  snapshot::SnapshotHolder holder_;
  std::unique_ptr<proxy::DataPlane> dataPlane_;
};

}  // namespace trellis::testing
