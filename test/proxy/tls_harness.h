// TLS pieces for the data-plane tests: a blocking OpenSSL client (so a test can hold a connection open
// across a certificate rotation and look at what the server presented), an HTTPS backend, a shell-out
// helper for curl/openssl, and throwaway certificates made by the openssl command line (independent of
// the proxy's own certificate code).
#pragma once
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/wait.h>

#include <array>
#include <csignal>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "proxy/proxy_harness.h"

namespace trellis::testing {

struct CommandResult {
  int exitCode = -1;
  std::string output;  // stdout and stderr
};

inline CommandResult runCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
  int status = pclose(pipe);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

inline std::string readText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void writeText(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/trellis-tls-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A self-signed certificate for `name` (RSA 2048 by default, as ACM issues), written as {stem}.pem/.key.
inline bool makeSelfSigned(const TempDir& dir, const std::string& stem, const std::string& name,
                           const std::string& keyType = "rsa:2048") {
  auto r = runCommand("openssl req -x509 -newkey " + keyType + " -nodes -days 2 -subj /CN=" + name +
                      " -addext subjectAltName=DNS:" + name + " -keyout " + dir.file(stem + ".key") + " -out " +
                      dir.file(stem + ".pem"));
  return r.exitCode == 0;
}

inline std::string sha256Fingerprint(X509* cert) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  X509_digest(cert, EVP_sha256(), digest, &length);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

inline std::string fingerprintOfPemFile(const std::string& path) {
  FILE* f = fopen(path.c_str(), "r");
  if (!f) return {};
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (!x) return {};
  std::string fp = sha256Fingerprint(x);
  X509_free(x);
  return fp;
}

// A blocking TLS client over one TCP connection; no verification (tests compare fingerprints instead).
class TlsClient {
 public:
  TlsClient(uint16_t port, const std::string& serverName, const std::string& alpn = "",
            int maxVersion = TLS1_3_VERSION) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(ctx_, maxVersion);
    fd_ = connectTo(port);
    if (fd_ < 0) return;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    if (!serverName.empty()) SSL_set_tlsext_host_name(ssl_, serverName.c_str());
    if (!alpn.empty()) {
      std::string wire = std::string(1, static_cast<char>(alpn.size())) + alpn;
      SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()), wire.size());
    }
    connected_ = SSL_connect(ssl_) == 1;
    ERR_clear_error();
  }
  ~TlsClient() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) close(fd_);
    SSL_CTX_free(ctx_);
  }
  bool connected() const { return connected_; }
  std::string peerFingerprint() const {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (!cert) return {};
    std::string fp = sha256Fingerprint(cert);
    X509_free(cert);
    return fp;
  }
  std::string version() const { return SSL_get_version(ssl_); }
  std::string cipher() const { return SSL_get_cipher_name(ssl_); }
  std::string alpn() const {
    const unsigned char* data;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl_, &data, &len);
    return std::string(reinterpret_cast<const char*>(data), len);
  }
  bool send(const std::string& data) { return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) > 0; }
  // One HTTP/1.1 response with a content-length body (what the proxy sends for these backends).
  Response read() {
    Response r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    auto lines = split(head, '\n');
    r.status = std::atoi(std::string(lines[0].substr(9, 3)).c_str());
    long length = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      auto line = lines[i];
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      auto colon = line.find(':');
      std::string name = toLower(line.substr(0, colon));
      std::string value(trim(line.substr(colon + 1)));
      if (name == "content-length") length = std::stol(value);
      r.headers.emplace_back(name, value);
    }
    while (buf_.size() < static_cast<size_t>(length)) {
      if (!fill()) return {};
    }
    r.body = buf_.substr(0, length);
    buf_.erase(0, length);
    return r;
  }
  Response get(const std::string& host, const std::string& path = "/") {
    if (!send("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")) return {};
    return read();
  }

 private:
  bool fill() {
    char tmp[16384];
    int n = SSL_read(ssl_, tmp, sizeof tmp);
    if (n <= 0) return false;
    buf_.append(tmp, n);
    return true;
  }
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

// A TLS server context with the certificate chain and key from PEM files, freed with its owner.
using SslContext = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;
inline SslContext tlsServerContext(const std::string& certFile, const std::string& keyFile) {
  signal(SIGPIPE, SIG_IGN);  // OpenSSL writes with write(): a client that left must not kill the test
  SslContext ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  SSL_CTX_use_certificate_chain_file(ctx.get(), certFile.c_str());
  SSL_CTX_use_PrivateKey_file(ctx.get(), keyFile.c_str(), SSL_FILETYPE_PEM);
  return ctx;
}

// A TLS backend's connection: the handshake (reads time out after 5 s, so a silent peer cannot hold the test),
// `onSession` once it succeeded, then the connection closed.
template <typename Fn>
void serveTls(SSL_CTX* ctx, int c, Fn&& onSession) {
  timeval tv{5, 0};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, c);
  if (SSL_accept(ssl) == 1) onSession(ssl);
  SSL_free(ssl);
  close(c);
}

// An HTTPS target: answers every request on a keep-alive connection with 200 and a body naming the
// backend and echoing the x-forwarded-proto it was sent.
class TlsBackend {
 public:
  TlsBackend(const std::string& certFile, const std::string& keyFile) : ctx_(tlsServerContext(certFile, keyFile)) {
    acceptor_.start(LoopbackAcceptor::Mode::kThreadPerConnection,
                    [this](int c) { serveTls(ctx_.get(), c, [this](SSL* ssl) { serve(ssl); }); });
  }
  uint16_t port() const { return acceptor_.port(); }
  int requests() const { return requests_.load(); }

 private:
  void serve(SSL* ssl) {
    std::string buf;
    char tmp[16384];
    while (true) {
      size_t end = buf.find("\r\n\r\n");
      if (end == std::string::npos) {
        int n = SSL_read(ssl, tmp, sizeof tmp);
        if (n <= 0) break;
        buf.append(tmp, n);
        continue;
      }
      std::string head = toLower(buf.substr(0, end));
      buf.erase(0, end + 4);
      ++requests_;
      std::string proto = "-";
      auto at = head.find("x-forwarded-proto: ");
      if (at != std::string::npos) proto = head.substr(at + 19, head.find("\r\n", at) - at - 19);
      std::string body = "tls-backend proto=" + proto;
      std::string response =
          "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      SSL_write(ssl, response.data(), static_cast<int>(response.size()));
    }
  }
  SslContext ctx_;
  std::atomic<int> requests_{0};
  LoopbackAcceptor acceptor_{64};  // last: stops before the context goes
};

}  // namespace trellis::testing
