#include "dns/server.h"

#include <array>
#include <asio.hpp>
#include <functional>
#include <stdexcept>
#include <thread>

#include "common/crypto.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/thread_name.h"
#include "dns/directory.h"

namespace trellis::dns {

namespace {

using asio::ip::tcp;
using asio::ip::udp;

constexpr auto kTcpIdleTimeout = std::chrono::seconds(10);
constexpr int kMaxTcpConnections = 256;
constexpr int kMaxPendingForwards = 256;  // each holds a 64 KiB receive buffer

// Called with the encoded reply, or with an empty string when the query gets none.
using Reply = std::function<void(std::string)>;
using Handler = std::function<void(std::string_view wire, const sockaddr* client, Reply reply)>;

udp::endpoint parseUpstream(const std::string& text) {
  std::error_code ec;
  auto bare = asio::ip::make_address(text, ec);
  if (!ec) return {bare, 53};
  std::string host;
  uint16_t port = 0;
  if (splitHostPort(text, host, port) && port != 0) {
    auto address = asio::ip::make_address(host, ec);
    if (!ec) return {address, port};
  }
  throw std::invalid_argument("DNS upstream '" + text + "' is not IP, IP:PORT or [IPv6]:PORT");
}

std::string setId(std::string wire, uint16_t id) {
  wire[0] = char(id >> 8);
  wire[1] = char(id);
  return wire;
}

uint16_t idOf(std::string_view wire) { return uint16_t(uint8_t(wire[0]) << 8 | uint8_t(wire[1])); }

// The bytes of the question section (one question, as the directory only forwards those).
std::string_view questionBytes(std::string_view wire) {
  size_t at = kHeaderSize;
  while (at < wire.size() && wire[at] != 0) at += 1 + uint8_t(wire[at]);  // forwarded queries parsed: no pointers
  return at + 5 <= wire.size() ? wire.substr(kHeaderSize, at + 5 - kHeaderSize) : std::string_view();
}

}  // namespace

struct DnsServer::Impl {
  Impl(DnsOptions o, snapshot::SnapshotSource& s, const DirectoryOptions& d)
      : options(std::move(o)), source(s), directory(d) {}

  DnsOptions options;
  snapshot::SnapshotSource& source;
  Directory directory;
  std::vector<udp::endpoint> upstreams;
  uint16_t port = 0;

  // Touched only on the event-loop thread. Declared before `io` so they outlive the handlers it destroys.
  uint64_t seenGeneration = 0;
  snapshot::SnapshotPtr snap;
  int tcpConnections = 0;
  int pendingForwards = 0;

  asio::io_context io;
  udp::socket udpSocket{io};
  tcp::acceptor acceptor{io};
  std::array<char, kMaxMessageSize> udpBuffer;
  udp::endpoint udpPeer;
  std::thread thread;

  const snapshot::Snapshot& snapshot() {
    uint64_t generation = source.generation();  // before current(): never older than the generation seen
    if (!snap || generation != seenGeneration) {
      snap = source.current();
      seenGeneration = generation;
    }
    return *snap;
  }

  void handle(std::string_view wire, const sockaddr* client, bool overTcp, Reply reply);
  void forward(std::string_view wire, const Message& query, bool overTcp, Reply reply);
  void receiveUdp();
  void accept();
};

namespace {

// One query relayed to the upstreams in turn, under a fresh random id (so a spoofed reply must guess it).
class Forward : public std::enable_shared_from_this<Forward> {
 public:
  Forward(asio::io_context& io, int& pending, const std::vector<udp::endpoint>& upstreams,
          std::chrono::milliseconds timeout, std::string query, Message parsed, bool overTcp, Reply reply)
      : socket_(io), tcp_(io), timer_(io), pending_(pending), upstreams_(upstreams), timeout_(timeout),
        clientId_(idOf(query)), query_(std::move(query)), parsed_(std::move(parsed)), overTcp_(overTcp),
        limit_(overTcp ? kMaxMessageSize : Directory::udpLimit(parsed_)), reply_(std::move(reply)) {
    ++pending_;
    uint16_t id = 0;
    randomBytes(&id, sizeof id);
    query_ = setId(std::move(query_), id);
  }
  ~Forward() { --pending_; }

