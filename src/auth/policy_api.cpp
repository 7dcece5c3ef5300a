#include "auth/policy_api.h"

#include "common/strings.h"

namespace trellis::auth {

namespace {
// Control-plane keys that IAM documents as ArrayOfString.
bool isMultiValuedKey(std::string_view name) {
  for (std::string_view key :
       {"vpc-lattice:TargetGroupArns", "vpc-lattice:SecurityGroupIds", "vpc-lattice:PrivateDnsSpecifiedDomains"})
    if (iequals(name, key)) return true;
  return false;
}
}  // namespace

ApiAuthorization authorizeApiCall(const model::Identity& caller, std::string_view operation,
                                  std::string_view resourceArn, const ConditionKeys& keys, SystemTime now) {
  return authorizeAction(caller, "vpc-lattice:" + std::string(operation), resourceArn, keys, now);
}

ApiAuthorization authorizeAction(const model::Identity& caller, const std::string& action,
                                 std::string_view resourceArn, const ConditionKeys& keys, SystemTime now) {
  if (caller.policy.empty()) return {};
  std::string denied =
      "User: " + caller.arn + " is not authorized to perform: " + action + " on resource: " + std::string(resourceArn);

  // Compiled per call: the control plane is not a hot path, and a reloaded config needs no cache to invalidate.
  auto parsed = parsePolicy(caller.policy, PolicyKind::Identity);
  if (auto* error = std::get_if<PolicyError>(&parsed))
    return {false, denied + " because the identity-based policy is invalid: " + error->message};

  std::string currentTime = formatRfc3339(now);
  RequestContext ctx;
  ctx.reserve(keys.size() + caller.tags.size() + caller.orgPaths.size() + 8);
  addPrincipalKeys(ctx, &caller);
  ctx.action = action;
  ctx.resource = resourceArn;
  ctx.add("aws:CurrentTime", currentTime);
  for (const auto& [name, value] : keys) ctx.add(name, value, isMultiValuedKey(name));

  switch (evaluate(std::get<Policy>(parsed), ctx).effect) {
    case Effect::Allow: return {};
    case Effect::ExplicitDeny: return {false, denied + " with an explicit deny in an identity-based policy"};
    case Effect::ImplicitDeny: break;
  }
  return {false, denied + " because no identity-based policy allows the " + action + " action"};
}

}  // namespace trellis::auth
