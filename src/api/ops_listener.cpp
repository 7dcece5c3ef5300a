// CreateListener, GetListener, UpdateListener, DeleteListener, ListListeners.
//
// Each listener has a default rule, stored as a `rule` document with isDefault:true whose id is
// derived from the listener's ("rule-" + the listener id's 17 characters) and whose action mirrors
// the listener's defaultAction, so GetRule/ListRules show it as Lattice does.
#include "api/actions.h"
#include "api/api.h"
#include "api/indexes.h"
#include "api/validation.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kKind = "listener";
constexpr std::string_view kNameIndex = "index.name.listener";

json defaultRule(Resources& r, const json& listener) {
  std::string id = defaultRuleId(listener["id"]);
  return {{"id", id},
          {"name", "default"},
          {"arn",
           model::ruleArn(r.arns(), listener["serviceId"].get<std::string>(), listener["id"].get<std::string>(), id)},
          {"isDefault", true},
          {"action", listener["defaultAction"]},
          {"createdAt", listener["createdAt"]},
          {"lastUpdatedAt", listener["lastUpdatedAt"]},
          {"serviceId", listener["serviceId"]},
          {"listenerId", listener["id"]}};
}

json response(const json& doc) {
  return pick(doc, {"arn", "id", "name", "protocol", "port", "serviceArn", "serviceId", "defaultAction"});
}

json create(Resources& r, Call& call) {
  FieldErrors errors;
  auto name = readString(errors, call.body, "name", "name", {.required = true, .check = checkListenerName});
  auto protocol = readString(errors, call.body, "protocol", "protocol",
                             {.required = true, .oneOf = {"HTTP", "HTTPS", "TLS_PASSTHROUGH"}});
  auto port = readInt(errors, call.body, "port", "port", false, 1, 65535);
  auto action = readRuleAction(errors, call.body, "defaultAction", "defaultAction", true);
  readString(errors, call.body, "clientToken", "clientToken",
             {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto tags = readTags(errors, call.body);
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  // TLS_PASSTHROUGH routes by SNI, which must be the service's custom domain name
  // (https://docs.aws.amazon.com/vpc-lattice/latest/ug/tls-listeners.html).
  if (*protocol == "TLS_PASSTHROUGH" && !service.value.contains("customDomainName"))
    throw validationError(
        "A TLS_PASSTHROUGH listener needs a service with a customDomainName; service " + service.id + " has none",
        {{"protocol", "TLS_PASSTHROUGH requires the service to have a customDomainName"}});
  std::string indexKey = service.id + "/" + *name;
  if (r.find(kNameIndex, indexKey))
    throw conflict("LISTENER", *name,
                   "A listener with the name " + *name + " already exists in service " + service.id + ".");
  // HTTP defaults to 80 (model); HTTPS to 443 (model); TLS_PASSTHROUGH, undocumented, to 443 as well.
  int listenerPort = static_cast<int>(port.value_or(*protocol == "HTTP" ? 80 : 443));
  std::vector<Doc> siblings = indexedDocs(r, kNameIndex, kKind, service.id);
  enforceQuota(siblings.size(), r.config().quotas.listenersPerService, "LISTENER", "L-D64E952E",
               "listeners per service", service.id);
  for (const auto& sibling : siblings)
    if (sibling.value.value("port", 0) == listenerPort)
      throw conflict("LISTENER", sibling.id,
                     "The listener " + sibling.id + " of service " + service.id + " already uses port " +
                         std::to_string(listenerPort) + ".");

  Tx tx;
  touch(tx, "service", service);
  json defaultAction = resolveAction(r, tx, *action, {service, *protocol, "defaultAction", ""});
  std::string id = model::newId(Kind::Listener);
  std::string now = r.now();
  json doc = {{"id", id},
              {"name", *name},
              {"arn", model::listenerArn(r.arns(), service.id, id)},
              {"protocol", *protocol},
              {"port", listenerPort},
              {"serviceId", service.id},
              {"serviceArn", service.value["arn"]},
              {"defaultAction", defaultAction},
              {"createdAt", now},
              {"lastUpdatedAt", now}};
  json rule = defaultRule(r, doc);
  json out = response(doc);
  tx.requireAbsent(kNameIndex, indexKey);
  tx.put(kNameIndex, indexKey, {{"id", id}});
  tx.put(kKind, id, doc);
  indexForwards(tx, service.id, id, nullptr, defaultAction);
  tx.requireAbsent("rule", rule["id"].get<std::string>());
  tx.put("rule", rule["id"].get<std::string>(), rule);
  r.putTags(tx, doc["arn"], tags);
  r.remember(call, tx, out);
  r.commit(tx, "LISTENER", *name);
  return out;
}

json get(Resources& r, Call& call) {
  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  return loadListener(r, service, call.labels[1]).value;
}

json update(Resources& r, Call& call) {
  FieldErrors errors;
  auto action = readRuleAction(errors, call.body, "defaultAction", "defaultAction", true);
  errors.throwIfAny();
  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  auto listener = loadListener(r, service, call.labels[1]);

  Tx tx;
  touch(tx, "service", service);
  json defaultAction =
      resolveAction(r, tx, *action, {service, listener.value["protocol"], "defaultAction", listener.id});
  indexForwards(tx, service.id, listener.id, listener.value["defaultAction"], defaultAction);
  listener.value["defaultAction"] = defaultAction;
  listener.value["lastUpdatedAt"] = r.now();
  tx.requireRevision(kKind, listener.id, listener.modRevision);
  tx.put(kKind, listener.id, listener.value);
  json rule = defaultRule(r, listener.value);
  if (auto stored = r.find("rule", rule["id"].get<std::string>())) {
    rule["createdAt"] = stored->value["createdAt"];
    tx.requireRevision("rule", stored->id, stored->modRevision);
  }
  tx.put("rule", rule["id"].get<std::string>(), rule);
  r.commit(tx, "LISTENER", listener.id);
  return response(listener.value);
}

json remove(Resources& r, Call& call) {
  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  auto listener = loadListener(r, service, call.labels[1]);
  Tx tx;
  tx.requireRevision(kKind, listener.id, listener.modRevision);
  deleteListener(r, tx, service.id, listener);
  r.commit(tx, "LISTENER", listener.id);
  return nullptr;
}

json list(Resources& r, Call& call) {
  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  return r.pageIndex(
      kNameIndex, service.id + "/", kKind, call, [](const json&) { return true; },
      [](const json& doc) {
        return pick(doc, {"arn", "id", "name", "protocol", "port", "createdAt", "lastUpdatedAt"});
      });
}

}  // namespace

void registerListenerOps(HandlerMap& handlers) {
  handlers["CreateListener"] = create;
  handlers["GetListener"] = get;
  handlers["UpdateListener"] = update;
  handlers["DeleteListener"] = remove;
  handlers["ListListeners"] = list;
}

}  // namespace trellis::api
