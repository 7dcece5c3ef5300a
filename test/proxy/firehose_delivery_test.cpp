// FirehoseDelivery against a real HTTP endpoint (common/http_server.h): batching, the bounded backlog
// while the endpoint fails (oldest dropped, counted), and delivery resuming with nothing else lost.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/http_server.h"
#include "proxy/access_log.h"

namespace trellis::proxy {
namespace {

using nlohmann::json;

std::string decodeBase64(const std::string& in) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int bits = 0, value = 0;
  for (char c : in) {
    auto at = alphabet.find(c);
    if (at == std::string::npos) continue;  // '=' padding
    value = value << 6 | static_cast<int>(at);
    bits += 6;
    if (bits >= 8) out += static_cast<char>(value >> (bits -= 8) & 0xff);
  }
  return out;
}

struct Endpoint {
  std::mutex mutex;
  std::atomic<bool> failing{false};
  std::vector<std::string> records;  // decoded, in delivery order
  int attempts = 0;
  HttpServer server{"firehose", [this](const HttpRequest& request) {
                      std::lock_guard lock(mutex);
                      ++attempts;
                      json body = json::parse(request.body);
                      if (failing) return HttpResponse{500, {}, "{}"};
                      for (const auto& record : body["records"]) records.push_back(decodeBase64(record["data"]));
                      json answer = {{"requestId", body["requestId"]}, {"timestamp", 0}};
                      return HttpResponse{200, {{"content-type", "application/json"}}, answer.dump()};
                    }};

  size_t count() {
    std::lock_guard lock(mutex);
    return records.size();
  }
};

bool waitFor(const std::function<bool()>& done, std::chrono::seconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

snapshot::AccessLogDestination destination(uint16_t port) {
  return {"als-1", "arn:aws:firehose:us-east-1:111122223333:deliverystream/s", "svc-1",
          "http://127.0.0.1:" + std::to_string(port) + "/put", ""};
}

TEST(FirehoseDelivery, KeepsTheNewestRecordsWhileTheEndpointIsDownThenDeliversThem) {
  Endpoint endpoint;
  endpoint.server.start("127.0.0.1:0");
  FirehoseDelivery::Options options;
  options.maxBatchRecords = 4;
  options.maxBacklog = 10;
  options.maxBatchDelay = std::chrono::milliseconds(50);
  options.firstBackoff = std::chrono::milliseconds(50);
  options.maxBackoff = std::chrono::milliseconds(200);
  FirehoseDelivery delivery(options);
  delivery.start();
  auto where = destination(endpoint.server.port());

  endpoint.failing = true;
  for (int i = 0; i < 4; ++i) delivery.enqueue(where, "r" + std::to_string(i));  // one batch, refused
  ASSERT_TRUE(waitFor([&] {
    std::lock_guard lock(endpoint.mutex);
    return endpoint.attempts >= 2;
  }));
  for (int i = 4; i < 30; ++i) delivery.enqueue(where, "r" + std::to_string(i));  // 26 more: 16 dropped
  std::string metrics = delivery.renderMetrics();
  EXPECT_NE(metrics.find("trellis_access_log_firehose_records_dropped_total{destination=\"" + where.destinationArn +
                         "\"} 16"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(endpoint.count(), 0u);

  endpoint.failing = false;
  ASSERT_TRUE(waitFor([&] { return endpoint.count() >= 14; }));
  delivery.stop();
  // The refused batch (r0-r3) under its own request id, then the newest ten.
  std::vector<std::string> expected = {"r0", "r1", "r2", "r3"};
  for (int i = 20; i < 30; ++i) expected.push_back("r" + std::to_string(i));
  std::lock_guard lock(endpoint.mutex);
  EXPECT_EQ(endpoint.records, expected);
  endpoint.server.stop(0);
}

TEST(FirehoseDelivery, WithoutAnEndpointRecordsAreCountedAsDropped) {
  FirehoseDelivery delivery;
  delivery.start();
  snapshot::AccessLogDestination where{"als-1", "arn:aws:firehose:us-east-1:111122223333:deliverystream/none",
                                       "svc-1", "", ""};
  for (int i = 0; i < 3; ++i) delivery.enqueue(where, "r");
  EXPECT_NE(delivery.renderMetrics().find("trellis_access_log_firehose_records_dropped_total{destination=\"" +
                                          where.destinationArn + "\"} 3"),
            std::string::npos);
  delivery.stop();
}

}  // namespace
}  // namespace trellis::proxy
