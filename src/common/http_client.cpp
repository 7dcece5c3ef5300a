#include "common/http_client.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <asio.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "common/strings.h"

namespace trellis {

std::optional<Endpoint> parseEndpoint(std::string_view url, std::string& error) {
  Endpoint ep;
  std::string_view scheme = "http://";
  if (startsWith(url, "https://")) {
    scheme = "https://";
    ep.tls = true;
    ep.port = 443;
  } else if (!startsWith(url, scheme)) {
    error = "endpoint must start with http:// or https:// (got '" + std::string(url) + "')";
    return std::nullopt;
  }
  std::string_view rest = url.substr(scheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
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

// The oldest queued OpenSSL error as text ("" when none), clearing the queue.
std::string sslError() {
  unsigned long code = ERR_get_error();
  char text[256] = "";
  if (code) ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return text;
}

// OpenSSL's socket BIO writes with write(), which raises SIGPIPE on a closed peer; this one sends with
// MSG_NOSIGNAL. A read or write that SO_RCVTIMEO/SO_SNDTIMEO cut short reports "retry": SSL_ERROR_WANT_*.
BIO_METHOD* socketBioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "trellis socket");
    BIO_meth_set_write(m, [](BIO* b, const char* data, int n) -> int {
      BIO_clear_retry_flags(b);
      ssize_t sent;
      do sent = ::send(static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))), data, static_cast<size_t>(n),
                       MSG_NOSIGNAL);
      while (sent < 0 && errno == EINTR);
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
      return static_cast<int>(sent);
    });
    BIO_meth_set_read(m, [](BIO* b, char* data, int n) -> int {
      BIO_clear_retry_flags(b);
      ssize_t got;
      do got = ::recv(static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))), data, static_cast<size_t>(n), 0);
      while (got < 0 && errno == EINTR);
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
      return static_cast<int>(got);
    });
    BIO_meth_set_ctrl(m, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
    BIO_meth_set_create(m, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// One connected socket, plain or TLS. Reads and writes block, each bounded by the socket's SO_RCVTIMEO and
// SO_SNDTIMEO (asio's blocking calls would wait on past them). Failures throw, naming `where_`.
class Connection {
 public:
  Connection(int fd, std::string where) : fd_(fd), where_(std::move(where)) {}

  // TLS 1.2+ over the socket: SNI for a host name, the chain checked against `caFile` (or the system store) and
  // the certificate checked for `host`, a name or an IP address.
  void startTls(const std::string& host, const std::string& caFile) {
    ERR_clear_error();
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!ctx_) throw std::runtime_error("TLS setup for " + where_ + " failed: " + sslError());
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION);
    // Servers that close without close_notify are common; answers carry Content-Length, so a cut-off one still
    // fails as incomplete.
    SSL_CTX_set_options(ctx_.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    if (caFile.empty() ? SSL_CTX_set_default_verify_paths(ctx_.get()) != 1
                       : SSL_CTX_load_verify_locations(ctx_.get(), caFile.c_str(), nullptr) != 1)
      throw std::runtime_error("cannot load CA certificates " + (caFile.empty() ? "(system store)" : caFile) +
                               " for " + where_ + ": " + sslError());
    ssl_.reset(SSL_new(ctx_.get()));
    BIO* bio = ssl_ ? BIO_new(socketBioMethod()) : nullptr;
    if (!bio) throw std::runtime_error("TLS setup for " + where_ + " failed: " + sslError());
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd_)));
    SSL_set_bio(ssl_.get(), bio, bio);
    unsigned char address[16];
    bool isAddress = inet_pton(AF_INET, host.c_str(), address) == 1 || inet_pton(AF_INET6, host.c_str(), address) == 1;
    // RFC 6066: SNI carries host names only.
    bool ok = isAddress ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), host.c_str()) == 1
                        : SSL_set_tlsext_host_name(ssl_.get(), host.c_str()) == 1 &&
                              SSL_set1_host(ssl_.get(), host.c_str()) == 1;
    if (!ok) throw std::runtime_error("TLS setup for " + where_ + " failed: " + sslError());
    int result = SSL_connect(ssl_.get());
    if (result != 1) {
      long verify = SSL_get_verify_result(ssl_.get());
      std::string why = verify != X509_V_OK ? std::string("certificate verify failed: ") +
                                                  X509_verify_cert_error_string(verify)
                                            : failure(result);
      ERR_clear_error();
      throw std::runtime_error("TLS handshake with " + where_ + " failed: " + why);
    }
  }

  void write(std::string_view data) {
    while (!data.empty()) {
      ssize_t n;
      if (ssl_) {
        ERR_clear_error();
        int r = SSL_write(ssl_.get(), data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 30)));
        if (r <= 0) throw std::runtime_error("cannot send to " + where_ + ": " + failure(r));
        n = r;
      } else {
        do n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0) throw std::runtime_error("cannot send to " + where_ + ": " + errnoText());
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  // Some bytes into `buffer`; 0 at the end of the stream.
  size_t read(char* buffer, size_t size) {
    if (ssl_) {
      ERR_clear_error();
      int r = SSL_read(ssl_.get(), buffer, static_cast<int>(size));
      if (r > 0) return static_cast<size_t>(r);
      if (SSL_get_error(ssl_.get(), r) == SSL_ERROR_ZERO_RETURN) return 0;
      throw std::runtime_error("reading from " + where_ + ": " + failure(r));
    }
    ssize_t n;
    do n = ::recv(fd_, buffer, size, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) throw std::runtime_error("reading from " + where_ + ": " + errnoText());
    return static_cast<size_t>(n);
  }

 private:
  static std::string errnoText() {
    return errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : std::strerror(errno);
  }

  // Why the TLS call that returned `result` failed.
  std::string failure(int result) {
    int code = SSL_get_error(ssl_.get(), result);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return "timed out";
    std::string detail = sslError();
    if (!detail.empty()) return detail;
    if (code == SSL_ERROR_SYSCALL) return errno != 0 ? std::strerror(errno) : "connection closed";
    if (code == SSL_ERROR_ZERO_RETURN) return "connection closed";
    return "TLS error " + std::to_string(code);
  }

  int fd_;
  std::string where_;
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx_;
  std::unique_ptr<SSL, SslFree> ssl_;
};

}  // namespace

