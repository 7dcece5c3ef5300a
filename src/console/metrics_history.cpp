#include "console/metrics_history.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "common/thread_name.h"

namespace trellis::console {

using nlohmann::json;

const std::string* MetricSample::label(std::string_view key) const {
  for (const auto& [k, v] : labels)
    if (k == key) return &v;
  return nullptr;
}

namespace {

bool isNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

// One line, or false when it is not a sample.
bool parseLine(std::string_view line, MetricSample& out) {
  size_t i = 0;
  while (i < line.size() && isNameChar(line[i], i == 0)) ++i;
  if (i == 0) return false;
  out.name.assign(line.substr(0, i));
  out.labels.clear();
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      while (i < line.size() && (line[i] == ' ' || line[i] == ',')) ++i;
      if (i >= line.size()) return false;
      if (line[i] == '}') {
        ++i;
        break;
      }
      size_t start = i;
      while (i < line.size() && isNameChar(line[i], i == start)) ++i;
      if (i == start || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') return false;
      std::string key(line.substr(start, i - start));
      i += 2;
      std::string value;
      while (true) {
        if (i >= line.size()) return false;
        char c = line[i++];
        if (c == '"') break;
        if (c == '\\') {
          if (i >= line.size()) return false;
          char e = line[i++];
          value.push_back(e == 'n' ? '\n' : e);
        } else {
          value.push_back(c);
        }
      }
      out.labels.emplace_back(std::move(key), std::move(value));
    }
  }
  while (i < line.size() && line[i] == ' ') ++i;
  std::string_view number = line.substr(i);
  if (size_t space = number.find(' '); space != std::string_view::npos) number = number.substr(0, space);  // timestamp
  if (number.empty()) return false;
  if (number == "+Inf")
    out.value = INFINITY;
  else if (number == "-Inf")
    out.value = -INFINITY;
  else {
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), out.value);
    if (ec != std::errc() || end != number.data() + number.size()) return false;
  }
  return true;
}

double ratio(double part, double whole) { return whole > 0 ? part / whole : 0; }

}  // namespace

std::vector<MetricSample> parsePrometheusText(std::string_view text) {
  std::vector<MetricSample> out;
  MetricSample sample;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    if (parseLine(line, sample)) out.push_back(sample);
  }
  return out;
}

Scrape readScrape(const std::vector<MetricSample>& samples) {
  Scrape scrape;
  for (const auto& s : samples) {
    std::string key;
    if (const auto* service = s.label("service"))
      key = "service/" + *service;
    else if (const auto* group = s.label("target_group"))
      key = "targetgroup/" + *group;
    else
      continue;
    auto& c = scrape[key];
    if (s.name == "TotalRequestCount")
      c.total = s.value;
    else if (s.name == "HTTPCode_2XX_Count")
      c.classes[0] = s.value;
    else if (s.name == "HTTPCode_3XX_Count")
      c.classes[1] = s.value;
    else if (s.name == "HTTPCode_4XX_Count")
      c.classes[2] = s.value;
    else if (s.name == "HTTPCode_5XX_Count")
      c.classes[3] = s.value;
    else if (s.name == "HealthyHostCount")
      c.healthy = s.value;
    else if (s.name == "UnHealthyHostCount")
      c.unhealthy = s.value;
    else if (s.name == "RequestTime_bucket") {
      const auto* le = s.label("le");
      if (!le) continue;
      double bound = *le == "+Inf" ? INFINITY : std::strtod(le->c_str(), nullptr);
      c.buckets.emplace_back(bound, s.value);
    }
  }
  for (auto& [key, c] : scrape) std::sort(c.buckets.begin(), c.buckets.end());
  return scrape;
}

