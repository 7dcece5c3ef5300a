// Service network associations: {Create,Get,Delete,List}ServiceNetworkServiceAssociation(s),
// {Create,Get,Update,Delete,List}ServiceNetworkVpcAssociation(s).
//
// Associations become ACTIVE at once (Trellis has nothing to provision) and disappear at once on delete,
// whose response still says DELETE_IN_PROGRESS as Lattice's does.
#include <algorithm>

#include "api/actions.h"
#include "api/api.h"
#include "api/indexes.h"
#include "api/validation.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kServiceAssoc = "servicenetworkserviceassociation";
constexpr std::string_view kVpcAssoc = "servicenetworkvpcassociation";
// Uniqueness guards written in the same commit as the association: "<sn id>/<svc id>" for service
// associations, the VPC id for VPC associations (a VPC has at most one).
constexpr std::string_view kServicePairIndex = "index.name.servicenetworkserviceassociation";
constexpr std::string_view kVpcIndex = "index.name.servicenetworkvpcassociation";

std::string accountId(Resources& r) { return r.arns().accountId; }

// ---- Service network <-> service ----

json createServiceAssociation(Resources& r, Call& call) {
  FieldErrors errors;
  readString(errors, call.body, "clientToken", "clientToken",
             {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto serviceIdentifier =
      readString(errors, call.body, "serviceIdentifier", "serviceIdentifier",
                 {.required = true, .minLength = 17, .maxLength = 2048, .check = checkServiceIdentifier});
  auto networkIdentifier =
      readString(errors, call.body, "serviceNetworkIdentifier", "serviceNetworkIdentifier",
                 {.required = true, .minLength = 3, .maxLength = 2048, .check = checkServiceNetworkIdentifier});
  auto tags = readTags(errors, call.body);
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  auto network = r.load(Kind::ServiceNetwork, *networkIdentifier, "serviceNetworkIdentifier");
  auto service = r.load(Kind::Service, *serviceIdentifier, "serviceIdentifier");
  std::string customDomain = service.value.value("customDomainName", "");

  std::string pair = network.id + "/" + service.id;
  if (auto entry = r.store().get(kServicePairIndex, pair)) {
    std::string existing = json::parse(entry->value).value("id", "");
    throw conflict("SERVICE_NETWORK_SERVICE_ASSOCIATION", existing,
                   "The service " + service.id + " is already associated with the service network " + network.id +
                       " (association " + existing + ").");
  }
  if (!customDomain.empty()) {
    std::string networkDomain = network.id + "/" + customDomain;
    for (const auto& assoc : indexedDocs(r, kCustomDomainsByNetwork.name, kServiceAssoc, networkDomain))
      throw conflict("SERVICE", service.id,
                     "The service network " + network.id + " already has a service with the custom domain name " +
                         customDomain + " (" + assoc.value.value("serviceId", "") + ").");
  }
  enforceQuota(countIndexed(r, kServicePairIndex, network.id), r.config().quotas.serviceAssociationsPerServiceNetwork,
               "SERVICE_NETWORK_SERVICE_ASSOCIATION", "L-75D4A19E", "service associations per service network",
               network.id);

  std::string id = model::newId(Kind::ServiceNetworkServiceAssociation);
  json doc = {{"id", id},
              {"arn", model::arnFor(r.arns(), Kind::ServiceNetworkServiceAssociation, id)},
              {"status", "ACTIVE"},
              {"createdBy", accountId(r)},
              {"createdAt", r.now()},
              {"serviceId", service.id},
              {"serviceName", service.value["name"]},
              {"serviceArn", service.value["arn"]},
              {"serviceNetworkId", network.id},
              {"serviceNetworkName", network.value["name"]},
              {"serviceNetworkArn", network.value["arn"]},
              {"dnsEntry", service.value["dnsEntry"]}};
  if (!customDomain.empty()) doc["customDomainName"] = customDomain;
  json response = pick(doc, {"id", "status", "arn", "createdBy", "customDomainName", "dnsEntry"});

  Tx tx;
  touch(tx, "servicenetwork", network);
  touch(tx, "service", service);
  tx.requireAbsent(kServicePairIndex, pair);
  tx.put(kServicePairIndex, pair, {{"id", id}});
  tx.put(kServiceAssoc, id, doc);
  indexCreated(tx, kServiceAssoc, doc);
  r.putTags(tx, doc["arn"], tags);
  r.remember(call, tx, response);
  r.commit(tx, "SERVICE_NETWORK_SERVICE_ASSOCIATION", pair);
  return response;
}

json getServiceAssociation(Resources& r, Call& call) {
  return r.load(Kind::ServiceNetworkServiceAssociation, call.labels[0], "serviceNetworkServiceAssociationIdentifier")
      .value;
}

json deleteServiceAssociation(Resources& r, Call& call) {
  auto doc =
      r.load(Kind::ServiceNetworkServiceAssociation, call.labels[0], "serviceNetworkServiceAssociationIdentifier");
  Tx tx;
  tx.requireRevision(kServiceAssoc, doc.id, doc.modRevision);
  tx.del(kServiceAssoc, doc.id);
  tx.del(kServicePairIndex, doc.value.value("serviceNetworkId", "") + "/" + doc.value.value("serviceId", ""));
  indexDeleted(tx, kServiceAssoc, doc.value);
  tx.del("tags", doc.value["arn"].get<std::string>());
  r.commit(tx, "SERVICE_NETWORK_SERVICE_ASSOCIATION", doc.id);
  return {{"id", doc.id}, {"status", "DELETE_IN_PROGRESS"}, {"arn", doc.value["arn"]}};
}

json listServiceAssociations(Resources& r, Call& call) {
  json query = queryObject(call, {"serviceNetworkIdentifier", "serviceIdentifier"});
  FieldErrors errors;
  auto networkIdentifier = readString(errors, query, "serviceNetworkIdentifier", "serviceNetworkIdentifier",
                                      {.minLength = 3, .maxLength = 2048, .check = checkServiceNetworkIdentifier});
  auto serviceIdentifier = readString(errors, query, "serviceIdentifier", "serviceIdentifier",
                                      {.minLength = 17, .maxLength = 2048, .check = checkServiceIdentifier});
  errors.throwIfAny();
  if (!networkIdentifier && !serviceIdentifier)
    throw validationError("You must provide either serviceNetworkIdentifier or serviceIdentifier",
                          {{"serviceNetworkIdentifier", "Member must not be null when serviceIdentifier is absent"}});
  // List operations do not report missing resources: an unknown network or service lists nothing.
  std::string networkId = networkIdentifier ? *model::idFromIdentifier(Kind::ServiceNetwork, *networkIdentifier) : "";
  std::string serviceId = serviceIdentifier ? *model::idFromIdentifier(Kind::Service, *serviceIdentifier) : "";
  auto keep = [&](const json& doc) { return networkId.empty() || doc.value("serviceNetworkId", "") == networkId; };
  auto summarize = [](const json& doc) {
    return pick(doc, {"id", "status", "arn", "createdBy", "createdAt", "serviceId", "serviceName", "serviceArn",
                      "serviceNetworkId", "serviceNetworkName", "serviceNetworkArn", "dnsEntry", "customDomainName"});
  };
  // Both given: the service's few associations, filtered. The pair index ("<network>/<service>") lists a network's.
  if (!serviceId.empty())
    return r.pageIndex(kServiceAssociationsByService.name, serviceId + "/", kServiceAssoc, call, keep, summarize);
  return r.pageIndex(kServicePairIndex, networkId + "/", kServiceAssoc, call, keep, summarize);
}

// ---- Service network <-> VPC ----

// dnsOptions: a preference, and the domains it names only for the *_SPECIFIED_DOMAINS preferences.
// Problems are recorded in `errors` (the caller throws before using the result).
std::optional<json> readDnsOptions(FieldErrors& errors, const json& body, std::optional<bool> privateDnsEnabled) {
  const json* options = readObject(errors, body, "dnsOptions", "dnsOptions");
  if (!options) return std::nullopt;
  auto preference = readString(errors, *options, "privateDnsPreference", "dnsOptions.privateDnsPreference",
                               {.oneOf = {"VERIFIED_DOMAINS_ONLY", "ALL_DOMAINS",
                                          "VERIFIED_DOMAINS_AND_SPECIFIED_DOMAINS", "SPECIFIED_DOMAINS_ONLY"}});
  json out = json::object();
  if (preference) out["privateDnsPreference"] = *preference;
  const json* domains =
      readArray(errors, *options, "privateDnsSpecifiedDomains", "dnsOptions.privateDnsSpecifiedDomains", false, 1, 10);
  if (domains) {
    for (size_t i = 0; i < domains->size(); ++i) {
      json holder = {{"v", (*domains)[i]}};
      readString(errors, holder, "v", "dnsOptions.privateDnsSpecifiedDomains[" + std::to_string(i) + "]",
                 {.required = true, .minLength = 1, .maxLength = 255, .check = checkDomainName});
    }
    out["privateDnsSpecifiedDomains"] = *domains;
  }
  bool specifies = preference && preference->find("SPECIFIED_DOMAINS") != std::string::npos;
  if (specifies && !domains)
    errors.add("dnsOptions.privateDnsSpecifiedDomains",
               "Member is required when privateDnsPreference is " + *preference);
  if (!specifies && domains)
    errors.add("dnsOptions.privateDnsSpecifiedDomains",
               "Member is only supported with privateDnsPreference VERIFIED_DOMAINS_AND_SPECIFIED_DOMAINS or "
               "SPECIFIED_DOMAINS_ONLY");
  if (privateDnsEnabled == false)
    errors.add("dnsOptions", "DNS options are only supported when privateDnsEnabled is true");
  return out;
}

json createVpcAssociation(Resources& r, Call& call) {
  FieldErrors errors;
  readString(errors, call.body, "clientToken", "clientToken",
             {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto networkIdentifier =
      readString(errors, call.body, "serviceNetworkIdentifier", "serviceNetworkIdentifier",
                 {.required = true, .minLength = 3, .maxLength = 2048, .check = checkServiceNetworkIdentifier});
  auto vpcId = readString(errors, call.body, "vpcIdentifier", "vpcIdentifier",
                          {.required = true, .minLength = 5, .maxLength = 50, .check = checkVpcId});
  auto privateDns = readBool(errors, call.body, "privateDnsEnabled", "privateDnsEnabled");
  auto groups = readSecurityGroupIds(errors, call.body, false, 0);
  auto dnsOptions = readDnsOptions(errors, call.body, privateDns);
  auto tags = readTags(errors, call.body);
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  auto network = r.load(Kind::ServiceNetwork, *networkIdentifier, "serviceNetworkIdentifier");
  requireVpc(r.config(), *vpcId);
  if (groups) checkSecurityGroupsInVpc(r.config(), *groups, *vpcId);

  if (auto entry = r.store().get(kVpcIndex, *vpcId)) {
    std::string existing = json::parse(entry->value).value("id", "");
    auto assoc = r.find(kVpcAssoc, existing);
    throw conflict("SERVICE_NETWORK_VPC_ASSOCIATION", existing,
                   "The VPC " + *vpcId + " is already associated with the service network " +
                       (assoc ? assoc->value.value("serviceNetworkId", "") : "") + " (association " + existing +
                       "). A VPC can be associated with only one service network.");
  }
  enforceQuota(countIndexed(r, kVpcAssociationsByNetwork.name, network.id),
               r.config().quotas.vpcAssociationsPerServiceNetwork, "SERVICE_NETWORK_VPC_ASSOCIATION",
               "L-EF6E2D62", "VPC associations per service network", network.id);

  std::string id = model::newId(Kind::ServiceNetworkVpcAssociation);
  std::string now = r.now();
  json doc = {{"id", id},
              {"arn", model::arnFor(r.arns(), Kind::ServiceNetworkVpcAssociation, id)},
              {"status", "ACTIVE"},
              {"createdBy", accountId(r)},
              {"createdAt", now},
              {"lastUpdatedAt", now},
              {"serviceNetworkId", network.id},
              {"serviceNetworkName", network.value["name"]},
              {"serviceNetworkArn", network.value["arn"]},
              {"vpcId", *vpcId},
              {"securityGroupIds", groups.value_or(std::vector<std::string>{})}};
  if (privateDns) doc["privateDnsEnabled"] = *privateDns;
  if (dnsOptions) doc["dnsOptions"] = *dnsOptions;
  json response =
      pick(doc, {"id", "status", "arn", "createdBy", "securityGroupIds", "privateDnsEnabled", "dnsOptions"});

  Tx tx;
  touch(tx, "servicenetwork", network);
  tx.requireAbsent(kVpcIndex, *vpcId);
  tx.put(kVpcIndex, *vpcId, {{"id", id}});
  tx.put(kVpcAssoc, id, doc);
  indexCreated(tx, kVpcAssoc, doc);
  r.putTags(tx, doc["arn"], tags);
  r.remember(call, tx, response);
  r.commit(tx, "SERVICE_NETWORK_VPC_ASSOCIATION", *vpcId);
  return response;
}

json getVpcAssociation(Resources& r, Call& call) {
  return r.load(Kind::ServiceNetworkVpcAssociation, call.labels[0], "serviceNetworkVpcAssociationIdentifier").value;
}

json updateVpcAssociation(Resources& r, Call& call) {
  FieldErrors errors;
  // Once set, security groups can be replaced but not removed (delete and recreate to drop them all).
  auto groups = readSecurityGroupIds(errors, call.body, true, 1);
  errors.throwIfAny();
  auto doc = r.load(Kind::ServiceNetworkVpcAssociation, call.labels[0], "serviceNetworkVpcAssociationIdentifier");
  checkSecurityGroupsInVpc(r.config(), *groups, doc.value.value("vpcId", ""));
  doc.value["securityGroupIds"] = *groups;
  doc.value["lastUpdatedAt"] = r.now();
  Tx tx;
  tx.requireRevision(kVpcAssoc, doc.id, doc.modRevision);
  tx.put(kVpcAssoc, doc.id, doc.value);
  r.commit(tx, "SERVICE_NETWORK_VPC_ASSOCIATION", doc.id);
  return pick(doc.value, {"id", "arn", "status", "createdBy", "securityGroupIds"});
}

json deleteVpcAssociation(Resources& r, Call& call) {
  auto doc = r.load(Kind::ServiceNetworkVpcAssociation, call.labels[0], "serviceNetworkVpcAssociationIdentifier");
  Tx tx;
  tx.requireRevision(kVpcAssoc, doc.id, doc.modRevision);
  tx.del(kVpcAssoc, doc.id);
  tx.del(kVpcIndex, doc.value.value("vpcId", ""));
  indexDeleted(tx, kVpcAssoc, doc.value);
  tx.del("tags", doc.value["arn"].get<std::string>());
  r.commit(tx, "SERVICE_NETWORK_VPC_ASSOCIATION", doc.id);
  return {{"id", doc.id}, {"status", "DELETE_IN_PROGRESS"}, {"arn", doc.value["arn"]}};
}

json listVpcAssociations(Resources& r, Call& call) {
  json query = queryObject(call, {"serviceNetworkIdentifier", "vpcIdentifier"});
  FieldErrors errors;
  auto networkIdentifier = readString(errors, query, "serviceNetworkIdentifier", "serviceNetworkIdentifier",
                                      {.minLength = 3, .maxLength = 2048, .check = checkServiceNetworkIdentifier});
  auto vpcId = readString(errors, query, "vpcIdentifier", "vpcIdentifier",
                          {.minLength = 5, .maxLength = 50, .check = checkVpcId});
  errors.throwIfAny();
  if (!networkIdentifier && !vpcId)
    throw validationError("You must provide either serviceNetworkIdentifier or vpcIdentifier",
                          {{"serviceNetworkIdentifier", "Member must not be null when vpcIdentifier is absent"}});
  std::string networkId = networkIdentifier ? *model::idFromIdentifier(Kind::ServiceNetwork, *networkIdentifier) : "";
  auto keep = [&](const json& doc) {
    return (networkId.empty() || doc.value("serviceNetworkId", "") == networkId) &&
           (!vpcId || doc.value("vpcId", "") == *vpcId);
  };
  auto summarize = [](const json& doc) {
    return pick(doc, {"id", "arn", "status", "createdBy", "createdAt", "serviceNetworkId", "serviceNetworkName",
                      "serviceNetworkArn", "privateDnsEnabled", "dnsOptions", "vpcId", "lastUpdatedAt"});
  };
  if (vpcId) return r.pageIndex(kVpcAssociationsByVpc.name, *vpcId + "/", kVpcAssoc, call, keep, summarize);
  return r.pageIndex(kVpcAssociationsByNetwork.name, networkId + "/", kVpcAssoc, call, keep, summarize);
}

}  // namespace

void registerAssociationOps(HandlerMap& handlers) {
  handlers["CreateServiceNetworkServiceAssociation"] = createServiceAssociation;
  handlers["GetServiceNetworkServiceAssociation"] = getServiceAssociation;
  handlers["DeleteServiceNetworkServiceAssociation"] = deleteServiceAssociation;
  handlers["ListServiceNetworkServiceAssociations"] = listServiceAssociations;
  handlers["CreateServiceNetworkVpcAssociation"] = createVpcAssociation;
  handlers["GetServiceNetworkVpcAssociation"] = getVpcAssociation;
  handlers["UpdateServiceNetworkVpcAssociation"] = updateVpcAssociation;
  handlers["DeleteServiceNetworkVpcAssociation"] = deleteVpcAssociation;
  handlers["ListServiceNetworkVpcAssociations"] = listVpcAssociations;
}

}  // namespace trellis::api
