// A small blocking HTTP/1.1 client (the CLI, Firehose access-log delivery): one request per connection, plain HTTP
// or HTTPS (TLS 1.2+, server certificate always verified), Content-Length bodies.
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/http_server.h"

namespace trellis {

struct Endpoint {
  std::string host;        // name or address to connect to ("::1" without brackets)
  uint16_t port = 80;
  std::string hostHeader;  // what goes in Host (and is signed): "127.0.0.1:8440"
  std::string basePath;    // path prefix without a trailing '/', usually empty
  bool tls = false;        // https: TLS 1.2+ with SNI, the certificate verified for `host` (name or IP address)
  std::string caFile;      // https: PEM bundle the server's chain must end in; empty: the system trust store
};

// Parses "http://host[:port][/base]" (port 80) or "https://host[:port][/base]" (port 443, `tls` set).
// nullopt (with `error` set) for anything else.
std::optional<Endpoint> parseEndpoint(std::string_view url, std::string& error);

struct HttpResult {
  int status = 0;
  HeaderList headers;  // names lower-cased
  std::string body;

  const std::string* header(std::string_view name) const;
};

// Lets another thread end an httpExchange early (a long poll, at shutdown): cancel() shuts its connection down and
// the exchange throws. Once cancelled, it stays cancelled: later exchanges given it throw at once.
class HttpCancel {
 public:
  void cancel();
  bool cancelled() const;

 private:
  friend class CancelScope;
  mutable std::mutex mutex_;
  int fd_ = -1;  // the connection of the exchange running with this token, if any
  bool cancelled_ = false;
};

// Sends one request and reads the whole response. `target` is the raw request-target ("/services?x=1").
// `timeout` bounds the connect (all addresses together) and then each read and write.
// Throws std::runtime_error naming the endpoint when it cannot connect, times out or gets a malformed answer, or,
// for https, when the handshake fails: "TLS handshake with https://h:p failed: certificate verify failed: ...".
// TLS writes never raise SIGPIPE (the CLI does not ignore it). `cancel` (may be null) can end it from elsewhere.
HttpResult httpExchange(const Endpoint& endpoint, std::string_view method, std::string_view target,
                        const HeaderList& headers, std::string_view body,
                        std::chrono::seconds timeout = std::chrono::seconds(30), HttpCancel* cancel = nullptr);

}  // namespace trellis
