#include "compile/compiler.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

#include "auth/policy.h"
#include "common/log.h"
#include "common/strings.h"

namespace trellis::compile {
using namespace snapshot;  // what the compiler builds

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

// The data plane treats anything but these as plain HTTP and HTTP1; the API stores nothing else.
TargetProtocol parseTargetProtocol(const std::string& text) {
  if (text == "HTTPS") return TargetProtocol::Https;
  if (text == "TCP") return TargetProtocol::Tcp;
  return TargetProtocol::Http;
}

ProtocolVersion parseProtocolVersion(const std::string& text) {
  if (text == "HTTP2") return ProtocolVersion::Http2;
  if (text == "GRPC") return ProtocolVersion::Grpc;
  return ProtocolVersion::Http1;
}

// A listener of a protocol the API never stores would serve nothing: it does not compile, and is skipped.
ListenerProtocol parseListenerProtocol(const std::string& text) {
  if (text == "HTTP") return ListenerProtocol::Http;
  if (text == "HTTPS") return ListenerProtocol::Https;
  if (text == "TLS_PASSTHROUGH") return ListenerProtocol::TlsPassthrough;
  throw std::runtime_error("unknown listener protocol " + text);
}

// Target groups are left unresolved (group null): each snapshot points them at its own.
Action compileAction(const json& j) {
  Action action;
  action.serial = nextSerial();
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
    // Requests are matched by their normalized path (docs/request-paths.md): so are the rule's values.
    std::string normal;
    if (!normalizePath(match.path, EncodedSlashes::Keep, normal)) match.path = std::move(normal);
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
  // On by default for HTTP1, off for HTTP2 and TCP target groups
  // (https://docs.aws.amazon.com/vpc-lattice/latest/ug/target-group-health-checks.html).
  check.enabled = protocolVersion == "HTTP1" && protocol != "TCP";
  // The API stores the check's own version; HTTP2 and GRPC groups default to HTTP2 checks.
  check.protocolVersion = protocolVersion == "HTTP1" ? ProtocolVersion::Http1 : ProtocolVersion::Http2;
  auto hc = config.find("healthCheck");
  if (hc == config.end() || !hc->is_object()) return check;
  check.enabled = boolean(*hc, "enabled", check.enabled);
  check.protocol = parseTargetProtocol(str(*hc, "protocol", "HTTP"));
  if (auto version = hc->find("protocolVersion"); version != hc->end() && version->is_string())
    check.protocolVersion = parseProtocolVersion(version->get<std::string>());
  check.port = static_cast<uint16_t>(integer(*hc, "port", 0));
  check.path = str(*hc, "path", "/");
  if (check.path.empty()) check.path = "/";
  // 0 means "reset to default" (docs/architecture.md, "The life of a request (HTTP/1.1)").
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

// What targets learn about a caller whose SigV4 signature checked out: x-amzn-lattice-identity's value.
std::string identityHeader(const model::Identity& identity) {
  std::string_view arn = identity.arn;
  // A role session's ARN ends in the session name: arn:aws:sts::111122223333:assumed-role/role/session.
  std::string_view session;
  if (arn.find(":assumed-role/") != std::string_view::npos) session = arn.substr(arn.rfind('/') + 1);
  std::string paths;
  for (const auto& path : identity.orgPaths) paths += (paths.empty() ? "" : ",") + path;
  std::string out = "Principal=" + headerSafe(arn) + "; PrincipalOrgID=" + headerSafe(identity.orgId);
  if (!paths.empty()) out += "; PrincipalOrgPaths=" + headerSafe(paths);
  out += "; SessionName=" + headerSafe(session) + "; Type=AWS_IAM";
  return out;
}

// ... and x-amzn-lattice-identity-tags'.
std::string identityTagsHeader(const model::Identity& identity) {
  std::string_view arn = identity.arn;
  std::string out = "principal=" + tagEscaped(arn) + ";principalorgid=" + tagEscaped(identity.orgId);
  for (const auto& path : identity.orgPaths) out += ";principalorgpath=" + tagEscaped(path);
  size_t tags = 0;
  for (const auto& [key, value] : identity.tags) {
    if (++tags > 99) break;  // Lattice passes at most 99
    out += ";" + tagEscaped(key) + "=" + tagEscaped(value);
  }
  return out;
}

// A stand-in for an identity policy that does not parse: allows nothing, so the identity layer denies.
const auth::Policy& allowsNothing() {
  static const auth::Policy policy = std::get<auth::Policy>(auth::parsePolicy(
      R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"trellis:Nothing","Resource":"*"}]})",
      auth::PolicyKind::Identity));
  return policy;
}

}  // namespace

