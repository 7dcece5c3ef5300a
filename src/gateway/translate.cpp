#include "gateway/translate.h"

#include <algorithm>
#include <set>

#include "common/crypto.h"
#include "common/strings.h"

namespace trellis::gateway {
namespace {

const char* kLatticeClass = "amazon-vpc-lattice";

[[noreturn]] void fail(const Object& obj, const std::string& field, const std::string& what) {
  throw ManifestError(obj.where(field) + ": " + what);
}

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

std::string str(const Object& src, const json& obj, const char* key, const std::string& path, bool required = false) {
  const json* v = member(obj, key);
  if (!v) {
    if (required) fail(src, path, "missing");
    return "";
  }
  if (v->is_string()) return v->get<std::string>();
  if (v->is_number_integer()) return std::to_string(v->get<int64_t>());
  fail(src, path, "must be a string");
}

std::optional<int64_t> integer(const Object& src, const json& obj, const char* key, const std::string& path,
                               int64_t min, int64_t max) {
  const json* v = member(obj, key);
  if (!v) return std::nullopt;
  int64_t n = 0;
  if (v->is_number_integer()) {
    n = v->get<int64_t>();
  } else {
    fail(src, path, "must be an integer");
  }
  if (n < min || n > max)
    fail(src, path, std::to_string(n) + " is out of range (" + std::to_string(min) + "-" + std::to_string(max) + ")");
  return n;
}

std::optional<bool> boolean(const Object& src, const json& obj, const char* key, const std::string& path) {
  const json* v = member(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) fail(src, path, "must be true or false");
  return v->get<bool>();
}

const json& array(const Object& src, const json& obj, const char* key, const std::string& path) {
  static const json empty = json::array();
  const json* v = member(obj, key);
  if (!v) return empty;
  if (!v->is_array()) fail(src, path, "must be a list");
  return *v;
}

std::string at(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

// A Gateway API duration (GEP-2257: up to four number+unit parts, units h, m, s, ms in that order, e.g.
// "1h", "500ms", "1h2m3s") in milliseconds; nullopt when absent.
std::optional<int64_t> durationMs(const Object& src, const json& obj, const char* key, const std::string& path) {
  const json* v = member(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) fail(src, path, v->dump() + " is not a duration such as 10s, 500ms or 1h2m3s");
  const std::string text = v->get<std::string>();
  auto bad = [&] { fail(src, path, "'" + text + "' is not a duration such as 10s, 500ms or 1h2m3s"); };
  int64_t total = 0;
  int parts = 0, lastUnit = -1;
  size_t i = 0;
  while (i < text.size()) {
    size_t digits = 0;
    int64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') n = n * 10 + (text[i++] - '0'), ++digits;
    if (digits == 0 || digits > 5 || i == text.size()) bad();
    int unit = 0;  // h, m, s, ms
    if (text.compare(i, 2, "ms") == 0) {
      unit = 3, i += 2;
    } else if (text[i] == 'h' || text[i] == 'm' || text[i] == 's') {
      unit = text[i] == 'h' ? 0 : text[i] == 'm' ? 1 : 2, ++i;
    } else {
      bad();
    }
    if (unit <= lastUnit || ++parts > 4) bad();
    lastUnit = unit;
    static constexpr int64_t kScale[] = {3600000, 60000, 1000, 1};
    total += n * kScale[unit];
  }
  if (parts == 0) bad();
  return total;
}

// Lattice names hold only a-z, 0-9 and single hyphens.
std::string latticeSafe(const std::string& s) {
  std::string out;
  for (char c : toLower(s)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok)
      out += c;
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  return out;
}

std::string hashHex(const std::string& s, size_t n) { return sha256Hex(s).substr(0, n); }

std::string hashLetters(const std::string& s, size_t n) {
  std::string digest = sha256(s), out;
  for (size_t i = 0; i < n; ++i) out += static_cast<char>('a' + static_cast<unsigned char>(digest[i]) % 26);
  return out;
}

Tags userTags(const Object& obj) {
  Tags tags;
  std::string spec = obj.annotation(tag("tags"));
  for (auto item : split(spec, ',')) {
    auto pair = trim(item);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0)
      fail(obj, "metadata.annotations[" + tag("tags") + "]", "'" + std::string(pair) + "' is not key=value");
    tags[std::string(trim(pair.substr(0, eq)))] = std::string(trim(pair.substr(eq + 1)));
  }
  return tags;
}

struct Index {
  std::map<std::string, const Object*> byRef;  // "Kind ns/name"
  const Object* find(const std::string& kind, const std::string& ns, const std::string& name) const {
    auto it = byRef.find(kind + " " + (ns.empty() ? name : ns + "/" + name));
    return it == byRef.end() ? nullptr : it->second;
  }
};

// A policy's targetRef: {group, kind, name[, namespace]}.
struct PolicyTarget {
  std::string kind, ns, name;
};
PolicyTarget targetRef(const Object& policy) {
  const json* ref = member(policy.spec(), "targetRef");
  if (!ref || !ref->is_object()) fail(policy, "spec.targetRef", "missing");
  PolicyTarget t;
  t.kind = str(policy, *ref, "kind", "spec.targetRef.kind", true);
  t.name = str(policy, *ref, "name", "spec.targetRef.name", true);
  t.ns = str(policy, *ref, "namespace", "spec.targetRef.namespace");
  if (t.ns.empty()) t.ns = policy.ns;
  return t;
}

// ---- Target group policies and health checks ----

struct TgPolicy {
  const Object* source = nullptr;
  std::string protocol, protocolVersion;
  json healthCheck = json::object();  // API member names, only those given
};

TgPolicy readTgPolicy(const Object& obj) {
  TgPolicy p;
  p.source = &obj;
  const json& spec = obj.spec();
  p.protocol = str(obj, spec, "protocol", "spec.protocol");
  if (!p.protocol.empty() && p.protocol != "HTTP" && p.protocol != "HTTPS" && p.protocol != "TCP")
    fail(obj, "spec.protocol", "'" + p.protocol + "' must be HTTP, HTTPS or TCP");
  p.protocolVersion = str(obj, spec, "protocolVersion", "spec.protocolVersion");
  if (!p.protocolVersion.empty() && p.protocolVersion != "HTTP1" && p.protocolVersion != "HTTP2")
    fail(obj, "spec.protocolVersion", "'" + p.protocolVersion + "' must be HTTP1 or HTTP2");
  const json* hc = member(spec, "healthCheck");
  if (!hc) return p;
  if (!hc->is_object()) fail(obj, "spec.healthCheck", "must be a mapping");
  const std::string base = "spec.healthCheck.";
  if (auto v = boolean(obj, *hc, "enabled", base + "enabled")) p.healthCheck["enabled"] = *v;
  struct Count {
    const char *from, *to;
    int64_t min, max;
  };
  for (const auto& c : {Count{"intervalSeconds", "healthCheckIntervalSeconds", 5, 300},
                        Count{"timeoutSeconds", "healthCheckTimeoutSeconds", 1, 120},
                        Count{"healthyThresholdCount", "healthyThresholdCount", 2, 10},
                        Count{"unhealthyThresholdCount", "unhealthyThresholdCount", 2, 10},
                        Count{"port", "port", 1, 65535}})
    if (auto v = integer(obj, *hc, c.from, base + c.from, c.min, c.max)) p.healthCheck[c.to] = *v;
  if (auto v = str(obj, *hc, "path", base + "path"); !v.empty()) {
    if (v.front() != '/') fail(obj, base + "path", "'" + v + "' must start with /");
    p.healthCheck["path"] = v;
  }
  if (auto v = str(obj, *hc, "statusMatch", base + "statusMatch"); !v.empty()) p.healthCheck["matcher"] = {{"httpCode", v}};
  if (auto v = str(obj, *hc, "protocol", base + "protocol"); !v.empty()) {
    if (v != "HTTP" && v != "HTTPS") fail(obj, base + "protocol", "'" + v + "' must be HTTP or HTTPS");
    p.healthCheck["protocol"] = v;
  }
  if (auto v = str(obj, *hc, "protocolVersion", base + "protocolVersion"); !v.empty()) {
    if (v != "HTTP1" && v != "HTTP2") fail(obj, base + "protocolVersion", "'" + v + "' must be HTTP1 or HTTP2");
    p.healthCheck["protocolVersion"] = v;
  }
  return p;
}

// ---- Backends: Services and their EndpointSlices ----

std::vector<Target> endpointsOf(const Object& route, const std::string& field, const Object& service,
                                std::optional<int64_t> port, const std::vector<const Object*>& slices,
                                bool& ipv6) {
  if (str(service, service.spec(), "type", "spec.type") == "ExternalName")
    fail(route, field, service.ref() + " is an ExternalName Service, which VPC Lattice cannot target");
  const json& ports = array(service, service.spec(), "ports", "spec.ports");
  const json* svcPort = nullptr;
  for (const auto& p : ports)
    if (!port ? ports.size() == 1 : (p.is_object() && p.value("port", json()) == json(*port))) svcPort = &p;
  if (!svcPort) {
    if (!port) fail(route, field + ".port", "missing: " + service.ref() + " has several ports, say which one");
    fail(route, field + ".port", service.ref() + " has no port " + std::to_string(*port));
  }
  std::string portName = svcPort->value("name", "");
  json targetPort = svcPort->value("targetPort", json());
  std::set<Target> targets;
  ipv6 = false;
  for (const Object* slice : slices) {
    std::string type = str(*slice, slice->body, "addressType", "addressType");
    if (type == "FQDN") fail(*slice, "addressType", "FQDN endpoints cannot be VPC Lattice targets (use IPv4 or IPv6)");
    ipv6 = type == "IPv6";
    std::vector<int> numbers;
    const json& slicePorts = array(*slice, slice->body, "ports", "ports");
    for (size_t i = 0; i < slicePorts.size(); ++i) {
      std::string name = str(*slice, slicePorts[i], "name", at("ports", i) + ".name");
      if (!portName.empty() && name != portName) continue;
      if (auto n = integer(*slice, slicePorts[i], "port", at("ports", i) + ".port", 1, 65535))
        numbers.push_back(static_cast<int>(*n));
    }
    if (slicePorts.empty()) {
      if (targetPort.is_number_integer())
        numbers.push_back(targetPort.get<int>());
      else if (targetPort.is_null())
        numbers.push_back(svcPort->value("port", 0));
      else
        fail(*slice, "ports", "lists no ports, so " + service.ref() + "'s named targetPort '" +
                                   targetPort.get<std::string>() + "' cannot be resolved");
    }
    const json& endpoints = array(*slice, slice->body, "endpoints", "endpoints");
    for (size_t i = 0; i < endpoints.size(); ++i) {
      const json& e = endpoints[i];
      const json& conditions = e.is_object() ? e.value("conditions", json::object()) : json::object();
      if (conditions.is_object() && conditions.value("terminating", false) == true) continue;  // deregister it
      const json& addresses = array(*slice, e, "addresses", at("endpoints", i) + ".addresses");
      for (const auto& a : addresses) {
        if (!a.is_string()) fail(*slice, at("endpoints", i) + ".addresses", "must be strings");
        for (int n : numbers) targets.insert({a.get<std::string>(), n});
      }
    }
  }
  return {targets.begin(), targets.end()};
}

}  // namespace

std::string tag(const char* key) { return std::string(kTagBase) + key; }

std::string managedBy(const Options& options) {
  return options.accountId + "/" + options.clusterName + "/" + options.vpcId;
}

std::string truncateName(const std::string& s, size_t n) {
  std::string out = s.substr(0, n);
  size_t start = out.find_first_not_of('-');
  if (start == std::string::npos) return "";
  out = out.substr(start);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::string hashedServiceName(const std::string& routeName, const std::string& routeNs) {
  std::string name = truncateName(latticeSafe(routeName), 14) + "-" + truncateName(latticeSafe(routeNs), 12) + "-" +
                     hashHex(routeNs + "/" + routeName, 8);
  if (name.front() == '-') name = name.substr(1);
  if (startsWith(name, "svc-")) name = "k8s-" + name;
  return name;
}

std::string serviceName(const std::string& routeName, const std::string& routeNs) {
  std::string plain = truncateName(routeName, 20) + "-" + truncateName(routeNs, 18);
  bool exact = routeName.size() <= 20 && routeNs.size() <= 18 && latticeSafe(routeName) == routeName &&
               latticeSafe(routeNs) == routeNs && plain.find("--") == std::string::npos && !startsWith(plain, "svc-") &&
               plain.size() >= 3;
  return exact ? plain : hashedServiceName(routeName, routeNs);
}

std::string listenerName(const std::string& routeName, const std::string& routeNs, int port,
                         const std::string& protocol) {
  std::string proto = protocol == "HTTPS" ? "https" : protocol == "TLS_PASSTHROUGH" ? "tls" : "http";
  std::string name = truncateName(latticeSafe(routeName), 20) + "-" + truncateName(latticeSafe(routeNs), 18) + "-" +
                     std::to_string(port) + "-" + proto;
  if (startsWith(name, "listener-")) name = "k8s-" + name;
  return name;
}

std::string ruleName(int64_t unixCreateTime, int priority) {
  return "k8s-" + std::to_string(unixCreateTime) + "-rule-" + std::to_string(priority);
}

json defaultHealthCheck(const std::string& protocol, const std::string& protocolVersion) {
  std::string version = protocolVersion.empty() ? "HTTP1" : protocolVersion;
  return {{"enabled", version == "HTTP1" && protocol != "TCP"},
          {"protocol", "HTTP"},
          {"protocolVersion", version == "HTTP1" ? "HTTP1" : "HTTP2"},
          {"path", "/"},
          {"healthCheckIntervalSeconds", 30},
          {"healthCheckTimeoutSeconds", 5},
          {"healthyThresholdCount", 5},
          {"unhealthyThresholdCount", 2},
          {"matcher", {{"httpCode", "200"}}}};
}

namespace {

class Translator {
 public:
  Translator(const std::vector<Object>& objects, const Options& options, const std::vector<KnownGateway>& known)
      : objects_(objects), options_(options), known_(known) {
    for (const auto& obj : objects_) index_.byRef[obj.ref()] = &obj;
  }

  Desired run() {
    readPolicies();
    for (const auto& obj : objects_)
      if (obj.kind == "Gateway") gateway(obj);
    for (const auto& obj : objects_)
      if (obj.kind == "ServiceNetwork") serviceNetworkCr(obj);
    for (const auto& obj : objects_)
      if (obj.kind == "ServiceExport") serviceExport(obj);
    for (const auto& obj : objects_)
      if (obj.kind == "HTTPRoute" || obj.kind == "GRPCRoute" || obj.kind == "TLSRoute") route(obj);
    checkPolicyTargets();
    return std::move(out_);
  }

 private:
  const std::vector<Object>& objects_;
  const Options& options_;
  const std::vector<KnownGateway>& known_;
  Index index_;
  Desired out_;
  std::map<std::string, TgPolicy> tgPolicies_;             // "ns/Service/name" → policy
  std::map<std::string, const Object*> vpcPolicies_;       // "ns/gateway"
  std::map<std::string, const Object*> authPolicies_;      // "Kind ns/name"
  std::map<std::string, std::vector<const Object*>> logPolicies_;

  Tags baseTags() const { return {{tag("ManagedBy"), managedBy(options_)}}; }

  void readPolicies() {
    for (const auto& obj : objects_) {
      if (obj.kind == "TargetGroupPolicy") {
        auto t = targetRef(obj);
        if (t.kind != "Service" && t.kind != "ServiceExport")
          fail(obj, "spec.targetRef.kind", "'" + t.kind + "' must be Service or ServiceExport");
        if (t.ns != obj.ns) fail(obj, "spec.targetRef.namespace", "must be the policy's own namespace");
        std::string key = t.ns + "/" + t.kind + "/" + t.name;
        if (tgPolicies_.count(key))
          fail(obj, "spec.targetRef", "another TargetGroupPolicy (" + tgPolicies_[key].source->ref() +
                                          ") already targets " + t.kind + " " + t.ns + "/" + t.name);
        tgPolicies_[key] = readTgPolicy(obj);
      } else if (obj.kind == "VpcAssociationPolicy") {
        auto t = targetRef(obj);
        if (t.kind != "Gateway") fail(obj, "spec.targetRef.kind", "'" + t.kind + "' must be Gateway");
        const json& groups = array(obj, obj.spec(), "securityGroupIds", "spec.securityGroupIds");
        for (size_t i = 0; i < groups.size(); ++i)
          if (!groups[i].is_string() || !startsWith(groups[i].get<std::string>(), "sg-"))
            fail(obj, at("spec.securityGroupIds", i), "must be a security group id (sg-...)");
        vpcPolicies_[t.ns + "/" + t.name] = &obj;
      } else if (obj.kind == "IAMAuthPolicy") {
        auto t = targetRef(obj);
        if (t.kind != "Gateway" && t.kind != "HTTPRoute" && t.kind != "GRPCRoute")
          fail(obj, "spec.targetRef.kind", "'" + t.kind + "' must be Gateway, HTTPRoute or GRPCRoute");
        const json* policy = member(obj.spec(), "policy");
        if (!policy) fail(obj, "spec.policy", "missing");
        std::string key = t.kind + " " + t.ns + "/" + t.name;
        if (authPolicies_.count(key))
          fail(obj, "spec.targetRef", "another IAMAuthPolicy (" + authPolicies_[key]->ref() + ") already targets " + key);
        authPolicies_[key] = &obj;
      } else if (obj.kind == "AccessLogPolicy") {
        auto t = targetRef(obj);
        if (t.kind != "Gateway" && t.kind != "HTTPRoute" && t.kind != "GRPCRoute")
          fail(obj, "spec.targetRef.kind", "'" + t.kind + "' must be Gateway, HTTPRoute or GRPCRoute");
        std::string arn = str(obj, obj.spec(), "destinationArn", "spec.destinationArn", true);
        if (!startsWith(arn, "arn:")) fail(obj, "spec.destinationArn", "'" + arn + "' is not an ARN");
        logPolicies_[t.kind + " " + t.ns + "/" + t.name].push_back(&obj);
      }
    }
  }

  // Policies whose target is not in the applied files would silently do nothing: say so.
  void checkPolicyTargets() {
    for (const auto& [key, p] : tgPolicies_) {
      auto t = targetRef(*p.source);
      if (!index_.find(t.kind, t.ns, t.name))
        fail(*p.source, "spec.targetRef", t.kind + " " + t.ns + "/" + t.name +
                                              " is not in the applied files (apply it with its routes, e.g. -f DIR)");
    }
    auto requireTarget = [&](const Object& policy) {
      auto t = targetRef(policy);
      bool found = index_.find(t.kind, t.ns, t.name) != nullptr;
      if (!found && t.kind == "Gateway")
        for (const auto& k : known_) found = found || (k.ns == t.ns && k.name == t.name);
      if (!found)
        fail(policy, "spec.targetRef", t.kind + " " + t.ns + "/" + t.name + " is not in the applied files");
    };
    for (const auto& [key, policy] : vpcPolicies_) requireTarget(*policy);
    for (const auto& [key, policy] : authPolicies_) requireTarget(*policy);
    for (const auto& [key, list] : logPolicies_)
      for (const Object* policy : list) requireTarget(*policy);
  }

  std::optional<std::string> authPolicyFor(const std::string& key) {
    auto it = authPolicies_.find(key);
    if (it == authPolicies_.end()) return std::nullopt;
    const json& policy = it->second->spec()["policy"];
    return policy.is_string() ? policy.get<std::string>() : policy.dump();
  }

  std::vector<std::string> accessLogsFor(const std::string& key) {
    std::vector<std::string> out;
    std::set<std::string> types;
    for (const Object* p : logPolicies_[key]) {
      std::string arn = p->spec()["destinationArn"];
      std::string type = arn.find(":s3:") != std::string::npos     ? "s3"
                         : arn.find(":logs:") != std::string::npos ? "logs"
                                                                   : "firehose";
      if (!types.insert(type).second)
        fail(*p, "spec.destinationArn", key + " already has an AccessLogPolicy for this destination type (Conflicted)");
      out.push_back(arn);
    }
    return out;
  }

  bool latticeClass(const Object& gw, const std::string& className) {
    const Object* cls = index_.find("GatewayClass", "", className);
    if (cls) return str(*cls, cls->spec(), "controllerName", "spec.controllerName") == kControllerName;
    if (className == kLatticeClass) return true;  // the class the controller's chart installs
    fail(gw, "spec.gatewayClassName", "GatewayClass '" + className + "' is not in the applied files");
  }

  void gateway(const Object& gw) {
    std::string className = str(gw, gw.spec(), "gatewayClassName", "spec.gatewayClassName", true);
    if (!latticeClass(gw, className)) {
      out_.warnings.push_back(gw.where() + ": skipped: GatewayClass " + className +
                              " belongs to another controller, not " + kControllerName);
      return;
    }
    Network n;
    n.name = gw.name;
    n.gatewayNs = gw.ns;
    n.gatewayName = gw.name;
    n.gatewayClass = className;
    n.source = &gw;
    n.tags = baseTags();
    const json& listeners = array(gw, gw.spec(), "listeners", "spec.listeners");
    if (listeners.empty()) fail(gw, "spec.listeners", "a Gateway needs at least one listener");
    std::set<int> ports;
    for (size_t i = 0; i < listeners.size(); ++i) {
      std::string p = at("spec.listeners", i);
      const json& l = listeners[i];
      GatewayListener gl;
      gl.name = str(gw, l, "name", p + ".name", true);
      gl.port = static_cast<int>(integer(gw, l, "port", p + ".port", 1, 65535).value_or(0));
      if (gl.port == 0) fail(gw, p + ".port", "missing");
      std::string protocol = str(gw, l, "protocol", p + ".protocol", true);
      const json& tls = l.is_object() ? l.value("tls", json::object()) : json::object();
      std::string mode = tls.is_object() ? tls.value("mode", "Terminate") : "Terminate";
      if (protocol == "HTTP") {
        gl.protocol = "HTTP";
      } else if (protocol == "HTTPS") {
        gl.protocol = "HTTPS";
        if (tls.is_object() && tls.contains("options") && tls["options"].is_object())
          gl.certificateArn = tls["options"].value(tag("certificate-arn"), "");
      } else if (protocol == "TLS" && mode == "Passthrough") {
        gl.protocol = "TLS_PASSTHROUGH";
      } else {
        fail(gw, p + ".protocol",
             "'" + protocol + (protocol == "TLS" ? "' with tls.mode " + mode : "'") +
                 " is not supported by VPC Lattice (HTTP, HTTPS, or TLS with tls.mode Passthrough)");
      }
      if (!ports.insert(gl.port).second) fail(gw, p + ".port", "two listeners use port " + std::to_string(gl.port));
      n.listeners.push_back(gl);
    }
    // The controller's tags would live on the network; these say which Gateway made it and how it listens.
    n.tags[tag("GatewayName")] = gw.name;
    n.tags[tag("GatewayNamespace")] = gw.ns;
    n.tags[tag("GatewayClass")] = className;
    std::string encoded;
    for (const auto& l : n.listeners)
      encoded += (encoded.empty() ? "" : ",") + l.name + ":" + l.protocol + ":" + std::to_string(l.port);
    n.tags[tag("GatewayListeners")] = encoded;
    for (auto& [k, v] : userTags(gw)) n.tags[k] = v;

    n.associateVpc = true;
    if (auto it = vpcPolicies_.find(gw.ns + "/" + gw.name); it != vpcPolicies_.end()) {
      const Object& vap = *it->second;
      n.associateVpc = boolean(vap, vap.spec(), "associateWithVpc", "spec.associateWithVpc").value_or(true);
      for (const auto& g : array(vap, vap.spec(), "securityGroupIds", "spec.securityGroupIds"))
        n.securityGroupIds.push_back(g.get<std::string>());
    }
    n.authPolicy = authPolicyFor("Gateway " + gw.ns + "/" + gw.name);
    n.accessLogDestinations = accessLogsFor("Gateway " + gw.ns + "/" + gw.name);
    for (const auto& other : out_.networks)
      if (other.name == n.name)
        fail(gw, "metadata.name", "shares its service network with " + other.source->ref() +
                                      " (Gateways of the same name share one); apply one of them");
    out_.networks.push_back(std::move(n));
  }

  void serviceNetworkCr(const Object& obj) {
    for (const auto& other : out_.networks)
      if (other.name == obj.name) return;  // a Gateway of the same name already makes it
    Network n;
    n.name = obj.name;
    n.source = &obj;
    n.tags = baseTags();
    for (auto& [k, v] : userTags(obj)) n.tags[k] = v;
    out_.networks.push_back(std::move(n));
  }

  // The network and listeners of a parent Gateway, from the applied files or from Lattice state.
  struct Parent {
    std::string network;
    std::string gatewayRef;
    std::vector<GatewayListener> listeners;
  };
  std::optional<Parent> parentGateway(const std::string& ns, const std::string& name) {
    for (const auto& n : out_.networks)
      if (n.gatewayNs == ns && n.gatewayName == name) return Parent{n.name, n.source->ref(), n.listeners};
    if (const Object* gw = index_.find("Gateway", ns, name)) {
      (void)gw;
      return std::nullopt;  // in the files but not a Lattice gateway
    }
    for (const auto& k : known_)
      if (k.ns == ns && k.name == name) return Parent{k.name, "Gateway " + ns + "/" + name, k.listeners};
    return std::nullopt;
  }

  json healthCheckFor(const TgPolicy* policy, const std::string& protocol, const std::string& version) {
    json hc = defaultHealthCheck(protocol, version);
    if (policy)
      for (auto& [k, v] : policy->healthCheck.items()) hc[k] = v;
    return hc;
  }

  // One target group per (route, Service) backendRef, as the controller makes them.
  std::string serviceTargetGroup(const Object& route, const std::string& field, const std::string& svcNs,
                                 const std::string& svcName, std::optional<int64_t> port) {
    const Object* service = index_.find("Service", svcNs, svcName);
    if (!service)
      fail(route, field, "Service " + svcNs + "/" + svcName +
                             " is not in the applied files (without a cluster, Services and their EndpointSlices "
                             "come from the manifests)");
    std::vector<const Object*> slices;
    for (const auto& obj : objects_) {
      if (obj.kind != "EndpointSlice" || obj.ns != svcNs) continue;
      const json& labels = obj.body["metadata"].value("labels", json::object());
      if (labels.is_object() && labels.value("kubernetes.io/service-name", "") == svcName) slices.push_back(&obj);
    }
    bool ipv6 = false;
    auto targets = endpointsOf(route, field, *service, port, slices, ipv6);

    auto policyIt = tgPolicies_.find(svcNs + "/Service/" + svcName);
    const TgPolicy* policy = policyIt == tgPolicies_.end() ? nullptr : &policyIt->second;
    std::string protocol = policy && !policy->protocol.empty() ? policy->protocol : "HTTP";
    std::string version = policy && !policy->protocolVersion.empty() ? policy->protocolVersion : "HTTP1";
    if (route.kind == "GRPCRoute") version = "GRPC";
    if (route.kind == "TLSRoute") {
      protocol = "TCP";
      version = "";
    }
    std::string key = route.kind + "/" + route.ns + "/" + route.name + "/" + svcNs + "/" + svcName;
    for (const auto& tg : out_.targetGroups)
      if (tg.key == key) {
        if (tg.targets != targets)
          fail(route, field, "refers to Service " + svcNs + "/" + svcName +
                                 " with another port than an earlier backendRef; one route can use one port per Service");
        return key;
      }
    TargetGroup tg;
    tg.key = key;
    tg.source = &route;
    tg.name = "k8s-" + truncateName(latticeSafe(svcNs), 55) + "-" + truncateName(latticeSafe(svcName), 55) + "-" +
              hashLetters(key + "/" + protocol + "/" + version, 10);
    tg.config = {{"port", 80}, {"protocol", protocol}, {"ipAddressType", ipv6 ? "IPV6" : "IPV4"},
                 {"vpcIdentifier", options_.vpcId}};
    if (!version.empty()) tg.config["protocolVersion"] = version;
    tg.config["healthCheck"] = healthCheckFor(policy, protocol, version);
    if (protocol == "TCP" && !(policy && policy->healthCheck.contains("enabled")))
      tg.config["healthCheck"]["enabled"] = false;
    tg.tags = baseTags();
    tg.tags[tag("ClusterName")] = options_.clusterName;
    tg.tags[tag("ServiceName")] = svcName;
    tg.tags[tag("ServiceNamespace")] = svcNs;
    tg.tags[tag("RouteName")] = route.name;
    tg.tags[tag("RouteNamespace")] = route.ns;
    tg.tags[tag("SourceTypeKey")] = route.kind;
    tg.tags[tag("ProtocolVersion")] = version.empty() ? "HTTP1" : version;
    for (auto& [k, v] : userTags(route)) tg.tags[k] = v;
    tg.targets = std::move(targets);
    out_.targetGroups.push_back(std::move(tg));
    return key;
  }

  // ServiceExport: one standalone target group per exported port (SourceTypeKey ServiceExport).
  void serviceExport(const Object& exp) {
    std::string backing = exp.annotation(tag("service-name"), exp.name);
    const Object* service = index_.find("Service", exp.ns, backing);
    if (!service) fail(exp, "metadata.name", "Service " + exp.ns + "/" + backing + " is not in the applied files");
    std::vector<std::pair<int64_t, std::string>> ports;
    const json& exported = array(exp, exp.spec(), "exportedPorts", "spec.exportedPorts");
    for (size_t i = 0; i < exported.size(); ++i) {
      auto port = integer(exp, exported[i], "port", at("spec.exportedPorts", i) + ".port", 1, 65535);
      if (!port) fail(exp, at("spec.exportedPorts", i) + ".port", "missing");
      std::string type = str(exp, exported[i], "routeType", at("spec.exportedPorts", i) + ".routeType");
      ports.emplace_back(*port, type.empty() ? "HTTP" : type);
    }
    std::string legacyPorts = exp.annotation(tag("port"));
    for (auto item : split(legacyPorts, ','))
      if (!trim(item).empty()) ports.emplace_back(std::atoll(std::string(trim(item)).c_str()), "HTTP");
    if (ports.empty()) fail(exp, "spec.exportedPorts", "exports no port");
    std::vector<const Object*> slices;
    for (const auto& obj : objects_)
      if (obj.kind == "EndpointSlice" && obj.ns == exp.ns &&
          obj.body["metadata"].value("labels", json::object()).value("kubernetes.io/service-name", "") == backing)
        slices.push_back(&obj);
    auto policyIt = tgPolicies_.find(exp.ns + "/ServiceExport/" + exp.name);
    const TgPolicy* policy = policyIt == tgPolicies_.end() ? nullptr : &policyIt->second;
    for (const auto& [port, type] : ports) {
      bool ipv6 = false;
      auto targets = endpointsOf(exp, "spec.exportedPorts", *service, port, slices, ipv6);
      std::string protocol = type == "TLS" ? "TCP" : policy && !policy->protocol.empty() ? policy->protocol : "HTTP";
      std::string version = type == "GRPC" ? "GRPC" : type == "TLS" ? "" : policy && !policy->protocolVersion.empty() ? policy->protocolVersion : "HTTP1";
      TargetGroup tg;
      tg.key = "ServiceExport/" + exp.ns + "/" + exp.name + "/" + std::to_string(port);
      tg.source = &exp;
      tg.name = "k8s-" + truncateName(latticeSafe(exp.ns), 55) + "-" + truncateName(latticeSafe(exp.name), 55) + "-" +
                hashLetters(tg.key + "/" + protocol + "/" + version, 10);
      tg.config = {{"port", 80}, {"protocol", protocol}, {"ipAddressType", ipv6 ? "IPV6" : "IPV4"},
                   {"vpcIdentifier", options_.vpcId}};
      if (!version.empty()) tg.config["protocolVersion"] = version;
      tg.config["healthCheck"] = healthCheckFor(policy, protocol, version);
      if (protocol == "TCP" && !(policy && policy->healthCheck.contains("enabled")))
        tg.config["healthCheck"]["enabled"] = false;
      tg.tags = baseTags();
      tg.tags[tag("ClusterName")] = options_.clusterName;
      tg.tags[tag("ServiceName")] = exp.name;
      tg.tags[tag("ServiceNamespace")] = exp.ns;
      tg.tags[tag("SourceTypeKey")] = "ServiceExport";
      tg.tags[tag("ProtocolVersion")] = version.empty() ? "HTTP1" : version;
      tg.targets = std::move(targets);
      out_.targetGroups.push_back(std::move(tg));
    }
  }

  // A backendRef → a target group key ("" when the reference cannot be used, which fail()s first).
  std::string backend(const Object& route, const json& ref, const std::string& field) {
    std::string group = str(route, ref, "group", field + ".group");
    std::string kind = str(route, ref, "kind", field + ".kind");
    if (kind.empty()) kind = "Service";
    std::string name = str(route, ref, "name", field + ".name", true);
    std::string ns = str(route, ref, "namespace", field + ".namespace");
    if (ns.empty()) ns = route.ns;
    auto port = integer(route, ref, "port", field + ".port", 1, 65535);
    // Cross-namespace references need no ReferenceGrant, as with the AWS controller.
    if (kind == "Service" && (group.empty() || group == "core")) return serviceTargetGroup(route, field, ns, name, port);
    if (kind == "ServiceImport") {
      const Object* imp = index_.find("ServiceImport", ns, name);
      if (imp) {
        std::string arn = imp->annotation(tag("target-group-arn"));
        if (!arn.empty()) return arn;  // an external target group, used as is
      }
      // Exported in these files, or by another cluster: resolved by tags at reconcile time.
      std::string exportName = imp ? imp->annotation(tag("export-name"), name) : name;
      for (const auto& tg : out_.targetGroups)
        if (startsWith(tg.key, "ServiceExport/" + ns + "/" + exportName + "/")) return tg.key;
      if (!imp) fail(route, field, "ServiceImport " + ns + "/" + name + " is not in the applied files");
      return "import:" + ns + "/" + exportName;
    }
    fail(route, field + ".kind", "'" + kind + "' is not a backend VPC Lattice can use (Service or ServiceImport)");
  }

  // The rule's RuleMatch. Lattice takes one match per rule; further matches and query parameter
  // matches go into the rule's Trellis extensions (`trellis.matches`, `trellis.queryMatches`).
  json httpMatch(const Object& route, const json& rule, const std::string& field, json& extensions) {
    const json& matches = array(route, rule, "matches", field + ".matches");
    if (matches.empty()) {
      json http = json::object();
      if (route.kind == "GRPCRoute") http["method"] = "POST";
      http["pathMatch"] = {{"match", {{"prefix", "/"}}}};
      return {{"httpMatch", http}};
    }
    if (matches.size() > 9)
      fail(route, field + ".matches", "has " + std::to_string(matches.size()) + " matches; a rule takes at most 9");
    json first, queries;
    for (size_t i = 0; i < matches.size(); ++i) {
      std::string mp = at(field + ".matches", i);
      json matchQueries = json::array();
      json http = oneMatch(route, matches[i], mp, matchQueries);
      // The extension's query matches hold for the whole rule, so every match must ask for the same.
      if (i == 0) queries = matchQueries;
      else if (matchQueries != queries)
        fail(route, mp + ".queryParams",
             "differs from matches[0].queryParams; Trellis applies one set of query parameter matches per rule: "
             "split the rule");
      if (i == 0) first = std::move(http);
      else extensions["matches"].push_back(std::move(http));
    }
    if (!queries.empty()) extensions["queryMatches"] = queries;
    return {{"httpMatch", first}};
  }

  // One HTTPRouteMatch or GRPCRouteMatch as an httpMatch; its query parameter matches go to `queries`.
  json oneMatch(const Object& route, const json& m, const std::string& mp, json& queries) {
    bool grpc = route.kind == "GRPCRoute";
    json http = json::object();
    if (grpc) http["method"] = "POST";
    if (!m.is_object()) fail(route, mp, "must be a mapping");
    if (grpc) {
      json method = m.value("method", json::object());
      std::string service = str(route, method, "service", mp + ".method.service");
      std::string name = str(route, method, "method", mp + ".method.method");
      std::string type = str(route, method, "type", mp + ".method.type");
      if (!type.empty() && type != "Exact")
        fail(route, mp + ".method.type", "'" + type + "' is not supported (LATTICE_UNSUPPORTED_MATCH_TYPE): use Exact");
      if (!name.empty() && service.empty())
        fail(route, mp + ".method", "a method without a service cannot be matched");
      json pathMatch = service.empty() ? json{{"prefix", "/"}}
                       : name.empty()  ? json{{"prefix", "/" + service + "/"}}
                                       : json{{"exact", "/" + service + "/" + name}};
      http["pathMatch"] = {{"match", pathMatch}};
    } else {
      if (const json* path = member(m, "path")) {
        std::string type = str(route, *path, "type", mp + ".path.type");
        std::string value = str(route, *path, "value", mp + ".path.value");
        if (value.empty()) value = "/";
        if (type.empty() || type == "PathPrefix")
          http["pathMatch"] = {{"match", {{"prefix", value}}}};
        else if (type == "Exact")
          http["pathMatch"] = {{"match", {{"exact", value}}}};
        else
          fail(route, mp + ".path.type",
               "'" + type + "' is not supported (LATTICE_UNSUPPORTED_PATH_MATCH_TYPE): use Exact or PathPrefix");
      }
      if (const json* method = member(m, "method")) {
        if (!method->is_string()) fail(route, mp + ".method", "must be a string");
        http["method"] = *method;
      }
      const json& params = array(route, m, "queryParams", mp + ".queryParams");
      queries = json::array();
      for (size_t i = 0; i < params.size(); ++i) {
        std::string qp = at(mp + ".queryParams", i);
        std::string type = str(route, params[i], "type", qp + ".type");
        if (!type.empty() && type != "Exact")
          fail(route, qp + ".type", "'" + type + "' is not supported: use Exact");
        queries.push_back({{"name", str(route, params[i], "name", qp + ".name", true)},
                           {"exact", str(route, params[i], "value", qp + ".value", true)}});
      }
    }
    const json& headers = array(route, m, "headers", mp + ".headers");
    if (headers.size() > 5)
      fail(route, mp + ".headers", "has " + std::to_string(headers.size()) +
                                       " header matches; VPC Lattice takes at most 5 (LATTICE_EXCEED_MAX_HEADER_MATCHES)");
    if (!headers.empty()) {
      json list = json::array();
      for (size_t i = 0; i < headers.size(); ++i) {
        std::string hp = at(mp + ".headers", i);
        std::string type = str(route, headers[i], "type", hp + ".type");
        if (!type.empty() && type != "Exact")
          fail(route, hp + ".type", "'" + type + "' is not supported (LATTICE_UNSUPPORTED_HEADER_MATCH_TYPE): use Exact");
        list.push_back({{"name", str(route, headers[i], "name", hp + ".name", true)},
                        {"match", {{"exact", str(route, headers[i], "value", hp + ".value", true)}}}});
      }
      http["headerMatches"] = list;
    }
    if (!http.contains("pathMatch") && !http.contains("method") && !http.contains("headerMatches"))
      http["pathMatch"] = {{"match", {{"prefix", "/"}}}};
    return http;
  }

  // A header modifier filter ({set, add: [{name, value}], remove: [name]}), which has the extension's shape.
  json headerModifier(const Object& route, const json& filter, const std::string& fp) {
    json out = json::object();
    for (const char* key : {"set", "add"}) {
      const json& list = array(route, filter, key, fp + "." + key);
      for (size_t i = 0; i < list.size(); ++i) {
        std::string hp = at(fp + "." + key, i);
        out[key].push_back({{"name", str(route, list[i], "name", hp + ".name", true)},
                            {"value", str(route, list[i], "value", hp + ".value", true)}});
      }
    }
    const json& remove = array(route, filter, "remove", fp + ".remove");
    for (size_t i = 0; i < remove.size(); ++i) {
      if (!remove[i].is_string()) fail(route, at(fp + ".remove", i), "must be a string");
      out["remove"].push_back(remove[i]);
    }
    return out;
  }

  // An HTTPPathModifier ({type, replaceFullPath | replacePrefixMatch}) as the extension's path member.
  json pathModifier(const Object& route, const json& path, const std::string& pp) {
    std::string type = str(route, path, "type", pp + ".type", true);
    if (type == "ReplaceFullPath")
      return {{"replaceFullPath", str(route, path, "replaceFullPath", pp + ".replaceFullPath", true)}};
    if (type == "ReplacePrefixMatch")
      return {{"replacePrefixMatch", str(route, path, "replacePrefixMatch", pp + ".replacePrefixMatch", true)}};
    fail(route, pp + ".type", "'" + type + "' is not a path modifier: use ReplaceFullPath or ReplacePrefixMatch");
  }

  // Rule filters the proxy applies become Trellis extensions; the rest are reported in `ignored`.
  void ruleFilters(const Object& route, const json& rule, const std::string& field, json& extensions,
                   std::vector<std::string>& ignored) {
    const json& filters = array(route, rule, "filters", field + ".filters");
    for (size_t i = 0; i < filters.size(); ++i) {
      std::string fp = at(field + ".filters", i);
      std::string type = str(route, filters[i], "type", fp + ".type", true);
      auto single = [&](const char* key) {
        if (extensions.contains(key)) fail(route, fp, "a rule takes one " + type + " filter");
      };
      if (type == "RequestHeaderModifier" || type == "ResponseHeaderModifier") {
        std::string key = type == "RequestHeaderModifier" ? "requestHeaderModifier" : "responseHeaderModifier";
        single(key.c_str());
        json modifier = headerModifier(route, filters[i].value(key, json::object()), fp + "." + key);
        if (!modifier.empty()) extensions[key] = modifier;
      } else if (type == "URLRewrite" || type == "RequestRedirect") {
        std::string key = type == "URLRewrite" ? "urlRewrite" : "requestRedirect";
        std::string k8sKey = type == "URLRewrite" ? "urlRewrite" : "requestRedirect";
        single(key.c_str());
        const json& spec = filters[i].value(k8sKey, json::object());
        std::string sp = fp + "." + k8sKey;
        json out = json::object();
        if (std::string host = str(route, spec, "hostname", sp + ".hostname"); !host.empty()) out["hostname"] = host;
        if (const json* path = member(spec, "path")) out["path"] = pathModifier(route, *path, sp + ".path");
        if (type == "RequestRedirect") {
          if (std::string scheme = str(route, spec, "scheme", sp + ".scheme"); !scheme.empty()) out["scheme"] = scheme;
          if (auto port = integer(route, spec, "port", sp + ".port", 1, 65535)) out["port"] = *port;
          if (auto code = integer(route, spec, "statusCode", sp + ".statusCode", 301, 302)) out["statusCode"] = *code;
        }
        if (!out.empty() || type == "RequestRedirect") extensions[key] = out;  // an empty redirect still answers 302
      } else {
        out_.warnings.push_back(route.where(fp) + ": ignored: Trellis does not apply " + type + " filters");
        ignored.push_back(fp);
      }
    }
    if (extensions.contains("urlRewrite") && extensions.contains("requestRedirect"))
      fail(route, field + ".filters", "URLRewrite and RequestRedirect cannot be used together");
  }

  // An HTTPRoute rule's timeouts and retry (ignored by the AWS controller) become Trellis extensions the
  // proxy applies: `trellis.timeouts` and `trellis.retry` (README, "rule extensions").
  void timeoutsAndRetry(const Object& route, const json& rule, const std::string& field, json& extensions) {
    if (const json* timeouts = member(rule, "timeouts")) {
      std::string tp = field + ".timeouts";
      if (!timeouts->is_object()) fail(route, tp, "must be a mapping");
      json out = json::object();
      // 0 disables a timeout (the Gateway API's meaning): nothing to apply.
      for (auto [k8sKey, key] : {std::pair{"request", "requestMs"}, std::pair{"backendRequest", "backendRequestMs"}}) {
        auto ms = durationMs(route, *timeouts, k8sKey, tp + "." + k8sKey);
        if (ms && *ms > 3600000) fail(route, tp + "." + k8sKey, "is above Trellis's maximum, 1h");
        if (ms && *ms > 0) out[key] = *ms;
      }
      if (out.contains("requestMs") && out.contains("backendRequestMs") && out["backendRequestMs"] > out["requestMs"])
        fail(route, tp + ".backendRequest", "must not be longer than timeouts.request");
      if (!out.empty()) extensions["timeouts"] = out;
    }
    if (const json* retry = member(rule, "retry")) {
      std::string rp = field + ".retry";
      if (!retry->is_object()) fail(route, rp, "must be a mapping");
      // Unspecified attempts are the implementation's choice: one retry, as Envoy's default.
      json out = {{"attempts", integer(route, *retry, "attempts", rp + ".attempts", 0, 5).value_or(1)}};
      const json& codes = array(route, *retry, "codes", rp + ".codes");
      for (size_t i = 0; i < codes.size(); ++i) {
        json holder = {{"code", codes[i]}};
        auto code = integer(route, holder, "code", at(rp + ".codes", i), 400, 599);
        if (*code < 500)
          fail(route, at(rp + ".codes", i), std::to_string(*code) + ": Trellis retries 5xx statuses only");
        out["statusCodes"].push_back(*code);
      }
      if (auto backoff = durationMs(route, *retry, "backoff", rp + ".backoff")) {
        if (*backoff > 60000) fail(route, rp + ".backoff", "is above Trellis's maximum, 1m");
        out["backoffMs"] = *backoff;
      }
      extensions["retry"] = out;
    }
  }

  // Session persistence is ignored by the AWS controller and not applied by Trellis's proxy (nor are a
  // GRPCRoute's timeouts and retry, which the Gateway API does not define); apply says so instead.
  void warnIgnored(const Object& route, const json& rule, const std::string& field, std::vector<std::string>& ignored) {
    for (const char* key : {"timeouts", "retry", "sessionPersistence"}) {
      if (route.kind == "HTTPRoute" && std::string_view(key) != "sessionPersistence") continue;  // timeoutsAndRetry
      const json* v = member(rule, key);
      if (v && !(v->is_array() && v->empty())) {
        out_.warnings.push_back(route.where(field + "." + key) +
                                ": ignored: VPC Lattice rules have no equivalent (as with the AWS controller)");
        ignored.push_back(field + "." + key);
      }
    }
    for (size_t i = 0; rule.contains("backendRefs") && rule["backendRefs"].is_array() && i < rule["backendRefs"].size(); ++i)
      if (const json* f = member(rule["backendRefs"][i], "filters"); f && f->is_array() && !f->empty()) {
        out_.warnings.push_back(route.where(at(field + ".backendRefs", i) + ".filters") + ": ignored");
        ignored.push_back(at(field + ".backendRefs", i) + ".filters");
      }
  }

  json forwardAction(const Object& route, const json& rule, const std::string& field) {
    const json& refs = array(route, rule, "backendRefs", field + ".backendRefs");
    json groups = json::array();
    std::set<std::string> seen;
    for (size_t i = 0; i < refs.size(); ++i) {
      std::string rp = at(field + ".backendRefs", i);
      if (!refs[i].is_object()) fail(route, rp, "must be a mapping");
      std::string key = backend(route, refs[i], rp);
      auto weight = integer(route, refs[i], "weight", rp + ".weight", 0, 1000000).value_or(1);
      if (weight > 999)
        fail(route, rp + ".weight", std::to_string(weight) + " is above VPC Lattice's maximum weight, 999");
      if (!seen.insert(key).second) fail(route, rp, "repeats a backend of the same rule");
      groups.push_back({{"targetGroupIdentifier", key}, {"weight", weight}});
    }
    if (groups.empty()) return {{"fixedResponse", {{"statusCode", 500}}}};  // no backends: 500, as the controller
    return {{"forward", {{"targetGroups", groups}}}};
  }

  std::vector<int> priorities(const Object& route, size_t count) {
    std::vector<int> out(count, 0);
    int highest = 0;
    std::set<int> used;
    for (size_t i = 0; i < count; ++i) {
      std::string key = tag(("rule-" + std::to_string(i) + "-priority").c_str());
      std::string value = route.annotation(key);
      if (value.empty()) continue;
      int p = std::atoi(value.c_str());
      if (p < 1 || p > 100 || std::to_string(p) != value)
        fail(route, "metadata.annotations[" + key + "]", "'" + value + "' must be a priority from 1 to 100");
      if (!used.insert(p).second)
        fail(route, "metadata.annotations[" + key + "]", "priority " + value + " is given to two rules");
      out[i] = p;
      highest = std::max(highest, p);
    }
    for (size_t i = 0; i < count; ++i)
      if (out[i] == 0) {
        while (used.count(highest + 1)) ++highest;
        out[i] = ++highest;
        used.insert(out[i]);
        if (out[i] > 100) fail(route, "spec.rules", "more rules than VPC Lattice's 100 priorities");
      }
    return out;
  }

  void route(const Object& r) {
    Service svc;
    svc.routeKind = r.kind;
    svc.routeNs = r.ns;
    svc.routeName = r.name;
    svc.source = &r;
    svc.nameOverride = r.annotation(tag("service-name-override"));
    std::vector<std::string> ignored;
    const json& spec = r.spec();
    const json& hostnames = array(r, spec, "hostnames", "spec.hostnames");
    if (!hostnames.empty()) {
      if (!hostnames[0].is_string()) fail(r, "spec.hostnames[0]", "must be a string");
      svc.customDomainName = hostnames[0];
      if (hostnames.size() > 1) {
        out_.warnings.push_back(r.where("spec.hostnames") + ": only the first hostname is used (VPC Lattice takes one "
                                                             "custom domain name)");
        ignored.push_back("spec.hostnames[1:]");
      }
    }
    const json& rules = array(r, spec, "rules", "spec.rules");
    bool tls = r.kind == "TLSRoute";
    if (tls) {
      if (rules.size() != 1) fail(r, "spec.rules", "a TLSRoute must have exactly one rule");
      if (hostnames.size() != 1) fail(r, "spec.hostnames", "a TLSRoute must have exactly one hostname");
    }

    // Parents: the Lattice gateways this route attaches to, and the listeners it gets.
    const json& parents = array(r, spec, "parentRefs", "spec.parentRefs");
    if (parents.empty()) fail(r, "spec.parentRefs", "a route needs a parent Gateway");
    std::vector<GatewayListener> listeners;
    for (size_t i = 0; i < parents.size(); ++i) {
      std::string pp = at("spec.parentRefs", i);
      const json& ref = parents[i];
      std::string kind = str(r, ref, "kind", pp + ".kind");
      if (!kind.empty() && kind != "Gateway")
        fail(r, pp + ".kind", "'" + kind + "' parents are not supported: VPC Lattice routes attach to Gateways");
      std::string name = str(r, ref, "name", pp + ".name", true);
      std::string ns = str(r, ref, "namespace", pp + ".namespace");
      if (ns.empty()) ns = r.ns;
      auto parent = parentGateway(ns, name);
      if (!parent) {
        if (index_.find("Gateway", ns, name)) continue;  // another controller's Gateway
        fail(r, pp, "Gateway " + ns + "/" + name + " is neither in the applied files nor applied before");
      }
      std::string section = str(r, ref, "sectionName", pp + ".sectionName");
      auto port = integer(r, ref, "port", pp + ".port", 1, 65535);
      std::vector<GatewayListener> matched;
      for (const auto& l : parent->listeners) {
        if (!section.empty() && l.name != section) continue;
        if (port && l.port != *port) continue;
        bool fits = r.kind == "HTTPRoute"   ? (l.protocol == "HTTP" || l.protocol == "HTTPS")
                    : r.kind == "GRPCRoute" ? l.protocol == "HTTPS"
                                            : l.protocol == "TLS_PASSTHROUGH";
        if (fits) matched.push_back(l);
      }
      if (matched.empty())
        fail(r, pp, "no listener of " + parent->gatewayRef + " accepts a " + r.kind +
                        (section.empty() ? "" : " under sectionName '" + section + "'") +
                        (r.kind == "GRPCRoute" ? " (GRPCRoute needs an HTTPS listener)" : "") + " (NoMatchingParent)");
      // Only the first Lattice gateway's listeners are used, as with the controller.
      if (listeners.empty()) listeners = matched;
      if (std::find(svc.networks.begin(), svc.networks.end(), parent->network) == svc.networks.end())
        svc.networks.push_back(parent->network);
    }
    if (svc.networks.empty()) fail(r, "spec.parentRefs", "no parent is a VPC Lattice Gateway");
    std::string standalone = r.annotation(tag("standalone"));
    if (standalone == "true") svc.networks.clear();

    for (const auto& l : listeners)
      if (!l.certificateArn.empty() && svc.certificateArn.empty()) svc.certificateArn = l.certificateArn;

    std::vector<Rule> latticeRules;
    auto prio = priorities(r, rules.size());
    json passthroughAction;
    for (size_t i = 0; i < rules.size(); ++i) {
      std::string rp = at("spec.rules", i);
      if (!rules[i].is_object()) fail(r, rp, "must be a mapping");
      warnIgnored(r, rules[i], rp, ignored);
      if (tls) {
        if (member(rules[i], "matches")) fail(r, rp + ".matches", "a TLSRoute rule has no matches");
        if (member(rules[i], "filters")) fail(r, rp + ".filters", "a TLSRoute rule has no filters");
        passthroughAction = forwardAction(r, rules[i], rp);
        if (!passthroughAction.contains("forward")) fail(r, rp + ".backendRefs", "a TLSRoute needs a backend");
        continue;
      }
      json extensions = json::object();
      json match = httpMatch(r, rules[i], rp, extensions);
      ruleFilters(r, rules[i], rp, extensions, ignored);
      if (r.kind == "HTTPRoute") timeoutsAndRetry(r, rules[i], rp, extensions);
      latticeRules.push_back({prio[i], match, forwardAction(r, rules[i], rp), extensions});
    }
    std::sort(latticeRules.begin(), latticeRules.end(), [](const Rule& a, const Rule& b) { return a.priority < b.priority; });
    for (const auto& l : listeners) {
      Listener listener;
      listener.name = listenerName(r.name, r.ns, l.port, l.protocol);
      listener.protocol = l.protocol;
      listener.port = l.port;
      if (l.protocol == "TLS_PASSTHROUGH") {
        listener.defaultAction = passthroughAction;
      } else {
        listener.defaultAction = {{"fixedResponse", {{"statusCode", 404}}}};
        listener.rules = latticeRules;
      }
      svc.listeners.push_back(std::move(listener));
    }
    svc.authPolicy = authPolicyFor(r.kind + " " + r.ns + "/" + r.name);
    svc.accessLogDestinations = accessLogsFor(r.kind + " " + r.ns + "/" + r.name);
    svc.tags = baseTags();
    svc.tags[tag("RouteName")] = r.name;
    svc.tags[tag("RouteNamespace")] = r.ns;
    svc.tags[tag("RouteType")] = r.kind == "HTTPRoute" ? "http" : r.kind == "GRPCRoute" ? "grpc" : "tls";
    for (auto& [k, v] : userTags(r)) svc.tags[k] = v;
    if (!ignored.empty()) {
      std::string list;
      for (const auto& f : ignored) list += (list.empty() ? "" : ",") + f;
      svc.tags[kUnsupportedTag] = list.size() <= 256 ? list : list.substr(0, 252) + ",...";
    }
    out_.services.push_back(std::move(svc));
  }
};

}  // namespace

Desired translate(const std::vector<Object>& objects, const Options& options, const std::vector<KnownGateway>& known) {
  return Translator(objects, options, known).run();
}

}  // namespace trellis::gateway
