#include "gateway/reconcile.h"

#include <algorithm>
#include <ctime>
#include <set>

#include "common/strings.h"
#include "common/time.h"

namespace trellis::gateway {
namespace {

std::string seg(const std::string& s) { return percentEncode(s); }

// A Lattice resource as listed, with its tags.
struct Res {
  std::string id, arn, name;
  json doc;
  Tags tags;
  bool has(const char* key, const std::string& value) const {
    auto it = tags.find(tag(key));
    return it != tags.end() && it->second == value;
  }
  std::string get(const char* key) const {
    auto it = tags.find(tag(key));
    return it == tags.end() ? "" : it->second;
  }
};

std::string resource(const std::string& kind) {
  if (kind == "Gateway" || kind == "GatewayClass" || kind == "HTTPRoute" || kind == "GRPCRoute" ||
      kind == "TLSRoute" || kind == "ReferenceGrant")
    return toLower(kind) + ".gateway.networking.k8s.io";
  if (kind == "Service" || kind == "Namespace") return toLower(kind);
  if (kind == "EndpointSlice") return "endpointslice.discovery.k8s.io";
  return toLower(kind) + ".application-networking.k8s.aws";
}

std::string routeType(const std::string& kind) {
  return kind == "HTTPRoute" ? "http" : kind == "GRPCRoute" ? "grpc" : "tls";
}

int64_t unixTime(const std::string& rfc3339) {
  auto t = parseRfc3339(rfc3339);
  return t ? std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count() : 0;
}

// The health check as the API stores it equals `want` (keys of `want`, and a port only if wanted).
bool sameHealthCheck(const json& want, const json& have) {
  if (!have.is_object()) return false;
  for (auto& [k, v] : want.items())
    if (!have.contains(k) || have[k] != v) return false;
  return have.contains("port") == want.contains("port");
}

class Session {
 public:
  Session(LatticeApi& api, Options& options) : api_(api), options_(options) {}

  Report report;

  // ---- Reading ----

  std::vector<json> listAll(const std::string& path, const std::string& query = "", const char* method = "GET") {
    std::vector<json> items;
    std::set<std::string> seen;
    std::string token;
    do {
      std::string q = query;
      if (!token.empty()) q += (q.empty() ? "" : "&") + std::string("nextToken=") + seg(token);
      json page = api_.call(method, path, q, std::string(method) == "POST" ? json::object() : json());
      for (auto& item : page.value("items", json::array())) items.push_back(std::move(item));
      token = page.value("nextToken", "");
      if (!token.empty() && !seen.insert(token).second) throw std::runtime_error(path + ": the same nextToken twice");
    } while (!token.empty());
    return items;
  }

  Tags tagsOf(const std::string& arn) {
    Tags tags;
    json out = api_.call("GET", "/tags/" + seg(arn), "", json());
    json all = out.value("tags", json::object());
    for (auto& [k, v] : all.items())
      if (v.is_string()) tags[k] = v.get<std::string>();
    return tags;
  }

  std::vector<Res> loadAll(const std::string& path) {
    std::vector<Res> out;
    for (auto& item : listAll(path)) {
      Res r{item.value("id", ""), item.value("arn", ""), item.value("name", ""), item, {}};
      r.tags = tagsOf(r.arn);
      out.push_back(std::move(r));
    }
    return out;
  }

  void load() {
    networks = loadAll("/servicenetworks");
    services = loadAll("/services");
    targetGroups = loadAll("/targetgroups");
    if (options_.accountId.empty()) {
      for (const auto* list : {&networks, &services, &targetGroups})
        for (const auto& r : *list) {
          auto parts = split(r.arn, ':');
          if (options_.accountId.empty() && parts.size() > 4) options_.accountId = std::string(parts[4]);
        }
      if (options_.accountId.empty()) options_.accountId = Options{}.accountId;
    }
    owner = managedBy(options_);
  }

  std::vector<KnownGateway> knownGateways() const {
    std::vector<KnownGateway> out;
    for (const auto& sn : networks) {
      if (sn.get("GatewayName").empty()) continue;
      KnownGateway k{sn.get("GatewayNamespace"), sn.get("GatewayName"), sn.get("GatewayClass"), {}};
      std::string encoded = sn.get("GatewayListeners");
      for (auto item : split(encoded, ',')) {
        auto parts = split(item, ':');
        if (parts.size() == 3)
          k.listeners.push_back({std::string(parts[0]), std::string(parts[1]), std::atoi(std::string(parts[2]).c_str()), ""});
      }
      out.push_back(std::move(k));
    }
    return out;
  }

  Res* network(const std::string& name) {
    for (auto& r : networks)
      if (r.name == name) return &r;
    return nullptr;
  }
  Res* routeService(const std::string& kind, const std::string& ns, const std::string& name) {
    for (auto& r : services)
      if (r.has("RouteName", name) && r.has("RouteNamespace", ns) && r.has("RouteType", routeType(kind))) return &r;
    return nullptr;
  }
  Res* targetGroupNamed(const std::string& name) {
    for (auto& r : targetGroups)
      if (r.name == name) return &r;
    return nullptr;
  }
  bool owned(const Res& r) const { return r.has("ManagedBy", owner); }

  json read(const std::string& path) { return api_.call("GET", path, "", json()); }

  // ---- Writing ----

  json write(const std::string& who, const std::string& method, const std::string& path, const json& body,
             const std::string& query = "") {
    ++report.writes;
    changed.insert(who);
    try {
      return api_.call(method, path, query, body);
    } catch (const ApiCallError& e) {
      // Say which object the failed write was for; what was written before stays, and applying again
      // continues from there.
      throw ApiCallError(e.status, e.type, who + ": " + e.message);
    }
  }

