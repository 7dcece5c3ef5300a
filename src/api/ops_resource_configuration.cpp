// CreateResourceConfiguration, GetResourceConfiguration, UpdateResourceConfiguration, DeleteResourceConfiguration,
// ListResourceConfigurations.
//
// What each type takes (docs/vpc-resources.md): SINGLE and GROUP a gateway and port ranges, SINGLE and CHILD an IP or
// DNS resource, CHILD its group (whose gateway and ports it uses), ARN an RDS ARN. Configurations become ACTIVE at once
// and cannot be deleted while associated, while a group has children, or while a VPC endpoint of the config reaches
// them.
#include <arpa/inet.h>

#include "api/actions.h"
#include "api/api.h"
#include "api/indexes.h"
#include "api/resources.h"
#include "api/validation.h"
#include "common/strings.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kKind = "resourceconfiguration";
constexpr std::string_view kNameIndex = "index.name.resourceconfiguration";
constexpr const char* kType = "RESOURCE_CONFIGURATION";
constexpr const char* kIdentifier = "resourceConfigurationIdentifier";

constexpr StringRule kDomainRule = {.minLength = 3, .maxLength = 255, .check = checkDomainName};

std::string checkConfigurationName(std::string_view v) { return checkName(v, 3, 40, "rcfg-"); }
std::string checkGatewayIdentifier(std::string_view v) {
  if (model::idFromIdentifier(Kind::ResourceGateway, v)) return "";
  return "Member must be a resource gateway id (rgw-...) or ARN";
}
std::string checkDomainVerificationIdentifier(std::string_view v) {
  if (model::idFromIdentifier(Kind::DomainVerification, v)) return "";
  return "Member must be a domain verification id (dv-...) or ARN";
}

// "80" or "1-65535": ports 1-65535, the low end first.
std::string checkPortRange(std::string_view v) {
  const std::string problem =
      "Member must be a port (1-65535) or a range of "
      "ports (FROM-TO, FROM <= TO)";
  auto port = [](std::string_view s) -> long {
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string_view::npos) return -1;
    long n = std::stol(std::string(s));
    return n >= 1 && n <= 65535 ? n : -1;
  };
  size_t dash = v.find('-');
  if (dash == std::string_view::npos) return port(v) < 0 ? problem : "";
  long low = port(v.substr(0, dash)), high = port(v.substr(dash + 1));
  return low < 0 || high < 0 || low > high ? problem : "";
}

// Trellis's VPCs live on one host, so loopback addresses are resources too; public IPv4 addresses are not (Lattice
// reaches only private ones).
std::string checkResourceIp(std::string_view v) {
  std::string s(v);
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) return "";
  if (inet_pton(AF_INET, s.c_str(), &v4) != 1) return "Member must be an IPv4 or IPv6 address";
  uint32_t a = ntohl(v4.s_addr);
  auto in = [a](uint32_t net, int bits) { return (a >> (32 - bits)) == (net >> (32 - bits)); };
  if (in(0x0A000000, 8) || in(0xAC100000, 12) || in(0xC0A80000, 16) || in(0x64400000, 10) || in(0x7F000000, 8))
    return "";
  return "Member must be a private IPv4 address (10.0.0.0/8, 100.64.0.0/10, "
         "172.16.0.0/12, 192.168.0.0/16, "
         "127.0.0.0/8) or an IPv6 address";
}

// The model's WildcardArn, and Lattice's only ARN resource: an RDS database or cluster.
std::string checkRdsArn(std::string_view v) {
  auto arn = model::parseArn(v);
  if (arn && arn->service == "rds" && (startsWith(arn->resource, "db:") || startsWith(arn->resource, "cluster:")) &&
      arn->accountId.size() == 12 && arn->accountId.find_first_not_of("0123456789") == std::string::npos)
    return "";
  return "Member must be the ARN of an RDS database or cluster "
         "(arn:aws:rds:REGION:ACCOUNT:db:NAME)";
}

