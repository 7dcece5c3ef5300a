#include "api/api.h"

#include <algorithm>

#include "api/routes.h"
#include "api/validation.h"
#include "auth/policy_api.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/time.h"

namespace trellis::api {

std::optional<std::string> Call::queryValue(const std::string& name) const {
  for (const auto& [k, v] : query)
    if (k == name) return v;
  return std::nullopt;
}

std::vector<std::string> Call::queryValues(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : query)
    if (k == name) out.push_back(v);
  return out;
}

void Tx::put(std::string_view kind, std::string_view id, const json& value) {
  ops.push_back(store::Op::put(std::string(kind), std::string(id), dumpJson(value)));
}
void Tx::del(std::string_view kind, std::string_view id) {
  ops.push_back(store::Op::del(std::string(kind), std::string(id)));
}
void Tx::requireAbsent(std::string_view kind, std::string_view id) {
  conditions.push_back({std::string(kind), std::string(id), store::Condition::kMustNotExist});
}
void Tx::requireRevision(std::string_view kind, std::string_view id, int64_t modRevision) {
  conditions.push_back({std::string(kind), std::string(id), modRevision});
}

Resources::Resources(store::Store& store) : store_(store) {}

void Resources::pin(model::ConfigPtr config) {
  arns_ = {config->partition, config->region, config->accountId};
  config_ = std::move(config);
}

std::string Resources::now() const { return formatRfc3339(systemNow(), true); }

std::optional<Doc> Resources::find(std::string_view kind, std::string_view id) {
  auto record = store_.get(kind, id);
  if (!record) return std::nullopt;
  return Doc{record->id, json::parse(record->value), record->modRevision};
}

Doc Resources::load(model::Kind kind, const std::string& identifier, const std::string& fieldName) {
  auto id = model::idFromIdentifier(kind, identifier);
  if (!id) {
    throw validationError(fieldName + ": Member must be a valid " + std::string(model::resourceType(kind)) +
                              " identifier (an id or an ARN)",
                          {{fieldName, "Member must be a valid identifier"}});
  }
  auto doc = find(model::kindName(kind), *id);
  if (!doc) throw notFound(kind, identifier);
  return *doc;
}

namespace {
constexpr std::string_view kTokenPrefix = "t1.";
std::string encodeToken(const std::string& lastId) { return std::string(kTokenPrefix) + hexEncode(lastId); }
std::optional<std::string> decodeToken(const std::string& token) {
  if (!startsWith(token, kTokenPrefix) || token.size() % 2 == 0) return std::nullopt;
  std::string out;
  for (size_t i = kTokenPrefix.size(); i + 1 < token.size(); i += 2) {
    auto byte = percentDecode("%" + token.substr(i, 2));
    if (!byte) return std::nullopt;
    out += *byte;
  }
  return out;
}
}  // namespace

size_t readMaxResults(FieldErrors& errors, const Call& call) {
  auto raw = call.queryValue("maxResults");
  if (!raw) return 100;
  char* end = nullptr;
  long n = std::strtol(raw->c_str(), &end, 10);
  if (raw->empty() || *end != '\0' || n < 1 || n > 100) {
    errors.add("maxResults", "Member must be between 1 and 100");
    return 100;
  }
  return static_cast<size_t>(n);
}

