#include "api/routes.h"

#include "common/strings.h"

namespace trellis::api {

const std::vector<Route>& allRoutes() {
  static const std::vector<Route> routes = {
      {"BatchUpdateRule", "PATCH", "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules", 200},
      {"CreateAccessLogSubscription", "POST", "/accesslogsubscriptions", 201},
      {"CreateListener", "POST", "/services/{serviceIdentifier}/listeners", 201},
      {"CreateResourceConfiguration", "POST", "/resourceconfigurations", 201},
      {"CreateResourceGateway", "POST", "/resourcegateways", 201},
      {"CreateRule", "POST", "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules", 201},
      {"CreateService", "POST", "/services", 201},
      {"CreateServiceNetwork", "POST", "/servicenetworks", 201},
      {"CreateServiceNetworkResourceAssociation", "POST", "/servicenetworkresourceassociations", 201},
      {"CreateServiceNetworkServiceAssociation", "POST", "/servicenetworkserviceassociations", 200},
      {"CreateServiceNetworkVpcAssociation", "POST", "/servicenetworkvpcassociations", 200},
      {"CreateTargetGroup", "POST", "/targetgroups", 201},
      {"DeleteAccessLogSubscription", "DELETE", "/accesslogsubscriptions/{accessLogSubscriptionIdentifier}", 204},
      {"DeleteAuthPolicy", "DELETE", "/authpolicy/{resourceIdentifier}", 204},
      {"DeleteDomainVerification", "DELETE", "/domainverifications/{domainVerificationIdentifier}", 200},
      {"DeleteListener", "DELETE", "/services/{serviceIdentifier}/listeners/{listenerIdentifier}", 204},
      {"DeleteResourceConfiguration", "DELETE", "/resourceconfigurations/{resourceConfigurationIdentifier}", 204},
      {"DeleteResourceEndpointAssociation", "DELETE",
       "/resourceendpointassociations/{resourceEndpointAssociationIdentifier}", 200},
      {"DeleteResourceGateway", "DELETE", "/resourcegateways/{resourceGatewayIdentifier}", 200},
      {"DeleteResourcePolicy", "DELETE", "/resourcepolicy/{resourceArn}", 204},
      {"DeleteRule", "DELETE", "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules/{ruleIdentifier}",
       204},
      {"DeleteService", "DELETE", "/services/{serviceIdentifier}", 200},
      {"DeleteServiceNetwork", "DELETE", "/servicenetworks/{serviceNetworkIdentifier}", 204},
      {"DeleteServiceNetworkResourceAssociation", "DELETE",
       "/servicenetworkresourceassociations/{serviceNetworkResourceAssociationIdentifier}", 200},
      {"DeleteServiceNetworkServiceAssociation", "DELETE",
       "/servicenetworkserviceassociations/{serviceNetworkServiceAssociationIdentifier}", 200},
      {"DeleteServiceNetworkVpcAssociation", "DELETE",
       "/servicenetworkvpcassociations/{serviceNetworkVpcAssociationIdentifier}", 200},
      {"DeleteTargetGroup", "DELETE", "/targetgroups/{targetGroupIdentifier}", 200},
      {"DeregisterTargets", "POST", "/targetgroups/{targetGroupIdentifier}/deregistertargets", 200},
      {"GetAccessLogSubscription", "GET", "/accesslogsubscriptions/{accessLogSubscriptionIdentifier}", 200},
      {"GetAuthPolicy", "GET", "/authpolicy/{resourceIdentifier}", 200},
      {"GetDomainVerification", "GET", "/domainverifications/{domainVerificationIdentifier}", 200},
      {"GetListener", "GET", "/services/{serviceIdentifier}/listeners/{listenerIdentifier}", 200},
      {"GetResourceConfiguration", "GET", "/resourceconfigurations/{resourceConfigurationIdentifier}", 200},
      {"GetResourceGateway", "GET", "/resourcegateways/{resourceGatewayIdentifier}", 200},
      {"GetResourcePolicy", "GET", "/resourcepolicy/{resourceArn}", 200},
      {"GetRule", "GET", "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules/{ruleIdentifier}", 200},
      {"GetService", "GET", "/services/{serviceIdentifier}", 200},
      {"GetServiceNetwork", "GET", "/servicenetworks/{serviceNetworkIdentifier}", 200},
      {"GetServiceNetworkResourceAssociation", "GET",
       "/servicenetworkresourceassociations/{serviceNetworkResourceAssociationIdentifier}", 200},
      {"GetServiceNetworkServiceAssociation", "GET",
       "/servicenetworkserviceassociations/{serviceNetworkServiceAssociationIdentifier}", 200},
      {"GetServiceNetworkVpcAssociation", "GET",
       "/servicenetworkvpcassociations/{serviceNetworkVpcAssociationIdentifier}", 200},
      {"GetTargetGroup", "GET", "/targetgroups/{targetGroupIdentifier}", 200},
      {"ListAccessLogSubscriptions", "GET", "/accesslogsubscriptions", 200},
      {"ListDomainVerifications", "GET", "/domainverifications", 200},
      {"ListListeners", "GET", "/services/{serviceIdentifier}/listeners", 200},
      {"ListResourceConfigurations", "GET", "/resourceconfigurations", 200},
      {"ListResourceEndpointAssociations", "GET", "/resourceendpointassociations", 200},
      {"ListResourceGateways", "GET", "/resourcegateways", 200},
      {"ListRules", "GET", "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules", 200},
      {"ListServiceNetworkResourceAssociations", "GET", "/servicenetworkresourceassociations", 200},
      {"ListServiceNetworks", "GET", "/servicenetworks", 200},
      {"ListServiceNetworkServiceAssociations", "GET", "/servicenetworkserviceassociations", 200},
      {"ListServiceNetworkVpcAssociations", "GET", "/servicenetworkvpcassociations", 200},
      {"ListServiceNetworkVpcEndpointAssociations", "GET", "/servicenetworkvpcendpointassociations", 200},
      {"ListServices", "GET", "/services", 200},
      {"ListTagsForResource", "GET", "/tags/{resourceArn}", 200},
      {"ListTargetGroups", "GET", "/targetgroups", 200},
      {"ListTargets", "POST", "/targetgroups/{targetGroupIdentifier}/listtargets", 200},
      {"PutAuthPolicy", "PUT", "/authpolicy/{resourceIdentifier}", 200},
      {"PutResourcePolicy", "PUT", "/resourcepolicy/{resourceArn}", 200},
      {"RegisterTargets", "POST", "/targetgroups/{targetGroupIdentifier}/registertargets", 200},
      {"StartDomainVerification", "POST", "/domainverifications", 201},
      {"TagResource", "POST", "/tags/{resourceArn}", 200},
      {"UntagResource", "DELETE", "/tags/{resourceArn}", 200},
      {"UpdateAccessLogSubscription", "PATCH", "/accesslogsubscriptions/{accessLogSubscriptionIdentifier}", 200},
      {"UpdateListener", "PATCH", "/services/{serviceIdentifier}/listeners/{listenerIdentifier}", 200},
      {"UpdateResourceConfiguration", "PATCH", "/resourceconfigurations/{resourceConfigurationIdentifier}", 200},
      {"UpdateResourceGateway", "PATCH", "/resourcegateways/{resourceGatewayIdentifier}", 200},
      {"UpdateRule", "PATCH", "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules/{ruleIdentifier}",
       200},
      {"UpdateService", "PATCH", "/services/{serviceIdentifier}", 200},
      {"UpdateServiceNetwork", "PATCH", "/servicenetworks/{serviceNetworkIdentifier}", 200},
      {"UpdateServiceNetworkVpcAssociation", "PATCH",
       "/servicenetworkvpcassociations/{serviceNetworkVpcAssociationIdentifier}", 200},
      {"UpdateTargetGroup", "PATCH", "/targetgroups/{targetGroupIdentifier}", 200},
  };
  return routes;
}

RouteMatch matchRoute(std::string_view method, std::string_view rawPath) {
  RouteMatch result;
  auto segments = split(rawPath, '/');
  // A trailing slash is not part of any route.
  if (segments.size() > 1 && segments.back().empty()) segments.pop_back();
  for (const auto& route : allRoutes()) {
    auto pattern = split(route.pattern, '/');
    if (pattern.size() != segments.size()) continue;
    std::vector<std::string> labels;
    bool match = true, badEncoding = false;
    for (size_t i = 0; i < pattern.size() && match; ++i) {
      if (!pattern[i].empty() && pattern[i].front() == '{') {
        if (segments[i].empty()) {
          match = false;
          break;
        }
        auto decoded = percentDecode(segments[i]);
        if (!decoded) badEncoding = true;
        labels.push_back(decoded ? *decoded : std::string(segments[i]));
      } else {
        match = pattern[i] == segments[i];
      }
    }
    if (!match) continue;
    if (method != route.method) {
      result.methodMismatch = true;
      continue;
    }
    result.route = &route;
    result.labels = std::move(labels);
    result.badEncoding = badEncoding;
    return result;
  }
  return result;
}

}  // namespace trellis::api
