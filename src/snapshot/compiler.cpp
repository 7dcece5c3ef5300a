#include "snapshot/compiler.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/strings.h"

namespace trellis::snapshot {
namespace {

using nlohmann::json;

std::string str(const json& j, const char* key, std::string fallback = {}) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

int integer(const json& j, const char* key, int fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int>() : fallback;
}

bool boolean(const json& j, const char* key, bool fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

// Statuses whose resources carry no traffic.
bool inactive(const json& doc) {
  std::string status = str(doc, "status");
  return status == "DELETE_IN_PROGRESS" || status == "CREATE_FAILED" || status == "DELETE_FAILED" ||
         status == "FAILED";
}

// Target groups are left unresolved (group null): each snapshot points them at its own.
Action compileAction(const json& j) {
  Action action;
  if (auto fixed = j.find("fixedResponse"); fixed != j.end() && fixed->is_object()) {
    action.kind = Action::Kind::FixedResponse;
    action.statusCode = integer(*fixed, "statusCode", 404);
    return action;
  }
  action.kind = Action::Kind::Forward;
  auto forward = j.find("forward");
  if (forward == j.end() || !forward->is_object() || !forward->contains("targetGroups") ||
      !(*forward)["targetGroups"].is_array()) {
    throw std::runtime_error("action is neither forward nor fixedResponse");
  }
  for (const auto& entry : (*forward)["targetGroups"]) {
    WeightedTargetGroup weighted;
    weighted.id = str(entry, "targetGroupIdentifier");
    weighted.weight = integer(entry, "weight", 100);
    if (weighted.weight <= 0) continue;  // weight 0 receives nothing
    action.totalWeight += weighted.weight;
    action.targetGroups.push_back(std::move(weighted));
  }
  return action;
}

HttpMatch compileMatch(const json& j) {
  HttpMatch match;
  auto http = j.find("httpMatch");
  if (http == j.end() || !http->is_object()) return match;
  match.method = str(*http, "method");
  if (auto path = http->find("pathMatch"); path != http->end() && path->is_object()) {
    match.pathCaseSensitive = boolean(*path, "caseSensitive", false);
    const json& m = (*path)["match"];
    if (m.contains("exact")) {
      match.pathKind = HttpMatch::PathKind::Exact;
      match.path = str(m, "exact");
    } else if (m.contains("prefix")) {
      match.pathKind = HttpMatch::PathKind::Prefix;
      match.path = str(m, "prefix");
    }
    if (!match.pathCaseSensitive) match.path = toLower(match.path);
  }
  if (auto headers = http->find("headerMatches"); headers != http->end() && headers->is_array()) {
    for (const auto& h : *headers) {
      HeaderMatch header;
      header.name = toLower(str(h, "name"));
      header.caseSensitive = boolean(h, "caseSensitive", false);
      const json& m = h.value("match", json::object());
      if (m.contains("exact")) {
        header.kind = HeaderMatch::Kind::Exact, header.value = str(m, "exact");
      } else if (m.contains("prefix")) {
        header.kind = HeaderMatch::Kind::Prefix, header.value = str(m, "prefix");
      } else if (m.contains("contains")) {
        header.kind = HeaderMatch::Kind::Contains, header.value = str(m, "contains");
      } else {
        throw std::runtime_error("header match without exact/prefix/contains");
      }
      if (!header.caseSensitive) header.value = toLower(header.value);
      match.headers.push_back(std::move(header));
    }
  }
  return match;
}

HeaderModifier compileHeaderModifier(const json& j) {
  HeaderModifier out;
  for (const auto& h : j.value("set", json::array())) out.set.emplace_back(toLower(str(h, "name")), str(h, "value"));
  for (const auto& h : j.value("add", json::array())) out.add.emplace_back(toLower(str(h, "name")), str(h, "value"));
  for (const auto& name : j.value("remove", json::array()))
    if (name.is_string()) out.remove.push_back(toLower(name.get<std::string>()));
  return out;
}

PathModifier compilePathModifier(const json& j) {
  PathModifier out;
  if (j.contains("replaceFullPath"))
    out.kind = PathModifier::Kind::ReplaceFullPath, out.value = str(j, "replaceFullPath");
  else if (j.contains("replacePrefixMatch"))
    out.kind = PathModifier::Kind::ReplacePrefixMatch, out.value = str(j, "replacePrefixMatch");
  return out;
}

// A rule's `trellis` extensions (the API has validated the document).
void compileRuleExtensions(const json& ext, Rule& rule) {
  if (!ext.is_object()) return;
  rule.requestHeaders = compileHeaderModifier(ext.value("requestHeaderModifier", json::object()));
  rule.responseHeaders = compileHeaderModifier(ext.value("responseHeaderModifier", json::object()));
  if (auto rewrite = ext.find("urlRewrite"); rewrite != ext.end() && rewrite->is_object()) {
    rule.rewrite.hostname = toLower(str(*rewrite, "hostname"));
    rule.rewrite.path = compilePathModifier(rewrite->value("path", json::object()));
  }
  if (auto redirect = ext.find("requestRedirect"); redirect != ext.end() && redirect->is_object()) {
    rule.redirect.enabled = true;
    rule.redirect.scheme = str(*redirect, "scheme");
    rule.redirect.hostname = toLower(str(*redirect, "hostname"));
    rule.redirect.path = compilePathModifier(redirect->value("path", json::object()));
    rule.redirect.port = static_cast<uint16_t>(integer(*redirect, "port", 0));
    rule.redirect.statusCode = static_cast<int>(integer(*redirect, "statusCode", 302));
  }
  if (auto timeouts = ext.find("timeouts"); timeouts != ext.end() && timeouts->is_object()) {
    rule.requestTimeoutMs = static_cast<int>(integer(*timeouts, "requestMs", 0));
    rule.backendTimeoutMs = static_cast<int>(integer(*timeouts, "backendRequestMs", 0));
  }
  if (auto retry = ext.find("retry"); retry != ext.end() && retry->is_object()) {
    rule.retry.attempts = static_cast<int>(integer(*retry, "attempts", 0));
    rule.retry.backoffMs = static_cast<int>(integer(*retry, "backoffMs", 0));
    for (const auto& code : retry->value("statusCodes", json::array()))
      if (code.is_number_integer()) rule.retry.statusCodes.push_back(code.get<int>());
  }
  for (const auto& m : ext.value("matches", json::array()))
    rule.alternatives.push_back(compileMatch(json{{"httpMatch", m}}));
  for (const auto& q : ext.value("queryMatches", json::array())) {
    QueryMatch query;
    query.name = str(q, "name");
    if (q.contains("exact"))
      query.kind = QueryMatch::Kind::Exact, query.value = str(q, "exact");
    else if (q.contains("prefix"))
      query.kind = QueryMatch::Kind::Prefix, query.value = str(q, "prefix");
    else if (boolean(q, "present", false))
      query.kind = QueryMatch::Kind::Present;
    else
      throw std::runtime_error("query match without exact/prefix/present");
    rule.queries.push_back(std::move(query));
  }
}

HealthCheck compileHealthCheck(const json& config) {
  HealthCheck check;
  std::string protocolVersion = str(config, "protocolVersion", "HTTP1");
  std::string protocol = str(config, "protocol", "HTTP");
  // Spec 5.5: on by default for HTTP1, off for HTTP2 and TCP target groups.
  check.enabled = protocolVersion == "HTTP1" && protocol != "TCP";
  // The API stores the check's own version; HTTP2 and GRPC groups default to HTTP2 checks.
  check.protocolVersion = protocolVersion == "HTTP1" ? "HTTP1" : "HTTP2";
  auto hc = config.find("healthCheck");
  if (hc == config.end() || !hc->is_object()) return check;
  check.enabled = boolean(*hc, "enabled", check.enabled);
  check.protocol = str(*hc, "protocol", "HTTP");
  check.protocolVersion = str(*hc, "protocolVersion", check.protocolVersion);
  check.port = static_cast<uint16_t>(integer(*hc, "port", 0));
  check.path = str(*hc, "path", "/");
  if (check.path.empty()) check.path = "/";
  // 0 means "reset to default" (spec 5.5).
  auto orDefault = [&](const char* key, int fallback) {
    int v = integer(*hc, key, 0);
    return v > 0 ? v : fallback;
  };
  check.intervalSeconds = orDefault("healthCheckIntervalSeconds", 30);
  check.timeoutSeconds = orDefault("healthCheckTimeoutSeconds", 5);
  check.healthyThreshold = orDefault("healthyThresholdCount", 5);
  check.unhealthyThreshold = orDefault("unhealthyThresholdCount", 2);
  if (auto matcher = hc->find("matcher"); matcher != hc->end() && matcher->is_object()) {
    auto ranges = parseHttpCodeMatcher(str(*matcher, "httpCode", "200"));
    if (!ranges.empty()) check.matcher = std::move(ranges);
  }
  return check;
}

// The first `length` bits of `a` (the rest zero).
Address masked(const Address& a, int length) {
  auto keep = [](uint64_t word, int bits) {
    if (bits <= 0) return uint64_t{0};
    return bits >= 64 ? word : word & ~(~uint64_t{0} >> bits);
  };
  return Address{keep(a.high, length), keep(a.low, length - 64), a.v4};
}

uint64_t bigEndian64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}

// An auth policy record's compiled policy; null (with a warning) when it does not parse, so its layer denies.
AuthPolicyPtr compileAuthPolicy(const json& doc) {
  std::string text = str(doc, "policy");
  auto parsed = auth::parsePolicy(text, auth::PolicyKind::Resource);
  if (auto* error = std::get_if<auth::PolicyError>(&parsed)) {
    logWarn("snapshot: auth policy of ", str(doc, "id"), " does not parse (its AWS_IAM layer denies): ", error->message);
    return nullptr;
  }
  return std::make_shared<const auth::Policy>(std::get<auth::Policy>(std::move(parsed)));
}

// Header values come from the config: no line breaks may reach the wire.
std::string headerSafe(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c != '\r' && c != '\n' && c != '\0') out += c;
  }
  return out;
}

