// Fuzzes the IAM policy parser and, for documents it accepts, the evaluator (both policy kinds).
// Input: policy JSON, optionally followed by "\n--\n" and request lines "name=value" (the first three lines
// are the principal, action and resource; a name ending in "[]" adds a multi-valued key).
#include <cstdint>
#include <string_view>

#include "auth/policy.h"

using namespace trellis::auth;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view policyText = input, requestText;
  if (size_t split = input.find("\n--\n"); split != std::string_view::npos) {
    policyText = input.substr(0, split);
    requestText = input.substr(split + 4);
  }

  RequestContext ctx;
  ctx.principal = "arn:aws:iam::111122223333:role/admin";
  ctx.action = "vpc-lattice-svcs:Invoke";
  ctx.resource = "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0/rates";
  for (int line = 0; !requestText.empty(); ++line) {
    size_t nl = requestText.find('\n');
    std::string_view text = requestText.substr(0, nl);
    requestText = nl == std::string_view::npos ? std::string_view{} : requestText.substr(nl + 1);
    if (line == 0)
      ctx.principal = text;
    else if (line == 1)
      ctx.action = text;
    else if (line == 2)
      ctx.resource = text;
    else if (size_t eq = text.find('='); eq != std::string_view::npos) {
      std::string_view name = text.substr(0, eq);
      bool multi = name.ends_with("[]");
      if (multi) name.remove_suffix(2);
      ctx.add(name, text.substr(eq + 1), multi);
    }
  }

  for (PolicyKind kind : {PolicyKind::Resource, PolicyKind::Identity}) {
    auto parsed = parsePolicy(policyText, kind);
    auto* policy = std::get_if<Policy>(&parsed);
    if (!policy) {
      if (std::get<PolicyError>(parsed).message.empty()) __builtin_trap();  // every error must say something
      continue;
    }
    Decision decision = evaluate(*policy, ctx);
    if (decision.effect != Effect::ImplicitDeny &&
        (decision.statement < 0 || static_cast<size_t>(decision.statement) >= policy->statementCount()))
      __builtin_trap();
    LatticeAuthPolicies layers{kind == PolicyKind::Identity ? policy : nullptr, true, policy, true, policy};
    LatticeDecision combined = authorizeLattice(layers, ctx);
    if (combined.allowed != (decision.effect == Effect::Allow)) __builtin_trap();
    if (!combined.allowed) (void)accessDeniedMessage(combined, ctx);
  }
  return 0;
}