namespace {
// maxResults and nextToken: the page size and the key to list after (none on a first page).
std::pair<size_t, std::optional<std::string>> readPageRequest(const Call& call) {
  FieldErrors errors;
  size_t limit = readMaxResults(errors, call);
  std::optional<std::string> after;
  if (auto token = call.queryValue("nextToken")) {
    after = token->size() <= 2048 ? decodeToken(*token) : std::nullopt;
    if (!after) errors.add("nextToken", "Member is not a valid pagination token");
  }
  errors.throwIfAny();
  return {limit, after};
}

// One entry of a list in key order: its key (what a token names) and its document, none when it is gone.
struct PageEntry {
  std::string key;
  std::optional<json> value;
};
// The `want` entries after a key; fewer when the list ends.
using NextEntries = std::function<std::vector<PageEntry>(const std::string& after, size_t want)>;

// Keys only grow past `after`, so items added or removed elsewhere never shift a page. `items` may hold a lead.
json fillPage(size_t limit, std::string after, json items, std::string last, const NextEntries& next,
              const std::function<bool(const json&)>& keep, const std::function<json(const json&)>& summarize) {
  bool more = false;
  while (!more) {
    size_t want = std::min<size_t>(100, limit + 1 - items.size());  // one past the page tells whether more follow
    auto batch = next(after, want);
    for (auto& entry : batch) {
      after = entry.key;
      if (!entry.value || !keep(*entry.value)) continue;
      if (items.size() == limit) {
        more = true;
        break;
      }
      items.push_back(summarize(*entry.value));
      last = entry.key;
    }
    if (batch.size() < want) break;
  }
  json out = {{"items", std::move(items)}};
  if (more) out["nextToken"] = encodeToken(last);
  return out;
}
}  // namespace

json Resources::page(std::string_view kind, const Call& call, const std::function<bool(const json&)>& keep,
                     const std::function<json(const json&)>& summarize) {
  auto [limit, token] = readPageRequest(call);
  auto next = [&](const std::string& after, size_t want) {
    std::vector<PageEntry> entries;
    for (auto& record : store_.list(kind, after, want)) entries.push_back({record.id, json::parse(record.value)});
    return entries;
  };
  return fillPage(limit, token.value_or(""), json::array(), "", next, keep, summarize);
}

json Resources::pageEntries(const std::string& prefix, const std::vector<std::pair<std::string, json>>& entries,
                            const Call& call) {
  auto [limit, token] = readPageRequest(call);
  if (token && token->compare(0, prefix.size(), prefix) != 0) {
    FieldErrors errors;
    errors.add("nextToken", "Member is not a valid pagination token");
    errors.throwIfAny();
  }
  auto next = [&](const std::string& after, size_t want) {
    std::vector<PageEntry> out;
    auto it = std::upper_bound(entries.begin(), entries.end(), after,
                               [](const std::string& key, const auto& entry) { return key < entry.first; });
    for (; it != entries.end() && out.size() < want; ++it) out.push_back({it->first, it->second});
    return out;
  };
  return fillPage(
      limit, token.value_or(prefix), json::array(), prefix, next, [](const json&) { return true; },
      [](const json& item) { return item; });
}

json Resources::pageIndex(std::string_view index, const std::string& prefix, std::string_view kind, const Call& call,
                          const std::function<bool(const json&)>& keep,
                          const std::function<json(const json&)>& summarize, const std::optional<Doc>& lead) {
  auto [limit, token] = readPageRequest(call);
  // A token of another list (or another parent) would page from a key outside this prefix.
  if (token && token->compare(0, prefix.size(), prefix) != 0) {
    FieldErrors errors;
    errors.add("nextToken", "Member is not a valid pagination token");
    errors.throwIfAny();
  }
  // `lead` sorts before every entry, at `prefix` itself.
  json items = json::array();
  if (lead && !token) items.push_back(summarize(lead->value));
  // Index entries, then their documents in one read (one etcd round trip, not one per item).
  auto next = [&](const std::string& after, size_t want) {
    std::vector<PageEntry> entries;
    std::vector<store::RecordKey> keys;
    for (auto& entry : store_.list(index, after, want)) {
      if (entry.id.compare(0, prefix.size(), prefix) != 0) break;
      keys.push_back({std::string(kind), json::parse(entry.value).value("id", "")});
      entries.push_back({std::move(entry.id), std::nullopt});
    }
    auto docs = store_.getMany(keys);
    for (size_t i = 0; i < docs.size(); ++i)
      if (docs[i]) entries[i].value = json::parse(docs[i]->value);
    return entries;
  };
  return fillPage(limit, token.value_or(prefix), std::move(items), prefix, next, keep, summarize);
}

