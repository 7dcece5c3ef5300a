// A small blocking HTTP/1.1 client (the CLI, Firehose access-log delivery): one request per connection, plain HTTP, Content-Length bodies.
#pragma once
#include <chrono>
#include <cstdint>
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
};

// Parses "http://host[:port][/base]". nullopt (with `error` set) for anything else, https included.
std::optional<Endpoint> parseEndpoint(std::string_view url, std::string& error);

struct HttpResult {
  int status = 0;
  HeaderList headers;  // names lower-cased
  std::string body;

  const std::string* header(std::string_view name) const;
};

// Sends one request and reads the whole response. `target` is the raw request-target ("/services?x=1").
// `timeout` bounds the connect (all addresses together) and then each read and write.
// Throws std::runtime_error naming the endpoint when it cannot connect, times out or gets a malformed answer.
HttpResult httpExchange(const Endpoint& endpoint, std::string_view method, std::string_view target,
                        const HeaderList& headers, std::string_view body,
                        std::chrono::seconds timeout = std::chrono::seconds(30));

}  // namespace trellis
