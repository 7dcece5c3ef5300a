#include "tls/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "common/strings.h"

namespace trellis::tls {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kWriteChunk = 64 * 1024;

// Bounds-checked reader over one byte string: every read says whether the bytes were there.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool u8(uint8_t& v) {
    if (data_.size() < 1) return false;
    v = static_cast<uint8_t>(data_[0]);
    data_.remove_prefix(1);
    return true;
  }
  bool u16(uint16_t& v) {
    if (data_.size() < 2) return false;
    v = static_cast<uint16_t>(static_cast<uint8_t>(data_[0]) << 8 | static_cast<uint8_t>(data_[1]));
    data_.remove_prefix(2);
    return true;
  }
  bool bytes(size_t n, std::string_view& out) {
    if (data_.size() < n) return false;
    out = data_.substr(0, n);
    data_.remove_prefix(n);
    return true;
  }
  // A vector with a `lengthBytes`-byte length prefix.
  bool vector(int lengthBytes, std::string_view& out) {
    size_t n = 0;
    if (lengthBytes == 1) {
      uint8_t v;
      if (!u8(v)) return false;
      n = v;
    } else {
      uint16_t v;
      if (!u16(v)) return false;
      n = v;
    }
    return bytes(n, out);
  }
  bool empty() const { return data_.empty(); }

 private:
  std::string_view data_;
};

bool parseServerNames(std::string_view extension, std::string& out) {
  Reader r(extension);
  std::string_view list;
  if (!r.vector(2, list) || !r.empty()) return false;
  Reader names(list);
  while (!names.empty()) {
    uint8_t type;
    std::string_view name;
    if (!names.u8(type) || !names.vector(2, name)) return false;
    if (type != 0) continue;  // only host_name is defined
    if (name.empty() || name.find('\0') != std::string_view::npos) return false;
    out = toLower(name);
    return true;
  }
  return true;
}

bool parseAlpn(std::string_view extension, std::vector<std::string>& out) {
  Reader r(extension);
  std::string_view list;
  if (!r.vector(2, list) || !r.empty()) return false;
  Reader protocols(list);
  while (!protocols.empty()) {
    std::string_view protocol;
    if (!protocols.vector(1, protocol) || protocol.empty()) return false;
    out.emplace_back(protocol);
  }
  return true;
}

bool parseClientHelloBody(std::string_view body, ClientHello& out) {
  Reader r(body);
  uint16_t version;
  std::string_view skip;
  if (!r.u16(version) || (version >> 8) != 3 || !r.bytes(32, skip)) return false;  // legacy_version, random
  if (!r.vector(1, skip) || skip.size() > 32) return false;                          // legacy_session_id
  if (!r.vector(2, skip) || skip.empty() || skip.size() % 2) return false;           // cipher_suites
  if (!r.vector(1, skip) || skip.empty()) return false;                              // compression_methods
  if (r.empty()) return true;                                                        // no extensions
  std::string_view extensions;
  if (!r.vector(2, extensions) || !r.empty()) return false;
  Reader e(extensions);
  bool sawSni = false, sawAlpn = false;
  while (!e.empty()) {
    uint16_t type;
    std::string_view data;
    if (!e.u16(type) || !e.vector(2, data)) return false;
    if (type == 0) {
      if (sawSni || !parseServerNames(data, out.serverName)) return false;
      sawSni = true;
    } else if (type == 16) {
      if (sawAlpn || !parseAlpn(data, out.alpn)) return false;
      sawAlpn = true;
    }
  }
  return true;
}

}  // namespace

ClientHelloStatus parseClientHello(std::string_view data, ClientHello& out) {
  out = {};
  // Handshake bytes gathered from consecutive records until the ClientHello message is complete.
  std::string handshake;
  size_t offset = 0;
  while (true) {
    if (data.size() - offset < 5) return ClientHelloStatus::NeedMore;
    auto byte = [&](size_t i) { return static_cast<uint8_t>(data[offset + i]); };
    if (byte(0) != 22 || byte(1) != 3) return ClientHelloStatus::Invalid;  // handshake record, TLS major 3
    size_t length = size_t{byte(3)} << 8 | byte(4);
    if (length == 0 || length > 16384) return ClientHelloStatus::Invalid;
    if (data.size() - offset - 5 < length) return ClientHelloStatus::NeedMore;
    handshake.append(data.substr(offset + 5, length));
    offset += 5 + length;
    if (handshake.size() < 4) continue;
    if (static_cast<uint8_t>(handshake[0]) != 1) return ClientHelloStatus::Invalid;  // client_hello
    size_t bodyLength = size_t{static_cast<uint8_t>(handshake[1])} << 16 |
                        size_t{static_cast<uint8_t>(handshake[2])} << 8 | static_cast<uint8_t>(handshake[3]);
    if (bodyLength + 4 > kMaxClientHello) return ClientHelloStatus::Invalid;
    if (handshake.size() < bodyLength + 4) continue;
    // Anything after the ClientHello in the same flight would be a protocol violation we leave to OpenSSL.
    return parseClientHelloBody(std::string_view(handshake).substr(4, bodyLength), out) ? ClientHelloStatus::Ok
                                                                                         : ClientHelloStatus::Invalid;
  }
}

