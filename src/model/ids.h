// Lattice resource identifiers and ARNs (https://docs.aws.amazon.com/vpc-lattice/latest/APIReference/).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace trellis::model {

enum class Kind {
  ServiceNetwork,
  Service,
  Listener,
  Rule,
  TargetGroup,
  ServiceNetworkServiceAssociation,
  ServiceNetworkVpcAssociation,
  AccessLogSubscription,
  ServiceNetworkResourceAssociation,
  ResourceGateway,
  ResourceConfiguration,
  ResourceEndpointAssociation,
  DomainVerification,
};

// "sn", "svc", "listener", ...: the id prefix without the dash.
std::string_view idPrefix(Kind kind);
// The store kind name and the ARN resource-type word: "servicenetwork", "service", ...
std::string_view kindName(Kind kind);
// Lattice's resourceType strings used in errors: "SERVICE_NETWORK", "SERVICE", "LISTENER", ...
std::string_view resourceType(Kind kind);

// A new random id: prefix + '-' + 17 lowercase hex characters.
std::string newId(Kind kind);
// True when `id` has exactly the shape of `kind`'s ids.
bool isId(Kind kind, std::string_view id);

struct ArnContext {
  std::string partition = "aws";
  std::string region = "us-east-1";
  std::string accountId = "111122223333";
};

// arn:{partition}:vpc-lattice:{region}:{account}:{kindName}/{id}
std::string arnFor(const ArnContext& ctx, Kind kind, std::string_view id);
// Child ARNs: service/svc-…/listener/listener-… and …/rule/rule-…
std::string listenerArn(const ArnContext& ctx, std::string_view serviceId, std::string_view listenerId);
std::string ruleArn(const ArnContext& ctx, std::string_view serviceId, std::string_view listenerId,
                    std::string_view ruleId);

struct ParsedArn {
  std::string partition, service, region, accountId, resource;  // resource: everything after the 5th ':'
};
std::optional<ParsedArn> parseArn(std::string_view arn);

// Resolves an "identifier" (bare id or ARN) of `kind` to the id. nullopt when it is neither.
// For ARNs of child resources (listener/rule) the last path component is returned.
std::optional<std::string> idFromIdentifier(Kind kind, std::string_view identifier);

// The generated DNS name: {name}-{17 hex}.{partitionId}.{serviceDomain}
std::string serviceDnsName(std::string_view serviceName, std::string_view serviceId, std::string_view partitionId,
                           std::string_view serviceDomain);

}  // namespace trellis::model
