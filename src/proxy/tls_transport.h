// The transport of one accepted client connection, decided by its first bytes: listeners of different
// protocols may share a port (HTTP for one service, HTTPS or TLS_PASSTHROUGH for another), so the
// connection itself says what it is. A TLS ClientHello is parsed before any TLS state exists; its SNI
// picks the service, and that service's listener on the port decides between terminating TLS here
// (HTTPS) and splicing the untouched bytes to a target (TLS_PASSTHROUGH). Anything else is plaintext HTTP.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "snapshot/snapshot.h"
#include "tls/tls.h"

namespace trellis::proxy {

using tls::TlsSession;

class TlsContextProvider;

class DownstreamTransport {
 public:
  enum class Status {
    Plain,        // not TLS: these and all later bytes go to the HTTP codec unchanged
    Wait,         // nothing for the codec yet (ClientHello incomplete, handshake under way)
    Data,         // plaintext was appended
    Closed,       // the client sent close_notify
    Refused,      // handshake refused or failed: send `wire` (an alert), then close
    Passthrough,  // a TLS_PASSTHROUGH listener's connection: hand it over with passthroughBytes()
  };

  // Raw bytes from the socket. `plain` gets plaintext for the codec, `wire` what must be sent back.
  // `snap`, `source` (the client's VPC, may be null), `port` and `provider` (may be null) are used only
  // while the transport is undecided.
  Status receive(std::string_view raw, std::string& plain, std::string& wire, const snapshot::Snapshot& snap,
                 const snapshot::Vpc* source, uint16_t port, const TlsContextProvider* provider);
  // Encrypts plaintext into `wire`; how much plaintext was taken, -1 on a fatal error. Only when tls().
  long send(std::string_view plain, std::string& wire) { return session_->send(plain, wire); }

  bool decided() const { return state_ != State::Undecided; }
  bool plain() const { return state_ == State::Plain; }
  TlsSession* tls() const { return session_.get(); }  // non-null once TLS is terminated here
  const std::string& serverName() const { return hello_.serverName; }
  const std::string& serviceId() const { return serviceId_; }  // the service the SNI named
  const std::string& failure() const { return failure_; }     // why Refused, for the debug log
  // Passthrough: the bytes read so far (the ClientHello), to be sent to the target first.
  std::string takeBufferedBytes() { return std::move(buffered_); }

 private:
  enum class State { Undecided, Plain, Tls, Passthrough, Refused };
  Status refuse(std::string& wire, uint8_t alert, std::string why);

  State state_ = State::Undecided;
  std::string buffered_;  // raw bytes while undecided
  tls::ClientHello hello_;
  std::string serviceId_;
  std::string failure_;
  std::unique_ptr<TlsSession> session_;
};

}  // namespace trellis::proxy
