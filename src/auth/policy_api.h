// Who may do what through the control-plane API: the caller's identity-based policy (config `identities:`)
// decides each operation, as IAM does for the real vpc-lattice API. No policy means allow.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/policy.h"
#include "common/time.h"
#include "model/config.h"

namespace trellis::auth {

struct ApiAuthorization {
  bool allowed = true;
  // When denied: the AccessDeniedException message (HTTP 403), e.g. "User: arn:aws:iam::111122223333:role/dev is
  // not authorized to perform: vpc-lattice:DeleteService on resource: arn:...:service/svc-0123 because no
  // identity-based policy allows the vpc-lattice:DeleteService action".
  std::string message;
};

// Control-plane condition keys, e.g. {"vpc-lattice:AuthType", "AWS_IAM"}; a key given more than
// once is multi-valued (vpc-lattice:TargetGroupArns, vpc-lattice:SecurityGroupIds).
using ConditionKeys = std::vector<std::pair<std::string, std::string>>;

// Evaluates the action "vpc-lattice:<operation>" on `resourceArn` (the ARN acted on; "*" for operations
// without one, such as List* calls) against the caller's identity-based policy. The context carries the
// caller's global keys (aws:PrincipalArn, aws:PrincipalTag/..., see addPrincipalKeys), aws:CurrentTime and `keys`.
// A policy that does not compile denies (config loading should have rejected it).
ApiAuthorization authorizeApiCall(const model::Identity& caller, std::string_view operation,
                                  std::string_view resourceArn, const ConditionKeys& keys = {},
                                  SystemTime now = systemNow());
// The same for any action ("trellis:ReceiveConfiguration").
ApiAuthorization authorizeAction(const model::Identity& caller, const std::string& action,
                                 std::string_view resourceArn, const ConditionKeys& keys = {},
                                 SystemTime now = systemNow());

}  // namespace trellis::auth
