#include "api/actions.h"

#include <cctype>

#include "api/indexes.h"
#include "common/strings.h"

namespace trellis::api {

using model::Kind;

namespace {

std::string at(const std::string& path, size_t index) { return path + "[" + std::to_string(index) + "]"; }

// An HTTPMatch object (method, pathMatch, headerMatches) at `base`; keeps only known members.
std::optional<json> readHttpMatch(FieldErrors& errors, const json& http, const std::string& base);

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
  auto out = readHttpMatch(errors, *http, base);
  if (!out) return std::nullopt;
  return json{{"httpMatch", std::move(*out)}};
}

namespace {

std::optional<json> readHttpMatch(FieldErrors& errors, const json& httpMatch, const std::string& base) {
  const json* http = &httpMatch;
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
  return out;
}

}  // namespace

namespace {

// Extension objects reject members they do not know: a misspelt filter must fail, not be dropped.
bool onlyKnown(FieldErrors& errors, const json& obj, const std::string& path,
               std::initializer_list<const char*> known) {
  bool ok = true;
  for (const auto& [key, value] : obj.items()) {
    bool found = false;
    for (const char* k : known) found = found || key == k;
    if (!found) {
      errors.add(path + "." + key, "Member is not a known member of " + path);
      ok = false;
    }
  }
  return ok;
}

std::string checkHeaderName(std::string_view v) {
  // RFC 9110 token characters.
  for (char c : v)
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos)
      return "Member must be an HTTP header name";
  // Message framing and connection management belong to the proxy, not to a modifier.
  for (std::string_view reserved : {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
                                    "trailer", "proxy-connection"})
    if (iequals(v, reserved))
      return "Member must not name the header " + std::string(reserved) + ", which the proxy manages";
  return "";
}

std::string checkHeaderValue(std::string_view v) {
  for (char c : v)
    if (c == '\r' || c == '\n' || c == '\0') return "Member must not contain CR, LF or NUL";
  return "";
}

// A list of {name, value} header entries.
bool readHeaderList(FieldErrors& errors, const json& obj, const char* key, const std::string& path, json& out) {
  const json* list = readArray(errors, obj, key, path, false, 1, 16);
  if (!list) return !obj.contains(key) || obj[key].is_null();
  bool ok = true;
  json entries = json::array();
  for (size_t i = 0; i < list->size(); ++i) {
    std::string item = at(path, i);
    const json& entry = (*list)[i];
    if (!entry.is_object()) {
      errors.add(item, "Member must be an object");
      ok = false;
      continue;
    }
    auto name = readString(errors, entry, "name", item + ".name",
                           {.required = true, .minLength = 1, .maxLength = 256, .check = checkHeaderName});
    auto value = readString(errors, entry, "value", item + ".value",
                            {.required = true, .maxLength = 4096, .check = checkHeaderValue});
    if (!name || !value || !onlyKnown(errors, entry, item, {"name", "value"})) {
      ok = false;
      continue;
    }
    entries.push_back({{"name", *name}, {"value", *value}});
  }
  if (ok) out[key] = std::move(entries);
  return ok;
}

std::optional<json> readHeaderModifier(FieldErrors& errors, const json& modifier, const std::string& path) {
  bool ok = onlyKnown(errors, modifier, path, {"set", "add", "remove"});
  json out = json::object();
  ok = readHeaderList(errors, modifier, "set", path + ".set", out) && ok;
  ok = readHeaderList(errors, modifier, "add", path + ".add", out) && ok;
  if (const json* remove = readArray(errors, modifier, "remove", path + ".remove", false, 1, 16)) {
    json names = json::array();
    for (size_t i = 0; i < remove->size(); ++i) {
      json holder = {{"name", (*remove)[i]}};
      auto name = readString(errors, holder, "name", at(path + ".remove", i),
                             {.required = true, .minLength = 1, .maxLength = 256, .check = checkHeaderName});
      if (name)
        names.push_back(*name);
      else
        ok = false;
    }
    out["remove"] = std::move(names);
  } else if (modifier.contains("remove") && !modifier["remove"].is_null()) {
    ok = false;
  }
  if (ok && out.empty()) {
    errors.add(path, "Member must set at least one of set, add, remove");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

// {replaceFullPath | replacePrefixMatch}
std::optional<json> readPathModifier(FieldErrors& errors, const json& obj, const std::string& path) {
  const json* modifier = readObject(errors, obj, "path", path);
  if (!modifier) return std::nullopt;
  if (!onlyKnown(errors, *modifier, path, {"replaceFullPath", "replacePrefixMatch"})) return std::nullopt;
  auto which = readUnionMember(errors, *modifier, path, {"replaceFullPath", "replacePrefixMatch"});
  if (!which) return std::nullopt;
  auto value = readString(errors, *modifier, which->c_str(), path + "." + *which,
                          {.required = true, .minLength = 1, .maxLength = 200, .check = checkMatchPath});
  if (!value) return std::nullopt;
  return json{{*which, *value}};
}

// Reads the object member `key` of `parent` with `read` into out[key]; false when present but bad.
using ReadObject = std::optional<json> (*)(FieldErrors&, const json&, const std::string&);
bool readMember(FieldErrors& errors, const json& parent, const char* key, const std::string& path, json& out,
                ReadObject read) {
  if (!parent.contains(key) || parent[key].is_null()) return true;
  const json* obj = readObject(errors, parent, key, path);
  if (!obj) return false;
  auto value = read(errors, *obj, path);
  if (!value) return false;
  out[key] = std::move(*value);
  return true;
}

// Copies a read optional into out[key]; false when the member was present but bad.
template <typename T>
bool keep(const json& obj, const char* key, const std::optional<T>& value, json& out) {
  if (value) out[key] = *value;
  return value || !obj.contains(key) || obj[key].is_null();
}

std::optional<std::string> readHostname(FieldErrors& errors, const json& o, const std::string& p) {
  return readString(errors, o, "hostname", p + ".hostname",
                    {.minLength = 1, .maxLength = 253, .check = checkDomainName});
}

std::optional<json> readUrlRewrite(FieldErrors& errors, const json& o, const std::string& p) {
  bool ok = onlyKnown(errors, o, p, {"hostname", "path"});
  json out = json::object();
  if (!keep(o, "hostname", readHostname(errors, o, p), out)) ok = false;
  if (!keep(o, "path", readPathModifier(errors, o, p + ".path"), out)) ok = false;
  if (ok && out.empty()) {
    errors.add(p, "Member must set at least one of hostname, path");
    ok = false;
  }
  return ok ? std::optional<json>(out) : std::nullopt;
}

std::optional<json> readRedirect(FieldErrors& errors, const json& o, const std::string& p) {
  bool ok = onlyKnown(errors, o, p, {"scheme", "hostname", "path", "port", "statusCode"});
  json out = json::object();
  if (!keep(o, "scheme", readString(errors, o, "scheme", p + ".scheme", {.oneOf = {"http", "https"}}), out)) ok = false;
  if (!keep(o, "hostname", readHostname(errors, o, p), out)) ok = false;
  if (!keep(o, "path", readPathModifier(errors, o, p + ".path"), out)) ok = false;
  if (!keep(o, "port", readInt(errors, o, "port", p + ".port", false, 1, 65535), out)) ok = false;
  auto status = readInt(errors, o, "statusCode", p + ".statusCode", false, 301, 308);
  if (status && *status >= 304 && *status <= 306) {
    errors.add(p + ".statusCode", "Member must be one of 301, 302, 303, 307, 308");
    status.reset();
  }
  if (!keep(o, "statusCode", status, out)) ok = false;
  return ok ? std::optional<json>(out) : std::nullopt;
}

std::optional<json> readTimeouts(FieldErrors& errors, const json& o, const std::string& p) {
  bool ok = onlyKnown(errors, o, p, {"requestMs", "backendRequestMs"});
  json out = json::object();
  auto request = readInt(errors, o, "requestMs", p + ".requestMs", false, 1, 3600000);
  auto backend = readInt(errors, o, "backendRequestMs", p + ".backendRequestMs", false, 1, 3600000);
  if (!keep(o, "requestMs", request, out)) ok = false;
  if (!keep(o, "backendRequestMs", backend, out)) ok = false;
  if (request && backend && *backend > *request) {
    errors.add(p + ".backendRequestMs", "Member must not exceed requestMs");
    ok = false;
  }
  return ok ? std::optional<json>(out) : std::nullopt;
}

std::optional<json> readRetry(FieldErrors& errors, const json& o, const std::string& p) {
  bool ok = onlyKnown(errors, o, p, {"attempts", "statusCodes", "backoffMs"});
  json out = json::object();
  if (!keep(o, "attempts", readInt(errors, o, "attempts", p + ".attempts", true, 0, 5), out)) ok = false;
  if (!keep(o, "backoffMs", readInt(errors, o, "backoffMs", p + ".backoffMs", false, 0, 60000), out)) ok = false;
  if (const json* codes = readArray(errors, o, "statusCodes", p + ".statusCodes", false, 1, 100)) {
    json list = json::array();
    for (size_t i = 0; i < codes->size(); ++i) {
      json holder = {{"code", (*codes)[i]}};
      if (auto code = readInt(errors, holder, "code", at(p + ".statusCodes", i), true, 500, 599))
        list.push_back(*code);
      else
        ok = false;
    }
    out["statusCodes"] = std::move(list);
  } else if (o.contains("statusCodes") && !o["statusCodes"].is_null()) {
    ok = false;
  }
  return ok ? std::optional<json>(out) : std::nullopt;
}

}  // namespace

std::optional<json> readRuleExtensions(FieldErrors& errors, const json& obj, const char* key, const std::string& path) {
  if (!obj.contains(key) || obj[key].is_null()) return std::nullopt;
  const json* ext = readObject(errors, obj, key, path);
  if (!ext) return std::nullopt;
  bool ok = onlyKnown(errors, *ext, path,
                      {"matches", "queryMatches", "requestHeaderModifier", "responseHeaderModifier", "urlRewrite",
                       "requestRedirect", "timeouts", "retry"});
  json out = json::object();

  if (const json* matches = readArray(errors, *ext, "matches", path + ".matches", false, 1, 8)) {
    json list = json::array();
    for (size_t i = 0; i < matches->size(); ++i) {
      std::string item = at(path + ".matches", i);
      if (!(*matches)[i].is_object()) {
        errors.add(item, "Member must be an object");
        ok = false;
      } else if (auto match = readHttpMatch(errors, (*matches)[i], item)) {
        list.push_back(std::move(*match));
      } else {
        ok = false;
      }
    }
    out["matches"] = std::move(list);
  } else if (ext->contains("matches") && !(*ext)["matches"].is_null()) {
    ok = false;
  }

  if (const json* queries = readArray(errors, *ext, "queryMatches", path + ".queryMatches", false, 1, 8)) {
    json list = json::array();
    for (size_t i = 0; i < queries->size(); ++i) {
      std::string item = at(path + ".queryMatches", i);
      const json& entry = (*queries)[i];
      if (!entry.is_object()) {
        errors.add(item, "Member must be an object");
        ok = false;
        continue;
      }
      auto name =
          readString(errors, entry, "name", item + ".name", {.required = true, .minLength = 1, .maxLength = 256});
      auto which = readUnionMember(errors, entry, item, {"exact", "prefix", "present"});
      if (!onlyKnown(errors, entry, item, {"name", "exact", "prefix", "present"}) || !name || !which) {
        ok = false;
        continue;
      }
      json query = {{"name", *name}};
      if (*which == "present") {
        auto present = readBool(errors, entry, "present", item + ".present", true);
        if (present && !*present) errors.add(item + ".present", "Member must be true");
        if (!present || !*present) {
          ok = false;
          continue;
        }
        query["present"] = true;
      } else {
        auto value =
            readString(errors, entry, which->c_str(), item + "." + *which, {.required = true, .maxLength = 1024});
        if (!value) {
          ok = false;
          continue;
        }
        query[*which] = *value;
      }
      list.push_back(std::move(query));
    }
    out["queryMatches"] = std::move(list);
  } else if (ext->contains("queryMatches") && !(*ext)["queryMatches"].is_null()) {
    ok = false;
  }

  if (!readMember(errors, *ext, "requestHeaderModifier", path + ".requestHeaderModifier", out, readHeaderModifier))
    ok = false;
  if (!readMember(errors, *ext, "responseHeaderModifier", path + ".responseHeaderModifier", out, readHeaderModifier))
    ok = false;
  if (!readMember(errors, *ext, "urlRewrite", path + ".urlRewrite", out, readUrlRewrite)) ok = false;
  if (!readMember(errors, *ext, "requestRedirect", path + ".requestRedirect", out, readRedirect)) ok = false;
  if (!readMember(errors, *ext, "timeouts", path + ".timeouts", out, readTimeouts)) ok = false;
  if (!readMember(errors, *ext, "retry", path + ".retry", out, readRetry)) ok = false;

  if (out.contains("urlRewrite") && out.contains("requestRedirect")) {
    errors.add(path + ".urlRewrite", "Member must not be set together with requestRedirect");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

std::string defaultRuleId(const std::string& listenerId) {
  return "rule-" + listenerId.substr(listenerId.find('-') + 1);
}

void deleteListener(Resources& r, Tx& tx, const std::string& serviceId, const Doc& listener) {
  tx.del("listener", listener.id);
  tx.del("index.name.listener", serviceId + "/" + listener.value["name"].get<std::string>());
  tx.del("tags", listener.value["arn"].get<std::string>());
  indexForwards(tx, serviceId, listener.id, listener.value["defaultAction"], nullptr);
  std::vector<Doc> rules = indexedDocs(r, "index.name.rule", "rule", listener.id);
  if (auto rule = r.find("rule", defaultRuleId(listener.id))) rules.push_back(std::move(*rule));
  for (const auto& rule : rules) {
    tx.del("rule", rule.id);
    if (!rule.value.value("isDefault", false)) {
      tx.del("index.name.rule", listener.id + "/" + rule.value["name"].get<std::string>());
      indexForwards(tx, serviceId, rule.id, rule.value["action"], nullptr);
    }
    tx.del("tags", rule.value["arn"].get<std::string>());
  }
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
  std::set<std::string> before = targetGroupsOf(r, serviceId, site.replacedDocId);
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
    for (const auto& other : servicesUsing(r, tg.id, site.replacedDocId))
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
