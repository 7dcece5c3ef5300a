// Request routing: pure functions over a pinned snapshot. The per-worker selection state
// (smooth weighted round robin, round robin within a target group) lives in RouterState, keyed by the
// compiled objects' serials, so it carries over snapshot swaps for what a change did not touch.
#pragma once
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/http/message.h"
#include "snapshot/snapshot.h"

namespace trellis::proxy {

struct RouteResult {
  enum class Kind { NoService, Action };
  Kind kind = Kind::NoService;
  const snapshot::Service* service = nullptr;
  const snapshot::ServiceNetwork* network = nullptr;  // through which the source VPC reaches the service
  bool unreachable = false;  // NoService because the host's service is not in the source VPC's network
  const snapshot::Listener* listener = nullptr;
  const snapshot::Rule* rule = nullptr;  // null: the default action
  const snapshot::Action* action = nullptr;
};

// Host → service reachable from `source` (through the network the VPC is associated with;
// anything else is the unknown service's 404) → listener on `port` → first matching rule by priority →
// default action. `source` null (no VPC) reaches nothing.
RouteResult route(const snapshot::Snapshot& snap, const snapshot::Vpc* source, uint16_t port,
                  const RequestHead& request);

bool matches(const snapshot::HttpMatch& match, const RequestHead& request, std::string_view lowerPath);
// A rule's whole match: its match or any alternative, and all its query matches.
bool matches(const snapshot::Rule& rule, const RequestHead& request, std::string_view lowerPath);

// Trellis extensions applied to a request routed to a rule (pure, so the worker's part stays small).
// Set replaces every header of the name, add appends, remove drops every one.
void applyHeaderModifier(const snapshot::HeaderModifier& modifier, Headers& headers);
// The request-target (path and query) after `modifier`: the full path replaced, or the path prefix
// the rule matched by replaced (an exact match counts as its whole path, a match without a path as "/").
std::string modifiedTarget(const snapshot::Rule& rule, const snapshot::PathModifier& modifier,
                           const RequestHead& request);
// The Location a rule's redirect answers with; `tls` and `port` describe the connection the request came on.
std::string redirectLocation(const snapshot::Rule& rule, const RequestHead& request, bool tls, uint16_t port);
// Applies the rule's request header modifier and URL rewrite to `request` (Host goes in its host header).
void rewriteRequest(const snapshot::Rule& rule, RequestHead& request);

class RouterState {
 public:
  // The worker moved to a newer snapshot. Everything keeps its place in the rotation, so a weighted split
  // stays exact under a stream of unrelated changes (a 1/99 canary still gets its 1%). State left behind
  // by replaced actions and groups is swept once it outnumbers the rest.
  void snapshotChanged();
  // Smooth weighted round robin (nginx's algorithm): every TG's share is exact over each cycle of
  // totalWeight picks and spread evenly within it. When the picked TG has no healthy target but others
  // do, the pick moves to those (by their weights), so a dead group's share goes to the live ones; only
  // when no group has a healthy target does the pick stay, to fail open inside it.
  // Null when the action has no target groups.
  const snapshot::WeightedTargetGroup* pickTargetGroup(const snapshot::Action& action);
  // Round robin over targets that are healthy, not draining and resolvable; when none is healthy,
  // over all non-draining resolvable ones (fail open). Null when no target can be used.
  const snapshot::Target* pickTarget(const snapshot::TargetGroup& group, const snapshot::Target* avoid = nullptr);

 private:
  static constexpr uint64_t kIdleSnapshots = 64;  // a sweep drops state unused for this many snapshots
  static constexpr size_t kMinSweepAbove = 4096;   // entries below which nothing is swept

  struct Rotation {
    std::vector<int> weights, failoverWeights;  // smooth weighted round robin; failover: among healthy groups only
    uint64_t usedIn = 0;                        // the snapshot epoch it was last used in
  };
  struct Cursor {
    size_t next = 0;
    uint64_t usedIn = 0;
  };
  std::unordered_map<uint64_t, Rotation> rotations_;  // by Action::serial
  std::unordered_map<uint64_t, Cursor> cursors_;      // by TargetGroup::serial
  uint64_t epoch_ = 0;                                // snapshots this worker has moved to
  size_t sweepAbove_ = kMinSweepAbove;
};

}  // namespace trellis::proxy
