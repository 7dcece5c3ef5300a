// The exchange on its own, without a socket: a fake client stream on one side, a fake upstream pool on the
// other, a real snapshot and a real worker (whose event loop is never run: the test drives it). What goes to
// targets, what comes back to the client, and which failures are retried where.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "proxy/access_log.h"
#include "proxy/downstream/stream.h"
#include "proxy/exchange/exchange.h"
#include "proxy/exchange/forwarded_headers.h"
#include "proxy/server/worker.h"
#include "proxy/upstream/upstream.h"
#include "compile/compiler.h"
#include "snapshot/source.h"
#include "compile/store_fixture.h"

namespace trellis::proxy {
namespace {

using testing::StoreFixture;
using json = nlohmann::json;

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kTg = "tg-0123456789abcdef0";
const std::string kVpc = "vpc-0123456789abcdef0";
const std::string kHost = StoreFixture::generatedName(kSvc, "billing");
constexpr uint16_t kPort = 8080;

std::string field(const Headers& fields, std::string_view name) {
  for (const auto& [n, v] : fields) {
    if (n == name) return v;
  }
  return "-";
}

int count(const Headers& fields, std::string_view name) {
  int n = 0;
  for (const auto& f : fields) n += f.first == name;
  return n;
}

// One request as a target received it, and the sink to answer it through.
struct FakeUpstream : UpstreamStream {
  std::string target;  // ip:port
  bool firstAttempt = true;
  RequestHead head;
  Headers fields;
  std::string body;
  bool ended = false, cancelled = false, isBlocked = false;
  Resend abandoned = Resend::Idempotent;
  UpstreamStreamSink* sink = nullptr;

  void sendBody(std::string_view data) override { body.append(data); }
  void sendEnd(const Headers&) override { ended = true; }
  bool blocked() const override { return isBlocked; }
  void resumeResponse() override {}
  void cancel() override { cancelled = true; }
  Resend resendIfAbandoned() const override { return abandoned; }

  void respond(int status, std::string_view data = {}) {
    ResponseHead response;
    response.status = status;
    response.headers = {{"content-type", "text/plain"}, {"connection", "close"}};
    response.hasContentLength = true;
    response.contentLength = data.size();
    sink->onUpstreamHead(response);
    if (cancelled) return;  // the exchange let go (a status its rule retries): a real stream stops too
    if (!data.empty()) sink->onUpstreamBody(data);
    sink->onUpstreamComplete();
  }
};

class FakePool : public UpstreamPool {
 public:
  explicit FakePool(std::vector<std::unique_ptr<FakeUpstream>>& opened) : opened_(opened) {}
  Opened open(const UpstreamRequest& request, UpstreamStreamSink& sink) override {
    if (refuse) return {nullptr, false, {Failure::TargetConnectionError, Resend::Any}};
    auto up = std::make_unique<FakeUpstream>();
    up->target = request.target.ipPort;
    up->firstAttempt = request.firstAttempt;
    up->head = request.head;
    for (const auto& [name, value] : request.fields) up->fields.emplace_back(name, value);
    up->sink = &sink;
    opened_.push_back(std::move(up));
    return {opened_.back().get(), false, {}};
  }
  void sweep(int64_t, bool) override {}
  void closeAll() override {}
  bool refuse = false;

 private:
  std::vector<std::unique_ptr<FakeUpstream>>& opened_;
};

// The client's side: records what the exchange sends and owns it, as a connection does.
struct FakeDownstream : DownstreamStream {
  bool h2 = false;
  ResponseHead head;
  bool gotHead = false;
  std::string body;
  bool ended = false, done = false, abandoned = false;
  Failure aborted = Failure::None;
  std::unique_ptr<Exchange> exchange;