std::optional<std::vector<std::string>> readPortRanges(FieldErrors& errors, const json& body) {
  const json* list = readArray(errors, body, "portRanges", "portRanges", false, 1, 100);
  if (!list) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < list->size(); ++i) {
    json holder = {{"v", (*list)[i]}};
    auto range = readString(errors, holder, "v", "portRanges[" + std::to_string(i) + "]",
                            {.required = true, .minLength = 1, .maxLength = 11, .check = checkPortRange});
    if (range)
      out.push_back(*range);
    else
      ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

// The ResourceConfigurationDefinition union; the result keeps only the chosen member's known fields.
std::optional<json> readDefinition(FieldErrors& errors, const json& body) {
  const json* definition =
      readObject(errors, body, "resourceConfigurationDefinition", "resourceConfigurationDefinition");
  if (!definition) return std::nullopt;
  auto member = readUnionMember(errors, *definition, "resourceConfigurationDefinition",
                                {"dnsResource", "ipResource", "arnResource"});
  if (!member) return std::nullopt;
  std::string path = "resourceConfigurationDefinition." + *member;
  const json* resource = readObject(errors, *definition, member->c_str(), path, true);
  if (!resource) return std::nullopt;
  json out = json::object();
  if (*member == "dnsResource") {
    auto domain = readString(errors, *resource, "domainName", path + ".domainName",
                             {.required = true, .minLength = 3, .maxLength = 255, .check = checkDomainName});
    auto type = readString(errors, *resource, "ipAddressType", path + ".ipAddressType",
                           {.oneOf = {"IPV4", "IPV6", "DUALSTACK"}});
    if (!domain) return std::nullopt;
    out = {{"domainName", *domain}, {"ipAddressType", type.value_or("IPV4")}};
  } else if (*member == "ipResource") {
    auto ip = readString(errors, *resource, "ipAddress", path + ".ipAddress",
                         {.required = true, .minLength = 4, .maxLength = 39, .check = checkResourceIp});
    if (!ip) return std::nullopt;
    out = {{"ipAddress", *ip}};
  } else {
    auto arn = readString(errors, *resource, "arn", path + ".arn",
                          {.required = true, .minLength = 20, .maxLength = 2048, .check = checkRdsArn});
    if (!arn) return std::nullopt;
    out = {{"arn", *arn}};
  }
  return json{{*member, out}};
}

// Which definition members a type takes (none for GROUP).
bool definitionFits(const std::string& type, const json& definition) {
  if (type == "ARN") return definition.contains("arnResource");
  if (type == "GROUP") return false;
  return !definition.contains("arnResource");
}
std::string definitionRule(const std::string& type) {
  if (type == "ARN") return "Member must be an arnResource for type ARN";
  if (type == "GROUP")
    return "Member is not supported for type GROUP (its children define the "
           "resources)";
  return "Member must be a dnsResource or an ipResource for type " + type;
}

// `domain` is `parent` or one of its subdomains (case-insensitive, as DNS).
bool isWithin(const std::string& domain, const std::string& parent) {
  std::string d = toLower(domain), p = toLower(parent);
  if (startsWith(p, "*.")) p = p.substr(2);
  return d == p ||
         (d.size() > p.size() && d.compare(d.size() - p.size(), p.size(), p) == 0 && d[d.size() - p.size() - 1] == '.');
}

json responseOf(const json& doc) {
  return pick(
      doc, {"id", "name", "arn", "resourceGatewayId", "resourceConfigurationGroupId", "type", "portRanges", "protocol",
            "status", "resourceConfigurationDefinition", "allowAssociationToShareableServiceNetwork", "createdAt",
            "failureReason", "customDomainName", "domainVerificationId", "groupDomain", "domainVerificationArn"});
}

json create(Resources& r, Call& call) {
  FieldErrors errors;
  readString(errors, call.body, "clientToken", "clientToken",
             {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto name = readString(errors, call.body, "name", "name", {.required = true, .check = checkConfigurationName});
  auto type =
      readString(errors, call.body, "type", "type", {.required = true, .oneOf = {"GROUP", "CHILD", "SINGLE", "ARN"}});
  auto ports = readPortRanges(errors, call.body);
  auto protocol = readString(errors, call.body, "protocol", "protocol", {.oneOf = {"TCP"}});
  auto gatewayIdentifier = readString(errors, call.body, "resourceGatewayIdentifier", "resourceGatewayIdentifier",
                                      {.minLength = 17, .maxLength = 2048, .check = checkGatewayIdentifier});
  auto groupIdentifier =
      readString(errors, call.body, "resourceConfigurationGroupIdentifier", "resourceConfigurationGroupIdentifier",
                 {.minLength = 20, .maxLength = 2048, .check = checkResourceConfigurationIdentifier});
  auto definition = readDefinition(errors, call.body);
  auto shareable = readBool(errors, call.body, "allowAssociationToShareableServiceNetwork",
                            "allowAssociationToShareableServiceNetwork");
  auto customDomain = readString(errors, call.body, "customDomainName", "customDomainName", kDomainRule);
  auto groupDomain = readString(errors, call.body, "groupDomain", "groupDomain", kDomainRule);
  auto verificationIdentifier =
      readString(errors, call.body, "domainVerificationIdentifier", "domainVerificationIdentifier",
                 {.minLength = 20, .maxLength = 2048, .check = checkDomainVerificationIdentifier});
  auto tags = readTags(errors, call.body);

  // What each type takes; a member present where it does not belong is an error, never ignored.
  auto has = [&](const char* member) { return call.body.contains(member) && !call.body[member].is_null(); };
  auto notFor = [&](const char* member) {
    if (has(member)) errors.add(member, "Member is not supported for type " + *type);
  };
  auto requiredFor = [&](const char* member) {
    if (!has(member)) errors.add(member, "Member is required for type " + *type);
  };
  if (type) {
    bool child = *type == "CHILD";
    if (child) {
      requiredFor("resourceConfigurationGroupIdentifier");
      for (const char* m : {"resourceGatewayIdentifier", "portRanges", "protocol"}) notFor(m);
    } else {
      requiredFor("resourceGatewayIdentifier");
      notFor("resourceConfigurationGroupIdentifier");
    }
    if (*type == "SINGLE" || *type == "GROUP") requiredFor("portRanges");
    if (*type == "ARN") {
      notFor("portRanges");
      notFor("customDomainName");
    }
    if (*type != "GROUP") {
      notFor("groupDomain");
      requiredFor("resourceConfigurationDefinition");
    } else {
      notFor("customDomainName");
    }
    if (definition && !definitionFits(*type, *definition))
      errors.add("resourceConfigurationDefinition", definitionRule(*type));
    if (has("domainVerificationIdentifier") && !has("customDomainName") && !has("groupDomain"))
      errors.add("domainVerificationIdentifier", "Member requires customDomainName (or groupDomain for type GROUP)");
  }
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  std::optional<Doc> group, gateway, verification;
  if (groupIdentifier) {
    group = r.load(Kind::ResourceConfiguration, *groupIdentifier, "resourceConfigurationGroupIdentifier");
    if (group->value.value("type", "") != "GROUP")
      throw validationError(
          "resourceConfigurationGroupIdentifier: " + group->id + " is not of type GROUP",
          {{"resourceConfigurationGroupIdentifier", "Member must name a configuration of type GROUP"}});
    std::string parentDomain = group->value.value("groupDomain", "");
    if (customDomain && !parentDomain.empty() && !isWithin(*customDomain, parentDomain))
      throw validationError("customDomainName: " + *customDomain + " is not within the group's domain " + parentDomain,
                            {{"customDomainName", "Member must be a subdomain of the group's groupDomain"}});
    gateway = r.find("resourcegateway", group->value.value("resourceGatewayId", ""));
  } else {
    gateway = r.load(Kind::ResourceGateway, *gatewayIdentifier, "resourceGatewayIdentifier");
  }
  if (verificationIdentifier) {
    verification = r.load(Kind::DomainVerification, *verificationIdentifier, "domainVerificationIdentifier");
    std::string verified = verification->value.value("domainName", "");
    if (!isWithin(customDomain ? *customDomain : *groupDomain, verified))
      throw validationError("domainVerificationIdentifier: the verification is for " + verified +
                                ", which does not "
                                "cover " +
                                (customDomain ? *customDomain : *groupDomain),
                            {{"domainVerificationIdentifier", "Member must verify the domain or a parent of it"}});
  }
  if (auto entry = r.store().get(kNameIndex, *name))
    throw conflict(kType, json::parse(entry->value).value("id", ""),
                   "A resource configuration with the name " + *name + " already exists.");
  enforceQuota(r.store().count(kKind), r.config().quotas.resourceConfigurations, kType, "resourceConfigurations",
               "resource configurations per Region");
  if (group)
    enforceQuota(countIndexed(r, kResourceConfigurationsByGroup.name, group->id),
                 r.config().quotas.childResourceConfigurationsPerGroup, kType, "childResourceConfigurationsPerGroup",
                 "child resource configurations per group", group->id);

  std::string id = model::newId(Kind::ResourceConfiguration);
  std::string now = r.now();
  json doc = {{"id", id},
              {"name", *name},
              {"arn", model::arnFor(r.arns(), Kind::ResourceConfiguration, id)},
              {"type", *type},
              {"status", "ACTIVE"},
              {"allowAssociationToShareableServiceNetwork", shareable.value_or(true)},
              {"amazonManaged", false},
              {"createdAt", now},
              {"lastUpdatedAt", now}};
  if (gateway) doc["resourceGatewayId"] = gateway->id;
  if (group) doc["resourceConfigurationGroupId"] = group->id;
  // Children carry their group's ports and protocol, which live on the group alone.
  if (ports) doc["portRanges"] = *ports;
  if (!group) doc["protocol"] = protocol.value_or("TCP");
  if (definition) doc["resourceConfigurationDefinition"] = *definition;
  if (customDomain) doc["customDomainName"] = *customDomain;
  if (groupDomain) doc["groupDomain"] = *groupDomain;
  if (verification) {
    doc["domainVerificationId"] = verification->id;
    doc["domainVerificationArn"] = verification->value["arn"];
  }
  json response = responseOf(doc);

  Tx tx;
  if (gateway) touch(tx, "resourcegateway", *gateway);
  if (group) touch(tx, kKind, *group);
  if (verification) tx.requireRevision("domainverification", verification->id, verification->modRevision);
  createGuarded(r, tx, call, kKind, kNameIndex, *name, doc, tags, response);
  r.commit(tx, kType, *name);
  return response;
}

json get(Resources& r, Call& call) {
  auto doc = r.load(Kind::ResourceConfiguration, call.labels[0], kIdentifier);
  json out = doc.value;
  // The verification's status as it is now, not as it was when the configuration was made.
  if (out.contains("domainVerificationId")) {
    if (auto verification = r.find("domainverification", out["domainVerificationId"].get<std::string>()))
      out["domainVerificationStatus"] = verification->value.value("status", "PENDING");
  }
  return out;
}

json update(Resources& r, Call& call) {
  FieldErrors errors;
  auto definition = readDefinition(errors, call.body);
  auto shareable = readBool(errors, call.body, "allowAssociationToShareableServiceNetwork",
                            "allowAssociationToShareableServiceNetwork");
  auto ports = readPortRanges(errors, call.body);
  errors.throwIfAny();
  auto doc = r.load(Kind::ResourceConfiguration, call.labels[0], kIdentifier);
  std::string type = doc.value.value("type", "");
  if (definition && !definitionFits(type, *definition))
    errors.add("resourceConfigurationDefinition", definitionRule(type));
  if (ports && type != "SINGLE" && type != "GROUP")
    errors.add("portRanges", "Member is not supported for type " + type);
  errors.throwIfAny();
  if (definition) doc.value["resourceConfigurationDefinition"] = *definition;
  if (shareable) doc.value["allowAssociationToShareableServiceNetwork"] = *shareable;
  if (ports) doc.value["portRanges"] = *ports;
  if (definition || shareable || ports) {
    doc.value["lastUpdatedAt"] = r.now();
    Tx tx;
    tx.requireRevision(kKind, doc.id, doc.modRevision);
    tx.put(kKind, doc.id, doc.value);
    r.commit(tx, kType, doc.id);
  }
  return pick(doc.value,
              {"id", "name", "arn", "resourceGatewayId", "resourceConfigurationGroupId", "type", "portRanges",
               "allowAssociationToShareableServiceNetwork", "protocol", "status", "resourceConfigurationDefinition"});
}

json remove(Resources& r, Call& call) {
  auto doc = r.load(Kind::ResourceConfiguration, call.labels[0], kIdentifier);
  if (size_t n = countIndexed(r, kResourceAssociationsByConfiguration.name, doc.id))
    throw conflict(kType, doc.id,
                   "The resource configuration " + doc.id + " is associated with " + std::to_string(n) +
                       " service network(s). Delete the associations first.");
  if (size_t n = countIndexed(r, kResourceConfigurationsByGroup.name, doc.id))
    throw conflict(kType, doc.id,
                   "The resource configuration group " + doc.id + " has " + std::to_string(n) +
                       " child configuration(s). Delete them first.");
  auto endpoints = resourceEndpointAssociations(r, doc.value);
  if (!endpoints.empty())
    throw conflict(kType, doc.id,
                   "The resource configuration " + doc.id + " is reached by the VPC endpoint " +
                       endpoints.front().value("vpcEndpointId", "") +
                       ". Delete its resource endpoint association first.");
  std::string arn = doc.value["arn"];
  Tx tx;
  // Associations and children created meanwhile touch this configuration, so this fails rather than orphan them.
  deleteGuarded(tx, kKind, kNameIndex, doc.value["name"].get<std::string>(), doc);
  tx.del("resourcepolicy", arn);
  deleteAccessLogSubscriptions(r, tx, doc.id);
  forgetEndpointAssociations(r, tx, doc.value);
  r.commit(tx, kType, doc.id);
  return nullptr;
}

json list(Resources& r, Call& call) {
  json query = queryObject(
      call, {"resourceGatewayIdentifier", "resourceConfigurationGroupIdentifier", "domainVerificationIdentifier"});
  FieldErrors errors;
  auto gateway = readString(errors, query, "resourceGatewayIdentifier", "resourceGatewayIdentifier",
                            {.minLength = 17, .maxLength = 2048, .check = checkGatewayIdentifier});
  auto group = readString(errors, query, "resourceConfigurationGroupIdentifier", "resourceConfigurationGroupIdentifier",
                          {.minLength = 20, .maxLength = 2048, .check = checkResourceConfigurationIdentifier});
  auto verification = readString(errors, query, "domainVerificationIdentifier", "domainVerificationIdentifier",
                                 {.minLength = 20, .maxLength = 2048, .check = checkDomainVerificationIdentifier});
  readMaxResults(errors, call);
  errors.throwIfAny();
  // Like every top-level List, an unknown gateway, group or verification lists nothing.
  std::string gatewayId = gateway ? *model::idFromIdentifier(Kind::ResourceGateway, *gateway) : "";
  std::string groupId = group ? *model::idFromIdentifier(Kind::ResourceConfiguration, *group) : "";
  std::string verificationId = verification ? *model::idFromIdentifier(Kind::DomainVerification, *verification) : "";
  auto keep = [&](const json& doc) {
    return (gatewayId.empty() || doc.value("resourceGatewayId", "") == gatewayId) &&
           (groupId.empty() || doc.value("resourceConfigurationGroupId", "") == groupId) &&
           (verificationId.empty() || doc.value("domainVerificationId", "") == verificationId);
  };
  auto summarize = [](const json& doc) {
    return pick(doc, {"id", "name", "arn", "resourceGatewayId", "resourceConfigurationGroupId", "type", "status",
                      "amazonManaged", "createdAt", "lastUpdatedAt", "customDomainName", "domainVerificationId",
                      "groupDomain"});
  };
  // The narrowest index given pages; the other filters only keep.
  if (!groupId.empty())
    return r.pageIndex(kResourceConfigurationsByGroup.name, groupId + "/", kKind, call, keep, summarize);
  if (!verificationId.empty())
    return r.pageIndex(kResourceConfigurationsByDomainVerification.name, verificationId + "/", kKind, call, keep,
                       summarize);
  if (!gatewayId.empty())
    return r.pageIndex(kResourceConfigurationsByGateway.name, gatewayId + "/", kKind, call, keep, summarize);
  return r.page(kKind, call, keep, summarize);
}

}  // namespace

std::string checkResourceConfigurationIdentifier(std::string_view v) {
  if (model::idFromIdentifier(Kind::ResourceConfiguration, v)) return "";
  return "Member must be a resource configuration id (rcfg-...) or ARN";
}

void registerResourceConfigurationOps(HandlerMap& handlers) {
  handlers["CreateResourceConfiguration"] = create;
  handlers["GetResourceConfiguration"] = get;
  handlers["UpdateResourceConfiguration"] = update;
  handlers["DeleteResourceConfiguration"] = remove;
  handlers["ListResourceConfigurations"] = list;
}

}  // namespace trellis::api
