// Upstream HTTP/2 against a real nghttp2 backend on loopback, driven on a real Worker's event loop:
// multiplexing in one pooled connection, trailers, request bodies, GOAWAY and refused connections.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "compile/compiler.h"
#include "proxy/access_log.h"
#include "proxy/grpc_server.h"
#include "proxy/server/worker.h"
#include "proxy/upstream/http2_upstream.h"
#include "proxy/h2_backend.h"
#include "snapshot/source.h"

namespace trellis::proxy {
namespace {

using trellis::testing::GrpcServer;

snapshot::Target loopbackTarget(uint16_t port) {
  snapshot::Target t;
  t.id = "127.0.0.1";
  t.port = port;
  t.address = "127.0.0.1";
  t.ipPort = "127.0.0.1:" + std::to_string(port);
  auto* a = reinterpret_cast<sockaddr_in*>(&t.socketAddress.storage);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a->sin_addr);
  t.socketAddress.length = sizeof(sockaddr_in);
  return t;
}

// Records one stream's response; everything runs on the worker thread, `done` is read by the test.
struct Sink : UpstreamStreamSink {
  UpstreamStream* stream = nullptr;
  int status = 0;
  Headers head;
  std::string body;
  Headers trailers;
  std::string failure;
  Resend resend = Resend::No;
  std::atomic<bool> done{false};

