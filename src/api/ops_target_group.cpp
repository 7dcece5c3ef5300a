// CreateTargetGroup, GetTargetGroup, UpdateTargetGroup, DeleteTargetGroup, ListTargetGroups,
// RegisterTargets, DeregisterTargets, ListTargets.
//
// Targets live in their target group's document (`targets: [{id, port, registeredAt, drainingSince?}]`).
// A deregistered target stays there, draining, for the config's drainSeconds; entries whose drain is
// over are dropped on the next write to the group and hidden from ListTargets before that.
//
// failureCode values of RegisterTargets/DeregisterTargets (Lattice documents none):
//   InvalidTargetId   the id is not a target of the group's type (an IP literal of the group's
//                     ipAddressType; a configured instance; a Lambda function ARN; an ALB ARN)
//   TargetNotInVpc    an instance outside the group's VPC
//   TooManyTargets    a second Lambda function or ALB (such groups take exactly one)
//   TargetNotFound    deregistering a target that is not registered
#include <arpa/inet.h>

#include <algorithm>
#include <functional>
#include <tuple>

#include "api/actions.h"
#include "api/api.h"
#include "api/indexes.h"
#include "api/validation.h"
#include "common/strings.h"
#include "common/time.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kKind = "targetgroup";
constexpr std::string_view kNameIndex = "index.name.targetgroup";

// ---- Health checks (https://docs.aws.amazon.com/vpc-lattice/latest/ug/target-group-health-checks.html) ----

// Empty means "reset to the default" for both.
std::string checkHealthCheckPath(std::string_view v) { return v.empty() ? "" : checkMatchPath(v); }
std::string checkHealthCheckCodes(std::string_view v) { return v.empty() ? "" : checkHttpCodeMatcher(v); }

// Reads a HealthCheckConfig; the result holds only the members given.
std::optional<json> readHealthCheck(FieldErrors& errors, const json& obj, const std::string& path, bool required) {
  const json* hc = readObject(errors, obj, "healthCheck", path, required);
  if (!hc) return std::nullopt;
  json out = json::object();
  std::string p = path + ".";
  if (auto v = readBool(errors, *hc, "enabled", p + "enabled")) out["enabled"] = *v;
  // The model's enum also lists TCP, but the documentation says health checks use HTTP or HTTPS.
  if (auto v = readString(errors, *hc, "protocol", p + "protocol", {.oneOf = {"HTTP", "HTTPS"}})) out["protocol"] = *v;
  if (auto v = readString(errors, *hc, "protocolVersion", p + "protocolVersion", {.oneOf = {"HTTP1", "HTTP2"}}))
    out["protocolVersion"] = *v;
  if (auto v = readInt(errors, *hc, "port", p + "port", false, 0, 65535)) out["port"] = *v;
  if (auto v = readString(errors, *hc, "path", p + "path", {.maxLength = 2048, .check = checkHealthCheckPath}))
    out["path"] = *v;
  // Model ranges start at 0 ("reset to the default"); otherwise the documented ranges apply.
  struct Count {
    const char* key;
    int64_t min, max;
  };
  for (const auto& [key, min, max] :
       {Count{"healthCheckIntervalSeconds", 5, 300}, Count{"healthCheckTimeoutSeconds", 1, 120},
        Count{"healthyThresholdCount", 2, 10}, Count{"unhealthyThresholdCount", 2, 10}}) {
    auto v = readInt(errors, *hc, key, p + key, false, 0, max);
    if (v && *v != 0 && *v < min)
      errors.add(p + key,
                 "Member must be 0 (the default) or between " + std::to_string(min) + " and " + std::to_string(max));
    else if (v)
      out[key] = *v;
  }
  if (const json* matcher = readObject(errors, *hc, "matcher", p + "matcher")) {
    if (readUnionMember(errors, *matcher, p + "matcher", {"httpCode"})) {
      auto code = readString(errors, *matcher, "httpCode", p + "matcher.httpCode",
                             {.maxLength = 2000, .check = checkHealthCheckCodes});
      if (code) out["matcher"] = {{"httpCode", *code}};
    }
  }
  return out;
}