  void tagIfNeeded(const std::string& who, const Res& r, const Tags& want) {
    json missing = json::object();
    for (const auto& [k, v] : want) {
      auto it = r.tags.find(k);
      if (it == r.tags.end() || it->second != v) missing[k] = v;
    }
    if (!missing.empty()) write(who, "POST", "/tags/" + seg(r.arn), {{"tags", missing}});
  }

  // An auth policy on a network or service: present with `policy`, or removed when we own the resource.
  void reconcileAuth(const std::string& who, const std::string& collection, const Res& r,
                     const std::optional<std::string>& policy, bool ours) {
    std::string want = policy ? "AWS_IAM" : "NONE";
    json current = api_.call("GET", collection + "/" + seg(r.id), "", json());
    if ((policy || ours) && current.value("authType", "NONE") != want)
      write(who, "PATCH", collection + "/" + seg(r.id), {{"authType", want}});
    std::string have;
    try {
      have = api_.call("GET", "/authpolicy/" + seg(r.id), "", json()).value("policy", "");
    } catch (const ApiCallError& e) {
      if (e.status != 404) throw;
    }
    if (policy && have != *policy) write(who, "PUT", "/authpolicy/" + seg(r.id), {{"policy", *policy}});
    if (!policy && ours && !have.empty()) write(who, "DELETE", "/authpolicy/" + seg(r.id), json());
  }

  void reconcileAccessLogs(const std::string& who, const Res& r, const std::vector<std::string>& destinations) {
    auto subs = listAll("/accesslogsubscriptions", "resourceIdentifier=" + seg(r.id));
    std::set<std::string> have;
    for (const auto& s : subs) {
      std::string dest = s.value("destinationArn", "");
      have.insert(dest);
      bool wanted = std::find(destinations.begin(), destinations.end(), dest) != destinations.end();
      if (!wanted && tagsOf(s.value("arn", ""))[tag("ManagedBy")] == owner)
        write(who, "DELETE", "/accesslogsubscriptions/" + seg(s.value("id", "")), json());
    }
    for (const auto& d : destinations)
      if (!have.count(d))
        write(who, "POST", "/accesslogsubscriptions",
              {{"resourceIdentifier", r.id}, {"destinationArn", d}, {"tags", {{tag("ManagedBy"), owner}}}});
  }

  std::vector<Res> networks, services, targetGroups;
  std::string owner;
  std::set<std::string> changed, created;

 private:
  LatticeApi& api_;
  Options& options_;
};

// ---- apply ----

class Apply {
 public:
  Apply(Session& s, const Options& options, const std::vector<Object>& objects)
      : s_(s), options_(options), objects_(objects) {}

  void run() {
    desired_ = translate(objects_, options_, s_.knownGateways());
    for (const auto& w : desired_.warnings) s_.report.warnings.push_back(w);
    validate();
    for (auto& n : desired_.networks) network(n);
    for (auto& tg : desired_.targetGroups) targetGroup(tg);
    for (size_t i = 0; i < desired_.services.size(); ++i) service(desired_.services[i], serviceNames_[i]);
    removeStaleTargetGroups();
    for (const auto& obj : objects_) {
      std::string ref = obj.ref();
      std::string state = s_.created.count(ref) ? "created" : s_.changed.count(ref) ? "configured" : "unchanged";
      s_.report.lines.push_back(resource(obj.kind) + "/" + obj.name + (obj.ns.empty() ? "" : " -n " + obj.ns) + " " + state);
    }
  }

 private:
  Session& s_;
  const Options& options_;
  const std::vector<Object>& objects_;
  Desired desired_;
  std::vector<std::string> serviceNames_;
  std::map<std::string, std::string> tgIds_;  // target group key → id

  [[noreturn]] static void fail(const Object* obj, const std::string& field, const std::string& what) {
    throw ManifestError((obj ? obj->where(field) : field) + ": " + what);
  }

