#include "api/actions.h"

namespace trellis::api {

using model::Kind;

namespace {

std::string at(const std::string& path, size_t index) { return path + "[" + std::to_string(index) + "]"; }

std::optional<json> readForward(FieldErrors& errors, const json& forward, const std::string& path) {
  const json* list = readArray(errors, forward, "targetGroups", path + ".targetGroups", true, 1, 10);
  if (!list) return std::nullopt;
  bool ok = true;
  json groups = json::array();
  std::set<std::string> seen;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string item = at(path + ".targetGroups", i);
    const json& entry = (*list)[i];
    if (!entry.is_object()) {
      errors.add(item, "Member must be an object");
      ok = false;
      continue;
    }
    auto id = readString(errors, entry, "targetGroupIdentifier", item + ".targetGroupIdentifier",
                         {.required = true, .minLength = 17, .maxLength = 2048, .check = checkTargetGroupIdentifier});
    auto weight = readInt(errors, entry, "weight", item + ".weight", false, 0, 999);
    bool weightMissing = !entry.contains("weight") || entry["weight"].is_null();
    // Model: the weight is only optional when the action forwards to a single target group.
    if (weightMissing && list->size() > 1) {
      errors.add(item + ".weight", "Member must not be null when forwarding to more than one target group");
      ok = false;
    }
    if (!id || (!weight && !weightMissing)) {
      ok = false;
      continue;
    }
    std::string bareId = *model::idFromIdentifier(Kind::TargetGroup, *id);
    if (!seen.insert(bareId).second) {
      errors.add(item + ".targetGroupIdentifier", "Member must not repeat a target group of the same action");
      ok = false;
      continue;
    }
    groups.push_back({{"targetGroupIdentifier", *id}, {"weight", weight.value_or(100)}});
  }
  if (!ok) return std::nullopt;
  return json{{"forward", {{"targetGroups", std::move(groups)}}}};
}

// An {exact|prefix|contains: string} union of `members`, each 1..200 characters.
std::optional<json> readStringMatch(FieldErrors& errors, const json& obj, const std::string& path,
                                    std::initializer_list<const char*> members,
                                    std::string (*check)(std::string_view)) {
  auto which = readUnionMember(errors, obj, path, members);
  if (!which) return std::nullopt;
  auto value = readString(errors, obj, which->c_str(), path + "." + *which,
                          {.required = true, .minLength = 1, .maxLength = 200, .check = check});
  if (!value) return std::nullopt;
  return json{{*which, *value}};
}

}  // namespace

std::optional<json> readRuleAction(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                                   bool required) {
  const json* action = readObject(errors, obj, key, path, required);
  if (!action) return std::nullopt;
  auto which = readUnionMember(errors, *action, path, {"forward", "fixedResponse"});
  if (!which) return std::nullopt;
  if (*which == "forward") {
    const json* forward = readObject(errors, *action, "forward", path + ".forward", true);
    return forward ? readForward(errors, *forward, path + ".forward") : std::nullopt;
  }
  const json* fixed = readObject(errors, *action, "fixedResponse", path + ".fixedResponse", true);
  if (!fixed) return std::nullopt;
  auto status = readInt(errors, *fixed, "statusCode", path + ".fixedResponse.statusCode", true, 100, 599);
  if (!status) return std::nullopt;
  return json{{"fixedResponse", {{"statusCode", *status}}}};
}

std::optional<json> readRuleMatch(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                                  bool required) {
  const json* match = readObject(errors, obj, key, path, required);
  if (!match) return std::nullopt;
  if (!readUnionMember(errors, *match, path, {"httpMatch"})) return std::nullopt;
  std::string base = path + ".httpMatch";
  const json* http = readObject(errors, *match, "httpMatch", base, true);
  if (!http) return std::nullopt;

  bool ok = true;
  json out = json::object();
  if (auto method = readString(errors, *http, "method", base + ".method", {.maxLength = 16}))
    out["method"] = *method;
  else if (http->contains("method") && !(*http)["method"].is_null())
    ok = false;

  if (const json* pathMatch = readObject(errors, *http, "pathMatch", base + ".pathMatch")) {
    std::string p = base + ".pathMatch";
    const json* kind = readObject(errors, *pathMatch, "match", p + ".match", true);
    auto value =
        kind ? readStringMatch(errors, *kind, p + ".match", {"exact", "prefix"}, checkMatchPath) : std::nullopt;
    auto caseSensitive = readBool(errors, *pathMatch, "caseSensitive", p + ".caseSensitive");
    if (value) {
      out["pathMatch"] = {{"match", *value}};
      if (caseSensitive) out["pathMatch"]["caseSensitive"] = *caseSensitive;
    } else {
      ok = false;
    }
  } else if (http->contains("pathMatch") && !(*http)["pathMatch"].is_null()) {
    ok = false;
  }

  if (const json* headers = readArray(errors, *http, "headerMatches", base + ".headerMatches", false, 1, 5)) {
    json list = json::array();
    for (size_t i = 0; i < headers->size(); ++i) {
      std::string h = at(base + ".headerMatches", i);
      const json& entry = (*headers)[i];
      if (!entry.is_object()) {
        errors.add(h, "Member must be an object");
        ok = false;
        continue;
      }
      auto name = readString(errors, entry, "name", h + ".name", {.required = true, .minLength = 1, .maxLength = 100});
      const json* kind = readObject(errors, entry, "match", h + ".match", true);
      auto value =
          kind ? readStringMatch(errors, *kind, h + ".match", {"exact", "prefix", "contains"}, nullptr) : std::nullopt;
      auto caseSensitive = readBool(errors, entry, "caseSensitive", h + ".caseSensitive");
      if (!name || !value) {
        ok = false;
        continue;
      }
      json header = {{"name", *name}, {"match", *value}};
      if (caseSensitive) header["caseSensitive"] = *caseSensitive;
      list.push_back(std::move(header));
    }
    out["headerMatches"] = std::move(list);
  } else if (http->contains("headerMatches") && !(*http)["headerMatches"].is_null()) {
    ok = false;
  }
  if (!ok) return std::nullopt;
  return json{{"httpMatch", std::move(out)}};
}

