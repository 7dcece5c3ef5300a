// CreateServiceNetwork, GetServiceNetwork, UpdateServiceNetwork, DeleteServiceNetwork, ListServiceNetworks.
#include "api/actions.h"
#include "api/api.h"
#include "api/indexes.h"
#include "api/resources.h"
#include "api/validation.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kKind = "servicenetwork";
constexpr std::string_view kNameIndex = "index.name.servicenetwork";

size_t serviceAssociations(Resources& r, const std::string& networkId) {
  return countIndexed(r, "index.name.servicenetworkserviceassociation", networkId);
}
size_t vpcAssociations(Resources& r, const std::string& networkId) {
  return countIndexed(r, kVpcAssociationsByNetwork.name, networkId);
}

json withCounts(Resources& r, json doc) {
  std::string id = doc["id"];
  doc["numberOfAssociatedServices"] = serviceAssociations(r, id);
  doc["numberOfAssociatedVPCs"] = vpcAssociations(r, id);
  return doc;
}

json create(Resources& r, Call& call) {
  FieldErrors errors;
  auto name = readString(errors, call.body, "name", "name", {.required = true, .check = checkServiceNetworkName});
  readString(errors, call.body, "clientToken", "clientToken", {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto authType = readAuthType(errors, call.body, false);
  auto tags = readTags(errors, call.body);
  std::optional<bool> sharing;
  if (const json* cfg = readObject(errors, call.body, "sharingConfig", "sharingConfig"))
    sharing = readBool(errors, *cfg, "enabled", "sharingConfig.enabled");
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  if (r.find(kNameIndex, *name))
    throw conflict("SERVICE_NETWORK", *name, "A service network with the name " + *name + " already exists.");
  enforceQuota(r.store().count(kKind), r.config().quotas.serviceNetworks, "SERVICE_NETWORK", "L-9CAD07FB",
               "service networks per Region");

  std::string id = model::newId(Kind::ServiceNetwork);
  std::string now = r.now();
  json doc = {{"id", id},
              {"name", *name},
              {"arn", model::arnFor(r.arns(), Kind::ServiceNetwork, id)},
              {"authType", authType.value_or("NONE")},
              {"createdAt", now},
              {"lastUpdatedAt", now}};
  if (sharing) doc["sharingConfig"] = {{"enabled", *sharing}};
  json response = pick(doc, {"id", "name", "arn", "authType", "sharingConfig"});

  Tx tx;
  tx.requireAbsent(kNameIndex, *name);
  tx.put(kNameIndex, *name, {{"id", id}});
  tx.put(kKind, id, doc);
  r.putTags(tx, doc["arn"], tags);
  r.remember(call, tx, response);
  r.commit(tx, "SERVICE_NETWORK", *name);
  return response;
}

json get(Resources& r, Call& call) {
  auto doc = r.load(Kind::ServiceNetwork, call.labels[0], "serviceNetworkIdentifier");
  return withCounts(r, doc.value);
}

json update(Resources& r, Call& call) {
  FieldErrors errors;
  auto authType = readAuthType(errors, call.body, true);
  errors.throwIfAny();
  auto doc = r.load(Kind::ServiceNetwork, call.labels[0], "serviceNetworkIdentifier");
  doc.value["authType"] = *authType;
  doc.value["lastUpdatedAt"] = r.now();
  Tx tx;
  tx.requireRevision(kKind, doc.id, doc.modRevision);
  tx.put(kKind, doc.id, doc.value);
  r.commit(tx, "SERVICE_NETWORK", doc.id);
  return pick(doc.value, {"id", "name", "arn", "authType"});
}

json remove(Resources& r, Call& call) {
  auto doc = r.load(Kind::ServiceNetwork, call.labels[0], "serviceNetworkIdentifier");
  size_t services = serviceAssociations(r, doc.id);
  size_t vpcs = vpcAssociations(r, doc.id);
  size_t resources = resourceAssociations(r, doc.id);
  if (services + vpcs + resources > 0)
    throw conflict("SERVICE_NETWORK", doc.id,
                   "The service network " + doc.id + " still has " + std::to_string(services) +
                       " service association(s), " + std::to_string(vpcs) + " VPC association(s) and " +
                       std::to_string(resources) + " resource association(s). Delete them first.");
  std::string arn = doc.value["arn"];
  Tx tx;
  tx.requireRevision(kKind, doc.id, doc.modRevision);
  tx.del(kKind, doc.id);
  tx.del(kNameIndex, doc.value["name"].get<std::string>());
  tx.del("authpolicy", doc.id);
  tx.del("resourcepolicy", arn);
  tx.del("tags", arn);
  deleteAccessLogSubscriptions(r, tx, doc.id);
  r.commit(tx, "SERVICE_NETWORK", doc.id);
  return nullptr;
}

json list(Resources& r, Call& call) {
  return r.page(
      kKind, call, [](const json&) { return true; },
      [&r](const json& doc) {
        // Only the summary counts resource configurations (GetServiceNetwork has no such member).
        json counted = withCounts(r, doc);
        counted["numberOfAssociatedResourceConfigurations"] = resourceAssociations(r, doc["id"]);
        return pick(counted, {"id", "name", "arn", "createdAt", "lastUpdatedAt", "numberOfAssociatedVPCs",
                              "numberOfAssociatedServices", "numberOfAssociatedResourceConfigurations"});
      });
}

}  // namespace

void registerServiceNetworkOps(HandlerMap& handlers) {
  handlers["CreateServiceNetwork"] = create;
  handlers["GetServiceNetwork"] = get;
  handlers["UpdateServiceNetwork"] = update;
  handlers["DeleteServiceNetwork"] = remove;
  handlers["ListServiceNetworks"] = list;
}

}  // namespace trellis::api
