#include "common/http_server.h"

#include <llhttp.h>

#include <asio.hpp>
#include <atomic>
#include <charconv>
#include <stdexcept>
#include <thread>

#include "common/log.h"
#include "common/thread_name.h"
#include "common/strings.h"

namespace trellis {

const std::string* HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

bool splitHostPort(std::string_view text, std::string& host, uint16_t& port) {
  size_t colon;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    host = std::string(text.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = std::string(text.substr(0, colon));
  }
  auto digits = text.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || digits.empty() || value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return !host.empty();
}

namespace {

const char* reasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::ip::tcp::socket socket, const AsyncHttpHandler& handler, size_t maxBody, std::atomic<int>& busy,
             const std::atomic<bool>& stopping)
      : socket_(std::move(socket)), handler_(handler), maxBody_(maxBody), busy_(busy), stopping_(stopping) {
    llhttp_settings_init(&settings_);
    settings_.on_url = [](llhttp_t* p, const char* at, size_t n) { return self(p)->append(self(p)->req_.target, at, n); };
    settings_.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      auto* c = self(p);
      if (!c->inField_) c->req_.headers.emplace_back();
      c->inField_ = true;
      return c->append(c->req_.headers.back().first, at, n);
    };
    settings_.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      auto* c = self(p);
      c->inField_ = false;
      return c->append(c->req_.headers.back().second, at, n);
    };
    settings_.on_body = [](llhttp_t* p, const char* at, size_t n) {
      auto* c = self(p);
      if (c->req_.body.size() + n > c->maxBody_) {
        c->tooLarge_ = true;
        return -1;
      }
      c->req_.body.append(at, n);
      return 0;
    };
    settings_.on_message_complete = [](llhttp_t* p) {
      self(p)->complete_ = true;
      return static_cast<int>(HPE_PAUSED);
    };
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = this;
  }

  void start() { read(); }

 private:
  static Connection* self(llhttp_t* p) { return static_cast<Connection*>(p->data); }
  int append(std::string& dst, const char* at, size_t n) {
    headerBytes_ += n;
    if (headerBytes_ > 64 * 1024) return -1;
    dst.append(at, n);
    return 0;
  }

  void read() {
    auto me = shared_from_this();
    socket_.async_read_some(asio::buffer(buf_), [me](std::error_code ec, size_t n) {
      if (ec) return;
      me->pending_.append(me->buf_.data(), n);
      me->process();
    });
  }

  // Parses buffered bytes; answers one complete request at a time (pipelining keeps order).
  void process() {
    if (stopping_) return;  // between requests: close instead of reading another
    if (pending_.empty()) return read();
    llhttp_errno_t err = llhttp_execute(&parser_, pending_.data(), pending_.size());
    size_t consumed = pending_.size();
    if (err == HPE_PAUSED) {
      consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - pending_.data());
      llhttp_resume(&parser_);
    } else if (err != HPE_OK) {
      ++busy_;
      HttpResponse bad;
      bad.status = tooLarge_ ? 413 : 400;
      bad.headers = {{"content-type", "application/json"}};
      bad.body = std::string("{\"message\":\"") + (tooLarge_ ? "request too large" : "malformed HTTP request") + "\"}";
      return respond(bad, false);
    }
    pending_.erase(0, consumed);
    if (!complete_) return read();

    ++busy_;
    complete_ = false;
    headerBytes_ = 0;
    for (auto& h : req_.headers) h.first = toLower(h.first);
    size_t q = req_.target.find('?');
    req_.path = req_.target.substr(0, q);
    req_.query = q == std::string::npos ? "" : req_.target.substr(q + 1);
    req_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
    std::error_code ec;
    auto remote = socket_.remote_endpoint(ec);
    if (!ec) {
      req_.peerAddress = remote.address().to_string();
      req_.peerPort = remote.port();
    }
    bool keepAlive = llhttp_should_keep_alive(&parser_) && !stopping_;
    // The reply comes back to this connection's thread, whichever thread gives it; reading waits for it.
    auto me = shared_from_this();
    HttpReply reply = [me, keepAlive, replied = std::make_shared<std::atomic<bool>>(false)](HttpResponse resp) {
      if (replied->exchange(true)) return;
      asio::post(me->socket_.get_executor(),
                 [me, keepAlive, resp = std::move(resp)] { me->respond(resp, keepAlive); });
    };
    try {
      handler_(req_, reply);
    } catch (const std::exception& e) {
      logError("http handler failed: ", e.what());
      reply(HttpResponse{500, {{"content-type", "application/json"}}, "{\"message\":\"internal error\"}"});
    }
    req_ = HttpRequest{};
  }

  // busy_ was raised by the caller when the request was taken in.
  void respond(const HttpResponse& resp, bool keepAlive) {
    out_ = "HTTP/1.1 " + std::to_string(resp.status) + " " + reasonPhrase(resp.status) + "\r\n";
    for (const auto& [k, v] : resp.headers) out_ += k + ": " + v + "\r\n";
    if (resp.status != 204 && resp.status >= 200) out_ += "content-length: " + std::to_string(resp.body.size()) + "\r\n";
    if (!keepAlive) out_ += "connection: close\r\n";
    out_ += "\r\n";
    if (resp.status != 204) out_ += resp.body;
    auto me = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_), [me, keepAlive](std::error_code ec, size_t) {
      --me->busy_;
      if (ec) return;
      if (!keepAlive) {
        std::error_code ignored;
        me->socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        return;
      }
      me->process();
    });
  }

  asio::ip::tcp::socket socket_;
  const AsyncHttpHandler& handler_;
  size_t maxBody_;
  std::atomic<int>& busy_;
  const std::atomic<bool>& stopping_;
  llhttp_t parser_{};
  llhttp_settings_t settings_{};
  std::array<char, 16384> buf_{};
  std::string pending_;
  std::string out_;
  HttpRequest req_;
  size_t headerBytes_ = 0;
  bool inField_ = false;
  bool complete_ = false;
  bool tooLarge_ = false;
};

}  // namespace

