#include "common/http_client.h"

#include <llhttp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <asio.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <stdexcept>

#include "common/strings.h"

namespace trellis {

std::optional<Endpoint> parseEndpoint(std::string_view url, std::string& error) {
  constexpr std::string_view scheme = "http://";
  if (!startsWith(url, scheme)) {
    error = "endpoint must start with http:// (got '" + std::string(url) + "')";
    return std::nullopt;
  }
  std::string_view rest = url.substr(scheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  Endpoint ep;
  if (slash != std::string_view::npos) {
    ep.basePath = std::string(rest.substr(slash));
    while (!ep.basePath.empty() && ep.basePath.back() == '/') ep.basePath.pop_back();
  }
  bool hasPort = !authority.empty() && authority.back() != ']' && authority.find(':') != std::string_view::npos &&
                 (authority.front() != '[' || authority.find("]:") != std::string_view::npos);
  if (hasPort) {
    if (!splitHostPort(authority, ep.host, ep.port) || ep.port == 0) {
      error = "endpoint has a bad host or port: '" + std::string(url) + "'";
      return std::nullopt;
    }
  } else {
    ep.host = std::string(authority);
    if (ep.host.size() >= 2 && ep.host.front() == '[' && ep.host.back() == ']') ep.host = ep.host.substr(1, ep.host.size() - 2);
  }
  if (ep.host.empty()) {
    error = "endpoint has no host: '" + std::string(url) + "'";
    return std::nullopt;
  }
  ep.hostHeader = std::string(authority);
  return ep;
}

const std::string* HttpResult::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return &v;
  return nullptr;
}

namespace {

struct ResponseParser {
  llhttp_t parser{};
  llhttp_settings_t settings{};
  HttpResult result;
  bool inField = false;
  bool complete = false;

  ResponseParser() {
    llhttp_settings_init(&settings);
    settings.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      auto* self = static_cast<ResponseParser*>(p->data);
      if (!self->inField) self->result.headers.emplace_back();
      self->inField = true;
      self->result.headers.back().first.append(at, n);
      return 0;
    };
    settings.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      auto* self = static_cast<ResponseParser*>(p->data);
      self->inField = false;
      self->result.headers.back().second.append(at, n);
      return 0;
    };
    settings.on_body = [](llhttp_t* p, const char* at, size_t n) {
      static_cast<ResponseParser*>(p->data)->result.body.append(at, n);
      return 0;
    };
    settings.on_message_complete = [](llhttp_t* p) {
      auto* self = static_cast<ResponseParser*>(p->data);
      self->complete = true;
      self->result.status = p->status_code;
      return 0;
    };
    llhttp_init(&parser, HTTP_RESPONSE, &settings);
    parser.data = this;
  }
};

void setTimeouts(asio::ip::tcp::socket& socket, std::chrono::seconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count());
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// asio's blocking connect waits out the kernel's SYN retries (~2 minutes against a host that drops them), so
// connect non-blocking and poll until `deadline`. Sets `timedOut` when the deadline, not the peer, ended it.
asio::error_code connectBefore(asio::ip::tcp::socket& socket, const asio::ip::tcp::endpoint& to,
                               std::chrono::steady_clock::time_point deadline, bool& timedOut) {
  asio::error_code ec;
  socket.close(ec);
  socket.open(to.protocol(), ec);
  if (!ec) socket.native_non_blocking(true, ec);
  if (ec) return ec;
  const int fd = socket.native_handle();
  if (::connect(fd, to.data(), static_cast<socklen_t>(to.size())) != 0) {
    if (errno != EINPROGRESS) return {errno, asio::system_category()};
    pollfd p{fd, POLLOUT, 0};
    while (true) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timedOut = true;
        return asio::error::timed_out;
      }
      int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready > 0) break;
      if (ready < 0 && errno != EINTR) return {errno, asio::system_category()};
    }
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
    if (error != 0) return {error, asio::system_category()};
  }
  socket.native_non_blocking(false, ec);  // reads and writes below block, bounded by SO_RCVTIMEO/SO_SNDTIMEO
  return ec;
}

}  // namespace

HttpResult httpExchange(const Endpoint& endpoint, std::string_view method, std::string_view target,
                        const HeaderList& headers, std::string_view body, std::chrono::seconds timeout) {
  const std::string where = "http://" + endpoint.hostHeader;
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  asio::error_code ec;
  asio::ip::tcp::resolver resolver(io);
  auto addresses = resolver.resolve(endpoint.host, std::to_string(endpoint.port), ec);
  if (ec) throw std::runtime_error("cannot resolve " + where + ": " + ec.message());
  // One deadline for all the addresses: the caller's timeout bounds the whole connect.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timedOut = false;
  ec = asio::error::host_not_found;
  for (const auto& entry : addresses) {
    ec = connectBefore(socket, entry.endpoint(), deadline, timedOut);
    if (!ec || timedOut) break;
  }
  if (timedOut)
    throw std::runtime_error("cannot connect to " + where + ": timed out after " + std::to_string(timeout.count()) +
                             "s");
  if (ec) throw std::runtime_error("cannot connect to " + where + ": " + ec.message());
  setTimeouts(socket, timeout);

  std::string request;
  request.reserve(256 + body.size());
  request.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  bool hasHost = false;
  for (const auto& [k, v] : headers) {
    hasHost = hasHost || iequals(k, "host");
    request.append(k).append(": ").append(v).append("\r\n");
  }
  if (!hasHost) request.append("host: ").append(endpoint.hostHeader).append("\r\n");
  request.append("content-length: ").append(std::to_string(body.size())).append("\r\n");
  request.append("connection: close\r\n\r\n").append(body);
  asio::write(socket, asio::buffer(request), ec);
  if (ec) throw std::runtime_error("cannot send to " + where + ": " + ec.message());

  ResponseParser parser;
  char buffer[16384];
  while (!parser.complete) {
    size_t n = socket.read_some(asio::buffer(buffer), ec);
    llhttp_errno_t err;
    if (ec == asio::error::eof) {
      err = llhttp_finish(&parser.parser);  // a body delimited by the connection's end
      if (!parser.complete)
        throw std::runtime_error("connection to " + where + " closed before a complete response");
    } else if (ec) {
      throw std::runtime_error("reading from " + where + ": " +
                               (ec == asio::error::would_block || ec == asio::error::try_again ? "timed out"
                                                                                               : ec.message()));
    } else {
      err = llhttp_execute(&parser.parser, buffer, n);
    }
    if (err != HPE_OK)
      throw std::runtime_error("malformed HTTP response from " + where + ": " + llhttp_errno_name(err));
  }
  for (auto& [k, v] : parser.result.headers) k = toLower(k);
  return std::move(parser.result);
}

}  // namespace trellis