std::vector<std::string> forwardedTargetGroups(const json& action) {
  std::vector<std::string> ids;
  auto forward = action.find("forward");
  if (forward == action.end() || !forward->is_object()) return ids;
  for (const auto& entry : forward->value("targetGroups", json::array()))
    ids.push_back(entry.value("targetGroupIdentifier", ""));
  return ids;
}

std::map<std::string, std::set<std::string>> serviceIdsByTargetGroup(Resources& r, const std::string& excludeDocId) {
  std::map<std::string, std::set<std::string>> users;
  for (const auto& listener : r.all("listener")) {
    if (listener.id == excludeDocId) continue;
    for (const auto& tg : forwardedTargetGroups(listener.value.value("defaultAction", json::object())))
      users[tg].insert(listener.value.value("serviceId", ""));
  }
  // Default rules mirror their listener's defaultAction, counted above.
  for (const auto& rule : r.all("rule")) {
    if (rule.id == excludeDocId || rule.value.value("isDefault", false)) continue;
    for (const auto& tg : forwardedTargetGroups(rule.value.value("action", json::object())))
      users[tg].insert(rule.value.value("serviceId", ""));
  }
  return users;
}

json resolveAction(Resources& r, Tx& tx, const json& action, const ActionSite& site) {
  bool passthrough = site.listenerProtocol == "TLS_PASSTHROUGH";
  if (!action.contains("forward")) {
    if (passthrough)
      throw validationError(site.path + ": A TLS_PASSTHROUGH listener must forward to TCP target groups",
                            {{site.path, "Member must be a forward action for a TLS_PASSTHROUGH listener"}});
    return action;
  }
  std::string serviceId = site.service.id;
  auto users = serviceIdsByTargetGroup(r, site.replacedDocId);
  std::set<std::string> before;
  for (const auto& [tg, services] : users)
    if (services.count(serviceId)) before.insert(tg);
  std::set<std::string> after = before;

  json resolved = action;
  auto& groups = resolved["forward"]["targetGroups"];
  FieldErrors errors;
  for (size_t i = 0; i < groups.size(); ++i) {
    std::string field = at(site.path + ".forward.targetGroups", i) + ".targetGroupIdentifier";
    auto tg = r.load(Kind::TargetGroup, groups[i]["targetGroupIdentifier"], field);
    groups[i]["targetGroupIdentifier"] = tg.id;
    after.insert(tg.id);
    std::string protocol = tg.value.value("config", json::object()).value("protocol", "");
    if (passthrough && protocol != "TCP")
      errors.add(field, "Target group " + tg.id + " must use protocol TCP behind a TLS_PASSTHROUGH listener");
    if (!passthrough && protocol == "TCP")
      errors.add(field, "Target group " + tg.id + " uses protocol TCP, which only a TLS_PASSTHROUGH listener can use");
    for (const auto& other : users[tg.id])
      if (other != serviceId)
        throw conflict("TARGET_GROUP", tg.id,
                       "The target group " + tg.id + " is already used by service " + other +
                           ". A target group can be used by only one service.");
    touch(tx, "targetgroup", tg);
  }
  errors.throwIfAny();
  int limit = r.config().quotas.targetGroupsPerService;
  if (after.size() > before.size() && after.size() > static_cast<size_t>(limit))
    throw quotaExceeded("SERVICE", "L-3DEC3B9F",
                        "You have reached the quota of " + std::to_string(limit) + " target groups per service.",
                        serviceId);
  return resolved;
}

void touch(Tx& tx, std::string_view kind, const Doc& doc) {
  tx.requireRevision(kind, doc.id, doc.modRevision);
  tx.put(kind, doc.id, doc.value);
}

Doc loadListener(Resources& r, const Doc& service, const std::string& identifier) {
  auto listener = r.load(Kind::Listener, identifier, "listenerIdentifier");
  if (listener.value.value("serviceId", "") != service.id) throw notFound(Kind::Listener, identifier);
  return listener;
}

Doc loadRule(Resources& r, const Doc& listener, const std::string& identifier) {
  auto rule = r.load(Kind::Rule, identifier, "ruleIdentifier");
  if (rule.value.value("listenerId", "") != listener.id) throw notFound(Kind::Rule, identifier);
  return rule;
}

}  // namespace trellis::api
