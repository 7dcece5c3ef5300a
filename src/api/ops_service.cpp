// CreateService, GetService, UpdateService, DeleteService, ListServices.
#include "api/actions.h"
#include "api/api.h"
#include "api/indexes.h"
#include "api/validation.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kKind = "service";
constexpr std::string_view kNameIndex = "index.name.service";

json create(Resources& r, Call& call) {
  FieldErrors errors;
  auto name = readString(errors, call.body, "name", "name", {.required = true, .check = checkServiceName});
  readString(errors, call.body, "clientToken", "clientToken", {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto authType = readAuthType(errors, call.body, false);
  auto customDomain = readString(errors, call.body, "customDomainName", "customDomainName",
                                 {.minLength = 3, .maxLength = 255, .check = checkDomainName});
  auto certificateArn = readString(errors, call.body, "certificateArn", "certificateArn",
                                   {.maxLength = 2048, .check = checkCertificateArn});
  auto idleTimeout = readInt(errors, call.body, "idleTimeoutSeconds", "idleTimeoutSeconds", false, 60, 600);
  auto tags = readTags(errors, call.body);
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  if (r.find(kNameIndex, *name))
    throw conflict("SERVICE", *name, "A service with the name " + *name + " already exists.");
  enforceQuota(r.store().count(kKind), r.config().quotas.services, "SERVICE", "L-620C821E",
               "services per Region");

  std::string id = model::newId(Kind::Service);
  std::string now = r.now();
  std::string domain =
      model::serviceDnsName(*name, id, r.config().partitionId, r.config().effectiveServiceDomain());
  json doc = {{"id", id},
              {"name", *name},
              {"arn", model::arnFor(r.arns(), Kind::Service, id)},
              {"authType", authType.value_or("NONE")},
              {"dnsEntry", {{"domainName", domain}, {"hostedZoneId", "Z" + id.substr(4, 13)}}},
              {"status", "ACTIVE"},
              {"idleTimeoutSeconds", idleTimeout.value_or(60)},
              {"createdAt", now},
              {"lastUpdatedAt", now}};
  if (customDomain) doc["customDomainName"] = *customDomain;
  if (certificateArn && !certificateArn->empty()) doc["certificateArn"] = *certificateArn;
  json response = pick(doc, {"id", "arn", "name", "customDomainName", "certificateArn", "status", "authType",
                             "idleTimeoutSeconds", "dnsEntry"});

  Tx tx;
  tx.requireAbsent(kNameIndex, *name);
  tx.put(kNameIndex, *name, {{"id", id}});
  tx.put(kKind, id, doc);
  r.putTags(tx, doc["arn"], tags);
  r.remember(call, tx, response);
  r.commit(tx, "SERVICE", *name);
  return response;
}

json get(Resources& r, Call& call) {
  return r.load(Kind::Service, call.labels[0], "serviceIdentifier").value;
}

json update(Resources& r, Call& call) {
  FieldErrors errors;
  auto authType = readAuthType(errors, call.body, false);
  auto certificateArn = readString(errors, call.body, "certificateArn", "certificateArn",
                                   {.maxLength = 2048, .check = checkCertificateArn});
  auto idleTimeout = readInt(errors, call.body, "idleTimeoutSeconds", "idleTimeoutSeconds", false, 60, 600);
  errors.throwIfAny();
  auto doc = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  if (authType) doc.value["authType"] = *authType;
  if (certificateArn) {
    if (certificateArn->empty())
      doc.value.erase("certificateArn");
    else
      doc.value["certificateArn"] = *certificateArn;
  }
  if (idleTimeout) doc.value["idleTimeoutSeconds"] = *idleTimeout;
  doc.value["lastUpdatedAt"] = r.now();
  Tx tx;
  tx.requireRevision(kKind, doc.id, doc.modRevision);
  tx.put(kKind, doc.id, doc.value);
  r.commit(tx, "SERVICE", doc.id);
  return pick(doc.value,
              {"id", "arn", "name", "customDomainName", "certificateArn", "authType", "idleTimeoutSeconds"});
}

json remove(Resources& r, Call& call) {
  auto doc = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  for (const auto& assoc :
       indexedDocs(r, kServiceAssociationsByService.name, kServiceAssociationsByService.kind, doc.id))
    throw conflict("SERVICE", doc.id,
                   "The service " + doc.id + " is associated with service network " +
                       assoc.value.value("serviceNetworkId", "") + ". Delete the association first.");
  std::string arn = doc.value["arn"];
  Tx tx;
  tx.requireRevision(kKind, doc.id, doc.modRevision);
  tx.del(kKind, doc.id);
  tx.del(kNameIndex, doc.value["name"].get<std::string>());
  tx.del("authpolicy", doc.id);
  tx.del("resourcepolicy", arn);
  tx.del("tags", arn);
  // Listeners and rules go with the service; their target groups become unused.
  for (const auto& listener : indexedDocs(r, "index.name.listener", "listener", doc.id))
    deleteListener(r, tx, doc.id, listener);
  deleteAccessLogSubscriptions(r, tx, doc.id);
  r.commit(tx, "SERVICE", doc.id);
  json response = pick(doc.value, {"id", "arn", "name"});
  response["status"] = "DELETE_IN_PROGRESS";
  return response;
}

json list(Resources& r, Call& call) {
  return r.page(
      kKind, call, [](const json&) { return true; },
      [](const json& doc) {
        return pick(doc, {"id", "name", "arn", "createdAt", "lastUpdatedAt", "dnsEntry", "customDomainName", "status"});
      });
}

}  // namespace

void registerServiceOps(HandlerMap& handlers) {
  handlers["CreateService"] = create;
  handlers["GetService"] = get;
  handlers["UpdateService"] = update;
  handlers["DeleteService"] = remove;
  handlers["ListServices"] = list;
}

}  // namespace trellis::api