// The x-amzn-lattice-identity-tags form: ';' in a key or value escaped as "\;".
std::string tagEscaped(std::string_view value) {
  std::string out;
  for (char c : headerSafe(value)) {
    if (c == ';') out += '\\';
    out += c;
  }
  return out;
}

// Spec 5.7: what targets learn about a caller whose SigV4 signature checked out.
std::string identityHeaders(const model::Identity& identity) {
  std::string_view arn = identity.arn;
  // A role session's ARN ends in the session name: arn:aws:sts::111122223333:assumed-role/role/session.
  std::string_view session;
  if (arn.find(":assumed-role/") != std::string_view::npos) session = arn.substr(arn.rfind('/') + 1);
  std::string paths;
  for (const auto& path : identity.orgPaths) paths += (paths.empty() ? "" : ",") + path;
  std::string out = "x-amzn-lattice-identity: Principal=" + headerSafe(arn) +
                    "; PrincipalOrgID=" + headerSafe(identity.orgId);
  if (!paths.empty()) out += "; PrincipalOrgPaths=" + headerSafe(paths);
  out += "; SessionName=" + headerSafe(session) + "; Type=AWS_IAM\r\n";
  out += "x-amzn-lattice-identity-tags: principal=" + tagEscaped(arn) + ";principalorgid=" + tagEscaped(identity.orgId);
  for (const auto& path : identity.orgPaths) out += ";principalorgpath=" + tagEscaped(path);
  size_t tags = 0;
  for (const auto& [key, value] : identity.tags) {
    if (++tags > 99) break;  // Lattice passes at most 99
    out += ";" + tagEscaped(key) + "=" + tagEscaped(value);
  }
  out += "\r\n";
  return out;
}