int64_t Resources::commit(const Tx& tx, const std::string& resourceType, const std::string& resourceId) {
  auto revision = store_.commit(tx.conditions, tx.ops);
  if (!revision)
    throw conflict(resourceType, resourceId,
                   "The resource " + resourceId + " was changed by a concurrent request or already exists.");
  return *revision;
}

namespace {
std::string inputHash(const Call& call) {
  json input = call.body;
  input.erase("clientToken");
  json key = {{"labels", call.labels}, {"body", input}};
  return sha256Hex(key.dump());
}
}  // namespace

std::optional<json> Resources::replay(const Call& call) {
  auto token = call.body.is_object() && call.body.contains("clientToken") && call.body["clientToken"].is_string()
                   ? call.body["clientToken"].get<std::string>()
                   : std::string();
  if (token.empty()) return std::nullopt;
  auto doc = find("clienttoken", call.operation + "/" + token);
  if (!doc) return std::nullopt;
  if (doc->value.value("inputHash", "") != inputHash(call))
    throw conflict("CLIENT_TOKEN", token,
                   "The clientToken " + token + " was already used with different parameters for " + call.operation +
                       ".");
  return doc->value["response"];
}

void Resources::remember(const Call& call, Tx& tx, const json& response) {
  if (!call.body.is_object() || !call.body.contains("clientToken") || !call.body["clientToken"].is_string()) return;
  std::string key = call.operation + "/" + call.body["clientToken"].get<std::string>();
  tx.requireAbsent("clienttoken", key);
  tx.put("clienttoken", key, {{"inputHash", inputHash(call)}, {"response", response}, {"createdAt", now()}});
}

void Resources::putTags(Tx& tx, const std::string& arn, const std::optional<json>& tags) {
  if (tags && !tags->empty()) tx.put("tags", arn, *tags);
}

