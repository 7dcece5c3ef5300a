// The blocking HTTP client (CLI, Firehose delivery) against real loopback sockets.
#include "common/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
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

}  // namespace
}  // namespace trellis
