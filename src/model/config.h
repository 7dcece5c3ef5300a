// trellisd's configuration: what a cloud provider knows and Lattice's API does not create
// (account, region, identities, VPCs, security groups, instances), plus Trellis's own settings.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace trellis::model {

struct Identity {
  std::string arn;  // arn:aws:iam::111122223333:role/admin
  std::string accessKeyId;
  std::string secretAccessKey;
  std::string sessionToken;  // empty: none required
  std::map<std::string, std::string> tags;
  std::string orgId;
  std::vector<std::string> orgPaths;
  std::string policy;  // identity-based policy JSON; empty means allow
  int policyLine = 0;  // where `policy` is in the config file, for errors found after loading
};

struct Vpc {
  std::string id;
  std::vector<std::string> cidrs;
};

struct IngressRule {
  std::string cidr;
  uint16_t fromPort = 0;
  uint16_t toPort = 65535;
};

struct SecurityGroup {
  std::string id;
  std::string vpcId;
  std::vector<IngressRule> ingress;
};

struct Instance {
  std::string id;
  std::string vpcId;
  std::string address;
};

// An Application Load Balancer that ALB target groups can name (RegisterTargets with its ARN), under `albs:`.
struct Alb {
  std::string arn;  // arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/NAME/ID
  std::string vpcId;
  std::string address;  // the IP address its listeners answer on
};

// Where the functions of LAMBDA target groups run, under `lambda:`: a server speaking the Lambda Invoke API
// (POST /2015-03-31/functions/{name}/invocations), as the AWS SDKs call it with an endpoint override.
struct LambdaSettings {
  std::string endpoint;  // http(s)://host[:port][/prefix]; empty: LAMBDA targets are unreachable (503)
  // SigV4 for service `lambda` in the config's region; empty: requests go unsigned.
  std::string accessKeyId, secretAccessKey, sessionToken;
  int timeoutSeconds = 60;  // an invocation that takes longer answers 504
};

// Adjustable quotas, overridable under `quotas:` in the config. Defaults:
// https://docs.aws.amazon.com/vpc-lattice/latest/ug/quotas.html
struct Quotas {
  int serviceNetworks = 50;
  int services = 2000;
  int targetGroups = 500;
  int listenersPerService = 2;
  int rulesPerListener = 10;
  int targetGroupsPerService = 10;
  int targetsPerTargetGroup = 1000;
  int serviceAssociationsPerServiceNetwork = 500;
  int vpcAssociationsPerServiceNetwork = 500;
  int resourceGatewaysPerVpc = 100;
  int resourceConfigurations = 2000;
  int childResourceConfigurationsPerGroup = 60;
  int resourceAssociationsPerServiceNetwork = 500;
  int domainVerifications = 5;
};

// A VPC endpoint (AWS makes them with EC2's CreateVpcEndpoint, which Trellis has not), under `vpcEndpoints:`. Type
// Resource reaches one resource configuration (a resource endpoint association); type ServiceNetwork reaches a service
// network (listed by ListServiceNetworkVpcEndpointAssociations).
struct VpcEndpoint {
  std::string id;  // vpce- and 17 hex digits
  std::string vpcId;
  std::string type;    // "Resource" or "ServiceNetwork"
  std::string target;  // the resource configuration's or the service network's ARN
};

// The DNS service directory (trellisd --dns-listen), under `dns:`.
struct DnsSettings {
  std::vector<std::string> answerAddresses;  // what service names resolve to; empty: the --proxy-bind address
  std::vector<std::string> upstreams;        // "IP", "IP:PORT", "[IPv6]:PORT"; empty: other names are REFUSED
  int ttl = 5;                               // seconds; low, so association changes show quickly
};

// The proxy's own limits, under `dataPlane:`.
struct DataPlaneSettings {
  int connectionLifetimeSeconds = 600;  // Lattice's limit: then HTTP/1.1 closes after a response, HTTP/2 sends GOAWAY
  // Trellis extension: HTTPS targets must present a certificate that chains to `targetCaFile` (PEM; the system's
  // trust store when empty) and names the target's address. Lattice never verifies them. Read at start.
  bool verifyTargetCertificates = false;
  std::string targetCaFile;
  // Hostile and slow clients (docs/request-paths.md, docs/configuration.md). A request head must arrive
  // whole within this many seconds of its first byte (else 408 and close).
  int requestHeadTimeoutSeconds = 10;
  // An HTTP/1.1 request body must arrive at this many bytes per second at least, over each 10 s the proxy
  // waits for it (else 408, or the connection is cut once the response has begun); 0: no minimum.
  int requestBodyMinBytesPerSecond = 512;
  // Connections one proxy keeps open to one target (in use and idle); beyond them a request answers 503.
  int maxConnectionsPerTarget = 1024;
  // `%2F`, `%5C` and `\` in a request path: refused with 400 unless `keep` (then matched as they are).
  bool keepEncodedSlashes = false;
};

// A Firehose delivery stream's HTTP endpoint (under `accessLogs: firehose: NAME:`): access-log
// subscriptions whose destination is arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME post there.
struct FirehoseEndpoint {
  std::string url;        // http://host[:port][/path] or https://... (certificate verified)
  std::string accessKey;  // sent as X-Amz-Firehose-Access-Key; empty: none
  std::string caFile;     // https: PEM bundle to verify the endpoint against; empty: the system trust store
};

// Where access-log destinations outside the data dir go, under `accessLogs:`.
struct AccessLogSettings {
  std::map<std::string, FirehoseEndpoint> firehose;  // by delivery stream name
};

struct Config {
  std::string region = "us-east-1";
  std::string accountId = "111122223333";
  std::string partition = "aws";
  // Parent domain of generated service names: {name}-{id}.{partitionId}.{serviceDomain}
  std::string serviceDomain;  // default: vpc-lattice-svcs.{region}.on.aws
  std::string partitionId = "7d67968";
  std::vector<Identity> identities;
  std::vector<Vpc> vpcs;
  // Where a client whose address is in no VPC's CIDR belongs; empty: such clients are refused. For development.
  std::string defaultVpc;
  std::vector<SecurityGroup> securityGroups;
  std::vector<Instance> instances;
  std::vector<Alb> albs;
  LambdaSettings lambda;
  std::vector<VpcEndpoint> vpcEndpoints;
  Quotas quotas;
  int drainSeconds = 60;  // deregistration delay for targets
  DnsSettings dns;
  DataPlaneSettings dataPlane;
  AccessLogSettings accessLogs;

  std::string effectiveServiceDomain() const {
    return serviceDomain.empty() ? "vpc-lattice-svcs." + region + ".on.aws" : serviceDomain;
  }
  const Identity* identityByAccessKey(const std::string& accessKeyId) const;
};

using ConfigPtr = std::shared_ptr<const Config>;

// Loads and validates a YAML config. Unknown keys and bad values throw ConfigError naming
// the file, line and reason.
Config loadConfig(const std::string& path);
Config parseConfig(const std::string& yamlText, const std::string& fileName);

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The identity trellisd makes up when started without a config (printed at start).
Identity makeDevelopmentIdentity(const std::string& accountId);

}  // namespace trellis::model
