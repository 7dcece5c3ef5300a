// PutAuthPolicy, GetAuthPolicy, DeleteAuthPolicy, PutResourcePolicy, GetResourcePolicy, DeleteResourcePolicy.
//
// Auth policies are stored under the resource's id, resource policies under its ARN (docs/store-schema.md).
// Both are validated by compiling them with the policy engine (src/auth/policy.h) that evaluates them.
#include "api/api.h"
#include "api/validation.h"
#include "auth/policy.h"

namespace trellis::api {
namespace {

constexpr std::string_view kAuthPolicy = "authpolicy";
constexpr std::string_view kResourcePolicy = "resourcepolicy";
// Service quota "Auth policy size": 10 KB, not adjustable (the model alone would allow 36864 characters).
constexpr size_t kAuthPolicyMaxBytes = 10 * 1024;

// The service network, service or resource configuration a path label names.
struct Resource {
  model::Kind kind;
  Doc doc;
  // Guards a write against the resource's concurrent delete, which removes its policies: a put
  // racing with it fails instead of leaving an orphan behind.
  void requireUnchanged(Tx& tx) const { tx.requireRevision(model::kindName(kind), doc.id, doc.modRevision); }
};
Resource loadResource(Resources& r, const std::string& identifier, const std::string& fieldName) {
  auto ref = parseResourceIdentifier(identifier);
  auto kind = ref ? ref->kind : model::Kind::Service;
  return {kind, r.load(kind, identifier, fieldName)};
}

// The label as a one-member object, so it validates like a body member and lands in fieldList.
std::string readLabel(const Call& call, const char* name, const StringRule& rule) {
  FieldErrors errors;
  json holder = {{name, call.labels.at(0)}};
  auto value = readString(errors, holder, name, name, rule);
  errors.throwIfAny();
  return *value;
}

// What is wrong with a policy document and where ("Statement[1].Condition: unknown operator StringEqualz"),
// or "" when it compiles.
std::string policyProblem(std::string_view policy) {
  auto parsed = auth::parsePolicy(policy, auth::PolicyKind::Resource);
  auto* error = std::get_if<auth::PolicyError>(&parsed);
  return error ? error->message : "";
}

std::string authPolicyState(const Resource& resource) {
  return resource.doc.value.value("authType", "NONE") == "AWS_IAM" ? "Active" : "Inactive";
}

json putAuthPolicy(Resources& r, Call& call) {
  FieldErrors errors;
  json label = {{"resourceIdentifier", call.labels.at(0)}};
  auto identifier = readString(errors, label, "resourceIdentifier", "resourceIdentifier",
                               {.required = true, .minLength = 17, .maxLength = 200, .check = checkResourceIdentifier});
  auto policy = readString(errors, call.body, "policy", "policy", {.required = true, .maxLength = 36864});
  if (policy && policy->size() > kAuthPolicyMaxBytes) {
    errors.add("policy", "The auth policy is " + std::to_string(policy->size()) +
                             " bytes; the quota for an auth policy is 10 KB (" + std::to_string(kAuthPolicyMaxBytes) +
                             " bytes)");
  } else if (policy && identifier && parseResourceIdentifier(*identifier)->kind == model::Kind::ResourceConfiguration) {
    // Auth policies govern HTTP requests to services; TCP connections to resources have no requests to authorize.
    errors.add("resourceIdentifier",
               "Auth policies apply to service networks and services, not to resource configurations");
  } else if (policy) {
    // The model says the JSON "must not contain newlines"; every JSON parser takes them, so they are accepted.
    if (auto problem = policyProblem(*policy); !problem.empty()) errors.add("policy", problem);
  }
  errors.throwIfAny();

  auto resource = loadResource(r, *identifier, "resourceIdentifier");
  std::string now = r.now();
  auto existing = r.find(kAuthPolicy, resource.doc.id);
  json doc = {{"policy", *policy},
              {"createdAt", existing ? existing->value.value("createdAt", now) : now},
              {"lastUpdatedAt", now}};
  Tx tx;
  resource.requireUnchanged(tx);
  if (existing)
    tx.requireRevision(kAuthPolicy, resource.doc.id, existing->modRevision);
  else
    tx.requireAbsent(kAuthPolicy, resource.doc.id);
  tx.put(kAuthPolicy, resource.doc.id, doc);
  r.commit(tx, "AUTH_POLICY", resource.doc.id);
  return {{"policy", *policy}, {"state", authPolicyState(resource)}};
}

json getAuthPolicy(Resources& r, Call& call) {
  auto identifier = readLabel(call, "resourceIdentifier",
                              {.required = true, .minLength = 17, .maxLength = 200, .check = checkResourceIdentifier});
  auto resource = loadResource(r, identifier, "resourceIdentifier");
  auto policy = r.find(kAuthPolicy, resource.doc.id);
  if (!policy)
    throw notFound("AUTH_POLICY", resource.doc.id, "The resource " + resource.doc.id + " has no auth policy.");
  json out = pick(policy->value, {"policy", "createdAt", "lastUpdatedAt"});
  out["state"] = authPolicyState(resource);
  return out;
}

// Deleting a policy that is not there succeeds: the operation is idempotent in the model.
json deleteAuthPolicy(Resources& r, Call& call) {
  auto identifier = readLabel(call, "resourceIdentifier",
                              {.required = true, .minLength = 17, .maxLength = 200, .check = checkResourceIdentifier});
  auto resource = loadResource(r, identifier, "resourceIdentifier");
  Tx tx;
  tx.del(kAuthPolicy, resource.doc.id);
  r.commit(tx, "AUTH_POLICY", resource.doc.id);
  return nullptr;
}

constexpr StringRule kResourceArnRule = {
    .required = true, .minLength = 20, .maxLength = 200, .check = checkResourceArn};

std::string checkResourcePolicyText(std::string_view policy) {
  if (policy.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return "Member must satisfy regular expression pattern: .*\\S.*";
  return policyProblem(policy);
}

json putResourcePolicy(Resources& r, Call& call) {
  FieldErrors errors;
  json label = {{"resourceArn", call.labels.at(0)}};
  auto arn = readString(errors, label, "resourceArn", "resourceArn", kResourceArnRule);
  auto policy = readString(errors, call.body, "policy", "policy",
                           {.required = true, .minLength = 1, .maxLength = 10000, .check = checkResourcePolicyText});
  errors.throwIfAny();
  auto resource = loadResource(r, *arn, "resourceArn");
  // Keyed by the resource's own ARN, whatever spelling of it the caller used.
  std::string key = resource.doc.value["arn"];
  Tx tx;
  resource.requireUnchanged(tx);
  tx.put(kResourcePolicy, key, {{"policy", *policy}});
  r.commit(tx, "RESOURCE_POLICY", key);
  return json::object();
}

json getResourcePolicy(Resources& r, Call& call) {
  auto arn = readLabel(call, "resourceArn", kResourceArnRule);
  auto resource = loadResource(r, arn, "resourceArn");
  std::string key = resource.doc.value["arn"];
  auto policy = r.find(kResourcePolicy, key);
  if (!policy) throw notFound("RESOURCE_POLICY", key, "The resource " + key + " has no resource policy.");
  return pick(policy->value, {"policy"});
}

json deleteResourcePolicy(Resources& r, Call& call) {
  auto arn = readLabel(call, "resourceArn", kResourceArnRule);
  auto resource = loadResource(r, arn, "resourceArn");
  Tx tx;
  tx.del(kResourcePolicy, resource.doc.value["arn"].get<std::string>());
  r.commit(tx, "RESOURCE_POLICY", arn);
  return nullptr;
}

}  // namespace

void registerPolicyOps(HandlerMap& handlers) {
  handlers["PutAuthPolicy"] = putAuthPolicy;
  handlers["GetAuthPolicy"] = getAuthPolicy;
  handlers["DeleteAuthPolicy"] = deleteAuthPolicy;
  handlers["PutResourcePolicy"] = putResourcePolicy;
  handlers["GetResourcePolicy"] = getResourcePolicy;
  handlers["DeleteResourcePolicy"] = deleteResourcePolicy;
}

}  // namespace trellis::api