// `base` with the given members applied and defaults filled in (0, "" and an empty matcher reset a
// member to its default). Without a port, each target is checked on its own traffic port.
json mergeHealthCheck(json base, const json& given, const json& config) {
  std::string protocol = config.value("protocol", "HTTP");
  std::string version = config.value("protocolVersion", "HTTP1");
  json defaults = {{"enabled", version == "HTTP1" && protocol != "TCP"},
                   {"protocol", "HTTP"},
                   {"protocolVersion", version == "HTTP1" ? "HTTP1" : "HTTP2"},
                   {"path", "/"},
                   {"healthCheckIntervalSeconds", 30},
                   {"healthCheckTimeoutSeconds", 5},
                   {"healthyThresholdCount", 5},
                   {"unhealthyThresholdCount", 2},
                   {"matcher", {{"httpCode", "200"}}}};
  for (auto& [key, value] : given.items()) {
    bool reset = (value.is_number_integer() && value.get<int64_t>() == 0) ||
                 (value.is_string() && value.get_ref<const std::string&>().empty()) ||
                 (key == "matcher" && value.value("httpCode", "").empty());
    if (!reset)
      base[key] = value;
    else
      base.erase(key);
  }
  for (auto& [key, value] : defaults.items())
    if (!base.contains(key)) base[key] = value;
  return base;
}

// ---- Target group documents ----

// Reads CreateTargetGroup's config for a group of `type`; the result is the stored config.
std::optional<json> readConfig(FieldErrors& errors, const json& body, const std::string& type) {
  bool lambda = type == "LAMBDA";
  const json* cfg = readObject(errors, body, "config", "config", !lambda);
  json config = json::object();
  auto unsupported = [&](const char* key, const std::string& why) {
    if (cfg && cfg->contains(key) && !(*cfg)[key].is_null()) errors.add(std::string("config.") + key, why);
  };
  if (lambda) {
    for (const char* key : {"port", "protocol", "protocolVersion", "ipAddressType", "vpcIdentifier", "healthCheck"})
      unsupported(key, "Member is not supported for target groups of type LAMBDA");
    auto version = cfg ? readString(errors, *cfg, "lambdaEventStructureVersion", "config.lambdaEventStructureVersion",
                                    {.oneOf = {"V1", "V2"}})
                       : std::nullopt;
    config["lambdaEventStructureVersion"] = version.value_or("V1");
    return config;
  }
  if (!cfg) return std::nullopt;
  unsupported("lambdaEventStructureVersion", "Member is supported only for target groups of type LAMBDA");
  if (type != "IP") unsupported("ipAddressType", "Member is supported only for target groups of type IP");
  if (type == "ALB") unsupported("healthCheck", "Member is not supported for target groups of type ALB");
  auto protocol =
      readString(errors, *cfg, "protocol", "config.protocol", {.required = true, .oneOf = {"HTTP", "HTTPS", "TCP"}});
  auto port = readInt(errors, *cfg, "port", "config.port", protocol == "TCP", 1, 65535);
  auto version =
      readString(errors, *cfg, "protocolVersion", "config.protocolVersion", {.oneOf = {"HTTP1", "HTTP2", "GRPC"}});
  if (protocol == "TCP") unsupported("protocolVersion", "Member is not supported for TCP target groups");
  if (type == "ALB" && version && *version != "HTTP1")
    errors.add("config.protocolVersion", "Member must be HTTP1 for target groups of type ALB");
  auto ipType = readString(errors, *cfg, "ipAddressType", "config.ipAddressType", {.oneOf = {"IPV4", "IPV6"}});
  auto vpc = readString(errors, *cfg, "vpcIdentifier", "config.vpcIdentifier",
                        {.required = true, .minLength = 5, .maxLength = 50, .check = checkVpcId});
  std::optional<json> hc = type == "ALB" ? std::nullopt : readHealthCheck(errors, *cfg, "config.healthCheck", false);
  if (!protocol || !vpc) return std::nullopt;
  config["port"] = port.value_or(*protocol == "HTTPS" ? 443 : 80);
  config["protocol"] = *protocol;
  if (*protocol != "TCP") config["protocolVersion"] = version.value_or("HTTP1");
  if (type == "IP") config["ipAddressType"] = ipType.value_or("IPV4");
  config["vpcIdentifier"] = *vpc;
  if (type != "ALB") config["healthCheck"] = mergeHealthCheck(json::object(), hc.value_or(json::object()), config);
  return config;
}

json withoutTargets(json doc) {
  doc.erase("targets");
  return doc;
}

json serviceArns(Resources& r, const std::set<std::string>& serviceIds) {
  json arns = json::array();
  for (const auto& id : serviceIds) arns.push_back(model::arnFor(r.arns(), Kind::Service, id));
  return arns;
}

