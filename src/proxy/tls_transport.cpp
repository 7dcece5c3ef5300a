#include "proxy/tls_transport.h"

#include "proxy/tls_contexts.h"

namespace trellis::proxy {
namespace {

constexpr uint8_t kAlertHandshakeFailure = 40;
constexpr uint8_t kAlertDecodeError = 50;
constexpr uint8_t kAlertUnrecognizedName = 112;

}  // namespace

DownstreamTransport::Status DownstreamTransport::refuse(std::string& wire, uint8_t alert, std::string why) {
  state_ = State::Refused;
  failure_ = std::move(why);
  buffered_.clear();
  wire += tls::tlsAlert(alert);
  return Status::Refused;
}

DownstreamTransport::Status DownstreamTransport::receive(std::string_view raw, std::string& plain, std::string& wire,
                                                         const snapshot::Snapshot& snap,
                                                         const snapshot::Vpc* source, uint16_t port,
                                                         const TlsContextProvider* provider) {
  switch (state_) {
    case State::Plain:
      plain.append(raw);
      return Status::Data;
    case State::Refused:
      return Status::Refused;
    case State::Passthrough:
      buffered_.append(raw);
      return Status::Passthrough;
    case State::Tls: {
      size_t before = plain.size();
      if (!session_->receive(raw, plain, wire)) {
        state_ = State::Refused;
        failure_ = session_->error();
        return Status::Refused;
      }
      if (plain.size() > before) return Status::Data;
      return session_->peerClosed() ? Status::Closed : Status::Wait;
    }
    case State::Undecided:
      break;
  }

  buffered_.append(raw);
  if (buffered_.empty()) return Status::Wait;
  if (buffered_[0] != 22) {  // not a TLS handshake record: plaintext HTTP (or h2c)
    state_ = State::Plain;
    plain.append(buffered_);
    buffered_.clear();
    return Status::Data;
  }
  switch (tls::parseClientHello(buffered_, hello_)) {
    case tls::ClientHelloStatus::NeedMore:
      if (buffered_.size() > tls::kMaxClientHello + 5 * 8)
        return refuse(wire, kAlertDecodeError, "ClientHello too long");
      return Status::Wait;
    case tls::ClientHelloStatus::Invalid:
      return refuse(wire, kAlertDecodeError, "malformed ClientHello");
    case tls::ClientHelloStatus::Ok:
      break;
  }
  // SNI is required; it names the service exactly as the Host header would.
  if (hello_.serverName.empty()) return refuse(wire, kAlertUnrecognizedName, "no SNI");
  const snapshot::Service* service = snap.serviceByHost(hello_.serverName);
  // A service the client's VPC cannot reach looks like no service at all (docs/configuration.md, "Who reaches what").
  if (!service || !source || !source->networkFor(*service)) {
    return refuse(wire, kAlertUnrecognizedName, "no reachable service for SNI " + hello_.serverName);
  }
  const snapshot::Listener* listener = service->listenerOnPort(port);
  if (!listener) return refuse(wire, kAlertUnrecognizedName, "no listener for " + hello_.serverName);
  serviceId_ = service->id;
  if (listener->protocol == snapshot::ListenerProtocol::TlsPassthrough) {
    // Only the custom domain name routes a passthrough listener, matched exactly.
    if (hello_.serverName != service->customDomainName) {
      return refuse(wire, kAlertUnrecognizedName, "passthrough needs the custom domain name");
    }
    state_ = State::Passthrough;
    return Status::Passthrough;
  }
  if (listener->protocol != snapshot::ListenerProtocol::Https)
    return refuse(wire, kAlertHandshakeFailure, "TLS to an HTTP listener");
  auto contexts = provider ? provider->current() : nullptr;  // held until SSL_new has taken its reference
  SSL_CTX* ctx = contexts ? contexts->contextFor(hello_.serverName) : nullptr;
  if (!ctx) return refuse(wire, kAlertUnrecognizedName, "no certificate for " + hello_.serverName);
  session_ = TlsSession::server(ctx);
  if (!session_) return refuse(wire, kAlertHandshakeFailure, "cannot create a TLS session");
  state_ = State::Tls;
  std::string hello = std::move(buffered_);
  buffered_.clear();
  return receive(hello, plain, wire, snap, source, port, provider);
}

}  // namespace trellis::proxy
