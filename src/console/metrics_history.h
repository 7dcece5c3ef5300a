// A short history of trellisd's own metrics for the console, so no Prometheus server is needed: every few
// seconds the sampler reads the Prometheus text the admin port serves (the same function) and keeps, per
// service and per target group, the request counters, status classes, the RequestTime histogram and the
// healthy/unhealthy host gauges. 15 minutes are kept; rates, error ratios and latency quantiles are computed
// between samples when the console asks.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace trellis::console {

// One sample line of the Prometheus text format: `name{label="value",...} number`. Comments, blank lines and
// lines that do not parse are skipped; label values are unescaped (\\, \", \n).
struct MetricSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  const std::string* label(std::string_view key) const;
};
std::vector<MetricSample> parsePrometheusText(std::string_view text);

// What one scrape says about one service or target group (cumulative counters, gauges as read).
struct TrafficCounters {
  double total = 0;
  double classes[4] = {};                          // 2xx, 3xx, 4xx, 5xx
  std::vector<std::pair<double, double>> buckets;  // (le in ms, cumulative count), +Inf last
  double healthy = -1, unhealthy = -1;             // target groups: HealthyHostCount, UnHealthyHostCount
};
using Scrape = std::map<std::string, TrafficCounters>;  // "service/ID" or "targetgroup/ID"
Scrape readScrape(const std::vector<MetricSample>& samples);

// The quantile q (0-1) of the requests counted between two cumulative histograms, interpolated linearly within
// the bucket as Prometheus's histogram_quantile does; -1 when no request was counted.
double histogramQuantile(const std::vector<std::pair<double, double>>& before,
                         const std::vector<std::pair<double, double>>& after, double q);

// Kiali's health of a request stream: "healthy", "degraded" or "failing" ("idle" without requests). 5xx above
// 0.1% is degraded, above 10% failing; 4xx above 10% degraded, above 20% failing.
std::string healthOf(double requests, double ratio4xx, double ratio5xx);

class MetricsHistory {
 public:
  using Clock = std::chrono::system_clock;
  struct Options {
    std::chrono::milliseconds interval{3000};
    std::chrono::seconds keep{15 * 60};
    std::chrono::seconds healthWindow{60};  // Kiali's default window
  };
  // `source` returns the Prometheus text (empty: this process has no data plane).
  MetricsHistory(std::function<std::string()> source, Options options);
  ~MetricsHistory();
  void start();
  void stop();

  // Takes one sample now (the sampler thread does this every interval; tests call it directly).
  void sample(Clock::time_point now = Clock::now());
  // Per key: over the health window, {rps, 2xx, 3xx, 4xx, 5xx (ratios), p50, p95, p99 (ms), health,
  // healthyHosts, unhealthyHosts}.
  nlohmann::json summary() const;
  // One key's series over the history: [{t (unix ms), rps, ratio4xx, ratio5xx, ratio2xx, ratio3xx, p50, p95, p99}].
  nlohmann::json series(const std::string& key) const;
  std::chrono::milliseconds interval() const { return options_.interval; }

 private:
  struct Point {
    Clock::time_point at;
    Scrape scrape;
  };
  static nlohmann::json between(const Point& a, const Point& b, const std::string& key);

  std::function<std::string()> source_;
  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Point> points_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace trellis::console