json create(Resources& r, Call& call) {
  FieldErrors errors;
  auto name = readString(errors, call.body, "name", "name", {.required = true, .check = checkTargetGroupName});
  auto type =
      readString(errors, call.body, "type", "type", {.required = true, .oneOf = {"IP", "LAMBDA", "INSTANCE", "ALB"}});
  auto config = type ? readConfig(errors, call.body, *type) : std::nullopt;
  readString(errors, call.body, "clientToken", "clientToken",
             {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto tags = readTags(errors, call.body);
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  if (r.find(kNameIndex, *name))
    throw conflict("TARGET_GROUP", *name, "A target group with the name " + *name + " already exists.");
  enforceQuota(r.store().count(kKind), r.config().quotas.targetGroups, "TARGET_GROUP", "L-BB11C6B9",
               "target groups per Region");

  std::string id = model::newId(Kind::TargetGroup);
  std::string now = r.now();
  json doc = {{"id", id},         {"name", *name},        {"arn", model::arnFor(r.arns(), Kind::TargetGroup, id)},
              {"type", *type},    {"config", *config},    {"status", "ACTIVE"},
              {"createdAt", now}, {"lastUpdatedAt", now}, {"targets", json::array()}};
  json out = pick(doc, {"id", "arn", "name", "type", "config", "status"});
  Tx tx;
  tx.requireAbsent(kNameIndex, *name);
  tx.put(kNameIndex, *name, {{"id", id}});
  tx.put(kKind, id, doc);
  indexCreated(tx, kKind, doc);
  r.putTags(tx, doc["arn"], tags);
  r.remember(call, tx, out);
  r.commit(tx, "TARGET_GROUP", *name);
  return out;
}

json get(Resources& r, Call& call) {
  auto doc = r.load(Kind::TargetGroup, call.labels[0], "targetGroupIdentifier");
  json out = withoutTargets(doc.value);
  out["serviceArns"] = serviceArns(r, servicesUsing(r, doc.id));
  return out;
}

json update(Resources& r, Call& call) {
  FieldErrors errors;
  auto hc = readHealthCheck(errors, call.body, "healthCheck", true);
  errors.throwIfAny();
  auto doc = r.load(Kind::TargetGroup, call.labels[0], "targetGroupIdentifier");
  std::string type = doc.value["type"];
  if (type == "LAMBDA" || type == "ALB")
    throw validationError("Target groups of type " + type + " have no health checks",
                          {{"healthCheck", "Member is not supported for target groups of type " + type}});
  json& config = doc.value["config"];
  config["healthCheck"] = mergeHealthCheck(config.value("healthCheck", json::object()), *hc, config);
  doc.value["lastUpdatedAt"] = r.now();
  Tx tx;
  tx.requireRevision(kKind, doc.id, doc.modRevision);
  tx.put(kKind, doc.id, doc.value);
  r.commit(tx, "TARGET_GROUP", doc.id);
  return pick(doc.value, {"id", "arn", "name", "type", "config", "status"});
}

json remove(Resources& r, Call& call) {
  auto doc = r.load(Kind::TargetGroup, call.labels[0], "targetGroupIdentifier");
  auto users = servicesUsing(r, doc.id);
  if (!users.empty())
    throw conflict("TARGET_GROUP", doc.id,
                   "The target group " + doc.id + " is used by a listener or rule of service " + *users.begin() +
                       ". Remove it from their actions first.");
  std::string arn = doc.value["arn"];
  Tx tx;
  // Listener and rule writes touch the groups they forward to, so a concurrent one fails this.
  tx.requireRevision(kKind, doc.id, doc.modRevision);
  tx.del(kKind, doc.id);
  tx.del(kNameIndex, doc.value["name"].get<std::string>());
  indexDeleted(tx, kKind, doc.value);
  tx.del("tags", arn);
  r.commit(tx, "TARGET_GROUP", doc.id);
  json out = pick(doc.value, {"id", "arn"});
  out["status"] = "DELETE_IN_PROGRESS";
  return out;
}

json list(Resources& r, Call& call) {
  FieldErrors errors;
  json query = json::object();
  for (const char* key : {"vpcIdentifier", "targetGroupType"})
    if (auto v = call.queryValue(key)) query[key] = *v;
  auto vpc = readString(errors, query, "vpcIdentifier", "vpcIdentifier",
                        {.minLength = 5, .maxLength = 50, .check = checkVpcId});
  auto type =
      readString(errors, query, "targetGroupType", "targetGroupType", {.oneOf = {"IP", "LAMBDA", "INSTANCE", "ALB"}});
  errors.throwIfAny();
  auto keep = [&](const json& doc) { return !type || doc.value("type", "") == *type; };
  auto summarize = [&](const json& doc) {
    json out = pick(doc, {"id", "arn", "name", "type", "createdAt", "lastUpdatedAt", "status"});
    json cfg = pick(doc.value("config", json::object()),
                    {"port", "protocol", "ipAddressType", "vpcIdentifier", "lambdaEventStructureVersion"});
    out.update(cfg);
    out["serviceArns"] = serviceArns(r, servicesUsing(r, doc.value("id", "")));
    return out;
  };
  // A filter reads its index: a page of one VPC's (or one type's) groups costs the same however many others exist.
  if (vpc) return r.pageIndex(kTargetGroupsByVpc.name, *vpc + "/", kKind, call, keep, summarize);
  if (type) return r.pageIndex(kTargetGroupsByType.name, *type + "/", kKind, call, keep, summarize);
  return r.page(kKind, call, keep, summarize);
}

// ---- Targets ----

struct TargetRef {
  std::string id;
  std::optional<int64_t> port;
};

std::vector<TargetRef> readTargets(FieldErrors& errors, const json& body, bool required, size_t minItems,
                                   size_t maxItems) {
  std::vector<TargetRef> out;
  const json* list = readArray(errors, body, "targets", "targets", required, minItems, maxItems);
  if (!list) return out;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string p = "targets[" + std::to_string(i) + "]";
    const json& entry = (*list)[i];
    if (!entry.is_object()) {
      errors.add(p, "Member must be an object");
      continue;
    }
    auto id = readString(errors, entry, "id", p + ".id", {.required = true, .minLength = 1, .maxLength = 200});
    auto port = readInt(errors, entry, "port", p + ".port", false, 1, 65535);
    if (id) out.push_back({*id, port});
  }
  return out;
}

bool isLambda(const json& doc) { return doc.value("type", "") == "LAMBDA"; }

// A target's port: Lambda targets have none; the others default to the group's port.
json targetPort(const json& doc, const TargetRef& ref) {
  if (isLambda(doc)) return nullptr;
  return ref.port.value_or(doc["config"].value("port", 80));
}

bool drainedOut(Resources& r, const json& target, SystemTime now) {
  if (!target.contains("drainingSince")) return false;
  auto since = parseRfc3339(target["drainingSince"].get<std::string>());
  return !since || *since + std::chrono::seconds(r.config().drainSeconds) <= now;
}

void pruneDrained(Resources& r, json& targets) {
  auto now = systemNow();
  json kept = json::array();
  for (auto& t : targets)
    if (!drainedOut(r, t, now)) kept.push_back(std::move(t));
  targets = std::move(kept);
}

json::iterator findTarget(json& targets, const std::string& id, const json& port) {
  return std::find_if(targets.begin(), targets.end(), [&](const json& t) {
    return t.value("id", "") == id &&
           (port.is_null() ? !t.contains("port") || t["port"].is_null() : t.value("port", json()) == port);
  });
}

json failure(const std::string& id, const json& port, const std::string& code, const std::string& message) {
  json out = {{"id", id}, {"failureCode", code}, {"failureMessage", message}};
  if (!port.is_null()) out["port"] = port;
  return out;
}

json success(const std::string& id, const json& port) {
  json out = {{"id", id}};
  if (!port.is_null()) out["port"] = port;
  return out;
}

// Why `id` cannot be a target of group `doc`, as {failureCode, message}; empty when it can.
std::pair<std::string, std::string> targetProblem(Resources& r, const json& doc, const std::string& id) {
  std::string type = doc["type"];
  const json& cfg = doc["config"];
  if (type == "IP") {
    bool v6 = cfg.value("ipAddressType", "IPV4") == "IPV6";
    unsigned char buf[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, id.c_str(), buf) != 1)
      return {"InvalidTargetId", id + " is not an " + std::string(v6 ? "IPv6" : "IPv4") + " address"};
    return {};
  }
  // INSTANCE and ALB targets are the config's (instances:, albs:), in the target group's VPC.
  auto inVpc = [&](const auto& known, auto idOf, const std::string& what) -> std::pair<std::string, std::string> {
    auto it = std::find_if(known.begin(), known.end(), [&](const auto& k) { return std::invoke(idOf, k) == id; });
    if (it == known.end()) return {"InvalidTargetId", "The " + what + " " + id + " does not exist"};
    if (it->vpcId != cfg.value("vpcIdentifier", ""))
      return {"TargetNotInVpc", "The " + what + " " + id + " is in " + it->vpcId + ", not in the target group's VPC " +
                                    cfg.value("vpcIdentifier", "")};
    return {};
  };
  if (type == "INSTANCE") return inVpc(r.config().instances, &model::Instance::id, "instance");
  auto arn = model::parseArn(id);
  if (type == "LAMBDA") {
    if (!(arn && arn->service == "lambda" && startsWith(arn->resource, "function:")))
      return {"InvalidTargetId", id + " is not a Lambda function ARN"};
    // https://docs.aws.amazon.com/vpc-lattice/latest/ug/lambda-functions.html: same account and Region.
    if (arn->region != r.config().region || arn->accountId != r.config().accountId)
      return {"InvalidTargetId", "The Lambda function " + id + " is not in the target group's account and Region"};
    return {};
  }
  if (!(arn && arn->service == "elasticloadbalancing" && startsWith(arn->resource, "loadbalancer/app/")))
    return {"InvalidTargetId", id + " is not an Application Load Balancer ARN"};
  return inVpc(r.config().albs, &model::Alb::arn, "load balancer");
}

