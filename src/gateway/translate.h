// Gateway API (+ the AWS controller's CRDs, Services and EndpointSlices) → the Lattice objects the
// AWS Gateway API controller would create for them (https://github.com/aws/aws-application-networking-k8s; README.md, "Translation").
//
// The result is the desired state only: names of services are picked at reconcile time (they must
// not collide with what already exists), and forward actions name target groups by their key
// (TargetGroup::key) until the reconciler knows their ids.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gateway/manifest.h"

namespace trellis::gateway {

using Tags = std::map<std::string, std::string>;

inline constexpr const char* kTagBase = "application-networking.k8s.aws/";
inline constexpr const char* kControllerName = "application-networking.k8s.aws/gateway-api-controller";
inline constexpr const char* kDomainAnnotation = "application-networking.k8s.aws/lattice-assigned-domain-name";
// Tag on a route's service listing the fields apply could not translate (shown as PartiallyInvalid).
inline constexpr const char* kUnsupportedTag = "trellis/UnsupportedFields";
std::string tag(const char* key);  // kTagBase + key

struct Options {
  std::string accountId = "111122223333";
  std::string clusterName = "trellis";
  std::string vpcId = "vpc-0123456789abcdef0";  // the "cluster VPC": target groups and the default association
};

// The ManagedBy tag value: <account>/<cluster>/<vpc>.
std::string managedBy(const Options& options);

// A Gateway's listener as recorded on its service network (so routes applied later can attach).
struct GatewayListener {
  std::string name;
  std::string protocol;  // Lattice protocol: HTTP | HTTPS | TLS_PASSTHROUGH
  int port = 0;
  std::string certificateArn;
};

// A Gateway known from Lattice state (its service network's tags), for routes applied without it.
struct KnownGateway {
  std::string ns, name, className;
  std::vector<GatewayListener> listeners;
};

struct Network {
  std::string name;          // the service network's name
  std::string gatewayNs, gatewayName, gatewayClass;  // empty for a ServiceNetwork CR
  std::vector<GatewayListener> listeners;
  const Object* source = nullptr;
  bool associateVpc = false;
  std::vector<std::string> securityGroupIds;
  std::optional<std::string> authPolicy;  // set: authType AWS_IAM
  std::vector<std::string> accessLogDestinations;
  Tags tags;  // tags apply puts on the network (it owns it only if it creates it)
};

struct Target {
  std::string ip;
  int port = 0;
  bool operator<(const Target& o) const { return ip != o.ip ? ip < o.ip : port < o.port; }
  bool operator==(const Target& o) const { return ip == o.ip && port == o.port; }
};

struct TargetGroup {
  std::string key;   // identity within the apply: "HTTPRoute/ns/route/svcNs/svcName"
  std::string name;  // k8s-<svcNs>-<svcName>-<10 a-z from a hash of key and protocol>
  json config;       // CreateTargetGroup's config: port, protocol, protocolVersion, ipAddressType, vpcIdentifier, healthCheck
  Tags tags;
  std::vector<Target> targets;  // sorted
  const Object* source = nullptr;  // the route
};

struct Rule {
  int priority = 0;
  json match;   // RuleMatch ({httpMatch: ...}), as the API stores it
  json action;  // RuleAction; forward entries name target groups by key
  json trellis = json::object();  // the rule's Trellis extensions (API member `trellis`); empty: none
};

struct Listener {
  std::string name, protocol;
  int port = 0;
  json defaultAction;
  std::vector<Rule> rules;
};

struct Service {
  std::string routeKind;  // HTTPRoute | GRPCRoute | TLSRoute
  std::string routeNs, routeName;
  std::string nameOverride;  // service-name-override annotation
  std::string customDomainName, certificateArn;
  std::vector<std::string> networks;  // service network names to associate with (none: standalone)
  std::vector<Listener> listeners;
  std::optional<std::string> authPolicy;
  std::vector<std::string> accessLogDestinations;
  Tags tags;
  const Object* source = nullptr;
};

struct Desired {
  std::vector<Network> networks;
  std::vector<Service> services;
  std::vector<TargetGroup> targetGroups;
  std::vector<std::string> warnings;  // features the AWS controller ignores, reported instead of dropped
};

// Translates `objects`. `known` holds Gateways recorded in Lattice state, used when a route's parent
// Gateway is not among `objects`. Throws ManifestError (file, object, field) for anything invalid or
// referring to something missing.
Desired translate(const std::vector<Object>& objects, const Options& options,
                  const std::vector<KnownGateway>& known = {});

// --- Names (pure functions, shared with the reconciler and the tests) ---

// The controller's Truncate: at most `n` characters, without leading or trailing '-'.
std::string truncateName(const std::string& s, size_t n);
// The controller's service name, `Truncate(route,20)-Truncate(ns,18)`, when that is exact; otherwise
// (truncated, or characters Lattice names cannot hold) a shorter form with an 8-hex hash of ns/route,
// so two routes never share a name.
std::string serviceName(const std::string& routeName, const std::string& routeNs);
// The always-hashed form, used when the plain name is already taken by something else.
std::string hashedServiceName(const std::string& routeName, const std::string& routeNs);
// `<route[:20]>-<ns[:18]>-<port>-<http|https|tls>`.
std::string listenerName(const std::string& routeName, const std::string& routeNs, int port,
                         const std::string& protocol);
// `k8s-<unixCreateTime>-rule-<priority>`.
std::string ruleName(int64_t unixCreateTime, int priority);

// The health check the controller gives a target group before any TargetGroupPolicy.
json defaultHealthCheck(const std::string& protocol, const std::string& protocolVersion);

}  // namespace trellis::gateway