double histogramQuantile(const std::vector<std::pair<double, double>>& before,
                         const std::vector<std::pair<double, double>>& after, double q) {
  if (after.empty()) return -1;
  // Counts in the interval per bucket; `before` may be missing (the key is new) or from another layout.
  std::vector<std::pair<double, double>> delta;
  for (size_t i = 0; i < after.size(); ++i) {
    double prior = 0;
    if (before.size() == after.size() && before[i].first == after[i].first) prior = before[i].second;
    delta.emplace_back(after[i].first, std::max(0.0, after[i].second - prior));
  }
  double total = delta.back().second;
  if (total <= 0) return -1;
  double rank = q * total;
  double lowerBound = 0, lowerCount = 0;
  for (const auto& [bound, count] : delta) {
    if (count >= rank) {
      if (std::isinf(bound)) return lowerBound;  // above the last finite bucket: its bound is all we know
      double inBucket = count - lowerCount;
      return inBucket > 0 ? lowerBound + (bound - lowerBound) * (rank - lowerCount) / inBucket : bound;
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

std::string healthOf(double requests, double ratio4xx, double ratio5xx) {
  if (requests <= 0) return "idle";
  if (ratio5xx > 0.10 || ratio4xx > 0.20) return "failing";
  if (ratio5xx > 0.001 || ratio4xx > 0.10) return "degraded";
  return "healthy";
}

MetricsHistory::MetricsHistory(std::function<std::string()> source, Options options)
    : source_(std::move(source)), options_(options) {}

MetricsHistory::~MetricsHistory() { stop(); }

void MetricsHistory::start() {
  thread_ = std::thread([this] {
    nameThisThread("console-metrics");
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      sample();
      lock.lock();
      wake_.wait_for(lock, options_.interval, [this] { return stopping_; });
    }
  });
}

void MetricsHistory::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MetricsHistory::sample(Clock::time_point now) {
  Point point{now, readScrape(parsePrometheusText(source_ ? source_() : std::string()))};
  std::lock_guard lock(mutex_);
  points_.push_back(std::move(point));
  while (!points_.empty() && points_.front().at < now - options_.keep) points_.pop_front();
}

json MetricsHistory::between(const Point& a, const Point& b, const std::string& key) {
  static const TrafficCounters kNone;
  auto ia = a.scrape.find(key);
  auto ib = b.scrape.find(key);
  const TrafficCounters& ca = ia == a.scrape.end() ? kNone : ia->second;
  const TrafficCounters& cb = ib == b.scrape.end() ? kNone : ib->second;
  double seconds = std::chrono::duration<double>(b.at - a.at).count();
  // A counter that went down restarted (trellisd restarted, or the resource was recreated): count from zero.
  bool reset = cb.total < ca.total;
  double requests = reset ? cb.total : cb.total - ca.total;
  double classes[4];
  for (int i = 0; i < 4; ++i) classes[i] = std::max(0.0, reset ? cb.classes[i] : cb.classes[i] - ca.classes[i]);
  json out = {{"t", std::chrono::duration_cast<std::chrono::milliseconds>(b.at.time_since_epoch()).count()},
              {"requests", requests},
              {"rps", seconds > 0 ? requests / seconds : 0},
              {"ratio2xx", ratio(classes[0], requests)},
              {"ratio3xx", ratio(classes[1], requests)},
              {"ratio4xx", ratio(classes[2], requests)},
              {"ratio5xx", ratio(classes[3], requests)}};
  static const std::vector<std::pair<double, double>> kEmpty;
  const auto& before = reset ? kEmpty : ca.buckets;
  for (auto [name, q] : {std::pair{"p50", 0.5}, std::pair{"p95", 0.95}, std::pair{"p99", 0.99}}) {
    double v = histogramQuantile(before, cb.buckets, q);
    out[name] = v < 0 ? json(nullptr) : json(v);
  }
  return out;
}

json MetricsHistory::summary() const {
  std::lock_guard lock(mutex_);
  json out = json::object();
  if (points_.empty()) return out;
  const Point& last = points_.back();
  // The oldest point still inside the window (or the oldest there is).
  const Point* first = &points_.front();
  for (const auto& p : points_)
    if (p.at >= last.at - options_.healthWindow) {
      first = &p;
      break;
    }
  for (const auto& [key, counters] : last.scrape) {
    json s = first == &last ? json{{"requests", 0}, {"rps", 0}, {"ratio4xx", 0}, {"ratio5xx", 0}}
                            : between(*first, last, key);
    s["health"] = healthOf(s["requests"].get<double>(), s["ratio4xx"].get<double>(), s["ratio5xx"].get<double>());
    if (counters.healthy >= 0) s["healthyHosts"] = counters.healthy;
    if (counters.unhealthy >= 0) s["unhealthyHosts"] = counters.unhealthy;
    out[key] = std::move(s);
  }
  return out;
}

json MetricsHistory::series(const std::string& key) const {
  std::lock_guard lock(mutex_);
  json out = json::array();
  for (size_t i = 1; i < points_.size(); ++i) out.push_back(between(points_[i - 1], points_[i], key));
  return out;
}

}  // namespace trellis::console