json registerTargets(Resources& r, Call& call) {
  FieldErrors errors;
  auto refs = readTargets(errors, call.body, true, 1, 100);
  errors.throwIfAny();
  auto doc = r.load(Kind::TargetGroup, call.labels[0], "targetGroupIdentifier");
  json& targets = doc.value["targets"];
  if (!targets.is_array()) targets = json::array();
  pruneDrained(r, targets);
  bool single = doc.value["type"] == "LAMBDA" || doc.value["type"] == "ALB";  // exactly one target

  std::string now = r.now();
  json successful = json::array(), unsuccessful = json::array();
  for (const auto& ref : refs) {
    json port = targetPort(doc.value, ref);
    auto [code, message] = targetProblem(r, doc.value, ref.id);
    if (code.empty() && single &&
        std::any_of(targets.begin(), targets.end(), [&](const json& t) { return t.value("id", "") != ref.id; })) {
      code = "TooManyTargets";
      message = "A target group of type " + doc.value["type"].get<std::string>() + " takes only one target";
    }
    if (!code.empty()) {
      unsuccessful.push_back(failure(ref.id, port, code, message));
      continue;
    }
    auto existing = findTarget(targets, ref.id, port);
    if (existing == targets.end()) {
      json entry = {{"id", ref.id}, {"registeredAt", now}};
      if (!port.is_null()) entry["port"] = port;
      targets.push_back(std::move(entry));
    } else if (existing->contains("drainingSince")) {
      // Registering a draining target again takes it back into service.
      existing->erase("drainingSince");
      (*existing)["registeredAt"] = now;
    }
    successful.push_back(success(ref.id, port));
  }
  int limit = r.config().quotas.targetsPerTargetGroup;
  if (targets.size() > static_cast<size_t>(limit))
    throw quotaExceeded("TARGET_GROUP", "L-D71303F3",
                        "You have reached the quota of " + std::to_string(limit) + " targets per target group.",
                        doc.id);
  Tx tx;
  tx.requireRevision(kKind, doc.id, doc.modRevision);
  tx.put(kKind, doc.id, doc.value);
  r.commit(tx, "TARGET_GROUP", doc.id);
  return {{"successful", successful}, {"unsuccessful", unsuccessful}};
}

