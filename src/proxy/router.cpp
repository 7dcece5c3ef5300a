#include "proxy/router.h"

#include <algorithm>
#include <iterator>

#include "common/strings.h"

namespace trellis::proxy {
namespace {

bool containsIgnoringCase(std::string_view haystack, std::string_view lowerNeedle) {
  if (lowerNeedle.size() > haystack.size()) return false;
  for (size_t i = 0; i + lowerNeedle.size() <= haystack.size(); ++i) {
    if (iequals(haystack.substr(i, lowerNeedle.size()), lowerNeedle)) return true;
  }
  return false;
}

bool headerMatches(const snapshot::HeaderMatch& m, std::string_view value) {
  using Kind = snapshot::HeaderMatch::Kind;
  if (m.caseSensitive) {
    switch (m.kind) {
      case Kind::Exact: return value == m.value;
      case Kind::Prefix: return startsWith(value, m.value);
      case Kind::Contains: return value.find(m.value) != std::string_view::npos;
    }
  }
  switch (m.kind) {
    case Kind::Exact: return iequals(value, m.value);
    case Kind::Prefix: return value.size() >= m.value.size() && iequals(value.substr(0, m.value.size()), m.value);
    case Kind::Contains: return containsIgnoringCase(value, m.value);
  }
  return false;
}

}  // namespace

bool matches(const snapshot::HttpMatch& match, const RequestHead& request, std::string_view lowerPath) {
  using PathKind = snapshot::HttpMatch::PathKind;
  if (!match.method.empty() && match.method != request.method) return false;
  if (match.pathKind != PathKind::Any) {
    std::string_view path = match.pathCaseSensitive ? request.path() : lowerPath;
    if (match.pathKind == PathKind::Exact ? path != match.path : !startsWith(path, match.path)) return false;
  }
  for (const auto& h : match.headers) {
    const std::string* value = request.header(h.name);
    if (!value || !headerMatches(h, *value)) return false;
  }
  return true;
}

namespace {

bool queryMatches(const std::vector<snapshot::QueryMatch>& queries, const RequestHead& request) {
  if (queries.empty()) return true;
  std::string_view target = request.target;
  size_t mark = target.find('?');
  auto params = parseQuery(mark == std::string_view::npos ? std::string_view() : target.substr(mark + 1));
  if (!params) return false;  // bad escapes match nothing rather than a guess
  using Kind = snapshot::QueryMatch::Kind;
  for (const auto& q : queries) {
    // Like the Gateway API, only the first occurrence of a parameter counts.
    auto it = std::find_if(params->begin(), params->end(), [&](const auto& p) { return p.first == q.name; });
    if (it == params->end()) return false;
    if (q.kind == Kind::Exact && it->second != q.value) return false;
    if (q.kind == Kind::Prefix && !startsWith(it->second, q.value)) return false;
  }
  return true;
}

}  // namespace

bool matches(const snapshot::Rule& rule, const RequestHead& request, std::string_view lowerPath) {
  bool any = matches(rule.match, request, lowerPath);
  for (size_t i = 0; !any && i < rule.alternatives.size(); ++i) any = matches(rule.alternatives[i], request, lowerPath);
  return any && queryMatches(rule.queries, request);
}

void applyHeaderModifier(const snapshot::HeaderModifier& modifier, Headers& headers) {
  auto drop = [&](const std::string& name) {
    std::erase_if(headers, [&](const auto& h) { return h.first == name; });
  };
  for (const auto& name : modifier.remove) drop(name);
  for (const auto& [name, value] : modifier.set) {
    drop(name);
    headers.emplace_back(name, value);
  }
  for (const auto& [name, value] : modifier.add) headers.emplace_back(name, value);
}

std::string modifiedTarget(const snapshot::Rule& rule, const snapshot::PathModifier& modifier,
                           const RequestHead& request) {
  using Kind = snapshot::PathModifier::Kind;
  std::string_view path = request.path();
  std::string_view query = std::string_view(request.target).substr(path.size());
  if (modifier.kind == Kind::None) return request.target;
  if (modifier.kind == Kind::ReplaceFullPath) return modifier.value + std::string(query);
  // The prefix of whichever of the rule's matches matched.
  std::string lowerPath = toLower(path);
  size_t prefixLength = 1;
  const snapshot::HttpMatch* hit = matches(rule.match, request, lowerPath) ? &rule.match : nullptr;
  for (size_t i = 0; !hit && i < rule.alternatives.size(); ++i)
    if (matches(rule.alternatives[i], request, lowerPath)) hit = &rule.alternatives[i];
  if (hit && hit->pathKind != snapshot::HttpMatch::PathKind::Any) prefixLength = hit->path.size();
  prefixLength = std::min(prefixLength, path.size());
  std::string_view rest = path.substr(prefixLength);
  std::string out = modifier.value;
  // "/v1" → "/" on "/v1/x" gives "/x", not "//x"; "/v1" → "/v2" on "/v1x" gives "/v2x" as a string would.
  if (!out.empty() && out.back() == '/' && !rest.empty() && rest.front() == '/') out.pop_back();
  if (out.empty() && (rest.empty() || rest.front() != '/')) out = "/";
  return out.append(rest).append(query);
}

std::string redirectLocation(const snapshot::Rule& rule, const RequestHead& request, bool tls, uint16_t port) {
  const snapshot::Redirect& r = rule.redirect;
  std::string requestScheme = tls ? "https" : "http";
  std::string scheme = r.scheme.empty() ? requestScheme : r.scheme;
  uint16_t defaultPort = scheme == "https" ? 443 : 80;
  uint16_t to = r.port ? r.port : scheme != requestScheme ? defaultPort : port;
  std::string location = scheme + "://" + (r.hostname.empty() ? request.host : r.hostname);
  if (to != defaultPort) location += ":" + std::to_string(to);
  return location + modifiedTarget(rule, r.path, request);
}

void rewriteRequest(const snapshot::Rule& rule, RequestHead& request) {
  // The path first: finding the prefix that matched needs the headers as they came.
  if (rule.rewrite.path.kind != snapshot::PathModifier::Kind::None)
    request.target = modifiedTarget(rule, rule.rewrite.path, request);
  if (!rule.requestHeaders.empty()) applyHeaderModifier(rule.requestHeaders, request.headers);
  if (!rule.rewrite.hostname.empty()) {
    snapshot::HeaderModifier host;
    host.set.emplace_back("host", rule.rewrite.hostname);
    applyHeaderModifier(host, request.headers);
  }
}

RouteResult route(const snapshot::Snapshot& snap, const snapshot::Vpc* source, uint16_t port,
                  const RequestHead& request) {
  RouteResult result;
  result.service = snap.serviceByHost(request.host);
  if (!result.service) return result;
  result.network = source ? source->networkFor(*result.service) : nullptr;
  if (!result.network) {
    result.service = nullptr;
    result.unreachable = true;
    return result;
  }
  result.listener = result.service->listenerOnPort(port);
  if (!result.listener) {
    result.service = nullptr;
    return result;
  }
  result.kind = RouteResult::Kind::Action;
  std::string lowerPath;
  if (!result.listener->rules.empty()) lowerPath = toLower(request.path());
  for (const auto& rule : result.listener->rules) {
    if (matches(rule, request, lowerPath)) {
      result.rule = &rule;
      result.action = &rule.action;
      return result;
    }
  }
  result.action = &result.listener->defaultAction;
  return result;
}

namespace {

// Whether a target group can take a request without failing open. Stops at the first usable target,
// so the common case costs one look.
bool hasHealthyTarget(const snapshot::TargetGroup& group) {
  for (const auto& t : group.targets) {
    if (t.draining || !t.resolvable()) continue;
    if (!group.healthCheck.enabled || t.health->healthy.load(std::memory_order_relaxed)) return true;
  }
  return false;
}

// One step of smooth weighted round robin over the groups `eligible` admits.
template <typename Eligible>
size_t smoothWeightedPick(const std::vector<snapshot::WeightedTargetGroup>& groups, std::vector<int>& current,
                          Eligible eligible) {
  if (current.size() != groups.size()) current.assign(groups.size(), 0);
  size_t best = groups.size();
  int total = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    if (!eligible(i)) continue;
    current[i] += groups[i].weight;
    total += groups[i].weight;
    if (best == groups.size() || current[i] > current[best]) best = i;
  }
  if (best != groups.size()) current[best] -= total;
  return best;
}

}  // namespace

