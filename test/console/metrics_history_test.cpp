// The console's metrics history (src/console/metrics_history.h): the Prometheus text trellisd serves, read
// back into rates, error ratios, latency quantiles and Kiali's health states.
#include "console/metrics_history.h"

#include <gtest/gtest.h>

#include <string>

namespace trellis::console {
namespace {

using namespace std::chrono_literals;

TEST(PrometheusText, ReadsSamplesAndSkipsTheRest) {
  auto samples = parsePrometheusText(
      "# HELP TotalRequestCount x\n# TYPE TotalRequestCount counter\n"
      "TotalRequestCount{service=\"svc-1\"} 12\n"
      "RequestTime_bucket{service=\"svc-1\",le=\"+Inf\"} 12\r\n"
      "trellis_snapshot_revision 7 1700000000\n"
      "odd{a=\"x\\\"y\\\\z\"} 1.5e3\n"
      "broken{a=\"x} 1\n"
      "nolabels\n"
      "9bad 1\n");
  ASSERT_EQ(samples.size(), 4u);
  EXPECT_EQ(samples[0].name, "TotalRequestCount");
  EXPECT_EQ(*samples[0].label("service"), "svc-1");
  EXPECT_EQ(samples[0].value, 12);
  EXPECT_EQ(*samples[1].label("le"), "+Inf");
  EXPECT_EQ(samples[2].value, 7) << "a timestamp after the value is not the value";
  EXPECT_EQ(*samples[3].label("a"), "x\"y\\z");
  EXPECT_EQ(samples[3].value, 1500);
}

TEST(Quantiles, InterpolateWithinTheBucket) {
  std::vector<std::pair<double, double>> before = {{10, 0}, {100, 0}, {INFINITY, 0}};
  std::vector<std::pair<double, double>> after = {{10, 50}, {100, 100}, {INFINITY, 100}};
  EXPECT_DOUBLE_EQ(histogramQuantile(before, after, 0.5), 10);
  EXPECT_DOUBLE_EQ(histogramQuantile(before, after, 0.75), 55);
  EXPECT_DOUBLE_EQ(histogramQuantile(before, after, 0.99), 98.2);
  EXPECT_EQ(histogramQuantile(after, after, 0.5), -1) << "no request in between";
  std::vector<std::pair<double, double>> slow = {{10, 0}, {100, 0}, {INFINITY, 10}};
  EXPECT_DOUBLE_EQ(histogramQuantile(before, slow, 0.5), 100) << "beyond the last bucket: its bound";
}

TEST(Health, KialisThresholds) {
  EXPECT_EQ(healthOf(0, 0, 0), "idle");
  EXPECT_EQ(healthOf(1000, 0, 0), "healthy");
  EXPECT_EQ(healthOf(1000, 0, 0.001), "healthy") << "0.1% exactly is not above it";
  EXPECT_EQ(healthOf(1000, 0, 0.002), "degraded");
  EXPECT_EQ(healthOf(1000, 0, 0.11), "failing");
  EXPECT_EQ(healthOf(1000, 0.10, 0), "healthy");
  EXPECT_EQ(healthOf(1000, 0.15, 0), "degraded");
  EXPECT_EQ(healthOf(1000, 0.25, 0), "failing");
}

std::string scrape(int total, int ok, int errors5xx, int fast) {
  return "TotalRequestCount{service=\"svc-1\"} " + std::to_string(total) + "\n" +
         "HTTPCode_2XX_Count{service=\"svc-1\"} " + std::to_string(ok) + "\n" +
         "HTTPCode_5XX_Count{service=\"svc-1\"} " + std::to_string(errors5xx) + "\n" +
         "RequestTime_bucket{service=\"svc-1\",le=\"1\"} " + std::to_string(fast) + "\n" +
         "RequestTime_bucket{service=\"svc-1\",le=\"1000\"} " + std::to_string(total) + "\n" +
         "RequestTime_bucket{service=\"svc-1\",le=\"+Inf\"} " + std::to_string(total) + "\n" +
         "HealthyHostCount{target_group=\"tg-1\"} 1\nUnHealthyHostCount{target_group=\"tg-1\"} 2\n";
}

TEST(History, RatesRatiosAndHealthBetweenSamples) {
  std::string text = scrape(0, 0, 0, 0);
  MetricsHistory history([&text] { return text; }, MetricsHistory::Options{1s, 60s, 60s});
  auto t0 = MetricsHistory::Clock::now();
  history.sample(t0);
  text = scrape(100, 80, 20, 50);
  history.sample(t0 + 10s);
  auto series = history.series("service/svc-1");
  ASSERT_EQ(series.size(), 1u);
  EXPECT_DOUBLE_EQ(series[0]["rps"].get<double>(), 10);
  EXPECT_DOUBLE_EQ(series[0]["ratio5xx"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(series[0]["ratio2xx"].get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(series[0]["p50"].get<double>(), 1);
  auto summary = history.summary();
  EXPECT_EQ(summary["service/svc-1"]["health"], "failing");
  EXPECT_EQ(summary["targetgroup/tg-1"]["unhealthyHosts"], 2);
  // A restart (counters went down) counts from zero, never as negative traffic.
  text = scrape(10, 10, 0, 10);
  history.sample(t0 + 20s);
  EXPECT_DOUBLE_EQ(history.series("service/svc-1")[1]["requests"].get<double>(), 10);
  // Points older than what is kept go.
  history.sample(t0 + 200s);
  EXPECT_EQ(history.series("service/svc-1").size(), 0u);
}

}  // namespace
}  // namespace trellis::console