json deregisterTargets(Resources& r, Call& call) {
  FieldErrors errors;
  auto refs = readTargets(errors, call.body, true, 1, 100);
  errors.throwIfAny();
  auto doc = r.load(Kind::TargetGroup, call.labels[0], "targetGroupIdentifier");
  json& targets = doc.value["targets"];
  if (!targets.is_array()) targets = json::array();
  pruneDrained(r, targets);

  std::string now = r.now();
  json successful = json::array(), unsuccessful = json::array();
  for (const auto& ref : refs) {
    json port = targetPort(doc.value, ref);
    auto existing = findTarget(targets, ref.id, port);
    if (existing == targets.end()) {
      unsuccessful.push_back(failure(ref.id, port, "TargetNotFound",
                                     "The target " + ref.id + " is not registered with target group " + doc.id));
      continue;
    }
    if (r.config().drainSeconds <= 0)
      targets.erase(existing);
    else if (!existing->contains("drainingSince"))
      (*existing)["drainingSince"] = now;
    successful.push_back(success(ref.id, port));
  }
  Tx tx;
  tx.requireRevision(kKind, doc.id, doc.modRevision);
  tx.put(kKind, doc.id, doc.value);
  r.commit(tx, "TARGET_GROUP", doc.id);
  return {{"successful", successful}, {"unsuccessful", unsuccessful}};
}