  // Everything that can be known before writing: names, ownership, conflicts, references to state.
  void validate() {
    std::vector<json> vpcAssociations =
        s_.listAll("/servicenetworkvpcassociations", "vpcIdentifier=" + seg(options_.vpcId));
    for (const auto& n : desired_.networks) {
      if (!n.associateVpc) continue;
      for (const auto& a : vpcAssociations)
        if (a.value("serviceNetworkName", "") != n.name)
          fail(n.source, "", "the VPC " + options_.vpcId + " is already associated with service network " +
                                 a.value("serviceNetworkName", "") + " (a VPC can be associated with only one): " +
                                 "pass --vpc, or set associateWithVpc: false in a VpcAssociationPolicy");
      if (std::count_if(desired_.networks.begin(), desired_.networks.end(),
                        [](const Network& x) { return x.associateVpc; }) > 1)
        fail(n.source, "", "several Gateways would associate the VPC " + options_.vpcId +
                               "; a VPC can be associated with only one service network (use a VpcAssociationPolicy "
                               "with associateWithVpc: false on the others)");
    }
    std::set<std::string> taken;
    for (const auto& svc : desired_.services) {
      Res* existing = s_.routeService(svc.routeKind, svc.routeNs, svc.routeName);
      std::string name;
      if (existing) {
        if (!s_.owned(*existing))
          fail(svc.source, "", "its Lattice service " + existing->name + " is managed by " +
                                   existing->get("ManagedBy") + ", not " + s_.owner + " (Conflicted)");
        name = existing->name;
        std::string domain = existing->doc.value("customDomainName", "");
        if (domain != svc.customDomainName)
          fail(svc.source, "spec.hostnames", "the custom domain name of a Lattice service cannot change (it is '" +
                                                 domain + "'): delete the route first, then apply it again");
      } else if (!svc.nameOverride.empty()) {
        name = svc.nameOverride;
        std::string field = "metadata.annotations[" + tag("service-name-override") + "]";
        bool ok = name.size() >= 3 && name.size() <= 40 && name.find("--") == std::string::npos &&
                  !startsWith(name, "svc-") && name.front() != '-' && name.back() != '-' &&
                  std::all_of(name.begin(), name.end(),
                              [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
        if (!ok)
          fail(svc.source, field, "'" + name + "' must be 3-40 lower-case letters, digits and single hyphens, not "
                                                "starting with svc-");
        for (const auto& r : s_.services)
          if (r.name == name) fail(svc.source, field, "a Lattice service named " + name + " already exists");
      } else {
        name = serviceName(svc.routeName, svc.routeNs);
        bool used = taken.count(name) ||
                    std::any_of(s_.services.begin(), s_.services.end(), [&](const Res& r) { return r.name == name; });
        if (used) name = hashedServiceName(svc.routeName, svc.routeNs);  // never share a name (controller issue #657)
      }
      if (!taken.insert(name).second) fail(svc.source, "", "two routes would share the Lattice service name " + name);
      serviceNames_.push_back(name);
    }
    for (const auto& tg : desired_.targetGroups) {
      Res* existing = s_.targetGroupNamed(tg.name);
      if (existing && !s_.owned(*existing))
        fail(tg.source, "", "a target group named " + tg.name + " exists and is not managed by " + s_.owner);
    }
    // Target groups named by key that live only in Lattice: ServiceImports of other clusters' exports.
    for (const auto& svc : desired_.services)
      for (const auto& l : svc.listeners) {
        std::vector<const json*> actions{&l.defaultAction};
        for (const auto& r : l.rules) actions.push_back(&r.action);
        for (const json* a : actions)
          if (a->contains("forward"))
            for (const auto& g : (*a)["forward"]["targetGroups"]) resolveImport(svc, g["targetGroupIdentifier"]);
      }
  }

  void resolveImport(const Service& svc, const std::string& key) {
    if (tgIds_.count(key)) return;
    if (startsWith(key, "arn:")) {
      tgIds_[key] = key;
      return;
    }
    if (!startsWith(key, "import:")) return;
    std::string nsName = key.substr(7);
    std::string ns = nsName.substr(0, nsName.find('/')), name = nsName.substr(nsName.find('/') + 1);
    for (const auto& r : s_.targetGroups)
      if (r.has("SourceTypeKey", "ServiceExport") && r.has("ServiceName", name) && r.has("ServiceNamespace", ns)) {
        tgIds_[key] = r.id;
        return;
      }
    fail(svc.source, "spec.rules", "no target group of an exported Service " + ns + "/" + name +
                                       " exists (ServiceImport needs a ServiceExport, here or in another cluster)");
  }

  void network(Network& n) {
    std::string who = n.source->ref();
    Res* sn = s_.network(n.name);
    bool ours;
    if (!sn) {
      json body = {{"name", n.name}, {"tags", n.tags}, {"authType", n.authPolicy ? "AWS_IAM" : "NONE"}};
      json out = s_.write(who, "POST", "/servicenetworks", body);
      s_.created.insert(who);
      s_.networks.push_back({out.value("id", ""), out.value("arn", ""), n.name, out, n.tags});
      sn = &s_.networks.back();
      ours = true;
    } else {
      ours = s_.owned(*sn);
      Tags want = n.tags;
      if (!ours) want.erase(tag("ManagedBy"));  // used, not owned: only say which Gateway uses it
      s_.tagIfNeeded(who, *sn, want);
    }
    s_.reconcileAuth(who, "/servicenetworks", *sn, n.authPolicy, ours);
    if (!n.gatewayName.empty()) {
      auto assocs = s_.listAll("/servicenetworkvpcassociations", "serviceNetworkIdentifier=" + seg(sn->id));
      const json* mine = nullptr;
      for (const auto& a : assocs)
        if (a.value("vpcId", "") == options_.vpcId) mine = &a;
      if (n.associateVpc && !mine) {
        json body = {{"serviceNetworkIdentifier", sn->id},
                     {"vpcIdentifier", options_.vpcId},
                     {"tags", {{tag("ManagedBy"), s_.owner}}}};
        if (!n.securityGroupIds.empty()) body["securityGroupIds"] = n.securityGroupIds;
        s_.write(who, "POST", "/servicenetworkvpcassociations", body);
      } else if (n.associateVpc && mine && !n.securityGroupIds.empty()) {
        json got = apiGet("/servicenetworkvpcassociations/" + seg(mine->value("id", "")));
        auto have = got.value("securityGroupIds", std::vector<std::string>{});
        auto want = n.securityGroupIds;
        std::sort(have.begin(), have.end());
        std::sort(want.begin(), want.end());
        if (have != want)
          s_.write(who, "PATCH", "/servicenetworkvpcassociations/" + seg(mine->value("id", "")),
                   {{"securityGroupIds", n.securityGroupIds}});
      } else if (!n.associateVpc && mine && s_.tagsOf(mine->value("arn", ""))[tag("ManagedBy")] == s_.owner) {
        s_.write(who, "DELETE", "/servicenetworkvpcassociations/" + seg(mine->value("id", "")), json());
      }
    }
    s_.reconcileAccessLogs(who, *sn, n.accessLogDestinations);
  }

  json apiGet(const std::string& path) { return s_.read(path); }

  void targetGroup(TargetGroup& tg) {
    std::string who = tg.source->ref();
    Res* existing = s_.targetGroupNamed(tg.name);
    std::vector<Target> active;
    if (!existing) {
      json out = s_.write(who, "POST", "/targetgroups",
                          {{"name", tg.name}, {"type", "IP"}, {"config", tg.config}, {"tags", tg.tags}});
      tgIds_[tg.key] = out.value("id", "");
    } else {
      tgIds_[tg.key] = existing->id;
      json got = apiGet("/targetgroups/" + seg(existing->id));
      const json& want = tg.config["healthCheck"];
      const json& have = got.value("config", json::object()).value("healthCheck", json::object());
      if (!sameHealthCheck(want, have)) {
        json hc = want;
        if (have.contains("port") && !want.contains("port")) hc["port"] = 0;  // 0 resets to the traffic port
        s_.write(who, "PATCH", "/targetgroups/" + seg(existing->id), {{"healthCheck", hc}});
      }
      s_.tagIfNeeded(who, *existing, tg.tags);
      for (const auto& t : s_.listAll("/targetgroups/" + seg(existing->id) + "/listtargets", "", "POST"))
        if (t.value("status", "") != "DRAINING") active.push_back({t.value("id", ""), t.value("port", 0)});
      std::sort(active.begin(), active.end());
    }
    std::string id = tgIds_[tg.key];
    std::vector<Target> add, drop;
    std::set_difference(tg.targets.begin(), tg.targets.end(), active.begin(), active.end(), std::back_inserter(add));
    std::set_difference(active.begin(), active.end(), tg.targets.begin(), tg.targets.end(), std::back_inserter(drop));
    // The API takes at most 100 targets per call, as the controller chunks them.
    auto send = [&](const std::vector<Target>& list, const char* op) {
      for (size_t i = 0; i < list.size(); i += 100) {
        json targets = json::array();
        for (size_t j = i; j < list.size() && j < i + 100; ++j) targets.push_back({{"id", list[j].ip}, {"port", list[j].port}});
        json out = s_.write(who, "POST", "/targetgroups/" + seg(id) + "/" + op, {{"targets", targets}});
        for (const auto& f : out.value("unsuccessful", json::array()))
          s_.report.warnings.push_back(who + ": target " + f.value("id", "") + ":" + std::to_string(f.value("port", 0)) +
                                       ": " + f.value("failureCode", "") + " " + f.value("failureMessage", ""));
      }
    };
    send(add, "registertargets");
    send(drop, "deregistertargets");
  }

  json resolved(const json& action) {
    if (!action.contains("forward")) return action;
    json out = action;
    for (auto& g : out["forward"]["targetGroups"]) g["targetGroupIdentifier"] = tgIds_.at(g["targetGroupIdentifier"]);
    return out;
  }

  void service(const Service& svc, const std::string& name) {
    std::string who = svc.source->ref();
    Res* existing = s_.routeService(svc.routeKind, svc.routeNs, svc.routeName);
    json doc;
    if (!existing) {
      json body = {{"name", name}, {"tags", svc.tags}, {"authType", svc.authPolicy ? "AWS_IAM" : "NONE"}};
      if (!svc.customDomainName.empty()) body["customDomainName"] = svc.customDomainName;
      if (!svc.certificateArn.empty()) body["certificateArn"] = svc.certificateArn;
      json out = s_.write(who, "POST", "/services", body);
      s_.created.insert(who);
      s_.services.push_back({out.value("id", ""), out.value("arn", ""), name, out, svc.tags});
      existing = &s_.services.back();
      doc = apiGet("/services/" + seg(existing->id));
    } else {
      doc = apiGet("/services/" + seg(existing->id));
      s_.tagIfNeeded(who, *existing, svc.tags);
      if (existing->tags.count(kUnsupportedTag) && !svc.tags.count(kUnsupportedTag))
        s_.write(who, "DELETE", "/tags/" + seg(existing->arn), json(), "tagKeys=" + seg(kUnsupportedTag));
      if (doc.value("certificateArn", "") != svc.certificateArn)
        s_.write(who, "PATCH", "/services/" + seg(existing->id), {{"certificateArn", svc.certificateArn}});
    }
    std::string id = existing->id;
    s_.reconcileAuth(who, "/services", *existing, svc.authPolicy, true);
    int64_t created = unixTime(doc.value("createdAt", ""));

    auto listeners = s_.listAll("/services/" + seg(id) + "/listeners");
    for (const auto& l : listeners) {
      bool wanted = std::any_of(svc.listeners.begin(), svc.listeners.end(), [&](const Listener& w) {
        return w.port == l.value("port", 0) && w.protocol == l.value("protocol", "");
      });
      if (!wanted) s_.write(who, "DELETE", "/services/" + seg(id) + "/listeners/" + seg(l.value("id", "")), json());
    }
    for (const auto& want : svc.listeners) {
      std::string listenerId;
      json action = resolved(want.defaultAction);
      for (const auto& l : listeners)
        if (l.value("port", 0) == want.port && l.value("protocol", "") == want.protocol) listenerId = l.value("id", "");
      std::string base = "/services/" + seg(id) + "/listeners";
      if (listenerId.empty()) {
        json out = s_.write(who, "POST", base,
                            {{"name", want.name}, {"protocol", want.protocol}, {"port", want.port},
                             {"defaultAction", action}, {"tags", {{tag("ManagedBy"), s_.owner}}}});
        listenerId = out.value("id", "");
      } else {
        json got = apiGet(base + "/" + seg(listenerId));
        if (got.value("defaultAction", json()) != action)
          s_.write(who, "PATCH", base + "/" + seg(listenerId), {{"defaultAction", action}});
      }
      rules(who, base + "/" + seg(listenerId) + "/rules", want.rules, created);
    }

    auto assocs = s_.listAll("/servicenetworkserviceassociations", "serviceIdentifier=" + seg(id));
    std::set<std::string> haveNetworks;
    for (const auto& a : assocs) {
      std::string sn = a.value("serviceNetworkName", "");
      if (std::find(svc.networks.begin(), svc.networks.end(), sn) == svc.networks.end())
        s_.write(who, "DELETE", "/servicenetworkserviceassociations/" + seg(a.value("id", "")), json());
      else
        haveNetworks.insert(sn);
    }
    for (const auto& sn : svc.networks)
      if (!haveNetworks.count(sn))
        s_.write(who, "POST", "/servicenetworkserviceassociations",
                 {{"serviceIdentifier", id}, {"serviceNetworkIdentifier", s_.network(sn)->id},
                  {"tags", {{tag("ManagedBy"), s_.owner}}}});
    s_.reconcileAccessLogs(who, *existing, svc.accessLogDestinations);
  }

  // Rules are matched by priority (their names say it); changed ones go in BatchUpdateRule calls.
  void rules(const std::string& who, const std::string& base, const std::vector<Rule>& want, int64_t created) {
    std::map<int, json> have;
    for (const auto& r : s_.listAll(base)) {
      if (r.value("isDefault", false)) continue;
      have[r.value("priority", 0)] = apiGet(base + "/" + seg(r.value("id", "")));
    }
    for (const auto& entry : have) {
      int priority = entry.first;
      if (std::none_of(want.begin(), want.end(), [&](const Rule& w) { return w.priority == priority; }))
        s_.write(who, "DELETE", base + "/" + seg(entry.second.value("id", "")), json());
    }
    json updates = json::array();
    for (const auto& w : want) {
      auto it = have.find(w.priority);
      json action = resolved(w.action);
      if (it == have.end()) {
        s_.write(who, "POST", base,
                 {{"name", ruleName(created, w.priority)}, {"priority", w.priority}, {"match", w.match},
                  {"action", action}, {"trellis", w.trellis}, {"tags", {{tag("ManagedBy"), s_.owner}}}});
      } else if (it->second.value("match", json()) != w.match || it->second.value("action", json()) != action ||
                 it->second.value("trellis", json::object()) != w.trellis) {
        // An empty `trellis` clears extensions the rule had.
        updates.push_back({{"ruleIdentifier", it->second.value("arn", "")}, {"match", w.match}, {"action", action},
                           {"trellis", w.trellis}});
      }
    }
    for (size_t i = 0; i < updates.size(); i += 10) {
      json batch(updates.begin() + static_cast<std::ptrdiff_t>(i),
                 updates.begin() + static_cast<std::ptrdiff_t>(std::min(updates.size(), i + 10)));
      json out = s_.write(who, "PATCH", base, {{"rules", batch}});
      for (const auto& f : out.value("unsuccessful", json::array()))
        throw ApiCallError(400, f.value("failureCode", "BatchUpdateRule"),
                           who + ": rule " + f.value("ruleIdentifier", "") + ": " + f.value("failureMessage", ""));
    }
  }

  // Target groups apply made for the applied routes and exports that they no longer use.
  void removeStaleTargetGroups() {
    std::set<std::string> wanted;
    for (const auto& tg : desired_.targetGroups) wanted.insert(tg.name);
    for (const auto& r : s_.targetGroups) {
      if (!s_.owned(r) || wanted.count(r.name)) continue;
      const Object* owner = nullptr;
      for (const auto& obj : objects_) {
        bool route = (obj.kind == "HTTPRoute" || obj.kind == "GRPCRoute" || obj.kind == "TLSRoute") &&
                     r.has("SourceTypeKey", obj.kind) && r.has("RouteName", obj.name) && r.has("RouteNamespace", obj.ns);
        bool exported = obj.kind == "ServiceExport" && r.has("SourceTypeKey", "ServiceExport") &&
                        r.has("ServiceName", obj.name) && r.has("ServiceNamespace", obj.ns);
        if (route || exported) owner = &obj;
      }
      if (owner) s_.write(owner->ref(), "DELETE", "/targetgroups/" + seg(r.id), json());
    }
  }
};

}  // namespace

Report Reconciler::apply(const std::vector<Object>& objects) {
  Session s(api_, options_);
  s.load();
  Apply(s, options_, objects).run();
  return std::move(s.report);
}

}  // namespace trellis::gateway

namespace trellis::gateway {
namespace {

// ---- delete ----

class Remove {
 public:
  Remove(Session& s, const std::vector<Object>& objects) : s_(s), objects_(objects) {}