void RouterState::snapshotChanged() {
  ++epoch_;
  // Replaced objects leave their state behind. Sweep only once it has piled up: a quiet service's rotation
  // (a canary getting a request a minute) is kept however many snapshots go by.
  if (rotations_.size() + cursors_.size() <= sweepAbove_) return;
  auto stale = [this](const auto& entry) { return entry.second.usedIn + kIdleSnapshots < epoch_; };
  std::erase_if(rotations_, stale);
  std::erase_if(cursors_, stale);
  sweepAbove_ = std::max<size_t>(kMinSweepAbove, 2 * (rotations_.size() + cursors_.size()));
}

const snapshot::WeightedTargetGroup* RouterState::pickTargetGroup(const snapshot::Action& action) {
  const auto& groups = action.targetGroups;
  if (groups.empty()) return nullptr;
  if (groups.size() == 1) return &groups[0];
  Rotation& rotation = rotations_[action.serial];
  rotation.usedIn = epoch_;
  size_t best = smoothWeightedPick(groups, rotation.weights, [](size_t) { return true; });
  if (!groups[best].group || hasHealthyTarget(*groups[best].group)) return &groups[best];
  // The picked group has no healthy target: move the request to the groups that do, if any.
  bool healthy[16] = {};  // an action forwards to at most 10 groups
  bool any = false;
  for (size_t i = 0; i < groups.size() && i < std::size(healthy); ++i) {
    healthy[i] = groups[i].group && hasHealthyTarget(*groups[i].group);
    any = any || healthy[i];
  }
  if (!any) return &groups[best];
  size_t failover = smoothWeightedPick(groups, rotation.failoverWeights,
                                       [&](size_t i) { return i < std::size(healthy) && healthy[i]; });
  return &groups[failover];
}

const snapshot::Target* RouterState::pickTarget(const snapshot::TargetGroup& group, const snapshot::Target* avoid) {
  const auto& targets = group.targets;
  if (targets.empty()) return nullptr;
  Cursor& entry = cursors_[group.serial];
  entry.usedIn = epoch_;
  size_t& cursor = entry.next;
  const snapshot::Target* fallback = nullptr;
  size_t fallbackAt = 0;
  for (size_t n = 0; n < targets.size(); ++n) {
    size_t i = (cursor + n) % targets.size();
    const auto& t = targets[i];
    if (t.draining || !t.resolvable() || &t == avoid) continue;
    if (t.health->healthy.load(std::memory_order_relaxed) || !group.healthCheck.enabled) {
      cursor = i + 1;
      return &t;
    }
    if (!fallback) fallback = &t, fallbackAt = i;
  }
  // No healthy target: fail open over the rest (https://docs.aws.amazon.com/vpc-lattice/latest/ug/target-groups.html).
  if (fallback) cursor = fallbackAt + 1;
  return fallback;
}

}  // namespace trellis::proxy
