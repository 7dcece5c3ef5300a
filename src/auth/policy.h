// IAM policies: parsing into a compiled, immutable form, and evaluation against one request.
//
// The data plane evaluates auth policies for every request, so parsing does all the work up front:
// condition key names are lower-cased, wildcard patterns split into tokens, numbers, dates and
// CIDRs parsed. Evaluation then touches no JSON and allocates nothing; the request's context is a
// flat list of views that the caller reuses from request to request.
//
// Semantics follow AWS's documented IAM evaluation (and @cloud-copilot/iam-simulate, our test oracle):
// - within a statement everything must match: principal, action, resource and every condition;
// - a matching Deny statement wins over any Allow; no matching statement is an implicit deny;
// - action names match case-insensitively, resource paths and principals case-sensitively;
// - condition operators and key names are case-insensitive, values follow the operator;
// - a condition on a missing key fails, except negated operators, ...IfExists, ForAllValues: and Null;
// - a multi-valued key (ArrayOfString) only matches through ForAllValues:/ForAnyValue:.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/config.h"

namespace trellis::auth {

struct CompiledPolicy;  // policy.cpp

// An identity-based policy names no Principal and must name Resource; in a resource-based one (auth policy,
// resource policy) a statement without Principal applies to nobody and one without Resource to every resource.
enum class PolicyKind : uint8_t { Identity, Resource };

// A parsed policy. Cheap to copy (shared, immutable), safe to evaluate from many threads.
class Policy {
 public:
  size_t statementCount() const;
  // The statement's Sid, or "" when it has none.
  std::string_view sid(size_t statement) const;

 private:
  explicit Policy(std::shared_ptr<const CompiledPolicy> compiled) : compiled_(std::move(compiled)) {}
  std::shared_ptr<const CompiledPolicy> compiled_;
  friend struct PolicyAccess;
};

// Why a document is not a valid policy; `message` names where, e.g.
// "Statement[1].Condition: unknown operator StringEqualz".
struct PolicyError {
  std::string message;
};

std::variant<Policy, PolicyError> parsePolicy(std::string_view text, PolicyKind kind = PolicyKind::Resource);

// The request being authorized. Every view must outlive the evaluation; clear() keeps the capacity,
// so a context reused per connection or per worker allocates nothing in steady state.
class RequestContext {
 public:
  std::string_view principal;  // caller ARN; empty for an anonymous caller
  std::string_view action;     // "vpc-lattice-svcs:Invoke"
  std::string_view resource;   // "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123/path"

  // A condition key's name is prefix + name (so "vpc-lattice-svcs:RequestHeader/" + a header name needs no
  // concatenation); names compare case-insensitively. Adding a key twice makes it multi-valued;
  // `multiValued` marks keys of type ArrayOfString even with one value.
  void add(std::string_view name, std::string_view value, bool multiValued = false) {
    keys_.push_back({{}, name, value, multiValued});
  }
  void add(std::string_view prefix, std::string_view name, std::string_view value, bool multiValued) {
    keys_.push_back({prefix, name, value, multiValued});
  }
  void clear() {
    principal = action = resource = {};
    keys_.clear();
  }
  void reserve(size_t keys) { keys_.reserve(keys); }

  struct Key {
    std::string_view prefix;
    std::string_view name;
    std::string_view value;
    bool multiValued;
  };
  const std::vector<Key>& keys() const { return keys_; }

 private:
  std::vector<Key> keys_;
};

// Adds the global keys that describe the caller (aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType,
// aws:PrincipalOrgID, aws:PrincipalOrgPaths, aws:PrincipalTag/<key>, aws:username for IAM users) and sets
// ctx.principal. With no identity the caller is anonymous: aws:PrincipalType is "Anonymous".
// Views point into `identity`, which must outlive `ctx`.
void addPrincipalKeys(RequestContext& ctx, const model::Identity* identity);

// What Lattice knows about one request, for addLatticeRequestKeys. Views must outlive the context.
struct LatticeRequest {
  bool connect = false;  // a TCP (TLS passthrough) service: action Connect, and only the keys Connect supports
  std::string_view serviceArn;
  std::string_view serviceNetworkArn;
  std::string_view sourceVpc;              // vpc id
  std::string_view sourceVpcOwnerAccount;  // account id
  std::string_view port;                   // listener port, decimal
  std::string_view method;                 // HTTP method ("POST" for gRPC)
  std::string_view path;                   // request path, without the query
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;  // names lower-case
  const std::vector<std::pair<std::string, std::string>>* query = nullptr;    // decoded; none for gRPC
  std::string_view sourceIp;                                                  // aws:SourceIp
  std::string_view currentTime;  // aws:CurrentTime, ISO 8601 UTC ("2024-05-01T12:00:00Z"); empty: not set
  bool secureTransport = false;  // aws:SecureTransport (HTTPS listener)
};

// Sets ctx.action (vpc-lattice-svcs:Invoke or :Connect) and adds the vpc-lattice-svcs:* keys and aws:SourceIp,
// aws:CurrentTime, aws:SecureTransport. ctx.resource is the caller's to set: the service ARN plus the path for
// Invoke ("…/svc-x/" for "/"), the service ARN for Connect.
void addLatticeRequestKeys(RequestContext& ctx, const LatticeRequest& request);

enum class Effect : uint8_t { ImplicitDeny, Allow, ExplicitDeny };

struct Decision {
  Effect effect = Effect::ImplicitDeny;
  int statement = -1;  // index of the deciding statement (the first matching Deny, else the first Allow)
  bool allowed() const { return effect == Effect::Allow; }
};

Decision evaluate(const Policy& policy, const RequestContext& ctx);

// ---- VPC Lattice (https://docs.aws.amazon.com/vpc-lattice/latest/ug/auth-policies.html) ----

enum class AuthLayer : uint8_t { Identity, Network, Service };
// "Identity", "Network", "Service": the access log's authDeniedReason.
std::string_view authLayerName(AuthLayer layer);

struct LatticeAuthPolicies {
  // The caller's identity-based policy; nullptr when the caller has none (allow) or is anonymous.
  const Policy* identity = nullptr;
  bool networkUsesIam = false;  // the service network's authType is AWS_IAM
  const Policy* network = nullptr;
  bool serviceUsesIam = false;
  const Policy* service = nullptr;
};

struct LatticeDecision {
  bool allowed = true;
  AuthLayer deniedBy = AuthLayer::Service;
  bool explicitDeny = false;
};

// Every layer in force must allow; an explicit Deny anywhere wins (and is reported before an implicit deny);
// an AWS_IAM layer without a policy denies. Layers are reported in the order identity, network, service.
LatticeDecision authorizeLattice(const LatticeAuthPolicies& policies, const RequestContext& ctx);

// The 403 body: "AccessDeniedException: User: {principal|anonymous} is not authorized to perform: {action} on
// resource: {resource} because no service-based policy allows the {action} action" (or "... with an explicit
// deny in a network-based policy").
std::string accessDeniedMessage(const LatticeDecision& decision, const RequestContext& ctx);

}  // namespace trellis::auth