  void tryNext() {
    ++attempt_;
    std::error_code ec;
    socket_.close(ec);
    tcp_.close(ec);
    if (next_ == upstreams_.size()) return fail();
    const auto& upstream = upstreams_[next_++];
    socket_.open(upstream.protocol(), ec);
    if (!ec) socket_.connect(upstream, ec);  // a connected socket only hears from that upstream
    if (!ec) socket_.send(asio::buffer(query_), 0, ec);
    if (ec) {
      logDebug("dns: upstream ", upstream, ": ", ec.message());
      return tryNext();
    }
    timer_.expires_after(timeout_);
    timer_.async_wait([self = shared_from_this(), attempt = attempt_](std::error_code e) {
      if (!e && attempt == self->attempt_) self->tryNext();
    });
    receive();
  }

 private:
  void receive() {
    socket_.async_receive(asio::buffer(buffer_), [self = shared_from_this(), attempt = attempt_](
                                                     std::error_code ec, size_t n) {
      if (attempt != self->attempt_ || ec == asio::error::operation_aborted) return;
      if (ec) return self->tryNext();  // e.g. ICMP port unreachable
      std::string_view wire(self->buffer_.data(), n);
      if (!self->matches(wire)) return self->receive();  // not the answer to our query: keep listening
      if (self->overTcp_ && parseHeader(wire)->tc) return self->retryOverTcp();
      self->timer_.cancel();
      self->relay(wire);
    });
  }

  // The upstream truncated its UDP answer but our querier came over TCP and can take it all: ask again
  // over TCP, the same upstream.
  void retryOverTcp() {
    uint64_t attempt = ++attempt_;
    std::error_code ec;
    socket_.close(ec);
    const auto& upstream = upstreams_[next_ - 1];
    framed_ = std::string{char(query_.size() >> 8), char(query_.size())} + query_;
    timer_.expires_after(timeout_);
    timer_.async_wait([self = shared_from_this(), attempt](std::error_code e) {
      if (!e && attempt == self->attempt_) self->tryNext();
    });
    // Every step: give up on this upstream at the first error; ignore what a later attempt cancelled.
    auto step = [self = shared_from_this(), attempt](std::error_code e, auto next) {
      if (attempt != self->attempt_) return;
      if (e) return self->tryNext();
      next();
    };
    tcp_.async_connect(tcp::endpoint(upstream.address(), upstream.port()), [this, step](std::error_code e) {
      step(e, [this, step] {
        asio::async_write(tcp_, asio::buffer(framed_), [this, step](std::error_code e, size_t) {
          step(e, [this, step] {
            asio::async_read(tcp_, asio::buffer(length_), [this, step](std::error_code e, size_t) {
              step(e, [this, step] {
                tcpReply_.resize(size_t(length_[0]) << 8 | length_[1]);
                asio::async_read(tcp_, asio::buffer(tcpReply_), [this, step](std::error_code e, size_t) {
                  step(e, [this] {
                    if (!matches(tcpReply_)) return tryNext();
                    timer_.cancel();
                    relay(tcpReply_);
                  });
                });
              });
            });
          });
        });
      });
    });
  }

  bool matches(std::string_view wire) const {
    auto header = parseHeader(wire);
    if (!header || !header->qr || header->id != idOf(query_)) return false;
    std::string_view asked = questionBytes(query_);
    return wire.size() >= kHeaderSize + asked.size() && wire.substr(4, 2) == std::string_view(query_).substr(4, 2) &&
           wire.substr(kHeaderSize, asked.size()) == asked;
  }

  void relay(std::string_view wire) {
    ++attempt_;
    if (wire.size() <= limit_) return reply_(setId(std::string(wire), clientId_));
    // Larger than the querier takes (it asked without EDNS over UDP, say): tell it to retry over TCP.
    Message truncated = parsed_;
    truncated.qr = true;
    truncated.tc = true;
    truncated.ra = true;
    if (truncated.edns) truncated.edns = Edns{Directory::kUdpSize, 0, 0, {}};
    reply_(encodeMessage(truncated));
  }

