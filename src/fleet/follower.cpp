#include "fleet/follower.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "common/log.h"
#include "common/thread_name.h"
#include "common/time.h"
#include "fleet/feed.h"

namespace trellis::fleet {

namespace {

int64_t steadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool applyChangeBatch(store::SqliteStore& replica, const ChangeBatch& batch) {
  int64_t held = replica.revision();
  if (batch.revision <= held) {
    if (batch.full && batch.revision < held)
      logError("fleet: the control plane is at revision ", batch.revision, ", behind this replica's ", held,
               " (was its store replaced?): keeping the replica");
    return false;
  }
  std::vector<store::Op> ops;
  if (batch.full) {
    std::map<std::pair<std::string, std::string>, const std::string*> incoming;
    for (const auto& record : batch.records) incoming[{record.kind, record.id}] = &record.value;
    auto contents = replica.readAll();
    std::map<std::pair<std::string, std::string>, const std::string*> kept;
    for (const auto& record : contents.records) {
      kept[{record.kind, record.id}] = &record.value;
      if (!incoming.count({record.kind, record.id})) ops.push_back(store::Op::del(record.kind, record.id));
    }
    for (const auto& record : batch.records) {
      auto it = kept.find({record.kind, record.id});
      if (it == kept.end() || *it->second != record.value) ops.push_back(store::Op::put(record.kind, record.id, record.value));
    }
  } else {
    for (const auto& key : batch.deleted) ops.push_back(store::Op::del(key.kind, key.id));
    for (const auto& record : batch.records) ops.push_back(store::Op::put(record.kind, record.id, record.value));
  }
  replica.commitAt(batch.revision, ops);
  return true;
}

Follower::Follower(store::SqliteStore& replica, FollowerOptions options)
    : replica_(replica), options_(std::move(options)), configDigest_(options_.configDigest) {
  if (options_.controlPlane.empty()) throw std::invalid_argument("--control-plane names no API server");
  for (const auto& url : options_.controlPlane) {
    std::string problem;
    auto endpoint = parseEndpoint(url, problem);
    if (!endpoint) throw std::invalid_argument("--control-plane: " + problem);
    endpoint->caFile = options_.caFile;
    endpoints_.push_back(*endpoint);
  }
}

Follower::~Follower() { stop(); }

void Follower::start() {
  thread_ = std::thread([this] {
    nameThisThread("fleet-follower");
    run();
  });
  if (options_.healthReport)
    reporter_ = std::thread([this] {
      nameThisThread("fleet-health");
      report();
    });
}

void Follower::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cancel_.cancel();
  reportCancel_.cancel();
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (reporter_.joinable()) reporter_.join();
}

void Follower::pause(std::chrono::milliseconds duration) {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, duration, [this] { return stopping_; });
}

void Follower::run() {
  size_t current = current_;
  int failedInARow = 0;
  std::string lastProblem;
  while (!cancel_.cancelled()) {
    const std::string& url = options_.controlPlane[current];
    try {
      pollOnce(endpoints_[current], url);
      if (!connected_.exchange(true))
        logInfo("fleet: following ", url, " from revision ", replica_.revision());
      failedInARow = 0;
      lastProblem.clear();
    } catch (const std::exception& e) {
      if (cancel_.cancelled()) break;
      ++failures_;
      // One line per new problem, not one per retry: an outage of the control plane is long and expected.
      std::string problem = url + ": " + e.what();
      if (problem != lastProblem) logWarn("fleet: ", problem, "; serving from the replica at revision ",
                                          replica_.revision(), " and trying the next API server");
      lastProblem = problem;
      connected_ = false;
      current = (current + 1) % endpoints_.size();
      current_ = current;
      // Straight to the next server; once all have failed, back off up to 2 s between rounds.
      if (++failedInARow >= static_cast<int>(endpoints_.size()))
        pause(std::chrono::milliseconds(std::min(2000, 100 << std::min(failedInARow / static_cast<int>(endpoints_.size()), 5))));
    }
  }
}

