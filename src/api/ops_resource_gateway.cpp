// CreateResourceGateway, GetResourceGateway, UpdateResourceGateway, DeleteResourceGateway, ListResourceGateways.
//
// A gateway is the provider VPC's side of VPC resources (docs/vpc-resources.md). It becomes ACTIVE at once (Trellis has
// no ENIs to provision); it cannot be deleted while resource configurations use it.
#include "api/actions.h"
#include "api/api.h"
#include "api/indexes.h"
#include "api/validation.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kKind = "resourcegateway";
constexpr std::string_view kNameIndex = "index.name.resourcegateway";
constexpr const char* kType = "RESOURCE_GATEWAY";
constexpr const char* kIdentifier = "resourceGatewayIdentifier";

std::string checkGatewayName(std::string_view v) { return checkName(v, 3, 40, "rgw-"); }

// The create and list shapes name the VPC vpcIdentifier; Get and Update name it vpcId, as stored.
json withVpcIdentifier(json out, const json& doc) {
  out.erase("vpcId");
  if (doc.contains("vpcId")) out["vpcIdentifier"] = doc["vpcId"];
  return out;
}

json create(Resources& r, Call& call) {
  FieldErrors errors;
  readString(errors, call.body, "clientToken", "clientToken",
             {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto name = readString(errors, call.body, "name", "name", {.required = true, .check = checkGatewayName});
  // Optional in the model, but a gateway is always in a VPC (EC2 ENIs need one): without it there is nothing to reach
  // resources from.
  auto vpcId = readString(errors, call.body, "vpcIdentifier", "vpcIdentifier",
                          {.required = true, .minLength = 5, .maxLength = 50, .check = checkVpcId});
  std::optional<json> subnets;
  if (const json* list = readArray(errors, call.body, "subnetIds", "subnetIds", false, 0, SIZE_MAX)) {
    for (size_t i = 0; i < list->size(); ++i) {
      json holder = {{"v", (*list)[i]}};
      readString(errors, holder, "v", "subnetIds[" + std::to_string(i) + "]",
                 {.required = true, .minLength = 5, .maxLength = 200});
    }
    subnets = *list;
  }
  auto groups = readSecurityGroupIds(errors, call.body, false, 0);
  auto ipAddressType =
      readString(errors, call.body, "ipAddressType", "ipAddressType", {.oneOf = {"IPV4", "IPV6", "DUALSTACK"}});
  auto perEni = readInt(errors, call.body, "ipv4AddressesPerEni", "ipv4AddressesPerEni", false, 1, 62);
  auto dnsResolution = readString(errors, call.body, "resourceConfigDnsResolution", "resourceConfigDnsResolution",
                                  {.oneOf = {"IN_VPC", "PUBLIC"}});
  auto tags = readTags(errors, call.body);
  if (perEni && ipAddressType == "IPV6")
    errors.add("ipv4AddressesPerEni", "Member is only supported with ipAddressType IPV4 or DUALSTACK");
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  requireVpc(r.config(), *vpcId);
  if (groups) checkSecurityGroupsInVpc(r.config(), *groups, *vpcId);
  if (auto entry = r.store().get(kNameIndex, *name))
    throw conflict(kType, json::parse(entry->value).value("id", ""),
                   "A resource gateway with the name " + *name + " already exists.");
  enforceQuota(countIndexed(r, kResourceGatewaysByVpc.name, *vpcId), r.config().quotas.resourceGatewaysPerVpc, kType,
               "resourceGatewaysPerVpc", "resource gateways per VPC", *vpcId);

  std::string id = model::newId(Kind::ResourceGateway);
  std::string now = r.now();
  std::string type = ipAddressType.value_or("IPV4");
  json doc = {{"id", id},
              {"name", *name},
              {"arn", model::arnFor(r.arns(), Kind::ResourceGateway, id)},
              {"status", "ACTIVE"},
              {"vpcId", *vpcId},
              {"subnetIds", subnets.value_or(json::array())},
              {"securityGroupIds", groups.value_or(std::vector<std::string>{})},
              {"ipAddressType", type},
              {"resourceConfigDnsResolution", dnsResolution.value_or("IN_VPC")},
              {"serviceManaged", false},
              {"createdAt", now},
              {"lastUpdatedAt", now}};
  if (type != "IPV6") doc["ipv4AddressesPerEni"] = perEni.value_or(16);
  json response = withVpcIdentifier(pick(doc, {"name", "id", "arn", "status", "vpcId", "subnetIds", "securityGroupIds",
                                               "ipAddressType", "ipv4AddressesPerEni", "resourceConfigDnsResolution"}),
                                    doc);

  Tx tx;
  createGuarded(r, tx, call, kKind, kNameIndex, *name, doc, tags, response);
  r.commit(tx, kType, *name);
  return response;
}

json get(Resources& r, Call& call) { return r.load(Kind::ResourceGateway, call.labels[0], kIdentifier).value; }

json update(Resources& r, Call& call) {
  FieldErrors errors;
  auto groups = readSecurityGroupIds(errors, call.body, false, 0);
  errors.throwIfAny();
  auto doc = r.load(Kind::ResourceGateway, call.labels[0], kIdentifier);
  if (groups) {
    checkSecurityGroupsInVpc(r.config(), *groups, doc.value.value("vpcId", ""));
    doc.value["securityGroupIds"] = *groups;
    doc.value["lastUpdatedAt"] = r.now();
    Tx tx;
    tx.requireRevision(kKind, doc.id, doc.modRevision);
    tx.put(kKind, doc.id, doc.value);
    r.commit(tx, kType, doc.id);
  }
  return pick(doc.value, {"name", "id", "arn", "status", "vpcId", "subnetIds", "securityGroupIds", "ipAddressType"});
}

json remove(Resources& r, Call& call) {
  auto doc = r.load(Kind::ResourceGateway, call.labels[0], kIdentifier);
  if (size_t used = countIndexed(r, kResourceConfigurationsByGateway.name, doc.id))
    throw conflict(kType, doc.id,
                   "The resource gateway " + doc.id + " is used by " + std::to_string(used) +
                       " resource configuration(s). Delete them first.");
  Tx tx;
  // Configurations created meanwhile touch the gateway, so this fails rather than orphan them.
  deleteGuarded(tx, kKind, kNameIndex, doc.value["name"].get<std::string>(), doc);
  r.commit(tx, kType, doc.id);
  return {{"id", doc.id}, {"arn", doc.value["arn"]}, {"name", doc.value["name"]}, {"status", "DELETE_IN_PROGRESS"}};
}

json list(Resources& r, Call& call) {
  return r.page(
      kKind, call, [](const json&) { return true; },
      [](const json& doc) {
        return withVpcIdentifier(
            pick(doc, {"name", "id", "arn", "status", "vpcId", "subnetIds", "securityGroupIds", "ipAddressType",
                       "ipv4AddressesPerEni", "resourceConfigDnsResolution", "createdAt", "lastUpdatedAt"}),
            doc);
      });
}

}  // namespace

void registerResourceGatewayOps(HandlerMap& handlers) {
  handlers["CreateResourceGateway"] = create;
  handlers["GetResourceGateway"] = get;
  handlers["UpdateResourceGateway"] = update;
  handlers["DeleteResourceGateway"] = remove;
  handlers["ListResourceGateways"] = list;
}

}  // namespace trellis::api