std::string tlsAlert(uint8_t description) {
  // alert record, TLS 1.2 version on the wire, length 2, level fatal.
  return std::string{'\x15', '\x03', '\x03', '\x00', '\x02', '\x02', static_cast<char>(description)};
}

TlsSession::TlsSession(SSL* ssl) : ssl_(ssl) {
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(in_, -1);  // an empty input BIO means "wait for more", not end of stream
  SSL_set_bio(ssl_, in_, out_);
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

std::unique_ptr<TlsSession> TlsSession::server(SSL_CTX* ctx) {
  SSL* ssl = SSL_new(ctx);
  if (!ssl) return nullptr;
  SSL_set_accept_state(ssl);
  return std::unique_ptr<TlsSession>(new TlsSession(ssl));
}

std::unique_ptr<TlsSession> TlsSession::client(SSL_CTX* ctx, const std::string& serverName, std::string_view alpn,
                                               const std::string& peerAddress) {
  SSL* ssl = SSL_new(ctx);
  if (!ssl) return nullptr;
  if (!peerAddress.empty() && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) &&
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), peerAddress.c_str()) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  if (!serverName.empty()) SSL_set_tlsext_host_name(ssl, serverName.c_str());
  if (!alpn.empty()) {
    SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(alpn.data()), static_cast<unsigned>(alpn.size()));
  }
  return std::unique_ptr<TlsSession>(new TlsSession(ssl));
}

void TlsSession::drain(std::string& wire) {
  char* data = nullptr;
  long n = BIO_get_mem_data(out_, &data);
  if (n > 0) {
    wire.append(data, static_cast<size_t>(n));
    (void)BIO_reset(out_);
  }
}

bool TlsSession::fail(int result, std::string& wire) {
  int code = SSL_get_error(ssl_, result);
  unsigned long detail = ERR_get_error();
  char buf[256] = "";
  if (detail) ERR_error_string_n(detail, buf, sizeof buf);
  ERR_clear_error();
  error_ = detail ? buf : "TLS error " + std::to_string(code);
  drain(wire);  // the alert OpenSSL queued, if any
  return false;
}

bool TlsSession::receive(std::string_view ciphertext, std::string& plain, std::string& wire) {
  if (!ciphertext.empty() && BIO_write(in_, ciphertext.data(), static_cast<int>(ciphertext.size())) <= 0) {
    error_ = "cannot buffer TLS input";
    return false;
  }
  if (!established_) {
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int code = SSL_get_error(ssl_, r);
      if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE) return fail(r, wire);
      drain(wire);
      return true;
    }
    established_ = true;
  }
  // Through a per-thread scratch area: growing `plain` by kReadChunk first would zero 16 KiB per read,
  // which cost more than the decryption of a small request.
  static thread_local char scratch[kReadChunk];
  while (!peerClosed_) {
    size_t got = 0;
    int r = SSL_read_ex(ssl_, scratch, kReadChunk, &got);
    plain.append(scratch, got);
    if (r == 1) continue;
    int code = SSL_get_error(ssl_, r);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) break;
    if (code == SSL_ERROR_ZERO_RETURN) {
      peerClosed_ = true;
      break;
    }
    return fail(r, wire);
  }
  drain(wire);
  return true;
}

long TlsSession::send(std::string_view plain, std::string& wire) {
  if (!established_) {
    int r = SSL_do_handshake(ssl_);  // a client's first call sends the ClientHello
    if (r != 1) {
      int code = SSL_get_error(ssl_, r);
      if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE) return fail(r, wire) ? 0 : -1;
      drain(wire);
      return 0;
    }
    established_ = true;
  }
  size_t taken = 0;
  while (taken < plain.size()) {
    size_t n = std::min(kWriteChunk, plain.size() - taken);
    size_t written = 0;
    int r = SSL_write_ex(ssl_, plain.data() + taken, n, &written);
    if (r != 1) {
      int code = SSL_get_error(ssl_, r);
      if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) break;
      fail(r, wire);
      return -1;
    }
    taken += written;
  }
  drain(wire);
  return static_cast<long>(taken);
}

void TlsSession::shutdown(std::string& wire) {
  if (shutdownSent_) return;
  shutdownSent_ = true;
  if (established_) SSL_shutdown(ssl_);
  ERR_clear_error();
  drain(wire);
}

std::string TlsSession::version() const { return SSL_get_version(ssl_); }

std::string TlsSession::cipher() const {
  const char* name = SSL_get_cipher_name(ssl_);
  return name ? name : "";
}

std::string TlsSession::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl_, &data, &length);
  return std::string(reinterpret_cast<const char*>(data), length);
}

}  // namespace trellis::tls