  bool http2() const override { return h2; }
  void routedTo(const snapshot::Service&) override {}
  void sendHead(const ResponseHead& h, const RequestHead&, std::string_view) override {
    head = h;
    gotHead = true;
  }
  void sendContinue(const RequestHead&) override {}
  void sendBody(std::string_view data) override { body.append(data); }
  void sendEnd(const Headers&) override { ended = true; }
  size_t bufferedBytes() const override { return 0; }
  void resumeRequestBody() override {}
  void abandonRequest() override { abandoned = true; }
  bool endsBeforeRequest() const override { return h2 || abandoned; }
  void exchangeDone() override {
    done = true;
    exchange.reset();
  }
  void abortStream(Failure failure) override {
    aborted = failure;
    exchange->abort(failure);
  }
  void flushOutput() override {}
};

class ExchangeTest : public ::testing::Test {
 protected:
  ExchangeTest() {
    store.service(kSvc, "billing");
    store.reachableFrom(kVpc, kSvc);
    store.listener("listener-1", kSvc, kPort, StoreFixture::forward({{kTg, 100}}));
    store.targetGroup(kTg, 80, {{"10.0.0.1", 80}, {"10.0.0.2", 80}}, {{"enabled", false}});
    client.port = kPort;
    client.portText = std::to_string(kPort);
    client.ip = "10.1.2.3";
    client.ipPort = "10.1.2.3:50000";
    snapshot::Prefix host;
    snapshot::Prefix::parse(client.ip, host);
    client.address = host.network;
  }
  ~ExchangeTest() override {
    down.exchange.reset();
    worker.reset();
  }

  // The rule extensions of the listener's catch-all rule (retry, timeouts).
  void rule(const json& trellis) {
    store.rule("rule-1", kSvc, "listener-1", 1, {{"pathMatch", {{"match", {{"prefix", "/"}}}}}},
               StoreFixture::forward({{kTg, 100}}));
    for (const auto& r : store.contents().records) {
      if (r.kind != "rule" || r.id != "rule-1") continue;
      json doc = json::parse(r.value);
      doc["trellis"] = trellis;
      store.put("rule", "rule-1", doc);
    }
  }

  Exchange& start(const std::string& method, const std::string& path, Headers headers = {},
                  std::string_view body = {}) {
    if (!worker) {
      model::Config config;
      config.vpcs.push_back({kVpc, {"10.1.0.0/16"}});
      holder.publish(compile::compileSnapshot(store.contents(), config));
      worker = std::make_unique<Worker>(0, holder, logs, std::make_unique<FakePool>(opened));
      pool = nullptr;
      worker->refreshSnapshot();
    }
    RequestHead head;
    head.method = method;
    head.target = path;
    head.host = kHost;
    head.headers = {{"host", kHost}};
    for (auto& h : headers) head.headers.push_back(h);
    if (!body.empty()) {
      head.hasContentLength = true;
      head.contentLength = body.size();
    }
    down.exchange = std::make_unique<Exchange>(*worker, client, down);
    Exchange& e = *down.exchange;
    e.start(std::move(head));
    return e;
  }
  // Ends the loop turn: deferred work (a finish, a retry's start) runs.
  void endTurn() { worker->loop().runEndOfTurn(); }