void Follower::pollOnce(const Endpoint& endpoint, const std::string& url) {
  const std::string path = endpoint.basePath + kChangesPath;
  std::string query =
      "since=" + std::to_string(replica_.revision()) + "&wait=" + std::to_string(options_.wait.count());
  if (!configDigest_.empty()) query += "&config=" + configDigest_;
  HeaderList headers{{"host", endpoint.hostHeader}, {kProxyIdHeader, options_.proxyId}};
  auth::signRequest("GET", endpoint.hostHeader, path, query, headers, "", options_.credentials, options_.region,
                    kSigningService, systemNow());
  // The server answers within `wait`; the margin covers a slow store read on its side.
  auto result = httpExchange(endpoint, "GET", path + "?" + query, headers, "", options_.wait + std::chrono::seconds(10),
                             &cancel_);
  if (result.status != 200) {
    const std::string* type = result.header("x-amzn-errortype");
    throw std::runtime_error("HTTP " + std::to_string(result.status) + (type ? " " + *type : "") + ": " +
                             result.body.substr(0, 300));
  }
  std::string problem;
  auto batch = decodeChangeBatch(result.body, problem);
  if (!batch) throw std::runtime_error("malformed change batch from " + url + ": " + problem);
  lastContactMs_ = steadyMillis();
  // The config first: the records may name what only the new config has (an instance, a VPC).
  if (batch->config) {
    configDigest_ = configDigest(*batch->config);  // reported from now on, taken or not: no loop on a bad file
    if (options_.onConfig) options_.onConfig(*batch->config);
  }
  if (applyChangeBatch(replica_, *batch) && batch->full) {
    ++fullCopies_;
    logInfo("fleet: whole copy from ", url, " at revision ", batch->revision, " (", batch->records.size(),
            " records)");
  }
}

// Checks every second whether the view changed; posts it then, and every healthRefresh regardless (the lease).
// A failed post is tried again at the next check: the API server the poll thread moved to gets it.
void Follower::report() {
  std::string sent;
  auto sentAt = std::chrono::steady_clock::time_point{};
  while (!reportCancel_.cancelled()) {
    std::string body = encodeHealthReport(options_.healthReport());
    auto now = std::chrono::steady_clock::now();
    if (body != sent || now - sentAt >= options_.healthRefresh) {
      const Endpoint& endpoint = endpoints_[current_ % endpoints_.size()];
      const std::string path = endpoint.basePath + kHealthPath;
      HeaderList headers{{"host", endpoint.hostHeader}, {kProxyIdHeader, options_.proxyId},
                         {"content-type", "application/json"}};
      auth::signRequest("POST", endpoint.hostHeader, path, "", headers, body, options_.credentials, options_.region,
                        kSigningService, systemNow());
      try {
        auto result = httpExchange(endpoint, "POST", path, headers, body, std::chrono::seconds(5), &reportCancel_);
        if (result.status == 200) {
          sent = body;
          sentAt = now;
          ++reportsSent_;
        } else {
          logDebug("fleet: health report refused: HTTP ", result.status, " ", result.body.substr(0, 200));
        }
      } catch (const std::exception& e) {
        logDebug("fleet: health report not sent: ", e.what());
      }
    }
    pause(std::chrono::seconds(1));
  }
}

std::string Follower::renderMetrics() const {
  int64_t contact = lastContactMs_.load();
  double since = contact ? (steadyMillis() - contact) / 1000.0 : -1;
  return "# HELP trellis_fleet_replica_revision The API servers' revision this host's replica holds.\n"
         "# TYPE trellis_fleet_replica_revision gauge\n"
         "trellis_fleet_replica_revision " +
         std::to_string(replica_.revision()) +
         "\n# HELP trellis_fleet_connected 1 while an API server answers this host's polls.\n"
         "# TYPE trellis_fleet_connected gauge\n"
         "trellis_fleet_connected " +
         std::to_string(connected_ ? 1 : 0) +
         "\n# HELP trellis_fleet_full_copies_total Whole copies taken (first start, or away longer than the history).\n"
         "# TYPE trellis_fleet_full_copies_total counter\n"
         "trellis_fleet_full_copies_total " +
         std::to_string(fullCopies_.load()) +
         "\n# HELP trellis_fleet_stream_failures_total Polls that failed (the next API server is tried).\n"
         "# TYPE trellis_fleet_stream_failures_total counter\n"
         "trellis_fleet_stream_failures_total " +
         std::to_string(failures_.load()) +
         "\n# HELP trellis_fleet_last_contact_seconds Since an API server last answered (-1: never).\n"
         "# TYPE trellis_fleet_last_contact_seconds gauge\n"
         "trellis_fleet_last_contact_seconds " +
         std::to_string(since) +
         "\n# HELP trellis_fleet_health_reports_total Reports of this host's target health the API servers took.\n"
         "# TYPE trellis_fleet_health_reports_total counter\n"
         "trellis_fleet_health_reports_total " +
         std::to_string(reportsSent_.load()) + "\n";
}

}  // namespace trellis::fleet
