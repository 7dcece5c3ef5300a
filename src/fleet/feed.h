// The API server's side of the config stream (docs/fleet.md): proxies long-poll
//   GET /_trellis/v1/changes?since=R&wait=S[&config=DIGEST]
// signed with SigV4 for the service "trellis" by an identity whose policy allows trellis:ReceiveConfiguration,
// and get the data plane's records changed after R as soon as a later revision commits (or, after S seconds, an
// answer that nothing did). A proxy whose R is older than the store's kept history, or 0, gets a whole copy.
// Proxies at the same revision share one read of the store: its load grows with commits, not with proxies.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/http_server.h"
#include "fleet/changes.h"
#include "model/config.h"
#include "store/store.h"

namespace trellis::fleet {

inline constexpr const char* kChangesPath = "/_trellis/v1/changes";
inline constexpr const char* kSigningService = "trellis";
inline constexpr const char* kReceiveAction = "trellis:ReceiveConfiguration";
// GET: the proxies following this API server (`trellis get proxies`), as proxiesJson().
inline constexpr const char* kProxiesPath = "/_trellis/v1/proxies";
inline constexpr const char* kListProxiesAction = "trellis:ListProxies";
// POST: a data-plane host's view of the targets it health-checks (encodeHealthReport), by the identity it follows with.
inline constexpr const char* kHealthPath = "/_trellis/v1/health";
// What a proxy sends to say who it is (its --proxy-id), for the list of proxies.
inline constexpr const char* kProxyIdHeader = "x-trellis-proxy-id";

// The data plane's part of what changed after `since`, or all of it (`full`) when the store no longer has that
// history or `since` is 0.
ChangeBatch readChangeBatch(store::Store& store, int64_t since);

class ConfigFeed {
 public:
  // `config` gives the identities that may follow and the region requests are signed for. A host's health report
  // counts for `healthLease` after it arrives (hosts report at least every third of it).
  ConfigFeed(store::Store& store, std::function<model::ConfigPtr()> config,
             std::chrono::seconds healthLease = std::chrono::seconds(30));
  ~ConfigFeed();
  ConfigFeed(const ConfigFeed&) = delete;
  ConfigFeed& operator=(const ConfigFeed&) = delete;

  void start();
  // Answers every waiting proxy (503: try another API server) and joins. Before the HTTP server stops.
  void stop();
  // Cheap, from any thread (Store::watch): `revision` committed.
  void notifyCommitted(int64_t revision);
  // The config file proxies should hold (at start and after each reload); never called: proxies keep their own.
  void setConfigText(std::string text);
  // The HTTP routes for kChangesPath (replied to later, from the feed's thread), kProxiesPath and kHealthPath.
  void handle(const HttpRequest& request, HttpReply reply);

  // The proxies that asked this API server since it started, most recent first:
  //   {"revision":N,"items":[{"id","address","revision","lagRevisions","lastSeen"}]}
  std::string proxiesJson() const;
  // ListTargets' status and reason of a target from the hosts that check it and reported within the lease:
  // UNHEALTHY when most of them see it failing, else HEALTHY when one sees it pass, else INITIAL. An empty
  // status when no live host checks it.
  std::pair<std::string, std::string> fleetHealth(const std::string& targetGroupId, const std::string& targetId,
                                                  uint16_t port) const;
  int64_t revision() const;
  // Prometheus text: trellis_fleet_revision, trellis_fleet_waiting_proxies, trellis_fleet_batches_total{full}.
  std::string renderMetrics() const;

 private:
  struct Waiter {
    int64_t since = 0;
    std::string configDigest;  // of the config the proxy holds
    std::chrono::steady_clock::time_point deadline;
    HttpReply reply;
  };
  void run();
  void answer(std::vector<Waiter> ready, std::vector<Waiter> expired);
  bool needsConfig(const Waiter& waiter) const;  // under mutex_
  HttpResponse takeHealthReport(const std::string& proxy, const std::string& body);

  store::Store& store_;
  std::function<model::ConfigPtr()> config_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  int64_t revision_ = 0;
  std::optional<std::string> configText_;
  std::string configDigest_;
  std::vector<Waiter> waiters_;
  struct ProxyStatus {
    std::string id;
    std::string address;
    int64_t revision = 0;  // what it said it holds when it last asked
    std::chrono::system_clock::time_point lastSeen;
  };
  std::map<std::string, ProxyStatus> proxies_;
  using TargetKey = std::tuple<std::string, std::string, uint16_t>;
  struct HealthReport {
    std::chrono::steady_clock::time_point at;
    std::map<TargetKey, std::pair<std::string, std::string>> targets;  // status, reason
  };
  std::chrono::seconds healthLease_;
  std::map<std::string, HealthReport> health_;  // by proxy id
  uint64_t batches_[2] = {};  // [incremental, full]
  std::thread thread_;
};

}  // namespace trellis::fleet