// A stand-in for an identity policy that does not parse: allows nothing, so the identity layer denies.
const auth::Policy& allowsNothing() {
  static const auth::Policy policy = std::get<auth::Policy>(auth::parsePolicy(
      R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"trellis:Nothing","Resource":"*"}]})",
      auth::PolicyKind::Identity));
  return policy;
}

Address fromV4(const uint8_t* bytes) {
  uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, bytes[0], bytes[1], bytes[2], bytes[3]};
  return Address{bigEndian64(mapped), bigEndian64(mapped + 8), true};
}

}  // namespace

bool HealthCheck::matches(int status) const {
  for (auto [low, high] : matcher) {
    if (status >= low && status <= high) return true;
  }
  return false;
}

const Listener* Service::listenerOnPort(uint16_t port) const {
  for (const auto& listener : listeners) {
    if (listener.port == port) return &listener;
  }
  return nullptr;
}

const Service* Snapshot::serviceByHost(std::string_view host) const {
  auto it = servicesByHost.find(std::string(host));
  return it == servicesByHost.end() ? nullptr : it->second;
}

bool addressOf(const sockaddr* address, Address& out) {
  if (address->sa_family == AF_INET) {
    out = fromV4(reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(address)->sin_addr));
    return true;
  }
  if (address->sa_family != AF_INET6) return false;
  const uint8_t* bytes = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr.s6_addr;
  out = Address{bigEndian64(bytes), bigEndian64(bytes + 8), false};
  out.v4 = out.high == 0 && (out.low >> 32) == 0xffff;  // IPv4-mapped: a dual-stack socket's IPv4 peer
  return true;
}

bool Prefix::parse(std::string_view cidr, Prefix& out) {
  auto slash = cidr.find('/');
  std::string ip(cidr.substr(0, slash));
  uint8_t bytes[16];
  int bits = 0;
  if (inet_pton(AF_INET, ip.c_str(), bytes) == 1) {
    out.network = fromV4(bytes);
    bits = 32;
  } else if (inet_pton(AF_INET6, ip.c_str(), bytes) == 1) {
    out.network = Address{bigEndian64(bytes), bigEndian64(bytes + 8), false};
    bits = 128;
  } else {
    return false;
  }
  int length = bits;
  if (slash != std::string_view::npos) {
    std::string_view text = cidr.substr(slash + 1);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || length < 0 || length > bits) {
      return false;
    }
  }
  out.length = length + (128 - bits);
  out.network = masked(out.network, out.length);
  return true;
}

bool Prefix::contains(const Address& address) const {
  return address.v4 == network.v4 && masked(address, length) == network;
}

bool Vpc::admits(const Address& address, uint16_t port) const {
  if (!securityGroupsApply) return true;
  for (const auto& allowance : ingress) {
    if (port >= allowance.fromPort && port <= allowance.toPort && allowance.source.contains(address)) return true;
  }
  return false;
}

void VpcTable::add(const Prefix& prefix, const Vpc* vpc) {
  auto level = std::find_if(levels_.begin(), levels_.end(), [&](const Level& l) { return l.length <= prefix.length; });
  if (level == levels_.end() || level->length != prefix.length) level = levels_.insert(level, Level{prefix.length, {}});
  level->networks.emplace(prefix.network, vpc);
}

const Vpc* VpcTable::find(const Address& address) const {
  for (const auto& level : levels_) {
    auto it = level.networks.find(masked(address, level.length));
    if (it != level.networks.end()) return it->second;
  }
  return nullptr;
}

const Vpc* Snapshot::sourceVpc(const Address& address) const {
  const Vpc* vpc = vpcTable.find(address);
  return vpc ? vpc : defaultVpc;
}

const Vpc* Snapshot::sourceVpc(const sockaddr* address) const {
  Address a;
  return addressOf(address, a) ? sourceVpc(a) : nullptr;
}

std::string Snapshot::vpcOf(const sockaddr* address) const {
  const Vpc* vpc = sourceVpc(address);
  return vpc ? vpc->id : std::string();
}