  void run() {
    for (const auto& obj : objects_)
      if (obj.kind == "Namespace") namespaces_.insert(obj.name);
    std::set<const Res*> deletedServices;
    for (const auto& svc : s_.services) {
      if (!s_.owned(svc)) continue;
      if (const Object* route = routeOf(svc)) {
        deleteService(route->ref(), svc);
        deletedServices.insert(&svc);
      } else if (namespaces_.count(svc.get("RouteNamespace"))) {
        deleteService("Namespace " + svc.get("RouteNamespace"), svc);
        deletedServices.insert(&svc);
      }
    }
    for (const auto& tg : s_.targetGroups) {
      if (!s_.owned(tg)) continue;
      std::string who = targetGroupOwner(tg);
      if (!who.empty()) s_.write(who, "DELETE", "/targetgroups/" + seg(tg.id), json());
    }
    for (const auto& obj : objects_) {
      if (obj.kind == "TargetGroupPolicy") resetHealthChecks(obj);
      if (obj.kind == "IAMAuthPolicy") removeAuthPolicy(obj, deletedServices);
      if (obj.kind == "AccessLogPolicy") removeAccessLog(obj, deletedServices);
    }
    for (const auto& sn : s_.networks) network(sn);
    for (const auto& obj : objects_)
      s_.report.lines.push_back(resource(obj.kind) + "/" + obj.name + (obj.ns.empty() ? "" : " -n " + obj.ns) +
                                (s_.changed.count(obj.ref()) ? " deleted" : " deleted (nothing in Lattice)"));
  }