  StoreFixture store;
  snapshot::SnapshotHolder holder;
  AccessLogWriter logs{std::filesystem::temp_directory_path().string(), "us-east-1", "111122223333"};
  std::vector<std::unique_ptr<FakeUpstream>> opened;
  FakePool* pool = nullptr;
  std::unique_ptr<Worker> worker;
  ClientConnection client;
  FakeDownstream down;
};

TEST_F(ExchangeTest, ForwardsWithTheProxysFieldsAndRelaysTheResponse) {
  Exchange& e = start("GET", "/a/./b/../c?q=1",
                      {{"x-forwarded-for", "6.6.6.6"}, {"x-amzn-source-vpc", "vpc-forged"}, {"x-trace", "t1"},
                       {"x-secret", "s"}, {"connection", "keep-alive, X-Secret"}, {"te", "trailers"}});
  e.requestComplete();
  ASSERT_EQ(opened.size(), 1u);
  const FakeUpstream& up = *opened[0];
  EXPECT_EQ(up.head.target, "/a/c?q=1");  // normalized once, before routing
  EXPECT_EQ(field(up.fields, "x-trace"), "t1");
  EXPECT_EQ(field(up.fields, "x-secret"), "-");  // named by Connection
  EXPECT_EQ(field(up.fields, "connection"), "-");
  EXPECT_EQ(field(up.fields, "te"), "-");  // hop-by-hop to an HTTP/1.1 target
  EXPECT_EQ(count(up.fields, "x-forwarded-for"), 1);
  EXPECT_EQ(field(up.fields, "x-forwarded-for"), "10.1.2.3");
  EXPECT_EQ(field(up.fields, "x-forwarded-port"), "8080");
  EXPECT_EQ(field(up.fields, "x-forwarded-proto"), "http");
  EXPECT_EQ(field(up.fields, "x-amzn-source-vpc"), kVpc);
  EXPECT_EQ(field(up.fields, "x-amzn-lattice-target").find("ServiceArn=" + StoreFixture::arn("service", kSvc)), 0u);
  EXPECT_NE(field(up.fields, "x-amzn-requestid"), "-");
  opened[0]->respond(200, "hello");
  EXPECT_TRUE(down.done);
  EXPECT_EQ(down.head.status, 200);
  EXPECT_EQ(down.body, "hello");
  EXPECT_TRUE(down.ended);
}

TEST_F(ExchangeTest, HttpTwoTargetsGetTheSameFieldsWithTeAndTheLength) {
  RequestHead head;
  head.method = "POST";
  head.target = "/";
  head.headers = {{"host", kHost}, {"te", "trailers"}, {"content-length", "3"}, {"connection", "x-a"},
                  {"x-a", "1"}, {"x-b", "2"}, {"x-amzn-lattice-identity", "Principal=forged"}};
  start("GET", "/");  // for the snapshot
  const snapshot::Snapshot& snap = *worker->snapshot();
  const snapshot::Service& service = *snap.services.at(kSvc);
  const snapshot::TargetGroup& group = *snap.targetGroups.at(kTg);
  ForwardedFor to{client, "req-1", service, nullptr, group, nullptr, nullptr};
  ForwardedHeaders h1, h2;
  Headers one, two;
  for (const auto& [n, v] : h1.build(head, to, false)) one.emplace_back(n, v);
  for (const auto& [n, v] : h2.build(head, to, true)) two.emplace_back(n, v);
  EXPECT_EQ(field(one, "te"), "-");
  EXPECT_EQ(field(two, "te"), "trailers");
  EXPECT_EQ(field(one, "content-length"), "-");  // the HTTP/1.1 upstream writes its own framing
  EXPECT_EQ(field(two, "content-length"), "3");
  for (const Headers* fields : {&one, &two}) {
    EXPECT_EQ(field(*fields, "x-a"), "-");
    EXPECT_EQ(field(*fields, "x-b"), "2");
    EXPECT_EQ(field(*fields, "x-amzn-lattice-identity"), "-");  // only the proxy sets it, after SigV4
    EXPECT_EQ(field(*fields, "x-amzn-requestid"), "req-1");
    EXPECT_EQ(field(*fields, "x-amzn-lattice-target").find("; ServiceNetworkArn=; TargetGroupArn="),
              ("ServiceArn=" + service.arn).size());
  }
}

TEST_F(ExchangeTest, AFailureBeforeTheTargetGotAnythingIsRetriedOnAnotherTargetWithTheBody) {
  Exchange& e = start("POST", "/orders", {}, "12345");
  e.requestBody("12345");
  e.requestComplete();
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0]->body, "12345");
  opened[0]->sink->onUpstreamFailed({Failure::TargetConnectionError, Resend::Any});
  ASSERT_EQ(opened.size(), 2u);  // the proxy's own retry, even without a rule
  EXPECT_NE(opened[1]->target, opened[0]->target);
  EXPECT_FALSE(opened[1]->firstAttempt);
  EXPECT_EQ(opened[1]->body, "12345");
  EXPECT_TRUE(opened[1]->ended);
  opened[1]->respond(201);
  EXPECT_EQ(down.head.status, 201);
}