  void onUpstreamHead(ResponseHead& h) override {
    status = h.status;
    head = h.headers;
  }
  void onUpstreamBody(std::string_view data) override { body.append(data); }
  void onUpstreamTrailers(Headers& t) override { trailers = t; }
  void onUpstreamComplete() override { done = true; }
  void onUpstreamFailed(UpstreamFailure f) override {
    failure = failureReason(f.kind);
    resend = f.resend;
    done = true;
  }
  void onUpstreamDrained() override {}
  void onUpstreamActive() override {}
  bool responseBlocked() const override { return false; }  // the response window reopens at once
  void onUpstreamReadDone() override {}
};

std::string trailer(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "-";
}

class Http2UpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    holder_.publish(compile::compileSnapshot(store::StoreContents{}, model::Config{}));
    worker_ = std::make_unique<Worker>(0, holder_, logs_);
    worker_->start();
  }
  void TearDown() override {
    onWorker([&] { pool_.reset(); });
    worker_->stop(0);
  }
  // Runs `task` on the worker thread and waits for it.
  void onWorker(std::function<void()> task) {
    std::promise<void> ran;
    worker_->post([&] {
      task();
      ran.set_value();
    });
    ran.get_future().wait();
  }
  static bool waitAll(const std::vector<std::unique_ptr<Sink>>& sinks) {
    for (int i = 0; i < 500; ++i) {
      bool all = true;
      for (const auto& s : sinks) all = all && s->done;
      if (all) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  // Opens a request on the pool's connection for `target`; `body` empty: no body.
  void start(Sink& sink, const snapshot::Target& target, const std::string& path, const std::string& body = {},
             const Headers& trailers = {}) {
    RequestHead head;
    head.method = body.empty() ? "GET" : "POST";
    head.target = path;
    head.chunked = !body.empty();  // a body of unknown length
    std::vector<HeaderView> fields{{"host", "svc.example"}, {"content-type", "application/grpc"}, {"te", "trailers"}};
    UpstreamPool::Opened opened = pool_->open({group_, target, head, fields, stats_, true}, sink, nullptr, 1024);
    ASSERT_NE(opened.stream, nullptr);
    sink.stream = opened.stream;
    if (!body.empty()) {
      sink.stream->sendBody(body);
      sink.stream->sendEnd(trailers);
    }
  }

  snapshot::SnapshotHolder holder_;
  AccessLogWriter logs_{std::filesystem::temp_directory_path().string(), "us-east-1", "123456789012"};
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<Http2UpstreamPool> pool_;
  TargetGroupCounters stats_;
  snapshot::TargetGroup group_;  // HTTP, protocolVersion as the pool is asked
};

TEST_F(Http2UpstreamTest, ManyRequestsShareOneConnectionWithTheirOwnBodiesAndTrailers) {
  testing::H2Backend backend;
  snapshot::Target target = loopbackTarget(backend.port());
  std::vector<std::unique_ptr<Sink>> sinks;
  for (int i = 0; i < 60; ++i) sinks.push_back(std::make_unique<Sink>());
  size_t connections = 0;
  onWorker([&] {
    pool_ = std::make_unique<Http2UpstreamPool>(worker_->loop());
    for (int i = 0; i < 60; ++i) {
      if (i % 2) {
        start(*sinks[i], target, "/pkg.Svc/Get" + std::to_string(i));
      } else {
        start(*sinks[i], target, "/pkg.Svc/Put", "body" + std::to_string(i), {{"x-checksum", std::to_string(i)}});
      }
    }
    connections = pool_->connections();
  });
  EXPECT_EQ(connections, 1u);
  ASSERT_TRUE(waitAll(sinks));
  for (int i = 0; i < 60; ++i) {
    const Sink& s = *sinks[i];
    EXPECT_EQ(s.failure, "") << i;
    EXPECT_EQ(s.status, 200) << i;
    EXPECT_EQ(trailer(s.trailers, "grpc-status"), "0") << i;
    if (i % 2) {
      EXPECT_EQ(s.body, "echo GET /pkg.Svc/Get" + std::to_string(i) + " ") << i;
    } else {
      EXPECT_EQ(s.body, "echo POST /pkg.Svc/Put body" + std::to_string(i)) << i;
      EXPECT_EQ(trailer(s.trailers, "x-request-trailer"), std::to_string(i)) << i;
    }
  }
  EXPECT_EQ(backend.connectionsAccepted(), 1);
}

TEST_F(Http2UpstreamTest, LargeBodiesFlowBothWaysUnderFlowControl) {
  testing::H2Backend backend;
  snapshot::Target target = loopbackTarget(backend.port());
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(std::make_unique<Sink>());
  const std::string big(3 * 1024 * 1024 + 17, 'z');
  onWorker([&] {
    pool_ = std::make_unique<Http2UpstreamPool>(worker_->loop());
    start(*sinks[0], target, "/big", big);
  });
  ASSERT_TRUE(waitAll(sinks));
  EXPECT_EQ(sinks[0]->failure, "");
  EXPECT_EQ(sinks[0]->body, "echo POST /big " + big);
}

TEST_F(Http2UpstreamTest, GoawayMovesNewRequestsToANewConnection) {
  testing::H2Backend backend;
  backend.goAwayAfter(1);
  snapshot::Target target = loopbackTarget(backend.port());
  std::vector<std::unique_ptr<Sink>> first, second;
  first.push_back(std::make_unique<Sink>());
  second.push_back(std::make_unique<Sink>());
  onWorker([&] {
    pool_ = std::make_unique<Http2UpstreamPool>(worker_->loop());
    start(*first[0], target, "/one");
  });
  ASSERT_TRUE(waitAll(first));
  EXPECT_EQ(first[0]->status, 200);
  onWorker([&] { start(*second[0], target, "/two"); });
  ASSERT_TRUE(waitAll(second));
  EXPECT_EQ(second[0]->status, 200);
  EXPECT_EQ(second[0]->body, "echo GET /two ");
  EXPECT_EQ(backend.connectionsAccepted(), 2);
}

TEST_F(Http2UpstreamTest, RefusedConnectionFailsTheStreamAsRetriable) {
  uint16_t port;
  {
    testing::H2Backend gone;  // take a port, then free it
    port = gone.port();
  }
  snapshot::Target target = loopbackTarget(port);
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(std::make_unique<Sink>());
  onWorker([&] {
    pool_ = std::make_unique<Http2UpstreamPool>(worker_->loop());
    start(*sinks[0], target, "/x");
  });
  ASSERT_TRUE(waitAll(sinks));
  EXPECT_EQ(sinks[0]->failure, "TargetConnectionError");
  EXPECT_EQ(sinks[0]->resend, Resend::Any);  // never connected: whatever the method
  size_t connections = 1;
  onWorker([&] { connections = pool_->connections(); });
  EXPECT_EQ(connections, 0u);
}

TEST_F(Http2UpstreamTest, GrpcStatusTravelsInTrailers) {
  testing::H2Backend backend;
  snapshot::Target target = loopbackTarget(backend.port());
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(std::make_unique<Sink>());
  onWorker([&] {
    pool_ = std::make_unique<Http2UpstreamPool>(worker_->loop());
    start(*sinks[0], target, "/status/200?grpc=5");
  });
  ASSERT_TRUE(waitAll(sinks));
  EXPECT_EQ(sinks[0]->status, 200);
  EXPECT_EQ(grpcStatus(sinks[0]->trailers), 5);
}

std::string grpcFrame(std::string_view message) {
  std::string frame(5, '\0');
  frame[4] = static_cast<char>(message.size());  // short messages only
  frame.append(message);
  return frame;
}

TEST_F(Http2UpstreamTest, UnaryCallsToARealGrpcServer) {
  GrpcServer server;
  ASSERT_NE(server.port(), 0) << "python3-grpcio missing? (scripts/setup.sh --test installs it)";
  snapshot::Target target = loopbackTarget(server.port());
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(std::make_unique<Sink>());
  sinks.push_back(std::make_unique<Sink>());
  onWorker([&] {
    pool_ = std::make_unique<Http2UpstreamPool>(worker_->loop());
    start(*sinks[0], target, "/test.Echo/Unary", grpcFrame("hi"));
    start(*sinks[1], target, "/test.Echo/Unary", grpcFrame("fail"));
  });
  ASSERT_TRUE(waitAll(sinks));
  EXPECT_EQ(sinks[0]->failure, "");
  EXPECT_EQ(sinks[0]->status, 200);
  EXPECT_EQ(sinks[0]->body, grpcFrame("unary:hi"));
  EXPECT_EQ(grpcStatus(sinks[0]->trailers), 0);
  EXPECT_EQ(trailer(sinks[0]->trailers, "x-echo-trailer"), "yes");
  // An error is a trailers-only response: grpc-status in the head, no body, no trailers.
  EXPECT_EQ(sinks[1]->status, 200);
  EXPECT_EQ(grpcStatus(sinks[1]->head), 5);  // NOT_FOUND
  EXPECT_EQ(sinks[1]->body, "");
}

}  // namespace
}  // namespace trellis::proxy