const ServiceNetwork* Snapshot::networkFor(const Service& service, std::string_view vpcId) const {
  auto it = vpcs.find(std::string(vpcId));
  return it == vpcs.end() ? nullptr : it->second.networkFor(service);
}

std::shared_ptr<HealthCell> HealthCells::cell(const std::string& targetGroupId, const std::string& targetId,
                                              uint16_t port) {
  std::string key = targetGroupId + '|' + targetId + '|' + std::to_string(port);
  std::lock_guard lock(mutex_);
  if (cells_.size() >= sweepAt_) {
    std::erase_if(cells_, [](const auto& entry) { return entry.second.expired(); });
    sweepAt_ = std::max<size_t>(1024, cells_.size() * 2);
  }
  auto& weak = cells_[key];
  auto cell = weak.lock();
  if (!cell) {
    cell = std::make_shared<HealthCell>();
    weak = cell;
  }
  return cell;
}

std::vector<std::pair<int, int>> parseHttpCodeMatcher(std::string_view text) {
  std::vector<std::pair<int, int>> ranges;
  for (auto part : split(text, ',')) {
    part = trim(part);
    auto dash = part.find('-');
    auto number = [](std::string_view s, int& out) {
      if (s.empty() || s.size() > 3) return false;
      out = 0;
      for (char c : s) {
        if (c < '0' || c > '9') return false;
        out = out * 10 + (c - '0');
      }
      return out >= 100 && out <= 599;
    };
    int low = 0, high = 0;
    if (dash == std::string_view::npos) {
      if (!number(part, low)) return {};
      high = low;
    } else if (!number(part.substr(0, dash), low) || !number(part.substr(dash + 1), high) || high < low) {
      return {};
    }
    ranges.emplace_back(low, high);
  }
  return ranges;
}

bool makeSocketAddress(const std::string& ip, uint16_t port, SocketAddress& out) {
  out = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.length = sizeof(sockaddr_in);
    return true;
  }
  out = {};
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out.length = sizeof(sockaddr_in6);
    return true;
  }
  out = {};
  return false;
}

namespace {

// A record parsed for compiling; discarded (with a warning) when it is not a JSON object.
json parseRecord(const store::Record& record) {
  json doc = json::parse(record.value, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    logWarn("snapshot: skipping unparsable ", record.kind, " record ", record.id);
    return json(json::value_t::discarded);
  }
  // Documents name their own id; tags are a map of tag keys and must not grow one.
  if (record.kind != "tags" && !doc.contains("id")) doc["id"] = record.id;
  return doc;
}

// What each record compiles to on its own, before any other record is looked at: SnapshotCompiler keeps
// it for as long as the record's modRevision stays. Links between records (the target groups of actions,
// the listeners and networks of services) are made per snapshot.
struct CompiledListener {
  std::string serviceId;
  Listener listener;  // no rules; defaultAction's groups unresolved
};

struct CompiledRule {
  std::string listenerId;
  Rule rule;  // action's groups unresolved
};

struct CompiledServiceAssociation {
  std::string serviceId, serviceNetworkId;
};

using TargetGroupPtr = std::shared_ptr<const TargetGroup>;

TargetGroupPtr compileTargetGroup(const json& doc, const std::unordered_map<std::string, std::string>& instances,
                                  HealthCells* cells) {
  auto group = std::make_shared<TargetGroup>();
  group->id = str(doc, "id");
  group->arn = str(doc, "arn");
  group->name = str(doc, "name");
  group->type = str(doc, "type", "IP");
  const json& cfg = doc.value("config", json::object());
  group->port = static_cast<uint16_t>(integer(cfg, "port", 0));
  group->protocol = str(cfg, "protocol", "HTTP");
  group->protocolVersion = str(cfg, "protocolVersion", "HTTP1");
  group->vpcId = str(cfg, "vpcIdentifier");
  group->healthCheck = compileHealthCheck(cfg);
  if (group->type == "LAMBDA" || group->type == "ALB") group->healthCheck.enabled = false;
  std::vector<Target> targets;
  for (const auto& t : doc.value("targets", json::array())) {
    Target target;
    target.id = str(t, "id");
    target.port = static_cast<uint16_t>(integer(t, "port", group->port));
    target.draining = t.contains("drainingSince") && !t["drainingSince"].is_null();
    if (group->type == "INSTANCE") {
      auto instance = instances.find(target.id);
      if (instance != instances.end()) target.address = instance->second;
    } else {
      target.address = target.id;
    }
    if (!target.address.empty() && makeSocketAddress(target.address, target.port, target.socketAddress)) {
      bool v6 = target.socketAddress.storage.ss_family == AF_INET6;
      target.ipPort = (v6 ? "[" + target.address + "]" : target.address) + ":" + std::to_string(target.port);
    }
    target.health = cells ? cells->cell(group->id, target.id, target.port) : std::make_shared<HealthCell>();
    targets.push_back(std::move(target));
  }
  group->targets = std::move(targets);
  return group;
}

ServiceNetwork compileServiceNetwork(const json& doc) {
  ServiceNetwork network;
  network.id = str(doc, "id");
  network.arn = str(doc, "arn");
  network.name = str(doc, "name");
  network.authType = str(doc, "authType", "NONE");
  network.usesIam = network.authType == "AWS_IAM";
  return network;
}

// Everything of a service but its tags (their own records), listeners, networks, policy and logs.
std::optional<Service> compileService(const json& doc) {
  if (inactive(doc)) return std::nullopt;
  Service service;
  service.id = str(doc, "id");
  service.arn = str(doc, "arn");
  service.name = str(doc, "name");
  service.authType = str(doc, "authType", "NONE");
  service.usesIam = service.authType == "AWS_IAM";
  int idle = integer(doc, "idleTimeoutSeconds", 0);
  service.idleTimeoutSeconds = idle > 0 ? idle : 60;
  if (auto dns = doc.find("dnsEntry"); dns != doc.end() && dns->is_object()) {
    std::string name = toLower(str(*dns, "domainName"));
    if (!name.empty()) service.hostNames.push_back(name);
    service.generatedName = name;
  }
  std::string custom = toLower(str(doc, "customDomainName"));
  if (!custom.empty()) service.hostNames.push_back(custom);
  service.customDomainName = custom;
  service.certificateArn = str(doc, "certificateArn");
  return service;
}

std::shared_ptr<const CompiledListener> compileListener(const json& doc) {
  auto out = std::make_shared<CompiledListener>();
  out->serviceId = str(doc, "serviceId");
  Listener& listener = out->listener;
  listener.id = str(doc, "id");
  listener.arn = str(doc, "arn");
  listener.name = str(doc, "name");
  listener.protocol = str(doc, "protocol", "HTTP");
  listener.port = static_cast<uint16_t>(integer(doc, "port", 80));
  listener.defaultAction = compileAction(doc.value("defaultAction", json::object()));
  return out;
}

// nullopt for the listener's default rule: the listener's defaultAction stands for it.
std::optional<std::shared_ptr<const CompiledRule>> compileRule(const json& doc) {
  if (boolean(doc, "isDefault", false)) return std::nullopt;
  auto out = std::make_shared<CompiledRule>();
  out->listenerId = str(doc, "listenerId");
  Rule& rule = out->rule;
  rule.id = str(doc, "id");
  rule.arn = str(doc, "arn");
  rule.name = str(doc, "name");
  rule.priority = integer(doc, "priority", 0);
  rule.match = compileMatch(doc.value("match", json::object()));
  compileRuleExtensions(doc.value("trellis", json::object()), rule);
  rule.action = compileAction(doc.value("action", json::object()));
  return out;
}

std::optional<CompiledServiceAssociation> compileServiceAssociation(const json& doc) {
  if (inactive(doc)) return std::nullopt;
  return CompiledServiceAssociation{str(doc, "serviceId"), str(doc, "serviceNetworkId")};
}

// NAME of arn:PARTITION:firehose:REGION:ACCOUNT:deliverystream/NAME; empty for other ARNs.
std::string firehoseStreamName(std::string_view arn) {
  auto service = arn.find(":firehose:");
  auto stream = arn.find(":deliverystream/");
  if (arn.rfind("arn:", 0) != 0 || service == std::string_view::npos || stream == std::string_view::npos) return {};
  return std::string(arn.substr(stream + 16));
}

bool sameInstances(const std::vector<model::Instance>& a, const std::vector<model::Instance>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const model::Instance& x, const model::Instance& y) {
    return x.id == y.id && x.vpcId == y.vpcId && x.address == y.address;
  });
}

}  // namespace