TEST_F(ExchangeTest, APostTheTargetMayHaveSeenIsNotRepeatedButAGetIs) {
  Exchange& post = start("POST", "/orders", {}, "1");
  post.requestBody("1");
  post.requestComplete();
  opened[0]->sink->onUpstreamFailed({Failure::TargetConnectionClosed, Resend::Idempotent});
  EXPECT_EQ(opened.size(), 1u);
  EXPECT_EQ(down.head.status, 502);
  endTurn();
  EXPECT_TRUE(down.done);

  down = FakeDownstream{};
  start("GET", "/orders").requestComplete();
  ASSERT_EQ(opened.size(), 2u);
  opened[1]->sink->onUpstreamFailed({Failure::TargetConnectionClosed, Resend::Idempotent});
  EXPECT_EQ(opened.size(), 3u);
}

TEST_F(ExchangeTest, ATimeoutIsA504AndAFailureAfterTheHeadCutsTheClientOff) {
  Exchange& e = start("GET", "/slow");
  e.requestComplete();
  opened[0]->sink->onUpstreamFailed({Failure::TargetDataTimeout, Resend::No});
  EXPECT_EQ(down.head.status, 504);
  endTurn();

  down = FakeDownstream{};
  start("GET", "/cut").requestComplete();
  ResponseHead head;
  head.status = 200;
  opened[1]->sink->onUpstreamHead(head);
  opened[1]->sink->onUpstreamFailed({Failure::TargetConnectionClosed, Resend::No});
  EXPECT_EQ(down.head.status, 200);
  EXPECT_EQ(down.aborted, Failure::TargetConnectionClosed);
  EXPECT_TRUE(down.done);
}

TEST_F(ExchangeTest, ARuleRetriesTheStatusesItNamesAndNothingElse) {
  rule({{"retry", {{"attempts", 2}, {"statusCodes", {503}}}}});
  start("GET", "/").requestComplete();
  opened[0]->respond(503);
  EXPECT_FALSE(down.gotHead);  // dropped: the retry answers
  EXPECT_TRUE(opened[0]->cancelled);
  EXPECT_EQ(opened.size(), 1u);  // not from inside the failed target's callbacks: on the worker's timer
  down.exchange->onTimer(down.exchange->nextTimer());
  ASSERT_EQ(opened.size(), 2u);
  opened[1]->respond(500);
  EXPECT_EQ(down.head.status, 500);  // not listed
}

TEST_F(ExchangeTest, AnHttpTwoStreamReachesNoTargetUntilTheReadIsHandled) {
  down.h2 = true;
  Exchange& e = start("POST", "/", {}, "ab");
  e.requestBody("ab");
  EXPECT_TRUE(e.awaitingStart());
  EXPECT_TRUE(e.bodyBlocked());  // the stream window stays shut meanwhile
  EXPECT_TRUE(opened.empty());
  e.requestComplete();
  e.startDeferred();
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_EQ(opened[0]->body, "ab");
  EXPECT_TRUE(opened[0]->ended);
}

TEST_F(ExchangeTest, ABackloggedTargetHoldsTheClientsBodyBack) {
  Exchange& e = start("PUT", "/", {}, "x");
  EXPECT_FALSE(e.bodyBlocked());
  opened[0]->isBlocked = true;
  EXPECT_TRUE(e.bodyBlocked());
}

TEST_F(ExchangeTest, NoTargetConnectionIsA502AfterTheRetry) {
  start("GET", "/", {});  // builds the worker
  endTurn();
  down = FakeDownstream{};
  static_cast<FakePool&>(worker->upstreams()).refuse = true;
  start("GET", "/").requestComplete();
  EXPECT_EQ(down.head.status, 502);
}

}  // namespace
}  // namespace trellis::proxy
