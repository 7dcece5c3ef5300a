// CreateRule, GetRule, UpdateRule, DeleteRule, ListRules, BatchUpdateRule.
//
// Every write touches the listener (and the service), so concurrent writes cannot both claim one
// priority, exceed a quota, or add a rule to a listener being deleted.
#include "api/actions.h"
#include "api/api.h"
#include "api/indexes.h"
#include "api/validation.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kKind = "rule";
constexpr std::string_view kNameIndex = "index.name.rule";

json response(const json& doc) {
  return pick(doc, {"arn", "id", "name", "isDefault", "match", "priority", "action", "trellis", "createdAt",
                    "lastUpdatedAt"});
}

// The rules of `listenerId` other than its default rule.
std::vector<Doc> rulesOf(Resources& r, const std::string& listenerId) {
  return indexedDocs(r, kNameIndex, kKind, listenerId);
}

void requirePriorityFree(const std::vector<Doc>& rules, int64_t priority, const std::string& exceptRuleId) {
  for (const auto& rule : rules)
    if (rule.id != exceptRuleId && rule.value.value("priority", int64_t(0)) == priority)
      throw conflict("RULE", rule.id,
                     "The priority " + std::to_string(priority) + " is already used by rule " + rule.id +
                         " of listener " + rule.value.value("listenerId", "") + ".");
}

struct RuleFields {
  std::optional<json> match;
  std::optional<int64_t> priority;
  std::optional<json> action;
  std::optional<json> trellis;  // Trellis extensions; an empty object clears them
};

RuleFields readRuleFields(FieldErrors& errors, const json& body, const std::string& prefix, bool required) {
  return {readRuleMatch(errors, body, "match", prefix + "match", required),
          readInt(errors, body, "priority", prefix + "priority", required, 1, 2000),
          readRuleAction(errors, body, "action", prefix + "action", required),
          readRuleExtensions(errors, body, "trellis", prefix + "trellis")};
}