  void fail() {
    Message response;
    response.id = clientId_;
    response.qr = true;
    response.rd = parsed_.rd;
    response.ra = true;
    response.rcode = rcode::ServFail;
    response.questions = parsed_.questions;
    if (parsed_.edns) response.edns = Edns{Directory::kUdpSize, 0, 0, {}};
    reply_(encodeMessage(response));
  }

  udp::socket socket_;
  tcp::socket tcp_;
  asio::steady_timer timer_;
  int& pending_;
  const std::vector<udp::endpoint>& upstreams_;
  std::chrono::milliseconds timeout_;
  uint16_t clientId_;
  std::string query_;
  Message parsed_;
  bool overTcp_;
  size_t limit_;
  Reply reply_;
  size_t next_ = 0;
  uint64_t attempt_ = 0;  // handlers of an earlier attempt find it moved and do nothing
  std::array<char, kMaxMessageSize> buffer_;
  std::string framed_, tcpReply_;
  uint8_t length_[2] = {};
};

// One TCP client: length-prefixed messages (RFC 1035 4.2.2, RFC 7766), answered in order.
class TcpConnection : public std::enable_shared_from_this<TcpConnection> {
 public:
  TcpConnection(tcp::socket socket, int& connections, Handler handler)
      : socket_(std::move(socket)), idle_(socket_.get_executor()), connections_(connections),
        handler_(std::move(handler)) {
    ++connections_;
    std::error_code ec;
    peer_ = socket_.remote_endpoint(ec);
  }
  ~TcpConnection() { --connections_; }

  void readLength() {
    idle_.expires_after(kTcpIdleTimeout);
    idle_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->close();
    });
    asio::async_read(socket_, asio::buffer(length_), [self = shared_from_this()](std::error_code ec, size_t) {
      if (ec) return self->close();
      self->message_.resize(size_t(self->length_[0]) << 8 | self->length_[1]);
      self->readMessage();
    });
  }

 private:
  void readMessage() {
    asio::async_read(socket_, asio::buffer(message_), [self = shared_from_this()](std::error_code ec, size_t) {
      if (ec) return self->close();
      self->handler_(self->message_, self->peer_.data(), [self](std::string reply) {
        if (reply.empty()) return self->readLength();
        self->out_.clear();
        self->out_.push_back(char(reply.size() >> 8));
        self->out_.push_back(char(reply.size()));
        self->out_ += reply;
        asio::async_write(self->socket_, asio::buffer(self->out_), [self](std::error_code e, size_t) {
          if (e) return self->close();
          self->readLength();
        });
      });
    });
  }

  void close() {
    std::error_code ignored;
    socket_.close(ignored);
    idle_.cancel();
  }

  tcp::socket socket_;
  asio::steady_timer idle_;
  int& connections_;
  Handler handler_;
  tcp::endpoint peer_;
  uint8_t length_[2] = {};
  std::string message_;
  std::string out_;
};

}  // namespace

void DnsServer::Impl::handle(std::string_view wire, const sockaddr* client, bool overTcp, Reply reply) {
  std::string error;
  auto query = parseMessage(wire, &error);
  if (!query) {
    logDebug("dns: malformed query: ", error);
    auto response = Directory::formatError(wire);
    return reply(response ? encodeMessage(*response) : std::string());
  }
  Message response;
  switch (directory.respond(*query, snapshot(), client, response)) {
    case Directory::Outcome::Drop:
      return reply({});
    case Directory::Outcome::Answer:
      return reply(encodeMessage(response, overTcp ? kMaxMessageSize : Directory::udpLimit(*query)));
    case Directory::Outcome::Forward:
      return forward(wire, *query, overTcp, std::move(reply));
  }
}

