// The blocking HTTP client (CLI, Firehose delivery) against real loopback sockets: plain HTTP, and HTTPS against
// an OpenSSL server whose certificates the openssl command line makes for each run.
#include "common/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/http_server.h"

namespace trellis {
namespace {

Endpoint loopback(uint16_t port) { return {"127.0.0.1", port, "127.0.0.1:" + std::to_string(port), ""}; }

// A TCP socket bound to 127.0.0.1 with a port from the OS, not yet listening.
int bindLoopback(uint16_t& port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// A non-blocking connect to 127.0.0.1:port that is left however far it got.
int startConnect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  return fd;
}

TEST(HttpClient, ExchangesARequestWithALoopbackServer) {
  HttpServer server("test", [](const HttpRequest& req) {
    return HttpResponse{201, {{"x-seen", req.method + " " + req.target}}, "body:" + req.body};
  });
  server.start("127.0.0.1:0");
  HttpResult result = httpExchange(loopback(server.port()), "POST", "/put?x=1", {}, "hello", std::chrono::seconds(5));
  server.stop(0);
  EXPECT_EQ(result.status, 201);
  EXPECT_EQ(result.body, "body:hello");
  ASSERT_NE(result.header("x-seen"), nullptr);
  EXPECT_EQ(*result.header("x-seen"), "POST /put?x=1");
}

TEST(HttpClient, RefusedConnectionNamesTheEndpoint) {
  // A bound socket that never listens: connecting to its port is refused.
  uint16_t port = 0;
  int fd = bindLoopback(port);
  ASSERT_GE(fd, 0);
  try {
    httpExchange(loopback(port), "GET", "/", {}, "", std::chrono::seconds(5));
    ADD_FAILURE() << "connected to a port nobody listens on";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot connect to http://127.0.0.1:" + std::to_string(port)),
              std::string::npos)
        << e.what();
  }
  close(fd);
}

// A host that drops SYNs (here: a listener whose accept queue is full) must not stall the caller for the
// kernel's ~2 minutes of SYN retries; the connect honours the exchange's timeout.
TEST(HttpClient, ConnectToAHostDroppingSynsTimesOut) {
  uint16_t port = 0;
  int listener = bindLoopback(port);
  ASSERT_GE(listener, 0);
  ASSERT_EQ(listen(listener, 0), 0);  // never accepted: one queued connection fills it

  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) fillers.push_back(startConnect(port));
  // The first filler completes its handshake into the queue; from then on the listener drops SYNs.
  pollfd p{fillers[0], POLLOUT, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);

  auto started = std::chrono::steady_clock::now();
  std::string message;
  try {
    httpExchange(loopback(port), "POST", "/", {}, "record", std::chrono::seconds(1));
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_LT(took, std::chrono::seconds(4));
  EXPECT_GE(took, std::chrono::milliseconds(900));  // it waited for the handshake, not failed at once
  // The connect timed out (not a read after a connect that got through).
  EXPECT_NE(message.find("cannot connect to http://127.0.0.1:" + std::to_string(port)), std::string::npos)
      << message;
  EXPECT_NE(message.find("timed out"), std::string::npos) << message;

  for (int fd : fillers) close(fd);
  close(listener);
}

TEST(HttpClient, ParsesHttpAndHttpsEndpoints) {
  std::string error;
  auto plain = parseEndpoint("http://example.com/base/", error);
  ASSERT_TRUE(plain) << error;
  EXPECT_FALSE(plain->tls);
  EXPECT_EQ(plain->port, 80);
  EXPECT_EQ(plain->basePath, "/base");

  auto secure = parseEndpoint("https://firehose.example.com/put", error);
  ASSERT_TRUE(secure) << error;
  EXPECT_TRUE(secure->tls);
  EXPECT_EQ(secure->host, "firehose.example.com");
  EXPECT_EQ(secure->port, 443);
  EXPECT_EQ(secure->hostHeader, "firehose.example.com");
  EXPECT_EQ(secure->basePath, "/put");

  auto v6 = parseEndpoint("https://[::1]:8443", error);
  ASSERT_TRUE(v6) << error;
  EXPECT_TRUE(v6->tls);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8443);

  EXPECT_FALSE(parseEndpoint("ftp://example.com/", error));
  EXPECT_NE(error.find("http:// or https://"), std::string::npos) << error;
  EXPECT_FALSE(parseEndpoint("https://", error));
}