// Per kind: record id → what its current revision compiled to (nullopt: skipped, already logged).
template <class T>
struct Memo {
  struct Entry {
    int64_t modRevision = 0;
    uint64_t pass = 0;  // the last compile that saw the record
    std::optional<T> value;
  };
  std::unordered_map<std::string, Entry> entries;
  uint64_t seenPass = 0;
  size_t seen = 0;  // entries pass `seenPass` has looked at

  // The compiled value of `record`, compiling it only when its revision is new to the cache. Records
  // without a modRevision (hand-made contents) are compiled every time.
  template <class Compile>
  const T* get(const store::Record& record, uint64_t pass, Compile&& compile) {
    Entry& entry = entries[record.id];
    if (seenPass != pass) seenPass = pass, seen = 0;
    if (entry.pass != pass) ++seen;
    if (entry.pass == 0 || record.modRevision == 0 || entry.modRevision != record.modRevision) {
      entry.value.reset();
      entry.modRevision = record.modRevision;
      json doc = parseRecord(record);
      if (!doc.is_discarded()) {
        try {
          entry.value = compile(doc);
        } catch (const std::exception& e) {
          logWarn("snapshot: skipping ", record.kind, " ", record.id, ": ", e.what());
        }
      }
    }
    entry.pass = pass;
    return entry.value ? &*entry.value : nullptr;
  }
  // Forgets records this pass did not see (deleted); walks the entries only when there are some.
  void sweep(uint64_t pass) {
    if (seenPass != pass || seen != entries.size())
      std::erase_if(entries, [pass](const auto& e) { return e.second.pass != pass; });
  }
};

// A service's listeners with their rules, as last built, and what they were built from: the compiled
// listener and rule records and the target groups their actions resolved to, in order. The next
// snapshot reuses them when it would build them from exactly the same objects.
struct ServiceListeners {
  uint64_t pass = 0;
  // Owned, so no address here is reused by a newer object while it is compared against.
  std::vector<std::shared_ptr<const void>> inputs;
  SharedVector<Listener> listeners;
};