 private:
  Session& s_;
  const std::vector<Object>& objects_;
  std::set<std::string> namespaces_;

  const Object* find(const std::string& kind, const std::string& ns, const std::string& name) const {
    for (const auto& obj : objects_)
      if (obj.kind == kind && obj.ns == ns && obj.name == name) return &obj;
    return nullptr;
  }

  const Object* routeOf(const Res& svc) const {
    for (const char* kind : {"HTTPRoute", "GRPCRoute", "TLSRoute"})
      if (svc.has("RouteType", routeType(kind)))
        return find(kind, svc.get("RouteNamespace"), svc.get("RouteName"));
    return nullptr;
  }

  std::string targetGroupOwner(const Res& tg) const {
    std::string type = tg.get("SourceTypeKey");
    if (type == "ServiceExport") {
      if (const Object* e = find("ServiceExport", tg.get("ServiceNamespace"), tg.get("ServiceName"))) return e->ref();
      return namespaces_.count(tg.get("ServiceNamespace")) ? "Namespace " + tg.get("ServiceNamespace") : "";
    }
    if (type.empty()) return "";
    if (const Object* r = find(type, tg.get("RouteNamespace"), tg.get("RouteName"))) return r->ref();
    return namespaces_.count(tg.get("RouteNamespace")) ? "Namespace " + tg.get("RouteNamespace") : "";
  }

