// A data-plane host's side of the config stream (docs/fleet.md): long-polls the API servers for the records that
// changed after the revision its replica holds, and commits each answer into the replica at the API servers'
// revision. The snapshot builder follows the replica like any store, so the host routes from its replica whether
// or not an API server answers: at start, in an outage, forever. A broken stream fails over to the next API server
// and resumes from the replica's revision.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "auth/sigv4.h"
#include "common/http_client.h"
#include "fleet/changes.h"
#include "store/sqlite_store.h"

namespace trellis::fleet {

struct FollowerOptions {
  std::vector<std::string> controlPlane;  // API servers' URLs: http(s)://HOST:PORT
  std::string caFile;                     // https: the bundle their certificates chain to (empty: the system's)
  auth::Credentials credentials;          // an identity allowed trellis:ReceiveConfiguration
  std::string region;                     // requests are signed for it
  std::string proxyId;                    // how API servers list this host
  std::chrono::seconds wait{20};          // how long an API server holds a poll with nothing new
  // Takes the API servers' config file when it differs from the one held (configDigest of its text; empty: none
  // held). Runs on the follower's thread before the batch's records are applied; it must not throw.
  std::function<void(const std::string& configText)> onConfig;
  std::string configDigest;
  // What this host sees of the targets it checks; posted to the API server it follows when it changes, and
  // every `healthRefresh` in any case (the API server's lease is three times that). Empty: no reports.
  std::function<std::vector<TargetReport>()> healthReport;
  std::chrono::seconds healthRefresh{10};
};

// Applies one batch to the replica: at its revision, all of it or nothing. A whole copy deletes what it does not
// hold and rewrites only records whose value differs. False (nothing done) when the batch is not past the replica.
bool applyChangeBatch(store::SqliteStore& replica, const ChangeBatch& batch);

class Follower {
 public:
  // Throws std::invalid_argument for a malformed URL. `replica` must outlive the follower.
  Follower(store::SqliteStore& replica, FollowerOptions options);
  ~Follower();
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

  void start();
  void stop();  // ends a poll in flight at once

  // Prometheus text: trellis_fleet_replica_revision, trellis_fleet_connected, trellis_fleet_full_copies_total,
  // trellis_fleet_stream_failures_total, trellis_fleet_last_contact_seconds, trellis_fleet_health_reports_total.
  std::string renderMetrics() const;

 private:
  void run();
  void pollOnce(const Endpoint& endpoint, const std::string& url);
  void pause(std::chrono::milliseconds duration);
  void report();  // the reporter thread

  store::SqliteStore& replica_;
  FollowerOptions options_;
  std::vector<Endpoint> endpoints_;
  HttpCancel cancel_;
  HttpCancel reportCancel_;
  std::thread thread_;
  std::thread reporter_;
  std::atomic<size_t> current_{0};  // the API server the poll thread follows; the reporter posts to it
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;

  std::string configDigest_;  // of the config last received (taken or not): the follower thread's
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> fullCopies_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> reportsSent_{0};
  std::atomic<int64_t> lastContactMs_{0};  // steady clock, ms; 0: never
};

}  // namespace trellis::fleet