void HttpCancel::cancel() {
  std::lock_guard lock(mutex_);
  cancelled_ = true;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // wakes a blocked read or write; the exchange closes the descriptor
}

bool HttpCancel::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

// Registers the exchange's connection with its HttpCancel for as long as the exchange runs.
class CancelScope {
 public:
  CancelScope(HttpCancel* cancel, int fd, const std::string& where) : cancel_(cancel) {
    if (!cancel_) return;
    std::lock_guard lock(cancel_->mutex_);
    if (cancel_->cancelled_) throw std::runtime_error("request to " + where + " cancelled");
    cancel_->fd_ = fd;
  }
  ~CancelScope() {
    if (!cancel_) return;
    std::lock_guard lock(cancel_->mutex_);
    cancel_->fd_ = -1;
  }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  HttpCancel* cancel_;
};

HttpResult httpExchange(const Endpoint& endpoint, std::string_view method, std::string_view target,
                        const HeaderList& headers, std::string_view body, std::chrono::seconds timeout,
                        HttpCancel* cancel) {
  const std::string where = (endpoint.tls ? "https://" : "http://") + endpoint.hostHeader;
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
  CancelScope cancelScope(cancel, socket.native_handle(), where);
  Connection connection(socket.native_handle(), where);
  if (endpoint.tls) connection.startTls(endpoint.host, endpoint.caFile);

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
  connection.write(request);

  ResponseParser parser;
  char buffer[16384];
  while (!parser.complete) {
    size_t n = connection.read(buffer, sizeof buffer);
    llhttp_errno_t err;
    if (n == 0) {
      err = llhttp_finish(&parser.parser);  // a body delimited by the connection's end
      if (!parser.complete)
        throw std::runtime_error("connection to " + where + " closed before a complete response");
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