json create(Resources& r, Call& call) {
  FieldErrors errors;
  auto name = readString(errors, call.body, "name", "name", {.required = true, .check = checkRuleName});
  auto fields = readRuleFields(errors, call.body, "", true);
  readString(errors, call.body, "clientToken", "clientToken",
             {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto tags = readTags(errors, call.body);
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  auto listener = loadListener(r, service, call.labels[1]);
  std::string protocol = listener.value["protocol"];
  if (protocol == "TLS_PASSTHROUGH")
    throw validationError("The listener " + listener.id + " uses TLS_PASSTHROUGH, which supports only its default rule",
                          {{"listenerIdentifier", "A TLS_PASSTHROUGH listener cannot have rules"}});
  std::string indexKey = listener.id + "/" + *name;
  if (r.find(kNameIndex, indexKey))
    throw conflict("RULE", *name, "A rule with the name " + *name + " already exists in listener " + listener.id + ".");
  auto rules = rulesOf(r, listener.id);
  enforceQuota(rules.size(), r.config().quotas.rulesPerListener, "RULE", "L-CF78395E", "rules per listener",
               listener.id);
  requirePriorityFree(rules, *fields.priority, "");

  Tx tx;
  touch(tx, "service", service);
  touch(tx, "listener", listener);
  json action = resolveAction(r, tx, *fields.action, {service, protocol, "action", ""});
  std::string id = model::newId(Kind::Rule);
  std::string now = r.now();
  json doc = {{"id", id},
              {"name", *name},
              {"arn", model::ruleArn(r.arns(), service.id, listener.id, id)},
              {"priority", *fields.priority},
              {"match", *fields.match},
              {"action", action},
              {"isDefault", false},
              {"createdAt", now},
              {"lastUpdatedAt", now},
              {"serviceId", service.id},
              {"listenerId", listener.id}};
  if (fields.trellis && !fields.trellis->empty()) doc["trellis"] = *fields.trellis;
  json out = pick(doc, {"arn", "id", "name", "match", "priority", "action", "trellis"});
  tx.requireAbsent(kNameIndex, indexKey);
  tx.put(kNameIndex, indexKey, {{"id", id}});
  tx.put(kKind, id, doc);
  indexForwards(tx, service.id, id, nullptr, action);
  r.putTags(tx, doc["arn"], tags);
  r.remember(call, tx, out);
  r.commit(tx, "RULE", *name);
  return out;
}

json get(Resources& r, Call& call) {
  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  auto listener = loadListener(r, service, call.labels[1]);
  return response(loadRule(r, listener, call.labels[2]).value);
}

// Applies one rule update (UpdateRule, or one entry of BatchUpdateRule); throws ApiError.
json applyUpdate(Resources& r, const Doc& service, const Doc& listener, const std::string& ruleIdentifier,
                 const RuleFields& fields) {
  auto rule = loadRule(r, listener, ruleIdentifier);
  if (rule.value.value("isDefault", false))
    throw validationError("The rule " + rule.id + " is the default rule of listener " + listener.id +
                              "; change it with UpdateListener's defaultAction",
                          {{"ruleIdentifier", "The default rule cannot be updated with UpdateRule"}});
  Tx tx;
  touch(tx, "service", service);
  touch(tx, "listener", listener);
  if (fields.priority) requirePriorityFree(rulesOf(r, listener.id), *fields.priority, rule.id);
  if (fields.match) rule.value["match"] = *fields.match;
  if (fields.priority) rule.value["priority"] = *fields.priority;
  if (fields.action) {
    json action = resolveAction(r, tx, *fields.action, {service, listener.value["protocol"], "action", rule.id});
    indexForwards(tx, service.id, rule.id, rule.value["action"], action);
    rule.value["action"] = std::move(action);
  }
  if (fields.trellis && fields.trellis->empty()) rule.value.erase("trellis");
  else if (fields.trellis) rule.value["trellis"] = *fields.trellis;
  rule.value["lastUpdatedAt"] = r.now();
  tx.requireRevision(kKind, rule.id, rule.modRevision);
  tx.put(kKind, rule.id, rule.value);
  r.commit(tx, "RULE", rule.id);
  return pick(rule.value, {"arn", "id", "name", "isDefault", "match", "priority", "action", "trellis"});
}

json update(Resources& r, Call& call) {
  FieldErrors errors;
  auto fields = readRuleFields(errors, call.body, "", false);
  errors.throwIfAny();
  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  auto listener = loadListener(r, service, call.labels[1]);
  return applyUpdate(r, service, listener, call.labels[2], fields);
}

json batchUpdate(Resources& r, Call& call) {
  FieldErrors errors;
  std::vector<std::pair<std::string, RuleFields>> updates;
  if (const json* list = readArray(errors, call.body, "rules", "rules", true, 1, 10)) {
    for (size_t i = 0; i < list->size(); ++i) {
      std::string prefix = "rules[" + std::to_string(i) + "].";
      const json& entry = (*list)[i];
      if (!entry.is_object()) {
        errors.add("rules[" + std::to_string(i) + "]", "Member must be an object");
        continue;
      }
      auto id = readString(errors, entry, "ruleIdentifier", prefix + "ruleIdentifier",
                           {.required = true, .minLength = 20, .maxLength = 2048});
      auto fields = readRuleFields(errors, entry, prefix, false);
      if (id) updates.emplace_back(*id, std::move(fields));
    }
  }
  errors.throwIfAny();
  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  auto listener = loadListener(r, service, call.labels[1]);

  // Each update stands alone, in order: one failing does not stop the others.
  json successful = json::array(), unsuccessful = json::array();
  for (const auto& [identifier, fields] : updates) {
    try {
      // Re-read: the previous update touched the service and listener.
      auto freshService = r.load(Kind::Service, service.id, "serviceIdentifier");
      auto freshListener = loadListener(r, freshService, listener.id);
      successful.push_back(applyUpdate(r, freshService, freshListener, identifier, fields));
    } catch (const ApiError& error) {
      // failureCode: the error the same change would get from UpdateRule, e.g. ResourceNotFoundException.
      unsuccessful.push_back(
          {{"ruleIdentifier", identifier}, {"failureCode", error.type}, {"failureMessage", error.what()}});
    }
  }
  return {{"successful", successful}, {"unsuccessful", unsuccessful}};
}

json remove(Resources& r, Call& call) {
  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  auto listener = loadListener(r, service, call.labels[1]);
  auto rule = loadRule(r, listener, call.labels[2]);
  if (rule.value.value("isDefault", false))
    throw conflict("RULE", rule.id,
                   "The rule " + rule.id + " is the default rule of listener " + listener.id +
                       " and lives as long as the listener. Delete the listener instead.");
  Tx tx;
  touch(tx, "listener", listener);
  tx.requireRevision(kKind, rule.id, rule.modRevision);
  tx.del(kKind, rule.id);
  tx.del(kNameIndex, listener.id + "/" + rule.value["name"].get<std::string>());
  tx.del("tags", rule.value["arn"].get<std::string>());
  indexForwards(tx, service.id, rule.id, rule.value["action"], nullptr);
  r.commit(tx, "RULE", rule.id);
  return nullptr;
}

json list(Resources& r, Call& call) {
  auto service = r.load(Kind::Service, call.labels[0], "serviceIdentifier");
  auto listener = loadListener(r, service, call.labels[1]);
  return r.pageIndex(
      kNameIndex, listener.id + "/", kKind, call, [](const json&) { return true; },
      [](const json& doc) {
        return pick(doc, {"arn", "id", "name", "isDefault", "priority", "createdAt", "lastUpdatedAt"});
      },
      r.find(kKind, defaultRuleId(listener.id)));
}

}  // namespace

void registerRuleOps(HandlerMap& handlers) {
  handlers["CreateRule"] = create;
  handlers["GetRule"] = get;
  handlers["UpdateRule"] = update;
  handlers["DeleteRule"] = remove;
  handlers["ListRules"] = list;
  handlers["BatchUpdateRule"] = batchUpdate;
}

}  // namespace trellis::api