struct SnapshotCompiler::Cache {
  uint64_t pass = 0;
  std::vector<model::Instance> instances;  // what the cached target groups resolved INSTANCE targets with
  Memo<TargetGroupPtr> targetGroups;
  Memo<ServiceNetwork> serviceNetworks;
  Memo<Service> services;
  Memo<std::shared_ptr<const CompiledListener>> listeners;
  Memo<std::shared_ptr<const CompiledRule>> rules;
  Memo<CompiledServiceAssociation> serviceAssociations;
  Memo<std::pair<std::string, AuthPolicyPtr>> authPolicies;  // (resource id, policy)
  // Kinds compiled per snapshot (they depend on the config, or there are few): only parsed once.
  Memo<json> tags, vpcAssociations, accessLogSubscriptions;
  std::unordered_map<std::string, ServiceListeners> serviceListeners;  // by service id
};

SnapshotCompiler::SnapshotCompiler(HealthCells* cells) : cells_(cells), cache_(std::make_unique<Cache>()) {}
SnapshotCompiler::~SnapshotCompiler() = default;

std::shared_ptr<const Snapshot> compileSnapshot(const store::StoreContents& contents, const model::Config& config,
                                                HealthCells* cells) {
  return SnapshotCompiler(cells).compile(contents, config);
}