struct HttpServer::Impl {
  std::string name;
  AsyncHttpHandler handler;
  size_t maxBody;
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor{io};
  std::thread thread;
  std::atomic<int> busy{0};  // requests between parse and last byte written
  std::atomic<bool> stopping{false};
  uint16_t port = 0;

  void accept() {
    acceptor.async_accept([this](std::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted && acceptor.is_open()) accept();
        return;
      }
      std::make_shared<Connection>(std::move(socket), handler, maxBody, busy, stopping)->start();
      accept();
    });
  }
};

HttpServer::HttpServer(std::string name, HttpHandler handler, size_t maxBodyBytes)
    : HttpServer(
          std::move(name),
          [handler = std::move(handler)](const HttpRequest& request, HttpReply reply) { reply(handler(request)); },
          maxBodyBytes) {}

HttpServer::HttpServer(std::string name, AsyncHttpHandler handler, size_t maxBodyBytes)
    : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(name);
  impl_->handler = std::move(handler);
  impl_->maxBody = maxBodyBytes;
}

HttpServer::~HttpServer() { stop(0); }

void HttpServer::start(const std::string& hostPort) {
  std::string host;
  uint16_t port = 0;
  if (!splitHostPort(hostPort, host, port))
    throw std::runtime_error(impl_->name + ": bad listen address '" + hostPort + "' (want HOST:PORT)");
  std::error_code ec;
  auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) throw std::runtime_error(impl_->name + ": bad listen address '" + hostPort + "': " + ec.message());
  asio::ip::tcp::endpoint endpoint(address, port);
  auto& acc = impl_->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error(impl_->name + ": cannot listen on " + hostPort + ": " + ec.message());
  impl_->port = acc.local_endpoint().port();
  impl_->accept();
  impl_->thread = std::thread([this] {
    nameThisThread(impl_->name);
    impl_->io.run();
  });
}

uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::stop(int graceMillis) {
  if (!impl_->thread.joinable()) return;
  impl_->stopping = true;
  asio::post(impl_->io, [this] {
    std::error_code ignored;
    impl_->acceptor.close(ignored);
  });
  // Requests being handled or answered finish; idle keep-alive connections are simply closed.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(graceMillis);
  while (impl_->busy > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  impl_->io.stop();
  impl_->thread.join();
  // The posted close may not have run before the loop stopped: close here, so the port refuses
  // connections from now on instead of queueing them in the backlog.
  std::error_code ignored;
  impl_->acceptor.close(ignored);
}

}  // namespace trellis