std::string dumpJson(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

json pick(const json& doc, std::initializer_list<const char*> keys) {
  json out = json::object();
  for (const char* key : keys) {
    auto it = doc.find(key);
    if (it != doc.end() && !it->is_null()) out[key] = *it;
  }
  return out;
}

std::optional<std::string> readAuthType(FieldErrors& errors, const json& body, bool required) {
  return readString(errors, body, "authType", "authType", {.required = required, .oneOf = {"NONE", "AWS_IAM"}});
}

json queryObject(const Call& call, std::initializer_list<const char*> names) {
  json out = json::object();
  for (const char* name : names)
    if (auto value = call.queryValue(name)) out[name] = *value;
  return out;
}

std::optional<std::vector<std::string>> readSecurityGroupIds(FieldErrors& errors, const json& body, bool required,
                                                             size_t minItems) {
  const json* list = readArray(errors, body, "securityGroupIds", "securityGroupIds", required, minItems, 5);
  if (!list) return std::nullopt;
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string path = "securityGroupIds[" + std::to_string(i) + "]";
    json holder = {{"v", (*list)[i]}};
    auto id = readString(errors, holder, "v", path,
                         {.required = true, .minLength = 5, .maxLength = 200, .check = checkSecurityGroupId});
    if (!id) {
      ok = false;
    } else if (std::find(out.begin(), out.end(), *id) != out.end()) {
      errors.add(path, "Duplicate security group id " + *id);
      ok = false;
    } else {
      out.push_back(*id);
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

void checkSecurityGroupsInVpc(const model::Config& config, const std::vector<std::string>& groups,
                              const std::string& vpcId) {
  FieldErrors errors;
  for (size_t i = 0; i < groups.size(); ++i) {
    const auto& all = config.securityGroups;
    auto it = std::find_if(all.begin(), all.end(), [&](const auto& sg) { return sg.id == groups[i]; });
    if (it == all.end())
      throw notFound("SECURITY_GROUP", groups[i], "The security group " + groups[i] + " could not be found.");
    if (it->vpcId != vpcId)
      errors.add("securityGroupIds[" + std::to_string(i) + "]",
                 "The security group " + groups[i] + " belongs to " + it->vpcId + ", not to " + vpcId);
  }
  errors.throwIfAny();
}

void requireVpc(const model::Config& config, const std::string& vpcId) {
  const auto& vpcs = config.vpcs;
  if (std::none_of(vpcs.begin(), vpcs.end(), [&](const auto& vpc) { return vpc.id == vpcId; }))
    throw notFound("VPC", vpcId, "The VPC " + vpcId + " could not be found.");
}

void enforceQuota(size_t count, int limit, const std::string& resourceType, const std::string& quotaCode,
                  const std::string& what, const std::string& resourceId) {
  if (count >= static_cast<size_t>(limit))
    throw quotaExceeded(resourceType, quotaCode,
                        "You have reached the quota of " + std::to_string(limit) + " " + what + ".", resourceId);
}

Api::Api(store::Store& store, ConfigSource config, Authenticator authenticate)
    : resources_(store), config_(std::move(config)), authenticate_(std::move(authenticate)) {
  registerServiceNetworkOps(handlers_);
  registerServiceOps(handlers_);
  registerListenerOps(handlers_);
  registerRuleOps(handlers_);
  registerTargetGroupOps(handlers_);
  registerAssociationOps(handlers_);
  registerPolicyOps(handlers_);
  registerAccessLogOps(handlers_);
  registerTagOps(handlers_);
  registerResourceGatewayOps(handlers_);
  registerResourceConfigurationOps(handlers_);
  registerResourceAssociationOps(handlers_);
  registerDomainVerificationOps(handlers_);
}

namespace {
HttpResponse errorResponse(const ApiError& error, const std::string& requestId) {
  json body = error.members;
  body["message"] = error.what();
  HttpResponse response{error.status,
                        {{"content-type", "application/json"},
                         {"x-amzn-requestid", requestId},
                         {"x-amzn-errortype", error.type}},
                        dumpJson(body)};
  if (!error.retryAfter.empty()) response.headers.emplace_back("retry-after", error.retryAfter);
  return response;
}
}  // namespace

namespace {

// The ARN an operation acts on, for IAM: the most specific resource named in the path, or "*" for
// operations without one (lists, top-level creates). Ids are expanded to ARNs by their prefix.
std::string resourceArnOf(const Call& call, const model::ArnContext& arns) {
  if (call.labels.empty()) return "*";
  const std::string& last = call.labels.back();
  if (startsWith(last, "arn:")) return last;
  using model::Kind;
  for (Kind kind : {Kind::ServiceNetwork, Kind::Service, Kind::TargetGroup, Kind::ServiceNetworkServiceAssociation,
                    Kind::ServiceNetworkVpcAssociation, Kind::AccessLogSubscription, Kind::ResourceGateway,
                    Kind::ResourceConfiguration, Kind::ServiceNetworkResourceAssociation,
                    Kind::ResourceEndpointAssociation, Kind::DomainVerification}) {
    if (model::isId(kind, last)) return model::arnFor(arns, kind, last);
  }
  // Listener and rule ids live under their service (and listener) in the path.
  auto idOf = [&](size_t i, Kind kind) { return model::idFromIdentifier(kind, call.labels[i]).value_or("*"); };
  if (model::isId(Kind::Listener, last) && call.labels.size() == 2)
    return model::listenerArn(arns, idOf(0, Kind::Service), last);
  if (model::isId(Kind::Rule, last) && call.labels.size() == 3)
    return model::ruleArn(arns, idOf(0, Kind::Service), idOf(1, Kind::Listener), last);
  return "*";
}

// Control-plane condition keys (docs/architecture.md, "Who may call the API") that the request itself carries.
auth::ConditionKeys conditionKeysOf(const Call& call, const model::ArnContext& arns) {
  auth::ConditionKeys keys;
  const json& body = call.body;
  auto add = [&](const char* key, const char* member) {
    if (body.contains(member) && body[member].is_string()) keys.emplace_back(key, body[member].get<std::string>());
  };
  add("vpc-lattice:AuthType", "authType");
  add("vpc-lattice:Protocol", "protocol");
  add("vpc-lattice:VpcId", "vpcIdentifier");
  if (body.contains("securityGroupIds") && body["securityGroupIds"].is_array())
    for (const auto& sg : body["securityGroupIds"])
      if (sg.is_string()) keys.emplace_back("vpc-lattice:SecurityGroupIds", sg.get<std::string>());
  auto arnKey = [&](const char* key, const char* member, model::Kind kind) {
    if (!body.contains(member) || !body[member].is_string()) return;
    const auto& value = body[member].get_ref<const std::string&>();
    if (auto id = model::idFromIdentifier(kind, value)) keys.emplace_back(key, model::arnFor(arns, kind, *id));
  };
  arnKey("vpc-lattice:ServiceNetworkArn", "serviceNetworkIdentifier", model::Kind::ServiceNetwork);
  arnKey("vpc-lattice:ServiceArn", "serviceIdentifier", model::Kind::Service);
  return keys;
}

}  // namespace

HttpResponse Api::handle(const HttpRequest& request) {
  std::string requestId = randomUuid();
  try {
    auto match = matchRoute(request.method, request.path);
    if (!match.route) {
      if (match.methodMismatch)
        throw ApiError(405, "UnknownOperationException",
                       "The method " + request.method + " is not allowed on " + request.path);
      throw ApiError(404, "UnknownOperationException", "No operation matches " + request.method + " " + request.path);
    }
    model::ConfigPtr config = config_();
    resources_.pin(config);
    auto identity = authenticate_(request, *config);
    if (auto* error = std::get_if<ApiError>(&identity)) throw *error;

    Call call{request, match.route->operation, std::move(match.labels), {}, json::object(),
              std::get<const model::Identity*>(identity)};
    if (match.badEncoding) throw validationError("A path parameter has a malformed percent-encoding", {}, "cannotParse");
    auto query = parseQuery(request.query);
    if (!query) throw validationError("The query string has a malformed percent-encoding", {}, "cannotParse");
    call.query = std::move(*query);
    if (!request.body.empty()) {
      call.body = json::parse(request.body, nullptr, false);
      if (call.body.is_discarded() || !call.body.is_object())
        throw validationError("The request body is not a JSON object", {}, "cannotParse");
    }

    // The caller's identity-based policy (config `identities[].policy`) decides what it may do here.
    if (!call.caller->policy.empty()) {
      auto decision = auth::authorizeApiCall(*call.caller, call.operation, resourceArnOf(call, resources_.arns()),
                                             conditionKeysOf(call, resources_.arns()));
      if (!decision.allowed) throw accessDenied(decision.message);
    }

    auto handler = handlers_.find(call.operation);
    if (handler == handlers_.end())
      throw validationError(call.operation + " is not supported by this version of Trellis", {}, "unknownOperation");
    json result = handler->second(resources_, call);
    logDebug("api ", call.operation, " ok ", requestId);

    HttpResponse response{match.route->successStatus, {{"x-amzn-requestid", requestId}}, {}};
    if (response.status != 204) {
      response.headers.emplace_back("content-type", "application/json");
      response.body = result.is_null() ? "{}" : dumpJson(result);
    }
    return response;
  } catch (const ApiError& error) {
    logDebug("api error ", error.type, ": ", error.what());
    return errorResponse(error, requestId);
  } catch (const store::Unavailable& error) {  // etcd without quorum: retryable, as AWS's 500s are
    logWarn("api ", requestId, ": the store is unavailable: ", error.what());
    ApiError unavailable(500, "InternalServerException", "The service is temporarily unavailable. Retry the call.");
    unavailable.retryAfter = "1";
    return errorResponse(unavailable, requestId);
  } catch (const store::LimitExceeded& error) {  // nothing was applied
    std::string message = std::string("This call would change more than the store can change at once: ") + error.what();
    return errorResponse(validationError(message), requestId);
  } catch (const std::exception& error) {
    logError("api internal error: ", error.what());
    return errorResponse(ApiError(500, "InternalServerException", "An internal error occurred."), requestId);
  }
}

}  // namespace trellis::api
