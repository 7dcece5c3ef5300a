// TLS on the epoll workers, as a byte filter between a connection's socket buffers and its codec.
//
// OpenSSL runs over memory BIOs rather than SSL_set_fd: the connection classes keep doing their own
// read()/send() and readiness bookkeeping exactly as for plain TCP, and TLS only turns ciphertext into
// plaintext and back. That keeps one I/O path for HTTP, HTTPS, upstream TLS and the ClientHello sniffing
// that must happen before we know whether to terminate TLS at all (TLS_PASSTHROUGH), at the cost of one
// extra copy per record. No WANT_READ/WANT_WRITE state machine crosses into the connection code.
#pragma once
#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace trellis::tls {

class TlsSession {
 public:
  // A server session on `ctx` (which already presents the certificate for the client's SNI).
  static std::unique_ptr<TlsSession> server(SSL_CTX* ctx);
  // A client session; `serverName` goes in the SNI when not empty; `alpn` in wire format ("\x02h2").
  // `peerAddress`: the target's IP literal, which its certificate must name when `ctx` verifies peers.
  static std::unique_ptr<TlsSession> client(SSL_CTX* ctx, const std::string& serverName, std::string_view alpn = {},
                                            const std::string& peerAddress = {});
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext from the peer in; plaintext appended to `plain`, and anything TLS must send (handshake,
  // alerts, tickets) appended to `wire`. False on a fatal TLS error (`wire` may then hold an alert).
  bool receive(std::string_view ciphertext, std::string& plain, std::string& wire);
  // Encrypts up to `plain.size()` bytes into `wire`; returns how many plaintext bytes were taken (0 while
  // the handshake is not done), or -1 on a fatal error.
  long send(std::string_view plain, std::string& wire);
  // Appends a close_notify alert to `wire` (once).
  void shutdown(std::string& wire);

  bool established() const { return established_; }
  bool peerClosed() const { return peerClosed_; }  // close_notify received
  const std::string& error() const { return error_; }
  // After the handshake: "TLSv1.3", "TLS_AES_128_GCM_SHA256", "h2" (empty without ALPN).
  std::string version() const;
  std::string cipher() const;
  std::string alpn() const;

 private:
  explicit TlsSession(SSL* ssl);
  void drain(std::string& wire);
  bool fail(int result, std::string& wire);

  SSL* ssl_;
  BIO* in_;   // owned by ssl_
  BIO* out_;  // owned by ssl_
  bool established_ = false;
  bool peerClosed_ = false;
  bool shutdownSent_ = false;
  std::string error_;
};

// A TLS ClientHello read straight off the wire, before deciding whether to terminate or pass through.
struct ClientHello {
  std::string serverName;         // SNI host_name, lower-case; empty when absent
  std::vector<std::string> alpn;  // offered protocols
};

enum class ClientHelloStatus {
  NeedMore,  // a prefix of a valid ClientHello: read more bytes
  Ok,
  Invalid,   // not a TLS ClientHello, or malformed
};

// Parses the handshake records at the start of `data` (the ClientHello may span several records, up to
// kMaxClientHello bytes). Never reads past `data`.
ClientHelloStatus parseClientHello(std::string_view data, ClientHello& out);
inline constexpr size_t kMaxClientHello = 64 * 1024;

// A complete fatal TLS alert record (e.g. 112 unrecognized_name, 40 handshake_failure) for refusing a
// handshake before any SSL object exists.
std::string tlsAlert(uint8_t description);

}  // namespace trellis::tls