// ListTargets pages through the targets inside one document, ordered by (id, port).
constexpr std::string_view kTargetTokenPrefix = "t1.";

std::string targetKey(const json& t) {
  return t.value("id", "") + "\n" + (t.contains("port") && !t["port"].is_null() ? t["port"].dump() : "");
}

std::optional<std::string> hexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto byte = percentDecode("%" + std::string(hex.substr(i, 2)));
    if (!byte) return std::nullopt;
    out += *byte;
  }
  return out;
}

// {status, reasonCode} of one target. DRAINING and UNUSED are control-plane facts; otherwise the
// data plane's health checker decides when wired, and before that the status says checks are pending.
std::pair<std::string, std::string> targetStatus(Resources& r, const json& doc, const json& target, bool used) {
  if (target.contains("drainingSince")) return {"DRAINING", "Target.DeregistrationInProgress"};
  if (!used) return {"UNUSED", "Target.NotInUse"};
  int port = target.contains("port") && target["port"].is_number_integer() ? target["port"].get<int>() : 0;
  if (r.targetStatus) {
    auto status = r.targetStatus(doc.value("id", ""), target.value("id", ""), port);
    // The store says the group is used; a data plane still saying UNUSED has not seen that change yet.
    if (!status.first.empty() && status.first != "UNUSED") return status;
  }
  const json& cfg = doc.value("config", json::object());
  bool checked = cfg.contains("healthCheck") && cfg["healthCheck"].value("enabled", false);
  if (!checked) return {"UNAVAILABLE", "Target.HealthCheckDisabled"};
  return {"INITIAL", "Target.RegistrationInProgress"};
}

json listTargets(Resources& r, Call& call) {
  FieldErrors errors;
  auto filter = readTargets(errors, call.body, false, 0, 20);
  size_t limit = readMaxResults(errors, call);
  std::string after;
  if (auto token = call.queryValue("nextToken")) {
    auto decoded = token->size() <= 2048 && startsWith(*token, kTargetTokenPrefix)
                       ? hexDecode(std::string_view(*token).substr(kTargetTokenPrefix.size()))
                       : std::nullopt;
    if (!decoded)
      errors.add("nextToken", "Member is not a valid pagination token");
    else
      after = *decoded;
  }
  errors.throwIfAny();
  auto doc = r.load(Kind::TargetGroup, call.labels[0], "targetGroupIdentifier");
  bool used = !servicesUsing(r, doc.id).empty();

  std::vector<json> targets;
  auto now = systemNow();
  for (const auto& t : doc.value.value("targets", json::array())) {
    if (drainedOut(r, t, now) || targetKey(t) <= after) continue;
    bool wanted = filter.empty() || std::any_of(filter.begin(), filter.end(), [&](const TargetRef& f) {
                    return f.id == t.value("id", "") && (!f.port || t.value("port", json()) == json(*f.port));
                  });
    if (wanted) targets.push_back(t);
  }
  std::sort(targets.begin(), targets.end(), [](const json& a, const json& b) { return targetKey(a) < targetKey(b); });
  json items = json::array();
  for (size_t i = 0; i < targets.size() && i < limit; ++i) {
    auto [status, reason] = targetStatus(r, doc.value, targets[i], used);
    json item = success(targets[i]["id"], targets[i].value("port", json()));
    item["status"] = status;
    item["reasonCode"] = reason;
    items.push_back(std::move(item));
  }
  json out = {{"items", std::move(items)}};
  if (targets.size() > limit)
    out["nextToken"] = std::string(kTargetTokenPrefix) + hexEncode(targetKey(targets[limit - 1]));
  return out;
}

}  // namespace

void registerTargetGroupOps(HandlerMap& handlers) {
  handlers["CreateTargetGroup"] = create;
  handlers["GetTargetGroup"] = get;
  handlers["UpdateTargetGroup"] = update;
  handlers["DeleteTargetGroup"] = remove;
  handlers["ListTargetGroups"] = list;
  handlers["RegisterTargets"] = registerTargets;
  handlers["DeregisterTargets"] = deregisterTargets;
  handlers["ListTargets"] = listTargets;
}

}  // namespace trellis::api
