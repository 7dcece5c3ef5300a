// {Create,Get,Delete,List}ServiceNetworkResourceAssociation(s), ListResourceEndpointAssociations,
// DeleteResourceEndpointAssociation, ListServiceNetworkVpcEndpointAssociations.
//
// Resource associations are documents like the other associations (ACTIVE at once, gone at once on delete). VPC
// endpoints are not: AWS makes them through EC2, Trellis reads them from the config (`vpcEndpoints:`), so their
// associations are derived from it (docs/vpc-resources.md, "VPC endpoints").
#include <algorithm>

#include "api/actions.h"
#include "api/api.h"
#include "api/indexes.h"
#include "api/resources.h"
#include "api/validation.h"
#include "common/crypto.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kKind = "servicenetworkresourceassociation";
constexpr const char* kType = "SERVICE_NETWORK_RESOURCE_ASSOCIATION";
constexpr const char* kIdentifier = "serviceNetworkResourceAssociationIdentifier";
// "<network id>/<resource configuration id>": a pair is associated once; lists a network's resource associations.
constexpr std::string_view kPairIndex = "index.name.servicenetworkresourceassociation";
// A resource endpoint association that DeleteResourceEndpointAssociation ended, by its id.
constexpr std::string_view kDeletedEndpointAssociation = "deletedresourceendpointassociation";

// snra-….rcfg-….{partitionId}.vpc-lattice-rsc.{region}.on.aws, as Lattice names them.
json dnsEntryOf(Resources& r, const std::string& id, const std::string& configurationId) {
  return {{"domainName", id + "." + configurationId + "." + r.config().partitionId + ".vpc-lattice-rsc." +
                             r.config().region + ".on.aws"},
          {"hostedZoneId", "Z" + id.substr(5, 13)}};
}