std::shared_ptr<const Snapshot> SnapshotCompiler::compile(const store::StoreContents& contents,
                                                          const model::Config& config) {
  Cache& cache = *cache_;
  uint64_t pass = ++cache.pass;
  if (!sameInstances(cache.instances, config.instances)) {
    cache.targetGroups.entries.clear();
    cache.instances = config.instances;
  }

  auto snap = std::make_shared<Snapshot>();
  snap->revision = contents.revision;
  snap->region = config.region;
  snap->accountId = config.accountId;
  snap->partition = config.partition;
  snap->connectionLifetimeMs = int64_t{config.dataPlane.connectionLifetimeSeconds} * 1000;
  snap->verifyTargetCertificates = config.dataPlane.verifyTargetCertificates;
  snap->targetCaFile = config.dataPlane.targetCaFile;

  // Records by kind, in store order (which decides ties: rules of equal priority, host name clashes).
  std::unordered_map<std::string_view, std::vector<const store::Record*>> byKind;
  for (const auto& record : contents.records) {
    if (record.kind.rfind("index.", 0) == 0 || record.kind == "clienttoken") continue;
    byKind[record.kind].push_back(&record);
  }
  auto records = [&](std::string_view kind) -> const std::vector<const store::Record*>& {
    static const std::vector<const store::Record*> none;
    auto it = byKind.find(kind);
    return it == byKind.end() ? none : it->second;
  };
  auto parsed = [&](Memo<json>& memo, const store::Record& record) {
    return memo.get(record, pass, [](const json& doc) { return doc; });
  };

  std::unordered_map<std::string_view, const json*> tagsByArn;
  for (const auto* record : records("tags")) {
    if (const json* tags = parsed(cache.tags, *record)) tagsByArn[record->id] = tags;
  }

  std::unordered_map<std::string, std::string> instances;
  for (const auto& instance : config.instances) instances[instance.id] = instance.address;
  for (const auto& configured : config.vpcs) {
    Vpc& vpc = snap->vpcs[configured.id];
    vpc.id = configured.id;
    vpc.arn = "arn:" + config.partition + ":ec2:" + config.region + ":" + config.accountId + ":vpc/" + vpc.id;
    for (const auto& cidr : configured.cidrs) {
      Prefix prefix;
      if (!Prefix::parse(cidr, prefix)) {
        logWarn("snapshot: VPC ", vpc.id, ": ignoring bad CIDR ", cidr);
        continue;
      }
      vpc.cidrs.push_back(prefix);
      snap->vpcTable.add(prefix, &vpc);
    }
  }
  if (!config.defaultVpc.empty()) {
    auto it = snap->vpcs.find(config.defaultVpc);
    if (it != snap->vpcs.end()) snap->defaultVpc = &it->second;
  }

  // Target groups: the shared compiled ones that actions point at, and the snapshot's own copies.
  struct Group {
    const TargetGroupPtr* shared;
    TargetGroup* copy;
  };
  std::unordered_map<std::string_view, Group> groupsById;
  groupsById.reserve(records("targetgroup").size());
  snap->targetGroups.reserve(records("targetgroup").size());
  for (const auto* record : records("targetgroup")) {
    const TargetGroupPtr* group = cache.targetGroups.get(
        *record, pass, [&](const json& doc) { return compileTargetGroup(doc, instances, cells_); });
    if (!group) continue;
    auto [copy, inserted] = snap->targetGroups.emplace((*group)->id, **group);
    if (inserted) groupsById.emplace((*group)->id, Group{group, &copy->second});
  }

  for (const auto* record : records("servicenetwork")) {
    const ServiceNetwork* network = cache.serviceNetworks.get(*record, pass, compileServiceNetwork);
    if (network) snap->serviceNetworks.emplace(network->id, *network);
  }

  snap->services.reserve(records("service").size());
  for (const auto* record : records("service")) {
    const Service* compiled = cache.services.get(*record, pass, compileService);
    if (!compiled) continue;
    Service& service = snap->services.emplace(compiled->id, *compiled).first->second;
    if (auto tags = tagsByArn.find(service.arn); tags != tagsByArn.end())
      for (const auto& [key, value] : tags->second->items())
        if (value.is_string()) service.tags.emplace_back(key, value.get<std::string>());
  }

  // Listeners by service and rules by listener, in store order: sorted (stably) by owner id, so a service
  // finds its listeners, and a listener its rules, with one binary search and no per-owner allocation.
  using ListenerPtr = std::shared_ptr<const CompiledListener>;
  using RulePtr = std::shared_ptr<const CompiledRule>;
  std::vector<std::pair<std::string_view, const ListenerPtr*>> listenersOf;
  std::vector<std::pair<std::string_view, const RulePtr*>> rulesOf;
  listenersOf.reserve(records("listener").size());
  rulesOf.reserve(records("rule").size());
  for (const auto* record : records("listener")) {
    const ListenerPtr* compiled = cache.listeners.get(*record, pass, compileListener);
    if (compiled) listenersOf.emplace_back((*compiled)->serviceId, compiled);
  }
  for (const auto* record : records("rule")) {
    const RulePtr* compiled = cache.rules.get(*record, pass, compileRule);
    if (compiled) rulesOf.emplace_back((*compiled)->listenerId, compiled);
  }
  auto byOwner = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::stable_sort(listenersOf.begin(), listenersOf.end(), byOwner);
  std::stable_sort(rulesOf.begin(), rulesOf.end(), byOwner);
  auto ownedBy = [&](const auto& list, std::string_view owner) {
    return std::equal_range(list.begin(), list.end(), std::make_pair(owner, nullptr),
                            [](const auto& a, const auto& b) { return a.first < b.first; });
  };

  auto groupOf = [&](const std::string& id) -> const Group* {
    auto it = groupsById.find(id);
    return it == groupsById.end() ? nullptr : &it->second;
  };
  auto resolve = [&](Action& action) {
    for (auto& weighted : action.targetGroups) {
      const Group* group = groupOf(weighted.id);
      weighted.sharedGroup = group ? *group->shared : nullptr;
      weighted.group = weighted.sharedGroup.get();
    }
  };
  // A service's listeners are rebuilt only when a listener, rule or target group they come from changed.
  // Collecting the target groups an action names also marks them used.
  std::vector<std::shared_ptr<const void>> inputs;
  size_t builtSeen = 0;
  auto addActionInputs = [&](const Action& action) {
    for (const auto& weighted : action.targetGroups) {
      const Group* group = groupOf(weighted.id);
      if (group) group->copy->used = true;
      inputs.push_back(group ? *group->shared : nullptr);
    }
  };
  for (auto& [id, service] : snap->services) {
    auto [listenersBegin, listenersEnd] = ownedBy(listenersOf, id);
    if (listenersBegin == listenersEnd) continue;
    inputs.clear();
    for (auto listener = listenersBegin; listener != listenersEnd; ++listener) {
      inputs.push_back(*listener->second);
      addActionInputs((*listener->second)->listener.defaultAction);
      auto [rulesBegin, rulesEnd] = ownedBy(rulesOf, (*listener->second)->listener.id);
      for (auto rule = rulesBegin; rule != rulesEnd; ++rule) {
        inputs.push_back(*rule->second);
        addActionInputs((*rule->second)->rule.action);
      }
    }
    ServiceListeners& built = cache.serviceListeners[id];
    builtSeen += built.pass != pass;
    built.pass = pass;
    if (built.inputs != inputs) {
      std::vector<Listener> fresh;
      for (auto compiled = listenersBegin; compiled != listenersEnd; ++compiled) {
        Listener& listener = fresh.emplace_back((*compiled->second)->listener);
        resolve(listener.defaultAction);
        std::vector<Rule> rules;
        auto [rulesBegin, rulesEnd] = ownedBy(rulesOf, listener.id);
        for (auto rule = rulesBegin; rule != rulesEnd; ++rule) resolve(rules.emplace_back((*rule->second)->rule).action);
        std::stable_sort(rules.begin(), rules.end(),
                         [](const Rule& a, const Rule& b) { return a.priority < b.priority; });
        listener.rules = std::move(rules);
      }
      built.inputs = inputs;
      built.listeners = std::move(fresh);
    }
    service.listeners = built.listeners;
  }
  if (builtSeen != cache.serviceListeners.size())
    std::erase_if(cache.serviceListeners, [pass](const auto& e) { return e.second.pass != pass; });

  for (const auto* record : records("servicenetworkserviceassociation")) {
    const CompiledServiceAssociation* association =
        cache.serviceAssociations.get(*record, pass, compileServiceAssociation);
    if (!association) continue;
    auto service = snap->services.find(association->serviceId);
    auto network = snap->serviceNetworks.find(association->serviceNetworkId);
    if (service == snap->services.end() || network == snap->serviceNetworks.end()) continue;
    service->second.networks.push_back(&network->second);
  }

  // VPC associations: which networks a VPC's clients see, and through which security groups.
  std::unordered_map<const ServiceNetwork*, std::vector<Vpc*>> vpcsByNetwork;
  for (const auto* record : records("servicenetworkvpcassociation")) {
    const json* found = parsed(cache.vpcAssociations, *record);
    if (!found || inactive(*found)) continue;
    const json& doc = *found;
    auto vpc = snap->vpcs.find(str(doc, "vpcId"));
    auto network = snap->serviceNetworks.find(str(doc, "serviceNetworkId"));
    if (vpc == snap->vpcs.end() || network == snap->serviceNetworks.end()) continue;
    vpc->second.networks.push_back(&network->second);
    vpcsByNetwork[&network->second].push_back(&vpc->second);
    const json& groups = doc.value("securityGroupIds", json::array());
    if (!groups.is_array() || groups.empty()) continue;  // no security group: the whole VPC may connect
    vpc->second.securityGroupsApply = true;
    for (const auto& groupId : groups) {
      auto group = std::find_if(config.securityGroups.begin(), config.securityGroups.end(),
                                [&](const model::SecurityGroup& g) { return groupId.is_string() && g.id == groupId; });
      if (group == config.securityGroups.end()) {
        // Fails closed: the association meant to restrict, and nothing here says to whom.
        logWarn("snapshot: ", str(doc, "id"), " names security group ", groupId.dump(), " missing from the config");
        continue;
      }
      for (const auto& rule : group->ingress) {
        IngressAllowance allowance{{}, rule.fromPort, rule.toPort};
        if (Prefix::parse(rule.cidr, allowance.source)) vpc->second.ingress.push_back(allowance);
      }
    }
  }

  for (const auto* record : records("authpolicy")) {
    const auto* policy = cache.authPolicies.get(
        *record, pass, [](const json& doc) { return std::make_pair(str(doc, "id"), compileAuthPolicy(doc)); });
    if (!policy) continue;
    if (auto service = snap->services.find(policy->first); service != snap->services.end()) {
      service->second.authPolicy = policy->second;
    } else if (auto network = snap->serviceNetworks.find(policy->first); network != snap->serviceNetworks.end()) {
      network->second.authPolicy = policy->second;
    }
  }

  for (const auto& identity : config.identities) {
    Caller caller;
    caller.identity = identity;
    if (!identity.policy.empty()) {
      auto parsedPolicy = auth::parsePolicy(identity.policy, auth::PolicyKind::Identity);
      if (auto* error = std::get_if<auth::PolicyError>(&parsedPolicy)) {
        logWarn("snapshot: identity ", identity.arn, ": policy does not parse (denies everything): ", error->message);
        caller.policy = std::make_shared<const auth::Policy>(allowsNothing());
      } else {
        caller.policy = std::make_shared<const auth::Policy>(std::get<auth::Policy>(std::move(parsedPolicy)));
      }
    }
    caller.identityHeaders = identityHeaders(identity);
    if (!identity.tags.empty()) caller.tagsJson = json(identity.tags).dump(-1, ' ', false, json::error_handler_t::replace);
    snap->callers.emplace(identity.accessKeyId, std::move(caller));
  }

  for (const auto* record : records("accesslogsubscription")) {
    const json* found = parsed(cache.accessLogSubscriptions, *record);
    if (!found) continue;
    const json& doc = *found;
    AccessLogDestination destination{str(doc, "id"), str(doc, "destinationArn"), str(doc, "resourceId"), {}, {}};
    if (auto stream = firehoseStreamName(destination.destinationArn); !stream.empty()) {
      if (auto endpoint = config.accessLogs.firehose.find(stream); endpoint != config.accessLogs.firehose.end()) {
        destination.firehoseUrl = endpoint->second.url;
        destination.firehoseAccessKey = endpoint->second.accessKey;
      }
    }
    if (auto service = snap->services.find(destination.resourceId); service != snap->services.end()) {
      service->second.accessLogs.push_back(destination);
    } else if (auto network = snap->serviceNetworks.find(destination.resourceId);
               network != snap->serviceNetworks.end()) {
      if (str(doc, "serviceNetworkLogType", "SERVICE") == "SERVICE") network->second.accessLogs.push_back(destination);
    }
  }

  std::vector<uint16_t> ports;
  for (auto& [id, service] : snap->services) {
    for (const auto& listener : service.listeners) {
      if (listener.protocol == "HTTP") ports.push_back(listener.port);
      snap->listenerPorts.push_back(listener.port);
    }
    for (const auto* network : service.networks) {
      service.accessLogs.insert(service.accessLogs.end(), network->accessLogs.begin(), network->accessLogs.end());
      auto clients = vpcsByNetwork.find(network);
      if (clients == vpcsByNetwork.end()) continue;
      for (Vpc* vpc : clients->second) vpc->reachable.emplace(&service, network);
    }
    for (const auto& host : service.hostNames) {
      auto [it, inserted] = snap->servicesByHost.emplace(host, &service);
      if (!inserted) logWarn("snapshot: host name ", host, " claimed by ", it->second->id, " and ", service.id);
    }
  }
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  snap->httpListenerPorts = std::move(ports);
  std::sort(snap->listenerPorts.begin(), snap->listenerPorts.end());
  snap->listenerPorts.erase(std::unique(snap->listenerPorts.begin(), snap->listenerPorts.end()),
                            snap->listenerPorts.end());

  cache.targetGroups.sweep(pass);
  cache.serviceNetworks.sweep(pass);
  cache.services.sweep(pass);
  cache.listeners.sweep(pass);
  cache.rules.sweep(pass);
  cache.serviceAssociations.sweep(pass);
  cache.authPolicies.sweep(pass);
  cache.tags.sweep(pass);
  cache.vpcAssociations.sweep(pass);
  cache.accessLogSubscriptions.sweep(pass);
  return snap;
}

}  // namespace trellis::snapshot