  void deleteService(const std::string& who, const Res& svc) {
    for (const auto& a : s_.listAll("/servicenetworkserviceassociations", "serviceIdentifier=" + seg(svc.id)))
      s_.write(who, "DELETE", "/servicenetworkserviceassociations/" + seg(a.value("id", "")), json());
    // Listeners, rules, access log subscriptions and the auth policy go with the service.
    s_.write(who, "DELETE", "/services/" + seg(svc.id), json());
  }

  // A TargetGroupPolicy deleted while its routes stay: their target groups get the default check back.
  void resetHealthChecks(const Object& policy) {
    const json& ref = policy.spec().value("targetRef", json::object());
    std::string name = ref.is_object() ? ref.value("name", "") : "";
    for (const auto& tg : s_.targetGroups) {
      if (!s_.owned(tg) || !tg.has("ServiceName", name) || !tg.has("ServiceNamespace", policy.ns)) continue;
      if (!targetGroupOwner(tg).empty()) continue;  // deleted above
      json got = s_.read("/targetgroups/" + seg(tg.id));
      const json& config = got.value("config", json::object());
      json want = defaultHealthCheck(config.value("protocol", "HTTP"), config.value("protocolVersion", "HTTP1"));
      if (config.value("protocol", "") == "TCP") want["enabled"] = false;
      const json& have = config.value("healthCheck", json::object());
      if (!sameHealthCheck(want, have)) {
        if (have.contains("port")) want["port"] = 0;
        s_.write(policy.ref(), "PATCH", "/targetgroups/" + seg(tg.id), {{"healthCheck", want}});
      }
    }
  }

  // The network or service a policy's targetRef names, unless it was deleted above.
  std::optional<std::pair<std::string, std::string>> policyTarget(const Object& policy,
                                                                 const std::set<const Res*>& deleted) {
    const json& ref = policy.spec().value("targetRef", json::object());
    if (!ref.is_object()) return std::nullopt;
    std::string kind = ref.value("kind", ""), name = ref.value("name", "");
    std::string ns = ref.value("namespace", policy.ns);
    if (kind == "Gateway") {
      for (const auto& sn : s_.networks)
        if (sn.name == name && !gatewayDeleted(sn)) return std::make_pair(std::string("/servicenetworks"), sn.id);
      return std::nullopt;
    }
    for (const auto& svc : s_.services)
      if (svc.has("RouteType", routeType(kind)) && svc.has("RouteName", name) && svc.has("RouteNamespace", ns) &&
          !deleted.count(&svc))
        return std::make_pair(std::string("/services"), svc.id);
    return std::nullopt;
  }

  void removeAuthPolicy(const Object& policy, const std::set<const Res*>& deleted) {
    auto target = policyTarget(policy, deleted);
    if (!target) return;
    json current = s_.read(target->first + "/" + seg(target->second));
    if (current.value("authType", "NONE") == "AWS_IAM")
      s_.write(policy.ref(), "PATCH", target->first + "/" + seg(target->second), {{"authType", "NONE"}});
    try {
      s_.read("/authpolicy/" + seg(target->second));
      s_.write(policy.ref(), "DELETE", "/authpolicy/" + seg(target->second), json());
    } catch (const ApiCallError& e) {
      if (e.status != 404) throw;
    }
  }

  void removeAccessLog(const Object& policy, const std::set<const Res*>& deleted) {
    auto target = policyTarget(policy, deleted);
    if (!target) return;
    std::string dest = policy.spec().value("destinationArn", "");
    for (const auto& sub : s_.listAll("/accesslogsubscriptions", "resourceIdentifier=" + seg(target->second)))
      if (sub.value("destinationArn", "") == dest)
        s_.write(policy.ref(), "DELETE", "/accesslogsubscriptions/" + seg(sub.value("id", "")), json());
  }

  bool gatewayDeleted(const Res& sn) const {
    if (find("ServiceNetwork", "", sn.name)) return true;
    std::string name = sn.get("GatewayName"), ns = sn.get("GatewayNamespace");
    return !name.empty() && (find("Gateway", ns, name) || namespaces_.count(ns));
  }

