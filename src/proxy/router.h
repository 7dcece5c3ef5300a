// Request routing per spec 5.3: pure functions over a pinned snapshot. The per-worker selection state
// (smooth weighted round robin, round robin within a target group) lives in RouterState, which a
// worker resets whenever it installs a new snapshot (the state is keyed by snapshot pointers).
#pragma once
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/http1_codec.h"
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

// Host → service reachable from `source` (spec 5.1: through the network the VPC is associated with;
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
  void reset() {
    weights_.clear();
    failoverWeights_.clear();
    cursors_.clear();
  }
  // Smooth weighted round robin (nginx's algorithm): every TG's share is exact over each cycle of
  // totalWeight picks and spread evenly within it. When the picked TG has no healthy target but others
  // do, the pick moves to those (by their weights), so a dead group's share goes to the live ones; only
  // when no group has a healthy target does the pick stay, to fail open inside it (spec 5.3).
  // Null when the action has no target groups.
  const snapshot::WeightedTargetGroup* pickTargetGroup(const snapshot::Action& action);
  // Round robin over targets that are healthy, not draining and resolvable; when none is healthy,
  // over all non-draining resolvable ones (fail open, spec 5.3). Null when no target can be used.
  const snapshot::Target* pickTarget(const snapshot::TargetGroup& group, const snapshot::Target* avoid = nullptr);

 private:
  std::unordered_map<const snapshot::Action*, std::vector<int>> weights_;
  std::unordered_map<const snapshot::Action*, std::vector<int>> failoverWeights_;  // among healthy groups only
  std::unordered_map<const snapshot::TargetGroup*, size_t> cursors_;
};

}  // namespace trellis::proxy