json create(Resources& r, Call& call) {
  FieldErrors errors;
  readString(errors, call.body, "clientToken", "clientToken",
             {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto configurationIdentifier =
      readString(errors, call.body, "resourceConfigurationIdentifier", "resourceConfigurationIdentifier",
                 {.required = true, .minLength = 20, .maxLength = 2048, .check = checkResourceConfigurationIdentifier});
  auto networkIdentifier =
      readString(errors, call.body, "serviceNetworkIdentifier", "serviceNetworkIdentifier",
                 {.required = true, .minLength = 3, .maxLength = 2048, .check = checkServiceNetworkIdentifier});
  auto privateDns = readBool(errors, call.body, "privateDnsEnabled", "privateDnsEnabled");
  auto tags = readTags(errors, call.body);
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  auto configuration = r.load(Kind::ResourceConfiguration, *configurationIdentifier, "resourceConfigurationIdentifier");
  auto network = r.load(Kind::ServiceNetwork, *networkIdentifier, "serviceNetworkIdentifier");
  if (configuration.value.value("type", "") == "CHILD")
    throw validationError("resourceConfigurationIdentifier: " + configuration.id +
                              " is a child configuration; associate its group instead",
                          {{"resourceConfigurationIdentifier", "Member must not be a configuration of type CHILD"}});
  bool shareableNetwork =
      network.value.contains("sharingConfig") && network.value["sharingConfig"].value("enabled", false);
  if (shareableNetwork && !configuration.value.value("allowAssociationToShareableServiceNetwork", true))
    throw validationError("The resource configuration " + configuration.id +
                              " does not allow association to a shareable service network, and " + network.id +
                              " is shareable",
                          {{"serviceNetworkIdentifier", "Member must not be a shareable service network"}});

  std::string pair = network.id + "/" + configuration.id;
  if (auto entry = r.store().get(kPairIndex, pair)) {
    std::string existing = json::parse(entry->value).value("id", "");
    throw conflict(kType, existing,
                   "The resource configuration " + configuration.id +
                       " is already associated with the service "
                       "network " +
                       network.id + " (association " + existing + ").");
  }
  enforceQuota(countIndexed(r, kPairIndex, network.id), r.config().quotas.resourceAssociationsPerServiceNetwork, kType,
               "resourceAssociationsPerServiceNetwork", "resource configurations per service network", network.id);

  std::string id = model::newId(Kind::ServiceNetworkResourceAssociation);
  std::string now = r.now();
  json doc = {{"id", id},
              {"arn", model::arnFor(r.arns(), Kind::ServiceNetworkResourceAssociation, id)},
              {"status", "ACTIVE"},
              {"createdBy", r.arns().accountId},
              {"createdAt", now},
              {"lastUpdatedAt", now},
              {"resourceConfigurationId", configuration.id},
              {"resourceConfigurationArn", configuration.value["arn"]},
              {"resourceConfigurationName", configuration.value["name"]},
              {"serviceNetworkId", network.id},
              {"serviceNetworkArn", network.value["arn"]},
              {"serviceNetworkName", network.value["name"]},
              {"dnsEntry", dnsEntryOf(r, id, configuration.id)},
              {"isManagedAssociation", false}};
  if (privateDns) doc["privateDnsEnabled"] = *privateDns;
  // The custom domain name answers in consumers' VPCs unless private DNS is turned off for this association.
  std::string customDomain = configuration.value.value("customDomainName", "");
  if (!customDomain.empty() && privateDns != false)
    doc["privateDnsEntry"] = {{"domainName", customDomain}, {"hostedZoneId", doc["dnsEntry"]["hostedZoneId"]}};
  json response = pick(doc, {"id", "arn", "status", "createdBy", "privateDnsEnabled"});

  Tx tx;
  touch(tx, "servicenetwork", network);
  touch(tx, "resourceconfiguration", configuration);
  createGuarded(r, tx, call, kKind, kPairIndex, pair, doc, tags, response);
  r.commit(tx, kType, pair);
  return response;
}

json get(Resources& r, Call& call) {
  json out = r.load(Kind::ServiceNetworkResourceAssociation, call.labels[0], kIdentifier).value;
  if (auto configuration = r.find("resourceconfiguration", out.value("resourceConfigurationId", ""))) {
    std::string verificationId = configuration->value.value("domainVerificationId", "");
    if (auto verification = verificationId.empty() ? std::nullopt : r.find("domainverification", verificationId))
      out["domainVerificationStatus"] = verification->value.value("status", "PENDING");
  }
  return out;
}

json remove(Resources& r, Call& call) {
  auto doc = r.load(Kind::ServiceNetworkResourceAssociation, call.labels[0], kIdentifier);
  Tx tx;
  deleteGuarded(tx, kKind, kPairIndex,
                doc.value.value("serviceNetworkId", "") + "/" + doc.value.value("resourceConfigurationId", ""), doc);
  r.commit(tx, kType, doc.id);
  return {{"id", doc.id}, {"arn", doc.value["arn"]}, {"status", "DELETE_IN_PROGRESS"}};
}

json list(Resources& r, Call& call) {
  json query = queryObject(call, {"serviceNetworkIdentifier", "resourceConfigurationIdentifier"});
  FieldErrors errors;
  auto networkIdentifier = readString(errors, query, "serviceNetworkIdentifier", "serviceNetworkIdentifier",
                                      {.minLength = 3, .maxLength = 2048, .check = checkServiceNetworkIdentifier});
  auto configurationIdentifier =
      readString(errors, query, "resourceConfigurationIdentifier", "resourceConfigurationIdentifier",
                 {.minLength = 20, .maxLength = 2048, .check = checkResourceConfigurationIdentifier});
  // A group's association covers its children: they have no associations of their own to include.
  if (auto raw = call.queryValue("includeChildren"); raw && *raw != "true" && *raw != "false")
    errors.add("includeChildren", "Member must be a boolean");
  readMaxResults(errors, call);
  errors.throwIfAny();
  std::string networkId = networkIdentifier ? *model::idFromIdentifier(Kind::ServiceNetwork, *networkIdentifier) : "";
  std::string configurationId =
      configurationIdentifier ? *model::idFromIdentifier(Kind::ResourceConfiguration, *configurationIdentifier) : "";
  auto keep = [&](const json& doc) { return networkId.empty() || doc.value("serviceNetworkId", "") == networkId; };
  auto summarize = [](const json& doc) {
    return pick(doc,
                {"id", "arn", "status", "createdBy", "createdAt", "resourceConfigurationId", "resourceConfigurationArn",
                 "resourceConfigurationName", "serviceNetworkId", "serviceNetworkArn", "serviceNetworkName", "dnsEntry",
                 "privateDnsEntry", "isManagedAssociation", "failureCode", "privateDnsEnabled"});
  };
  if (!configurationId.empty())
    return r.pageIndex(kResourceAssociationsByConfiguration.name, configurationId + "/", kKind, call, keep, summarize);
  if (!networkId.empty()) return r.pageIndex(kPairIndex, networkId + "/", kKind, call, keep, summarize);
  return r.page(kKind, call, keep, summarize);
}

// ---- VPC endpoints (from the config) ----

// A resource endpoint association's id, stable for one endpoint and one configuration: a configuration made again under
// a new id gets a new association.
std::string endpointAssociationId(const std::string& endpointId, const std::string& configurationId) {
  return "rea-" + sha256Hex(endpointId + "/" + configurationId).substr(0, 17);
}

// The config's endpoints of `type` whose target is exactly `arn`.
std::vector<const model::VpcEndpoint*> endpointsTargeting(Resources& r, const std::string& type,
                                                          const std::string& arn) {
  std::vector<const model::VpcEndpoint*> out;
  for (const auto& endpoint : r.config().vpcEndpoints)
    if (endpoint.type == type && endpoint.target == arn) out.push_back(&endpoint);
  return out;
}

json endpointAssociation(Resources& r, const model::VpcEndpoint& endpoint, const json& configuration) {
  std::string id = endpointAssociationId(endpoint.id, configuration.value("id", ""));
  return {{"id", id},
          {"arn", model::arnFor(r.arns(), Kind::ResourceEndpointAssociation, id)},
          {"resourceConfigurationId", configuration["id"]},
          {"resourceConfigurationArn", configuration["arn"]},
          {"resourceConfigurationName", configuration["name"]},
          {"vpcEndpointId", endpoint.id},
          {"vpcEndpointOwner", r.arns().accountId},
          {"createdBy", r.arns().accountId}};
}

std::string checkEndpointAssociationIdentifier(std::string_view v) {
  if (model::idFromIdentifier(Kind::ResourceEndpointAssociation, v)) return "";
  return "Member must be a resource endpoint association id (rea-...) or ARN";
}
std::string checkVpcEndpointId(std::string_view v) {
  bool ok = v.size() == 22 && v.substr(0, 5) == "vpce-" &&
            v.substr(5).find_first_not_of("0123456789abcdef") == std::string_view::npos;
  return ok ? ""
            : "Member must satisfy regular expression pattern: "
              "vpce-[0-9a-f]{17}";
}
std::string checkAccountId(std::string_view v) {
  bool ok = v.size() == 12 && v.find_first_not_of("0123456789") == std::string_view::npos;
  return ok ? "" : "Member must satisfy regular expression pattern: \\d{12}";
}

json listEndpointAssociations(Resources& r, Call& call) {
  json query = queryObject(call, {"resourceConfigurationIdentifier", "resourceEndpointAssociationIdentifier",
                                  "vpcEndpointId", "vpcEndpointOwner"});
  FieldErrors errors;
  auto configurationIdentifier =
      readString(errors, query, "resourceConfigurationIdentifier", "resourceConfigurationIdentifier",
                 {.required = true, .minLength = 20, .maxLength = 2048, .check = checkResourceConfigurationIdentifier});
  auto associationIdentifier =
      readString(errors, query, "resourceEndpointAssociationIdentifier", "resourceEndpointAssociationIdentifier",
                 {.minLength = 21, .maxLength = 2048, .check = checkEndpointAssociationIdentifier});
  auto endpointId = readString(errors, query, "vpcEndpointId", "vpcEndpointId",
                               {.minLength = 22, .maxLength = 22, .check = checkVpcEndpointId});
  auto owner = readString(errors, query, "vpcEndpointOwner", "vpcEndpointOwner",
                          {.minLength = 12, .maxLength = 12, .check = checkAccountId});
  readMaxResults(errors, call);
  errors.throwIfAny();
  std::string configurationId = *model::idFromIdentifier(Kind::ResourceConfiguration, *configurationIdentifier);
  std::string associationId =
      associationIdentifier ? *model::idFromIdentifier(Kind::ResourceEndpointAssociation, *associationIdentifier) : "";
  std::vector<std::pair<std::string, json>> entries;
  // Like every top-level List, an unknown configuration lists nothing.
  if (auto configuration = r.find("resourceconfiguration", configurationId)) {
    for (auto& association : resourceEndpointAssociations(r, configuration->value)) {
      if (!associationId.empty() && association["id"] != associationId) continue;
      if (endpointId && association["vpcEndpointId"] != *endpointId) continue;
      if (owner && association["vpcEndpointOwner"] != *owner) continue;
      std::string key = configurationId + "/" + association["id"].get<std::string>();
      entries.emplace_back(std::move(key), std::move(association));
    }
  }
  return r.pageEntries(configurationId + "/", entries, call);
}

json deleteEndpointAssociation(Resources& r, Call& call) {
  FieldErrors errors;
  json label = {{"resourceEndpointAssociationIdentifier", call.labels.at(0)}};
  auto identifier =
      readString(errors, label, "resourceEndpointAssociationIdentifier", "resourceEndpointAssociationIdentifier",
                 {.required = true, .minLength = 21, .maxLength = 2048, .check = checkEndpointAssociationIdentifier});
  errors.throwIfAny();
  std::string id = *model::idFromIdentifier(Kind::ResourceEndpointAssociation, *identifier);
  // The association is the one whose endpoint and live configuration give this id.
  for (const auto& endpoint : r.config().vpcEndpoints) {
    if (endpoint.type != "Resource") continue;
    auto configurationId = model::idFromIdentifier(Kind::ResourceConfiguration, endpoint.target);
    if (!configurationId || endpointAssociationId(endpoint.id, *configurationId) != id) continue;
    auto configuration = r.find("resourceconfiguration", *configurationId);
    if (!configuration || configuration->value.value("arn", "") != endpoint.target) break;
    if (r.find(kDeletedEndpointAssociation, id)) break;
    json association = endpointAssociation(r, endpoint, configuration->value);
    Tx tx;
    tx.requireRevision("resourceconfiguration", configuration->id, configuration->modRevision);
    tx.requireAbsent(kDeletedEndpointAssociation, id);
    tx.put(kDeletedEndpointAssociation, id,
           {{"id", id},
            {"vpcEndpointId", endpoint.id},
            {"resourceConfigurationId", configuration->id},
            {"deletedAt", r.now()}});
    r.commit(tx, "RESOURCE_ENDPOINT_ASSOCIATION", id);
    return pick(association, {"id", "arn", "resourceConfigurationId", "resourceConfigurationArn", "vpcEndpointId"});
  }
  throw notFound(Kind::ResourceEndpointAssociation, *identifier);
}

json listVpcEndpointAssociations(Resources& r, Call& call) {
  json query = queryObject(call, {"serviceNetworkIdentifier"});
  FieldErrors errors;
  auto networkIdentifier =
      readString(errors, query, "serviceNetworkIdentifier", "serviceNetworkIdentifier",
                 {.required = true, .minLength = 3, .maxLength = 2048, .check = checkServiceNetworkIdentifier});
  errors.throwIfAny();
  std::string networkId = *model::idFromIdentifier(Kind::ServiceNetwork, *networkIdentifier);
  std::vector<std::pair<std::string, json>> entries;
  // Like every top-level List, an unknown network lists nothing.
  if (auto network = r.find("servicenetwork", networkId)) {
    for (const auto* endpoint : endpointsTargeting(r, "ServiceNetwork", network->value.value("arn", ""))) {
      // The endpoint is the association: EC2 has no other id for it.
      json item = {{"vpcEndpointId", endpoint->id},
                   {"vpcId", endpoint->vpcId},
                   {"vpcEndpointOwnerId", r.arns().accountId},
                   {"id", endpoint->id},
                   {"state", "Available"},
                   {"serviceNetworkArn", network->value["arn"]}};
      entries.emplace_back(networkId + "/" + endpoint->id, std::move(item));
    }
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return r.pageEntries(networkId + "/", entries, call);
}

}  // namespace

std::vector<json> resourceEndpointAssociations(Resources& r, const json& configuration) {
  std::vector<json> out;
  std::vector<store::RecordKey> markers;
  for (const auto* endpoint : endpointsTargeting(r, "Resource", configuration.value("arn", ""))) {
    out.push_back(endpointAssociation(r, *endpoint, configuration));
    markers.push_back({std::string(kDeletedEndpointAssociation), out.back()["id"].get<std::string>()});
  }
  auto deleted = r.store().getMany(markers);
  std::vector<json> live;
  for (size_t i = 0; i < out.size(); ++i)
    if (!deleted[i]) live.push_back(std::move(out[i]));
  std::sort(live.begin(), live.end(), [](const json& a, const json& b) { return a["id"] < b["id"]; });
  return live;
}

void forgetEndpointAssociations(Resources& r, Tx& tx, const json& configuration) {
  for (const auto* endpoint : endpointsTargeting(r, "Resource", configuration.value("arn", "")))
    tx.del(kDeletedEndpointAssociation, endpointAssociationId(endpoint->id, configuration.value("id", "")));
}

size_t resourceAssociations(Resources& r, const std::string& networkId) {
  return countIndexed(r, kPairIndex, networkId);
}

void registerResourceAssociationOps(HandlerMap& handlers) {
  handlers["CreateServiceNetworkResourceAssociation"] = create;
  handlers["GetServiceNetworkResourceAssociation"] = get;
  handlers["DeleteServiceNetworkResourceAssociation"] = remove;
  handlers["ListServiceNetworkResourceAssociations"] = list;
  handlers["ListResourceEndpointAssociations"] = listEndpointAssociations;
  handlers["DeleteResourceEndpointAssociation"] = deleteEndpointAssociation;
  handlers["ListServiceNetworkVpcEndpointAssociations"] = listVpcEndpointAssociations;
}

}  // namespace trellis::api
