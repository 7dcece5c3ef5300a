#include "model/ids.h"

#include "common/crypto.h"
#include "common/strings.h"

namespace trellis::model {

std::string_view idPrefix(Kind kind) {
  switch (kind) {
    case Kind::ServiceNetwork: return "sn";
    case Kind::Service: return "svc";
    case Kind::Listener: return "listener";
    case Kind::Rule: return "rule";
    case Kind::TargetGroup: return "tg";
    case Kind::ServiceNetworkServiceAssociation: return "snsa";
    case Kind::ServiceNetworkVpcAssociation: return "snva";
    case Kind::AccessLogSubscription: return "als";
    case Kind::ServiceNetworkResourceAssociation: return "snra";
    case Kind::ResourceGateway: return "rgw";
    case Kind::ResourceConfiguration: return "rcfg";
    case Kind::ResourceEndpointAssociation: return "rea";
    case Kind::DomainVerification: return "dv";
  }
  return "";
}

std::string_view kindName(Kind kind) {
  switch (kind) {
    case Kind::ServiceNetwork: return "servicenetwork";
    case Kind::Service: return "service";
    case Kind::Listener: return "listener";
    case Kind::Rule: return "rule";
    case Kind::TargetGroup: return "targetgroup";
    case Kind::ServiceNetworkServiceAssociation: return "servicenetworkserviceassociation";
    case Kind::ServiceNetworkVpcAssociation: return "servicenetworkvpcassociation";
    case Kind::AccessLogSubscription: return "accesslogsubscription";
    case Kind::ServiceNetworkResourceAssociation: return "servicenetworkresourceassociation";
    case Kind::ResourceGateway: return "resourcegateway";
    case Kind::ResourceConfiguration: return "resourceconfiguration";
    case Kind::ResourceEndpointAssociation: return "resourceendpointassociation";
    case Kind::DomainVerification: return "domainverification";
  }
  return "";
}

std::string_view resourceType(Kind kind) {
  switch (kind) {
    case Kind::ServiceNetwork: return "SERVICE_NETWORK";
    case Kind::Service: return "SERVICE";
    case Kind::Listener: return "LISTENER";
    case Kind::Rule: return "RULE";
    case Kind::TargetGroup: return "TARGET_GROUP";
    case Kind::ServiceNetworkServiceAssociation: return "SERVICE_NETWORK_SERVICE_ASSOCIATION";
    case Kind::ServiceNetworkVpcAssociation: return "SERVICE_NETWORK_VPC_ASSOCIATION";
    case Kind::AccessLogSubscription: return "ACCESS_LOG_SUBSCRIPTION";
    case Kind::ServiceNetworkResourceAssociation: return "SERVICE_NETWORK_RESOURCE_ASSOCIATION";
    case Kind::ResourceGateway: return "RESOURCE_GATEWAY";
    case Kind::ResourceConfiguration: return "RESOURCE_CONFIGURATION";
    case Kind::ResourceEndpointAssociation: return "RESOURCE_ENDPOINT_ASSOCIATION";
    case Kind::DomainVerification: return "DOMAIN_VERIFICATION";
  }
  return "";
}

std::string newId(Kind kind) { return std::string(idPrefix(kind)) + "-" + randomHex(17); }

bool isId(Kind kind, std::string_view id) {
  auto prefix = idPrefix(kind);
  if (id.size() != prefix.size() + 18 || id.substr(0, prefix.size()) != prefix || id[prefix.size()] != '-')
    return false;
  // snra/rea/dv are hex in the model; the rest allow [0-9a-z]. dv also allows upper-case hex.
  bool hexOnly = kind == Kind::ServiceNetworkResourceAssociation || kind == Kind::ResourceEndpointAssociation ||
                 kind == Kind::DomainVerification;
  for (char c : id.substr(prefix.size() + 1)) {
    bool ok = (c >= '0' && c <= '9') || (hexOnly ? (c >= 'a' && c <= 'f') : (c >= 'a' && c <= 'z')) ||
              (kind == Kind::DomainVerification && c >= 'A' && c <= 'F');
    if (!ok) return false;
  }
  return true;
}

std::string arnFor(const ArnContext& ctx, Kind kind, std::string_view id) {
  return "arn:" + ctx.partition + ":vpc-lattice:" + ctx.region + ":" + ctx.accountId + ":" +
         std::string(kindName(kind)) + "/" + std::string(id);
}

std::string listenerArn(const ArnContext& ctx, std::string_view serviceId, std::string_view listenerId) {
  return arnFor(ctx, Kind::Service, serviceId) + "/listener/" + std::string(listenerId);
}

std::string ruleArn(const ArnContext& ctx, std::string_view serviceId, std::string_view listenerId,
                    std::string_view ruleId) {
  return listenerArn(ctx, serviceId, listenerId) + "/rule/" + std::string(ruleId);
}

std::optional<ParsedArn> parseArn(std::string_view arn) {
  auto parts = split(arn, ':');
  if (parts.size() < 6 || parts[0] != "arn" || parts[1].empty() || parts[2].empty()) return std::nullopt;
  ParsedArn out{std::string(parts[1]), std::string(parts[2]), std::string(parts[3]), std::string(parts[4]), {}};
  size_t pos = 0;
  for (int i = 0; i < 5; ++i) pos = arn.find(':', pos) + 1;
  out.resource = std::string(arn.substr(pos));
  if (out.resource.empty()) return std::nullopt;
  return out;
}

std::optional<std::string> idFromIdentifier(Kind kind, std::string_view identifier) {
  if (isId(kind, identifier)) return std::string(identifier);
  auto arn = parseArn(identifier);
  if (!arn || arn->service != "vpc-lattice") return std::nullopt;
  auto segments = split(arn->resource, '/');
  // Top-level: "{kindName}/{id}"; listener: "service/{svc}/listener/{id}"; rule: ".../rule/{id}".
  std::string_view word = kindName(kind);
  if (segments.size() < 2 || segments[segments.size() - 2] != word) return std::nullopt;
  // Child ARNs must name real parent ids too, or "service/x/listener/listener-…" would resolve.
  if (kind == Kind::Listener &&
      (segments.size() != 4 || segments[0] != "service" || !isId(Kind::Service, segments[1])))
    return std::nullopt;
  if (kind == Kind::Rule && (segments.size() != 6 || segments[0] != "service" || !isId(Kind::Service, segments[1]) ||
                             segments[2] != "listener" || !isId(Kind::Listener, segments[3])))
    return std::nullopt;
  if (kind != Kind::Listener && kind != Kind::Rule && segments.size() != 2) return std::nullopt;
  if (!isId(kind, segments.back())) return std::nullopt;
  return std::string(segments.back());
}

std::string serviceDnsName(std::string_view serviceName, std::string_view serviceId, std::string_view partitionId,
                           std::string_view serviceDomain) {
  std::string_view hex = serviceId.substr(serviceId.find('-') + 1);
  return std::string(serviceName) + "-" + std::string(hex) + "." + std::string(partitionId) + "." +
         std::string(serviceDomain);
}

}  // namespace trellis::model