void DnsServer::Impl::forward(std::string_view wire, const Message& query, bool overTcp, Reply reply) {
  if (pendingForwards >= kMaxPendingForwards) {
    Message response;
    response.id = query.id;
    response.qr = true;
    response.rd = query.rd;
    response.ra = true;
    response.rcode = rcode::ServFail;
    response.questions = query.questions;
    return reply(encodeMessage(response));
  }
  std::make_shared<Forward>(io, pendingForwards, upstreams, options.upstreamTimeout, std::string(wire), query, overTcp,
                            std::move(reply))
      ->tryNext();
}

void DnsServer::Impl::receiveUdp() {
  udpSocket.async_receive_from(asio::buffer(udpBuffer), udpPeer, [this](std::error_code ec, size_t n) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      udp::endpoint peer = udpPeer;
      handle(std::string_view(udpBuffer.data(), n), peer.data(), false, [this, peer](std::string reply) {
        if (reply.empty()) return;
        auto bytes = std::make_shared<std::string>(std::move(reply));
        udpSocket.async_send_to(asio::buffer(*bytes), peer, [bytes](std::error_code, size_t) {});
      });
    }
    receiveUdp();
  });
}

void DnsServer::Impl::accept() {
  acceptor.async_accept([this](std::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      if (tcpConnections < kMaxTcpConnections)
        std::make_shared<TcpConnection>(std::move(socket), tcpConnections,
                                        [this](std::string_view wire, const sockaddr* client, Reply reply) {
                                          handle(wire, client, true, std::move(reply));
                                        })
            ->readLength();
      else
        logWarn("dns: too many TCP connections, closing a new one");
    }
    accept();
  });
}

DnsServer::DnsServer(DnsOptions options, snapshot::SnapshotSource& source) {
  std::string host;
  uint16_t port = 0;
  if (!splitHostPort(options.listen, host, port))
    throw std::invalid_argument("DNS listen address '" + options.listen + "' is not HOST:PORT");
  std::error_code ec;
  asio::ip::make_address(host, ec);
  DirectoryOptions directoryOptions{options.zone, options.answerAddresses, ec ? std::string() : host, options.ttl,
                                    !options.upstreams.empty()};
  impl_ = std::make_unique<Impl>(std::move(options), source, directoryOptions);
  for (const auto& upstream : impl_->options.upstreams) impl_->upstreams.push_back(parseUpstream(upstream));
}

DnsServer::~DnsServer() { stop(); }

void DnsServer::start() {
  const std::string& listen = impl_->options.listen;
  std::string host;
  uint16_t port = 0;
  splitHostPort(listen, host, port);
  std::error_code ec;
  auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) throw std::runtime_error("dns: bad listen address '" + listen + "': " + ec.message());
  // With port 0 the UDP socket picks the port and TCP follows; another process may hold that port for
  // TCP, so try a few.
  for (int tries = 0;; ++tries) {
    impl_->udpSocket.close(ec);
    impl_->acceptor.close(ec);
    ec.clear();
    udp::endpoint udpEndpoint(address, port);
    impl_->udpSocket.open(udpEndpoint.protocol(), ec);
    if (!ec) impl_->udpSocket.bind(udpEndpoint, ec);
    if (ec) throw std::runtime_error("dns: cannot bind UDP " + listen + ": " + ec.message());
    uint16_t bound = impl_->udpSocket.local_endpoint().port();
    tcp::endpoint tcpEndpoint(address, bound);
    impl_->acceptor.open(tcpEndpoint.protocol(), ec);
    if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) impl_->acceptor.bind(tcpEndpoint, ec);
    if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) {
      impl_->port = bound;
      break;
    }
    if (port != 0 || tries == 10) throw std::runtime_error("dns: cannot listen on TCP " + listen + ": " + ec.message());
  }
  impl_->receiveUdp();
  impl_->accept();
  impl_->thread = std::thread([this] {
    nameThisThread("dns");
    impl_->io.run();
  });
  logInfo("dns: serving ", impl_->options.zone, " on ", host, ":", impl_->port, " (UDP and TCP)");
}

void DnsServer::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->io.stop();
  impl_->thread.join();
}

uint16_t DnsServer::port() const { return impl_->port; }

}  // namespace trellis::dns
