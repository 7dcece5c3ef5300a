// Idle timeouts belong to services: on one HTTP/2 connection whose streams go to several services, each
// stream's target gets its own service's idle timeout, and the connection the longest of them.
#include <gtest/gtest.h>

#include "proxy/h2_client.h"
#include "proxy/proxy_harness.h"

namespace trellis::testing {
namespace {

const std::string kPatient = "svc-0123456789abcdef0";  // idle timeout 30 s
const std::string kHasty = "svc-0123456789abcdef1";    // idle timeout 1 s
const std::string kPatientHost = StoreFixture::generatedName(kPatient, "patient");
const std::string kHastyHost = StoreFixture::generatedName(kHasty, "hasty");

// Answers "/slow" with its head and a few bytes at once, two more 0.6 s later, the rest 2.4 s after that;
// anything else at once.
class PausingBackend {
 public:
  PausingBackend() {
    acceptor_.start(LoopbackAcceptor::Mode::kThreadPerConnection, [](int c) {
      std::string got;
      char buf[4096];
      while (true) {
        size_t end = got.find("\r\n\r\n");
        if (end != std::string::npos) {
          bool slow = got.compare(0, 10, "GET /slow ") == 0;
          got.erase(0, end + 4);
          std::string head = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhel";
          ::send(c, head.data(), head.size(), MSG_NOSIGNAL);
          if (slow) std::this_thread::sleep_for(std::chrono::milliseconds(600));
          ::send(c, "lo", 2, MSG_NOSIGNAL);
          if (slow) std::this_thread::sleep_for(std::chrono::milliseconds(2400));
          ::send(c, "world", 5, MSG_NOSIGNAL);
          continue;
        }
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<size_t>(n));
      }
      ::close(c);
    });
  }
  uint16_t port() const { return acceptor_.port(); }

 private:
  LoopbackAcceptor acceptor_{16};
};

TEST(IdleTimeouts, EachHttp2StreamKeepsItsOwnServicesAndTheConnectionTheLongest) {
  PausingBackend backend;
  ProxyHarness h;
  uint16_t port = freePort();
  h.store.service(kPatient, "patient", {}, 30);
  h.store.service(kHasty, "hasty", {}, 1);
  h.store.targetGroup("tg-0000000000000000a", backend.port(), {{"127.0.0.1"}}, {{"enabled", false}});
  h.store.listener("listener-1", kPatient, port, StoreFixture::forward({{"tg-0000000000000000a", 1}}));
  h.store.listener("listener-2", kHasty, port, StoreFixture::forward({{"tg-0000000000000000a", 1}}));
  h.store.serviceNetwork("sn-0000000000000000a", "net");
  h.store.serviceAssociation("snsa-1", "sn-0000000000000000a", kPatient);
  h.store.serviceAssociation("snsa-2", "sn-0000000000000000a", kHasty);
  h.store.vpcAssociation("snva-1", "sn-0000000000000000a", kLoopbackVpc);
  h.start();
  ASSERT_TRUE(h.waitListening(port));

  H2Client c(port);
  c.session_.submitRequest("GET", "http", kPatientHost, "/slow", {}, true);
  c.pump(std::chrono::milliseconds(300));  // its head and first bytes are here
  ASSERT_EQ(c.status_, 200);
  // Routed after it, on the same connection: a service whose target may stay silent for 1 s only.
  c.session_.submitRequest("GET", "http", kHastyHost, "/fast", {}, true);
  c.pump(std::chrono::milliseconds(4000));
  // Both complete: the patient service's target, heard from again at 0.6 s and then silent for 2.4 s, is not
  // held to the hasty service's 1 s.
  EXPECT_EQ(c.complete_, 2);
  // The connection, idle now, lives by the longest idle timeout it served (30 s), not by the latest (1 s).
  c.pump(std::chrono::milliseconds(2500));
  EXPECT_FALSE(c.closed_);
  c.status_ = 0;
  c.session_.submitRequest("GET", "http", kHastyHost, "/fast", {}, true);
  c.exchange([&] { return c.complete_ == 3; });
  EXPECT_EQ(c.status_, 200);
}

}  // namespace
}  // namespace trellis::testing