  void network(const Res& sn) {
    if (!gatewayDeleted(sn)) return;
    std::string ns = sn.get("GatewayNamespace");
    const Object* gw = find("Gateway", ns, sn.get("GatewayName"));
    if (!gw) gw = find("ServiceNetwork", "", sn.name);
    std::string who = gw ? gw->ref() : "Namespace " + ns;
    size_t remaining = 0;
    for (const auto& a : s_.listAll("/servicenetworkvpcassociations", "serviceNetworkIdentifier=" + seg(sn.id))) {
      if (s_.tagsOf(a.value("arn", ""))[tag("ManagedBy")] == s_.owner)
        s_.write(who, "DELETE", "/servicenetworkvpcassociations/" + seg(a.value("id", "")), json());
      else
        ++remaining;
    }
    for (const auto& sub : s_.listAll("/accesslogsubscriptions", "resourceIdentifier=" + seg(sn.id)))
      if (s_.tagsOf(sub.value("arn", ""))[tag("ManagedBy")] == s_.owner)
        s_.write(who, "DELETE", "/accesslogsubscriptions/" + seg(sub.value("id", "")), json());
    remaining += s_.listAll("/servicenetworkserviceassociations", "serviceNetworkIdentifier=" + seg(sn.id)).size();
    if (!s_.owned(sn)) {
      // Used, not made, by apply: only the Gateway's tags go.
      std::string query;
      for (const char* key : {"GatewayName", "GatewayNamespace", "GatewayClass", "GatewayListeners"})
        if (sn.tags.count(tag(key))) query += (query.empty() ? "" : "&") + std::string("tagKeys=") + seg(tag(key));
      if (!query.empty()) s_.write(who, "DELETE", "/tags/" + seg(sn.arn), json(), query);
      return;
    }
    if (remaining > 0) {
      s_.report.warnings.push_back(who + ": kept service network " + sn.name + " (" + sn.id + "): " +
                                   std::to_string(remaining) + " associations made outside this apply remain");
      return;
    }
    s_.write(who, "DELETE", "/servicenetworks/" + seg(sn.id), json());
  }
};

// ---- get ----

json condition(const std::string& type, bool ok, const std::string& reason, const std::string& message) {
  return {{"type", type}, {"status", ok ? "True" : "False"}, {"reason", reason}, {"message", message}};
}

}  // namespace

Report Reconciler::remove(const std::vector<Object>& objects) {
  Session s(api_, options_);
  s.load();
  Remove(s, objects).run();
  return std::move(s.report);
}

json Reconciler::get(const std::string& kind, const std::string& ns) {
  Session s(api_, options_);
  json items = json::array();
  std::vector<Res> networks = s.loadAll("/servicenetworks");
  if (kind == "Gateway") {
    for (const auto& sn : networks) {
      if (sn.get("GatewayName").empty() || (!ns.empty() && sn.get("GatewayNamespace") != ns)) continue;
      auto assocs = s.listAll("/servicenetworkserviceassociations", "serviceNetworkIdentifier=" + seg(sn.id));
      auto vpcs = s.listAll("/servicenetworkvpcassociations", "serviceNetworkIdentifier=" + seg(sn.id));
      std::sort(assocs.begin(), assocs.end(),
                [](const json& a, const json& b) { return a.value("createdAt", "") < b.value("createdAt", ""); });
      json listeners = json::array();
      std::string encoded = sn.get("GatewayListeners");
      for (auto item : split(encoded, ',')) {
        auto parts = split(item, ':');
        if (parts.size() == 3)
          listeners.push_back({{"name", std::string(parts[0])}, {"attachedRoutes", assocs.size()},
                               {"conditions", json::array({condition("Programmed", true, "Programmed", "")})}});
      }
      json status = {{"conditions", json::array({condition("Accepted", true, "Accepted", kControllerName),
                                                 condition("Programmed", true, "Programmed",
                                                           "aws-service-network-arn: " + sn.arn)})},
                     {"listeners", listeners}};
      if (!assocs.empty())
        status["addresses"] = json::array(
            {{{"type", "Hostname"}, {"value", assocs[0].value("dnsEntry", json::object()).value("domainName", "")}}});
      json vpcIds = json::array();
      for (const auto& v : vpcs) vpcIds.push_back(v.value("vpcId", ""));
      items.push_back({{"apiVersion", "gateway.networking.k8s.io/v1"},
                       {"kind", "Gateway"},
                       {"metadata", {{"name", sn.get("GatewayName")},
                                     {"namespace", sn.get("GatewayNamespace")},
                                     {"annotations", {{"application-networking.k8s.aws/service-network-arn", sn.arn},
                                                      {"application-networking.k8s.aws/associated-vpcs", vpcIds}}}}},
                       {"spec", {{"gatewayClassName", sn.get("GatewayClass")}}},
                       {"status", status}});
    }
    return {{"apiVersion", "v1"}, {"kind", "List"}, {"items", items}};
  }
  std::set<std::string> tgIds;
  for (const auto& tg : s.listAll("/targetgroups")) tgIds.insert(tg.value("id", ""));
  for (const auto& svc : s.loadAll("/services")) {
    if (!svc.has("RouteType", routeType(kind)) || (!ns.empty() && !svc.has("RouteNamespace", ns))) continue;
    json doc = s.read("/services/" + seg(svc.id));
    std::string base = "/services/" + seg(svc.id) + "/listeners";
    auto listeners = s.listAll(base);
    std::string missing, noBackend;
    for (const auto& l : listeners)
      for (const auto& r : s.listAll(base + "/" + seg(l.value("id", "")) + "/rules")) {
        json rule = s.read(base + "/" + seg(l.value("id", "")) + "/rules/" + seg(r.value("id", "")));
        const json& action = rule.value("action", json::object());
        if (action.contains("fixedResponse") && action["fixedResponse"].value("statusCode", 0) == 500)
          noBackend = rule.value("name", "");
        if (action.contains("forward"))
          for (const auto& g : action["forward"].value("targetGroups", json::array()))
            if (!tgIds.count(g.value("targetGroupIdentifier", ""))) missing = g.value("targetGroupIdentifier", "");
      }
    auto assocs = s.listAll("/servicenetworkserviceassociations", "serviceIdentifier=" + seg(svc.id));
    bool assocsActive = std::all_of(assocs.begin(), assocs.end(),
                                    [](const json& a) { return a.value("status", "") == "ACTIVE"; });
    json parents = json::array();
    auto conditions = [&](const std::string& gateway) {
      json c = json::array();
      c.push_back(listeners.empty()
                      ? condition("Accepted", false, "NoMatchingParent", "the Lattice service has no listener")
                      : condition("Accepted", true, "Accepted", ""));
      c.push_back(!missing.empty()    ? condition("ResolvedRefs", false, "BackendNotFound",
                                                  "target group " + missing + " does not exist")
                  : !noBackend.empty() ? condition("ResolvedRefs", false, "BackendNotFound",
                                                   "rule " + noBackend + " has no backend (answers 500)")
                                       : condition("ResolvedRefs", true, "ResolvedRefs", ""));
      if (svc.tags.count(kUnsupportedTag))
        c.push_back(condition("PartiallyInvalid", true, "UnsupportedValue",
                              "ignored, VPC Lattice has no equivalent: " + svc.tags.at(kUnsupportedTag)));
      bool programmed = doc.value("status", "") == "ACTIVE" && assocsActive && !listeners.empty();
      c.push_back(condition("Programmed", programmed, programmed ? "Programmed" : "Pending",
                            programmed ? "aws-service-arn: " + svc.arn : "service " + doc.value("status", "") +
                                                                             (gateway.empty() ? "" : ", network " + gateway)));
      return c;
    };
    for (const auto& a : assocs) {
      std::string gwNs;
      for (const auto& sn : networks)
        if (sn.id == a.value("serviceNetworkId", "")) gwNs = sn.get("GatewayNamespace");
      json parentRef = {{"group", "gateway.networking.k8s.io"}, {"kind", "Gateway"},
                        {"name", a.value("serviceNetworkName", "")}};
      if (!gwNs.empty()) parentRef["namespace"] = gwNs;
      parents.push_back({{"parentRef", parentRef}, {"controllerName", kControllerName},
                         {"conditions", conditions(a.value("serviceNetworkName", ""))}});
    }
    if (assocs.empty()) parents.push_back({{"controllerName", kControllerName}, {"conditions", conditions("")}});
    json annotations = {{kDomainAnnotation, doc.value("dnsEntry", json::object()).value("domainName", "")},
                        {"application-networking.k8s.aws/lattice-service-arn", svc.arn}};
    json spec = json::object();
    if (doc.contains("customDomainName")) spec["hostnames"] = json::array({doc["customDomainName"]});
    items.push_back({{"apiVersion", "gateway.networking.k8s.io/v1"},
                     {"kind", kind},
                     {"metadata", {{"name", svc.get("RouteName")}, {"namespace", svc.get("RouteNamespace")},
                                   {"annotations", annotations}}},
                     {"spec", spec},
                     {"status", {{"parents", parents}}}});
  }
  return {{"apiVersion", "v1"}, {"kind", "List"}, {"items", items}};
}

std::string formatStatusTable(const json& list, bool allNamespaces) {
  auto cond = [](const json& conditions, const std::string& type) -> std::string {
    for (const auto& c : conditions)
      if (c.value("type", "") == type)
        return c.value("status", "") == "True" ? "True" : "False (" + c.value("reason", "") + ")";
    return "Unknown";
  };
  std::vector<std::vector<std::string>> rows;
  const json& items = list.value("items", json::array());
  bool gateways = !items.empty() && items[0].value("kind", "") == "Gateway";
  std::vector<std::string> header = gateways ? std::vector<std::string>{"NAME", "CLASS", "ADDRESS", "PROGRAMMED"}
                                             : std::vector<std::string>{"NAME", "HOSTNAMES", "DNS", "ACCEPTED",
                                                                        "RESOLVEDREFS", "PROGRAMMED"};
  if (allNamespaces) header.insert(header.begin(), "NAMESPACE");
  rows.push_back(header);
  for (const auto& item : items) {
    const json& meta = item["metadata"];
    std::vector<std::string> row;
    if (allNamespaces) row.push_back(meta.value("namespace", ""));
    row.push_back(meta.value("name", ""));
    if (gateways) {
      const json& status = item["status"];
      row.push_back(item["spec"].value("gatewayClassName", ""));
      row.push_back(status.contains("addresses") ? status["addresses"][0].value("value", "") : "");
      row.push_back(cond(status["conditions"], "Programmed"));
    } else {
      const json& spec = item["spec"];
      row.push_back(spec.contains("hostnames") ? spec["hostnames"][0].get<std::string>() : "");
      row.push_back(meta["annotations"].value(kDomainAnnotation, ""));
      const json& parents = item["status"]["parents"];
      const json& conditions = parents.empty() ? json::array() : parents[0]["conditions"];
      for (const char* type : {"Accepted", "ResolvedRefs", "Programmed"}) row.push_back(cond(conditions, type));
    }
    for (auto& cell : row)
      if (cell.empty()) cell = "-";
    rows.push_back(row);
  }
  std::vector<size_t> widths(header.size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 3, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace trellis::gateway