uint64_t nextSerial() {
  static std::atomic<uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
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
// the listeners and networks of services) are made when a service is built.
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

struct CompiledAccessLog {
  std::string resourceId;
  bool serviceLogs = true;  // a network's subscription with log type SERVICE (a service's always is)
  AccessLogDestination destination;  // without the config's Firehose endpoint
};

template <class T>
using Ptr = std::shared_ptr<const T>;

// What target groups take from the config: the addresses of INSTANCE and ALB targets, the Lambda endpoint.
struct ConfiguredTargets {
  std::unordered_map<std::string, std::string> addresses;  // instance id or ALB ARN → IP address
  std::shared_ptr<const LambdaEndpoint> lambda;            // null: no `lambda:` endpoint
};

// "host", "[v6]" or "name" of an http(s) URL → a socket address (a name is resolved now, on the builder
// thread, once per config).
bool resolveHost(std::string host, uint16_t port, SocketAddress& out) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (makeSocketAddress(host, port, out)) return true;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || !found) return false;
  char ip[INET6_ADDRSTRLEN] = {};
  const void* at = found->ai_family == AF_INET6
                       ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(found->ai_addr)->sin6_addr)
                       : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr);
  bool ok = inet_ntop(found->ai_family, at, ip, sizeof ip) && makeSocketAddress(ip, port, out);
  freeaddrinfo(found);
  return ok;
}

// The config's `lambda:` endpoint (http(s)://host[:port][/prefix], checked by the config parser).
std::shared_ptr<const LambdaEndpoint> compileLambdaEndpoint(const model::Config& config) {
  const std::string& url = config.lambda.endpoint;
  if (url.empty()) return nullptr;
  bool tls = startsWith(url, "https://");
  std::string_view rest = std::string_view(url).substr(tls ? 8 : 7);
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) != std::string_view::npos)
    colon = std::string_view::npos;
  uint16_t port = tls ? 443 : 80;
  if (colon != std::string_view::npos) {
    unsigned value = 0;
    auto digits = authority.substr(colon + 1);
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (error != std::errc() || end != digits.data() + digits.size() || value == 0 || value > 65535) {
      logWarn("snapshot: lambda endpoint ", url, " has no valid port: LAMBDA targets are unreachable");
      return nullptr;
    }
    port = static_cast<uint16_t>(value);
  }
  auto server = std::make_shared<TargetGroup>();
  server->serial = nextSerial();
  server->id = server->name = "lambda-endpoint";
  server->protocol = tls ? TargetProtocol::Https : TargetProtocol::Http;
  server->healthCheck.enabled = false;
  Target target;
  target.id = std::string(authority);
  target.port = port;
  std::string host(authority.substr(0, colon));
  if (!resolveHost(host, port, target.socketAddress)) {
    logWarn("snapshot: lambda endpoint host ", host, " does not resolve: LAMBDA targets are unreachable");
    return nullptr;
  }
  target.ipPort = target.id;
  target.health = std::make_shared<HealthCell>();
  server->targets = std::vector<Target>{std::move(target)};
  auto endpoint = std::make_shared<LambdaEndpoint>();
  endpoint->server = std::move(server);
  endpoint->host = std::string(authority);
  endpoint->pathPrefix = std::string(path);
  endpoint->settings = config.lambda;
  endpoint->region = config.region;
  return endpoint;
}

