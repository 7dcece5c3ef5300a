// A small HTTP/1.1 server for the control-plane API and the admin endpoint.
// One event-loop thread; handlers run on it synchronously. The data plane has its own,
// much faster codec in src/proxy; this one favours simplicity.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trellis {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;
  std::string target;  // raw request-target as received
  std::string path;    // raw path, still percent-encoded
  std::string query;   // raw query string, without '?'
  HeaderList headers;  // names lower-cased, in arrival order
  std::string body;
  std::string peerAddress;
  uint16_t peerPort = 0;

  // First value of a header (name lower-case), or nullptr.
  const std::string* header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  HeaderList headers;
  std::string body;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// A handler that may answer later (a long poll): it calls `reply` exactly once, from any thread. The request
// lives only during the call: keep a copy of what is needed later.
using HttpReply = std::function<void(HttpResponse)>;
using AsyncHttpHandler = std::function<void(const HttpRequest&, HttpReply reply)>;

class HttpServer {
 public:
  HttpServer(std::string name, HttpHandler handler, size_t maxBodyBytes = 1 << 20);
  HttpServer(std::string name, AsyncHttpHandler handler, size_t maxBodyBytes = 1 << 20);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds "host:port" ("[::1]:8080" for IPv6; port 0 picks one) and starts serving.
  // Throws std::runtime_error with a readable reason when the address cannot be bound.
  void start(const std::string& hostPort);
  uint16_t port() const;
  // Stops accepting, lets in-flight requests finish (up to the grace period; a pending long poll is in flight
  // until it is answered), then joins.
  void stop(int graceMillis = 10000);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port" / "[v6]:port"; returns false on a malformed address.
bool splitHostPort(std::string_view text, std::string& host, uint16_t& port);

}  // namespace trellis