// A server that accepts connections and never answers: each read must end at the exchange's timeout.
TEST(HttpClient, SilentServerTimesOutTheRead) {
  for (bool tls : {false, true}) {
    SCOPED_TRACE(tls ? "https" : "http");
    uint16_t port = 0;
    int listener = bindLoopback(port);
    ASSERT_GE(listener, 0);
    ASSERT_EQ(listen(listener, 8), 0);  // the kernel completes the handshake; nobody ever reads
    Endpoint endpoint = loopback(port);
    endpoint.tls = tls;
    auto started = std::chrono::steady_clock::now();
    std::string message;
    try {
      httpExchange(endpoint, "GET", "/", {}, "", std::chrono::seconds(1));
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    auto took = std::chrono::steady_clock::now() - started;
    EXPECT_LT(took, std::chrono::seconds(5));
    EXPECT_NE(message.find(tls ? "TLS handshake with https://127.0.0.1:" : "reading from http://127.0.0.1:"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("timed out"), std::string::npos) << message;
    close(listener);
  }
}

std::string runCommand(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return "popen failed";
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  int status = pclose(pipe);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "" : "`" + command + "` failed: " + output;
}

// A throwaway CA and two server certificates it signed, made with the openssl command line (independent of the
// client's code): "localhost" (also valid for 127.0.0.1) and "other.example".
class TestPki {
 public:
  TestPki() {
    char pattern[] = "/tmp/trellis-http-client-XXXXXX";
    dir_ = mkdtemp(pattern);
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    error_ = runCommand("openssl req -x509 " + key + " -days 2 -subj /CN=trellis-test-ca -keyout " + file("ca.key") +
                        " -out " + file("ca.pem"));
    if (error_.empty()) error_ = issue("localhost", "DNS:localhost,IP:127.0.0.1");
    if (error_.empty()) error_ = issue("other", "DNS:other.example");
  }
  ~TestPki() { std::filesystem::remove_all(dir_); }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& error() const { return error_; }

 private:
  std::string issue(const std::string& name, const std::string& altNames) {
    std::ofstream(file(name + ".ext")) << "subjectAltName=" << altNames << "\n";
    std::string error = runCommand("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=" + name +
                                   " -keyout " + file(name + ".key") + " -out " + file(name + ".csr"));
    if (!error.empty()) return error;
    return runCommand("openssl x509 -req -days 2 -in " + file(name + ".csr") + " -CA " + file("ca.pem") + " -CAkey " +
                      file("ca.key") + " -CAcreateserial -extfile " + file(name + ".ext") + " -out " +
                      file(name + ".pem"));
  }

  std::string dir_, error_;
};

// An HTTPS server on 127.0.0.1 (OpenSSL, blocking, one connection at a time) presenting `cert`. Answers each
// request with 200 and "METHOD TARGET BODY"; remembers the SNI name of the last handshake.
class TlsServer {
 public:
  TlsServer(const std::string& cert, const std::string& key) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(ctx_, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM) != 1)
      throw std::runtime_error("cannot load " + cert);
    listener_ = bindLoopback(port_);
    if (listener_ < 0 || listen(listener_, 8) != 0) throw std::runtime_error("cannot listen");
    thread_ = std::thread([this] { run(); });
  }
  ~TlsServer() {
    shutdown(listener_, SHUT_RDWR);  // wakes the blocked accept
    thread_.join();
    close(listener_);
    SSL_CTX_free(ctx_);
  }
  uint16_t port() const { return port_; }
  std::string serverName() {
    std::lock_guard lock(mutex_);
    return serverName_;
  }

 private:
  void run() {
    while (true) {
      int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      timeval tv{5, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        {
          std::lock_guard lock(mutex_);
          serverName_ = name ? name : "";
        }
        serve(ssl);
        SSL_shutdown(ssl);
      }
      ERR_clear_error();
      SSL_free(ssl);
      close(fd);
    }
  }

  static void serve(SSL* ssl) {
    std::string request;
    char buffer[4096];
    size_t headerEnd;
    while ((headerEnd = request.find("\r\n\r\n")) == std::string::npos) {
      int n = SSL_read(ssl, buffer, sizeof buffer);
      if (n <= 0) return;
      request.append(buffer, static_cast<size_t>(n));
    }
    size_t length = 0;
    if (auto at = request.find("content-length: "); at != std::string::npos)
      length = std::stoul(request.substr(at + 16));
    while (request.size() < headerEnd + 4 + length) {
      int n = SSL_read(ssl, buffer, sizeof buffer);
      if (n <= 0) return;
      request.append(buffer, static_cast<size_t>(n));
    }
    std::string requestLine = request.substr(0, request.find(" HTTP/1.1"));
    std::string body = requestLine + " " + request.substr(headerEnd + 4);
    std::string response = "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    SSL_write(ssl, response.data(), static_cast<int>(response.size()));
  }

  SSL_CTX* ctx_ = nullptr;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::string serverName_;
};