Ptr<TargetGroup> compileTargetGroup(const json& doc, const ConfiguredTargets& configured, HealthCells* cells) {
  auto group = std::make_shared<TargetGroup>();
  group->serial = nextSerial();
  group->id = str(doc, "id");
  group->arn = str(doc, "arn");
  group->name = str(doc, "name");
  group->type = str(doc, "type", "IP");
  const json& cfg = doc.value("config", json::object());
  group->port = static_cast<uint16_t>(integer(cfg, "port", 0));
  group->protocol = parseTargetProtocol(str(cfg, "protocol", "HTTP"));
  group->protocolVersion = parseProtocolVersion(str(cfg, "protocolVersion", "HTTP1"));
  group->vpcId = str(cfg, "vpcIdentifier");
  group->healthCheck = compileHealthCheck(cfg);
  bool lambda = group->type == "LAMBDA";
  if (lambda || group->type == "ALB") group->healthCheck.enabled = false;
  if (lambda) {
    group->lambdaEventV2 = str(cfg, "lambdaEventStructureVersion") == "V2";
    group->lambda = configured.lambda;
  }
  std::vector<Target> targets;
  for (const auto& t : doc.value("targets", json::array())) {
    Target target;
    target.id = str(t, "id");
    target.port = static_cast<uint16_t>(integer(t, "port", group->port));
    target.draining = t.contains("drainingSince") && !t["drainingSince"].is_null();
    if (lambda) {
      // Invoked through the endpoint: its address makes the function routable, its ARN names it in logs.
      if (group->lambda) target.socketAddress = group->lambda->server->targets[0].socketAddress;
      target.ipPort = target.id;
    } else if (group->type == "INSTANCE" || group->type == "ALB") {
      auto address = configured.addresses.find(target.id);
      if (address != configured.addresses.end()) target.address = address->second;
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

// Everything of a network but its policy and logs (their own records).
Ptr<ServiceNetwork> compileServiceNetwork(const json& doc) {
  auto network = std::make_shared<ServiceNetwork>();
  network->id = str(doc, "id");
  network->arn = str(doc, "arn");
  network->name = str(doc, "name");
  network->authType = str(doc, "authType", "NONE");
  network->usesIam = network->authType == "AWS_IAM";
  return network;
}

// Everything of a service but its tags, policy and logs (their own records), listeners and networks.
Ptr<Service> compileService(const json& doc) {
  if (inactive(doc)) return nullptr;
  auto service = std::make_shared<Service>();
  service->id = str(doc, "id");
  service->arn = str(doc, "arn");
  service->name = str(doc, "name");
  service->authType = str(doc, "authType", "NONE");
  service->usesIam = service->authType == "AWS_IAM";
  int idle = integer(doc, "idleTimeoutSeconds", 0);
  service->idleTimeoutSeconds = idle > 0 ? idle : 60;
  if (auto dns = doc.find("dnsEntry"); dns != doc.end() && dns->is_object()) {
    std::string name = toLower(str(*dns, "domainName"));
    if (!name.empty()) service->hostNames.push_back(name);
    service->generatedName = name;
  }
  std::string custom = toLower(str(doc, "customDomainName"));
  if (!custom.empty()) service->hostNames.push_back(custom);
  service->customDomainName = custom;
  service->certificateArn = str(doc, "certificateArn");
  return service;
}

Ptr<CompiledListener> compileListener(const json& doc) {
  auto out = std::make_shared<CompiledListener>();
  out->serviceId = str(doc, "serviceId");
  Listener& listener = out->listener;
  listener.id = str(doc, "id");
  listener.arn = str(doc, "arn");
  listener.name = str(doc, "name");
  listener.protocol = parseListenerProtocol(str(doc, "protocol", "HTTP"));
  listener.port = static_cast<uint16_t>(integer(doc, "port", 80));
  listener.defaultAction = compileAction(doc.value("defaultAction", json::object()));
  return out;
}

// Null for the listener's default rule: the listener's defaultAction stands for it.
Ptr<CompiledRule> compileRule(const json& doc) {
  if (boolean(doc, "isDefault", false)) return nullptr;
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

Ptr<CompiledServiceAssociation> compileServiceAssociation(const json& doc) {
  if (inactive(doc)) return nullptr;
  return std::make_shared<CompiledServiceAssociation>(
      CompiledServiceAssociation{str(doc, "serviceId"), str(doc, "serviceNetworkId")});
}

Ptr<CompiledAccessLog> compileAccessLog(const json& doc) {
  auto out = std::make_shared<CompiledAccessLog>();
  out->resourceId = str(doc, "resourceId");
  out->serviceLogs = str(doc, "serviceNetworkLogType", "SERVICE") == "SERVICE";
  out->destination = AccessLogDestination{str(doc, "id"), str(doc, "destinationArn"), out->resourceId, {}, {}};
  return out;
}

// NAME of arn:PARTITION:firehose:REGION:ACCOUNT:deliverystream/NAME; empty for other ARNs.
std::string firehoseStreamName(std::string_view arn) {
  auto service = arn.find(":firehose:");
  auto stream = arn.find(":deliverystream/");
  if (arn.rfind("arn:", 0) != 0 || service == std::string_view::npos || stream == std::string_view::npos) return {};
  return std::string(arn.substr(stream + 16));
}

// A subscription's destination with the config's Firehose endpoint for it, if any.
AccessLogDestination destinationOf(const CompiledAccessLog& log, const model::Config& config) {
  AccessLogDestination destination = log.destination;
  if (auto stream = firehoseStreamName(destination.destinationArn); !stream.empty()) {
    const auto& endpoints = config.accessLogs.firehose;
    if (auto endpoint = endpoints.find(stream); endpoint != endpoints.end()) {
      destination.firehoseUrl = endpoint->second.url;
      destination.firehoseAccessKey = endpoint->second.accessKey;
      destination.firehoseCaFile = endpoint->second.caFile;
    }
  }
  return destination;
}


// Per kind: record id → what its current revision compiled to (null: skipped, or nothing to route).
template <class T>
struct Memo {
  struct Entry {
    int64_t modRevision = 0;
    Ptr<T> value;
  };
  std::unordered_map<std::string, Entry> entries;

  const T* find(const std::string& id) const {
    auto it = entries.find(id);
    return it == entries.end() ? nullptr : it->second.value.get();
  }
  // Brings `id` to `record` (null: deleted), compiling it unless its modRevision is the one compiled.
  // Returns the value it held before; `changed` says whether the entry moved. Records without a
  // modRevision (hand-made contents) are compiled every time.
  template <class Compile>
  Ptr<T> update(const std::string& id, const store::Record* record, Compile&& compile, bool& changed) {
    auto it = entries.find(id);
    changed = true;
    if (!record) {
      if (it == entries.end()) return changed = false, nullptr;
      Ptr<T> before = std::move(it->second.value);
      entries.erase(it);
      return before;
    }
    if (it != entries.end() && record->modRevision != 0 && it->second.modRevision == record->modRevision) {
      changed = false;
      return it->second.value;
    }
    if (it == entries.end()) it = entries.emplace(id, Entry{}).first;
    Ptr<T> before = std::move(it->second.value);
    it->second.modRevision = record->modRevision;
    json doc = parseRecord(*record);
    if (!doc.is_discarded()) {
      try {
        it->second.value = compile(doc);
      } catch (const std::exception& e) {
        logWarn("snapshot: skipping ", record->kind, " ", record->id, ": ", e.what());
      }
    }
    return before;
  }
};

// A service's listeners with their rules, as last built, and what they were built from: the compiled
// listener and rule records and the target groups their actions resolved to, in order. The next
// build of the service reuses them when it would build them from exactly the same objects.
struct ServiceListeners {
  // Owned, so no address here is reused by a newer object while it is compared against.
  std::vector<std::shared_ptr<const void>> inputs;
  SharedVector<Listener> listeners;
};

using IdSet = std::set<std::string>;  // ordered: store order decides ties, as in a from-scratch compile

void moveMember(std::unordered_map<std::string, IdSet>& index, const std::string* from, const std::string* to,
                const std::string& member) {
  if (from && !(to && *from == *to)) {
    auto it = index.find(*from);
    if (it != index.end() && (it->second.erase(member), it->second.empty())) index.erase(it);
  }
  if (to) index[*to].insert(member);
}

const IdSet& membersOf(const std::unordered_map<std::string, IdSet>& index, const std::string& key) {
  static const IdSet none;
  auto it = index.find(key);
  return it == index.end() ? none : it->second;
}

}  // namespace

// Everything the compiler keeps between builds: each record compiled on its own, and the reverse
// indexes that say which services, networks and target groups a changed record feeds.
struct SnapshotCompiler::Cache {
  model::Config config;
  ConfiguredTargets configured;
  SnapshotPtr last;  // the next snapshot starts as a copy of its maps

  Memo<TargetGroup> targetGroups;
  Memo<ServiceNetwork> serviceNetworks;
  Memo<Service> services;
  Memo<CompiledListener> listeners;
  Memo<CompiledRule> rules;
  Memo<CompiledServiceAssociation> serviceAssociations;  // active ones
  Memo<AuthPolicyPtr> authPolicies;                       // by resource id (the record's id)
  Memo<json> tags;                                        // by resource ARN (the record's id)
  Memo<json> vpcAssociations;
  Memo<CompiledAccessLog> accessLogs;

  std::unordered_map<std::string, IdSet> listenersOfService, rulesOfListener;
  std::unordered_map<std::string, IdSet> associationsOfService, associationsOfNetwork;  // SNSA ids
  std::unordered_map<std::string, IdSet> logsOfResource;                               // subscription ids
  std::unordered_map<std::string, IdSet> servicesOfTargetGroup;  // services whose actions name the group
  std::unordered_map<std::string, std::vector<std::string>> targetGroupsOfService;  // what each names, sorted
  std::unordered_map<std::string, std::string> serviceIdByArn;
  std::unordered_map<std::string, IdSet> hostClaims;  // host → services claiming it; the first wins
  std::map<uint16_t, int> listenersOnPort, httpListenersOnPort;
  std::unordered_map<std::string, ServiceListeners> serviceListeners;  // by service id
};

// What one build has to redo, collected from the changed records before anything is rebuilt.
struct SnapshotCompiler::Dirty {
  std::unordered_set<std::string> services, networks, targetGroups, listeners, arns;
};

SnapshotCompiler::SnapshotCompiler(HealthCells* cells) : cells_(cells), cache_(std::make_unique<Cache>()) {}
SnapshotCompiler::~SnapshotCompiler() = default;

std::shared_ptr<const Snapshot> compileSnapshot(const store::StoreContents& contents, const model::Config& config,
                                                HealthCells* cells) {
  return SnapshotCompiler(cells).compile(contents, config);
}

std::shared_ptr<const Snapshot> SnapshotCompiler::compile(const store::StoreContents& contents,
                                                          const model::Config& config) {
  cache_ = std::make_unique<Cache>();
  cache_->config = config;
  for (const auto& instance : config.instances) cache_->configured.addresses[instance.id] = instance.address;
  for (const auto& alb : config.albs) cache_->configured.addresses[alb.arn] = alb.address;
  cache_->configured.lambda = compileLambdaEndpoint(config);
  Dirty dirty;
  for (const auto& record : contents.records) noteChange(record.kind, record.id, &record, dirty);
  return build(contents.revision, dirty);
}

std::shared_ptr<const Snapshot> SnapshotCompiler::update(const store::StoreChanges& changes) {
  if (!cache_->last) throw std::logic_error("SnapshotCompiler::update before compile");
  Dirty dirty;
  for (const auto& key : changes.deleted) noteChange(key.kind, key.id, nullptr, dirty);
  for (const auto& record : changes.records) noteChange(record.kind, record.id, &record, dirty);
  return build(changes.revision, dirty);
}

bool isCompiledKind(std::string_view kind) {
  for (std::string_view compiled : {"service", "listener", "rule", "targetgroup", "servicenetwork",
                                    "servicenetworkserviceassociation", "servicenetworkvpcassociation", "authpolicy",
                                    "accesslogsubscription", "tags"})
    if (kind == compiled) return true;
  return false;
}

void SnapshotCompiler::noteChange(const std::string& kind, const std::string& id, const store::Record* record,
                                  Dirty& dirty) {
  Cache& cache = *cache_;
  bool changed = false;
  // A field of a compiled record that may be absent (null when it is), for the index updates below.
  auto memberOf = [](const auto& compiled, auto member) { return compiled ? &((*compiled).*member) : nullptr; };
  if (kind == "service") {
    auto before = cache.services.update(id, record, compileService, changed);
    if (!changed) return;
    const Service* after = cache.services.find(id);
    if (before) cache.serviceIdByArn.erase(before->arn);
    if (after) cache.serviceIdByArn[after->arn] = id;
    dirty.services.insert(id);
  } else if (kind == "listener") {
    auto before = cache.listeners.update(id, record, compileListener, changed);
    if (!changed) return;
    const CompiledListener* after = cache.listeners.find(id);
    moveMember(cache.listenersOfService, memberOf(before, &CompiledListener::serviceId),
               memberOf(after, &CompiledListener::serviceId), id);
    if (before) dirty.services.insert(before->serviceId);
    if (after) dirty.services.insert(after->serviceId);
  } else if (kind == "rule") {
    auto before = cache.rules.update(id, record, compileRule, changed);
    if (!changed) return;
    const CompiledRule* after = cache.rules.find(id);
    moveMember(cache.rulesOfListener, memberOf(before, &CompiledRule::listenerId), memberOf(after, &CompiledRule::listenerId),
               id);
    if (before) dirty.listeners.insert(before->listenerId);
    if (after) dirty.listeners.insert(after->listenerId);
  } else if (kind == "targetgroup") {
    cache.targetGroups.update(
        id, record, [&](const json& doc) { return compileTargetGroup(doc, cache.configured, cells_); }, changed);
    if (changed) dirty.targetGroups.insert(id);
  } else if (kind == "servicenetwork") {
    cache.serviceNetworks.update(id, record, compileServiceNetwork, changed);
    if (changed) dirty.networks.insert(id);
  } else if (kind == "servicenetworkserviceassociation") {
    auto before = cache.serviceAssociations.update(id, record, compileServiceAssociation, changed);
    if (!changed) return;
    const CompiledServiceAssociation* after = cache.serviceAssociations.find(id);
    moveMember(cache.associationsOfService, memberOf(before, &CompiledServiceAssociation::serviceId),
               memberOf(after, &CompiledServiceAssociation::serviceId), id);
    moveMember(cache.associationsOfNetwork, memberOf(before, &CompiledServiceAssociation::serviceNetworkId),
               memberOf(after, &CompiledServiceAssociation::serviceNetworkId), id);
    if (before) dirty.services.insert(before->serviceId);
    if (after) dirty.services.insert(after->serviceId);
  } else if (kind == "servicenetworkvpcassociation") {
    cache.vpcAssociations.update(id, record, [](const json& doc) { return std::make_shared<const json>(doc); },
                                 changed);  // VPCs are rebuilt by every build: there are few
  } else if (kind == "authpolicy") {
    cache.authPolicies.update(
        id, record, [](const json& doc) { return std::make_shared<const AuthPolicyPtr>(compileAuthPolicy(doc)); },
        changed);
    if (changed) dirty.services.insert(id), dirty.networks.insert(id);  // whichever the id names
  } else if (kind == "accesslogsubscription") {
    auto before = cache.accessLogs.update(id, record, compileAccessLog, changed);
    if (!changed) return;
    const CompiledAccessLog* after = cache.accessLogs.find(id);
    moveMember(cache.logsOfResource, memberOf(before, &CompiledAccessLog::resourceId),
               memberOf(after, &CompiledAccessLog::resourceId), id);
    for (const auto* log : {before.get(), after}) {
      if (log) dirty.services.insert(log->resourceId), dirty.networks.insert(log->resourceId);
    }
  } else if (kind == "tags") {
    cache.tags.update(id, record, [](const json& doc) { return std::make_shared<const json>(doc); }, changed);
    if (changed) dirty.arns.insert(id);
  }
}

std::shared_ptr<const Snapshot> SnapshotCompiler::build(int64_t revision, Dirty& dirty) {
  Cache& cache = *cache_;
  const model::Config& config = cache.config;
  auto snap = std::make_shared<Snapshot>();
  snap->revision = revision;
  snap->region = config.region;
  snap->accountId = config.accountId;
  snap->partition = config.partition;
  snap->connectionLifetimeMs = int64_t{config.dataPlane.connectionLifetimeSeconds} * 1000;
  snap->verifyTargetCertificates = config.dataPlane.verifyTargetCertificates;
  snap->targetCaFile = config.dataPlane.targetCaFile;
  snap->requestHeadTimeoutMs = int64_t{config.dataPlane.requestHeadTimeoutSeconds} * 1000;
  snap->requestBodyMinBytesPerSecond = config.dataPlane.requestBodyMinBytesPerSecond;
  snap->maxConnectionsPerTarget = config.dataPlane.maxConnectionsPerTarget;
  snap->encodedSlashes = config.dataPlane.keepEncodedSlashes ? EncodedSlashes::Keep : EncodedSlashes::Reject;
  if (cache.last) {
    snap->services = cache.last->services;
    snap->servicesByHost = cache.last->servicesByHost;
    snap->hostAncestors = cache.last->hostAncestors;
    snap->targetGroups = cache.last->targetGroups;
    snap->serviceNetworks = cache.last->serviceNetworks;
    snap->callers = cache.last->callers;
  } else {
    compileCallers(*snap);
  }

  // Rules name their listener, tags their resource's ARN: find the services they belong to.
  for (const auto& listenerId : dirty.listeners) {
    if (const CompiledListener* listener = cache.listeners.find(listenerId)) dirty.services.insert(listener->serviceId);
  }
  for (const auto& arn : dirty.arns) {
    if (auto it = cache.serviceIdByArn.find(arn); it != cache.serviceIdByArn.end()) dirty.services.insert(it->second);
  }

  // Networks (with their policy and logs) first: services point at them.
  for (const auto& id : dirty.networks) {
    const ServiceNetwork* compiled = cache.serviceNetworks.find(id);
    if (!compiled && !snap->serviceNetworks.contains(id)) continue;  // another kind's id (a service's policy)
    if (compiled) {
      auto network = std::make_shared<ServiceNetwork>(*compiled);
      if (const AuthPolicyPtr* policy = cache.authPolicies.find(id)) network->authPolicy = *policy;
      for (const auto& logId : membersOf(cache.logsOfResource, id)) {
        const CompiledAccessLog* log = cache.accessLogs.find(logId);
        if (log && log->serviceLogs) network->accessLogs.push_back(destinationOf(*log, cache.config));
      }
      snap->serviceNetworks.set(id, std::move(network));
    } else {
      snap->serviceNetworks.erase(id);
    }
    for (const auto& associationId : membersOf(cache.associationsOfNetwork, id))
      dirty.services.insert(cache.serviceAssociations.find(associationId)->serviceId);
  }

  // Which target groups the dirty services' actions name; a group that gains its first such service,
  // or loses its last, changes its `used`.
  for (const auto& serviceId : dirty.services) {
    std::vector<std::string> named;
    if (cache.services.find(serviceId)) {
      auto add = [&](const Action& action) {
        for (const auto& weighted : action.targetGroups) named.push_back(weighted.id);
      };
      for (const auto& listenerId : membersOf(cache.listenersOfService, serviceId)) {
        const CompiledListener* listener = cache.listeners.find(listenerId);
        if (!listener) continue;
        add(listener->listener.defaultAction);
        for (const auto& ruleId : membersOf(cache.rulesOfListener, listenerId))
          if (const CompiledRule* rule = cache.rules.find(ruleId)) add(rule->rule.action);
      }
      std::sort(named.begin(), named.end());
      named.erase(std::unique(named.begin(), named.end()), named.end());
    }
    std::vector<std::string>& before = cache.targetGroupsOfService[serviceId];
    if (named == before) continue;
    for (const auto& group : before) {
      if (std::binary_search(named.begin(), named.end(), group)) continue;
      IdSet& users = cache.servicesOfTargetGroup[group];
      users.erase(serviceId);
      if (users.empty()) cache.servicesOfTargetGroup.erase(group), dirty.targetGroups.insert(group);
    }
    for (const auto& group : named) {
      if (std::binary_search(before.begin(), before.end(), group)) continue;
      IdSet& users = cache.servicesOfTargetGroup[group];
      if (users.empty()) dirty.targetGroups.insert(group);
      users.insert(serviceId);
    }
    before = std::move(named);
    if (before.empty()) cache.targetGroupsOfService.erase(serviceId);
  }

  // Target groups: a new object for each dirty one, and the services routing to it rebuilt to point at it.
  for (const auto& id : dirty.targetGroups) {
    const IdSet& users = membersOf(cache.servicesOfTargetGroup, id);
    dirty.services.insert(users.begin(), users.end());
    const TargetGroup* compiled = cache.targetGroups.find(id);
    if (!compiled) {
      snap->targetGroups.erase(id);
      continue;
    }
    auto group = std::make_shared<TargetGroup>(*compiled);  // shares the targets (and their health cells)
    group->used = !users.empty();
    snap->targetGroups.set(id, std::move(group));
  }

  std::unordered_set<std::string> hosts;  // whose owner may have changed
  for (const auto& id : dirty.services) {
    if (const auto* before = snap->services.find(id)) {
      for (const auto& host : (*before)->hostNames) {
        hosts.insert(host);
        moveMember(cache.hostClaims, &host, nullptr, id);
      }
      countListenerPorts(**before, -1);
    }
    std::shared_ptr<const Service> service = buildService(*snap, id);
    if (!service) {
      snap->services.erase(id);
      cache.serviceListeners.erase(id);
      continue;
    }
    for (const auto& host : service->hostNames) {
      hosts.insert(host);
      IdSet& claims = cache.hostClaims[host];
      if (claims.insert(id).second && claims.size() > 1)
        logWarn("snapshot: host name ", host, " claimed by ", id, " and others; ", *claims.begin(), " keeps it");
    }
    countListenerPorts(*service, +1);
    snap->services.set(id, std::move(service));
  }
  for (const auto& host : hosts) {
    const IdSet& claims = membersOf(cache.hostClaims, host);
    bool existed = snap->servicesByHost.contains(host);
    if (claims.empty()) {
      snap->servicesByHost.erase(host);
    } else {
      snap->servicesByHost.set(host, snap->services.at(*claims.begin()).get());
    }
    if (existed == !claims.empty()) continue;
    for (size_t dot = host.find('.'); dot != std::string::npos; dot = host.find('.', dot + 1)) {
      std::string_view ancestor = std::string_view(host).substr(dot + 1);
      const size_t* below = snap->hostAncestors.find(ancestor);
      size_t count = below ? *below : 0;
      count = existed ? count - 1 : count + 1;
      if (count == 0) {
        snap->hostAncestors.erase(ancestor);
      } else {
        snap->hostAncestors.set(ancestor, count);
      }
    }
  }
  for (const auto& [port, count] : cache.listenersOnPort) snap->listenerPorts.push_back(port);
  for (const auto& [port, count] : cache.httpListenersOnPort) snap->httpListenerPorts.push_back(port);

  compileVpcs(*snap);
  cache.last = snap;
  return snap;
}

void SnapshotCompiler::countListenerPorts(const Service& service, int delta) {
  for (const auto& listener : service.listeners) {
    auto count = [&](std::map<uint16_t, int>& counts) {
      if ((counts[listener.port] += delta) <= 0) counts.erase(listener.port);
    };
    count(cache_->listenersOnPort);
    if (listener.protocol == ListenerProtocol::Http) count(cache_->httpListenersOnPort);
  }
}


std::shared_ptr<const Service> SnapshotCompiler::buildService(const Snapshot& snap, const std::string& id) {
  Cache& cache = *cache_;
  const Service* compiled = cache.services.find(id);
  if (!compiled) return nullptr;
  auto service = std::make_shared<Service>(*compiled);
  if (const json* tags = cache.tags.find(service->arn)) {
    for (const auto& [key, value] : tags->items())
      if (value.is_string()) service->tags.emplace_back(key, value.get<std::string>());
  }
  if (const AuthPolicyPtr* policy = cache.authPolicies.find(id)) service->authPolicy = *policy;
  for (const auto& associationId : membersOf(cache.associationsOfService, id)) {
    const auto* network = snap.serviceNetworks.find(cache.serviceAssociations.find(associationId)->serviceNetworkId);
    if (network) service->networks.push_back(network->get());
  }
  for (const auto& logId : membersOf(cache.logsOfResource, id))
    service->accessLogs.push_back(destinationOf(*cache.accessLogs.find(logId), cache.config));
  for (const auto* network : service->networks)
    service->accessLogs.insert(service->accessLogs.end(), network->accessLogs.begin(), network->accessLogs.end());

  // Listeners are rebuilt only when a listener, rule or target group they come from is a new object.
  auto groupOf = [&](const std::string& groupId) {
    const auto* group = snap.targetGroups.find(groupId);
    return group ? *group : nullptr;
  };
  std::vector<std::shared_ptr<const void>> inputs;
  auto addActionInputs = [&](const Action& action) {
    for (const auto& weighted : action.targetGroups) inputs.push_back(groupOf(weighted.id));
  };
  std::vector<std::pair<const CompiledListener*, std::vector<const CompiledRule*>>> sources;
  for (const auto& listenerId : membersOf(cache.listenersOfService, id)) {
    auto listener = cache.listeners.entries.find(listenerId);
    if (listener == cache.listeners.entries.end() || !listener->second.value) continue;
    auto& [compiledListener, rules] = sources.emplace_back(listener->second.value.get(), std::vector<const CompiledRule*>{});
    inputs.push_back(listener->second.value);
    addActionInputs(compiledListener->listener.defaultAction);
    for (const auto& ruleId : membersOf(cache.rulesOfListener, listenerId)) {
      auto rule = cache.rules.entries.find(ruleId);
      if (rule == cache.rules.entries.end() || !rule->second.value) continue;
      rules.push_back(rule->second.value.get());
      inputs.push_back(rule->second.value);
      addActionInputs(rule->second.value->rule.action);
    }
  }
  ServiceListeners& built = cache.serviceListeners[id];
  if (built.inputs != inputs) {
    auto resolve = [&](Action& action) {
      for (auto& weighted : action.targetGroups) {
        weighted.sharedGroup = groupOf(weighted.id);
        weighted.group = weighted.sharedGroup.get();
      }
    };
    std::vector<Listener> fresh;
    for (const auto& [compiledListener, compiledRules] : sources) {
      Listener& listener = fresh.emplace_back(compiledListener->listener);
      resolve(listener.defaultAction);
      std::vector<Rule> rules;
      for (const auto* rule : compiledRules) resolve(rules.emplace_back(rule->rule).action);
      std::stable_sort(rules.begin(), rules.end(), [](const Rule& a, const Rule& b) { return a.priority < b.priority; });
      listener.rules = std::move(rules);
    }
    built.inputs = std::move(inputs);
    built.listeners = std::move(fresh);
  }
  service->listeners = built.listeners;
  return service;
}

// The config's VPCs with the networks their associations reach, rebuilt by every build (there are few).
void SnapshotCompiler::compileVpcs(Snapshot& snap) const {
  const model::Config& config = cache_->config;
  for (const auto& configured : config.vpcs) {
    Vpc& vpc = snap.vpcs[configured.id];
    vpc.id = configured.id;
    vpc.arn = "arn:" + config.partition + ":ec2:" + config.region + ":" + config.accountId + ":vpc/" + vpc.id;
    for (const auto& cidr : configured.cidrs) {
      Prefix prefix;
      if (!Prefix::parse(cidr, prefix)) {
        logWarn("snapshot: VPC ", vpc.id, ": ignoring bad CIDR ", cidr);
        continue;
      }
      vpc.cidrs.push_back(prefix);
      snap.vpcTable.add(prefix, &vpc);
    }
  }
  if (!config.defaultVpc.empty()) {
    auto it = snap.vpcs.find(config.defaultVpc);
    if (it != snap.vpcs.end()) snap.defaultVpc = &it->second;
  }

  std::vector<std::pair<const std::string*, const json*>> associations;  // in store order
  for (const auto& [id, entry] : cache_->vpcAssociations.entries)
    if (entry.value) associations.emplace_back(&id, entry.value.get());
  std::sort(associations.begin(), associations.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
  for (const auto& [id, found] : associations) {
    const json& doc = *found;
    if (inactive(doc)) continue;
    auto vpc = snap.vpcs.find(str(doc, "vpcId"));
    const auto* network = snap.serviceNetworks.find(str(doc, "serviceNetworkId"));
    if (vpc == snap.vpcs.end() || !network) continue;
    vpc->second.networks.push_back(network->get());
    const json& groups = doc.value("securityGroupIds", json::array());
    if (!groups.is_array() || groups.empty()) continue;  // no security group: the whole VPC may connect
    vpc->second.securityGroupsApply = true;
    for (const auto& groupId : groups) {
      auto group = std::find_if(config.securityGroups.begin(), config.securityGroups.end(),
                                [&](const model::SecurityGroup& g) { return groupId.is_string() && g.id == groupId; });
      if (group == config.securityGroups.end()) {
        // Fails closed: the association meant to restrict, and nothing here says to whom.
        logWarn("snapshot: ", *id, " names security group ", groupId.dump(), " missing from the config");
        continue;
      }
      for (const auto& rule : group->ingress) {
        IngressAllowance allowance{{}, rule.fromPort, rule.toPort};
        if (Prefix::parse(rule.cidr, allowance.source)) vpc->second.ingress.push_back(allowance);
      }
    }
  }
}

// The config's identities, compiled once per config.
void SnapshotCompiler::compileCallers(Snapshot& snap) const {
  for (const auto& identity : cache_->config.identities) {
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
    caller.identityHeader = identityHeader(identity);
    caller.identityTagsHeader = identityTagsHeader(identity);
    if (!identity.tags.empty()) caller.tagsJson = json(identity.tags).dump(-1, ' ', false, json::error_handler_t::replace);
    snap.callers.emplace(identity.accessKeyId, std::move(caller));
  }
}

}  // namespace trellis::compile