Endpoint httpsEndpoint(const std::string& host, uint16_t port, const std::string& caFile) {
  std::string error;
  auto endpoint = parseEndpoint("https://" + host + ":" + std::to_string(port) + "/put", error);
  if (!endpoint) throw std::runtime_error(error);
  endpoint->caFile = caFile;
  return *endpoint;
}

// The exchange's error message, or "" when it succeeded.
std::string exchangeError(const Endpoint& endpoint) {
  try {
    httpExchange(endpoint, "POST", "/put", {}, "x", std::chrono::seconds(5));
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(HttpClient, HttpsWithTheServersCaFileWorks) {
  TestPki pki;
  ASSERT_EQ(pki.error(), "");
  TlsServer server(pki.file("localhost.pem"), pki.file("localhost.key"));

  // By address: the certificate's IP entry is checked; no SNI (RFC 6066 allows names only).
  HttpResult byAddress = httpExchange(httpsEndpoint("127.0.0.1", server.port(), pki.file("ca.pem")), "POST",
                                      "/firehose/put", {}, "records", std::chrono::seconds(5));
  EXPECT_EQ(byAddress.status, 200);
  EXPECT_EQ(byAddress.body, "POST /firehose/put records");
  EXPECT_EQ(server.serverName(), "");

  // By name: SNI carries it and the certificate's DNS entry is checked.
  HttpResult byName = httpExchange(httpsEndpoint("localhost", server.port(), pki.file("ca.pem")), "GET", "/named", {},
                                   "", std::chrono::seconds(5));
  EXPECT_EQ(byName.status, 200);
  EXPECT_EQ(byName.body, "GET /named ");
  EXPECT_EQ(server.serverName(), "localhost");
}

TEST(HttpClient, HttpsRejectsACertificateTheSystemStoreDoesNotTrust) {
  TestPki pki;
  ASSERT_EQ(pki.error(), "");
  TlsServer server(pki.file("localhost.pem"), pki.file("localhost.key"));
  std::string error = exchangeError(httpsEndpoint("127.0.0.1", server.port(), ""));
  EXPECT_NE(error.find("TLS handshake with https://127.0.0.1:" + std::to_string(server.port()) + " failed"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("certificate verify failed: unable to get local issuer certificate"), std::string::npos)
      << error;
}

TEST(HttpClient, HttpsRejectsACertificateForAnotherName) {
  TestPki pki;
  ASSERT_EQ(pki.error(), "");
  TlsServer server(pki.file("other.pem"), pki.file("other.key"));
  // Chains to the trusted CA, but names other.example: neither 127.0.0.1 nor localhost may accept it.
  std::string byAddress = exchangeError(httpsEndpoint("127.0.0.1", server.port(), pki.file("ca.pem")));
  EXPECT_NE(byAddress.find("certificate verify failed: IP address mismatch"), std::string::npos) << byAddress;
  std::string byName = exchangeError(httpsEndpoint("localhost", server.port(), pki.file("ca.pem")));
  EXPECT_NE(byName.find("certificate verify failed: hostname mismatch"), std::string::npos) << byName;
}

TEST(HttpClient, HttpsWithAnUnreadableCaFileNamesIt) {
  TestPki pki;
  ASSERT_EQ(pki.error(), "");
  TlsServer server(pki.file("localhost.pem"), pki.file("localhost.key"));
  std::string error = exchangeError(httpsEndpoint("127.0.0.1", server.port(), pki.file("missing.pem")));
  EXPECT_NE(error.find("cannot load CA certificates " + pki.file("missing.pem")), std::string::npos) << error;
}

}  // namespace
}  // namespace trellis
