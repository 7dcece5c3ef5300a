// The routing snapshot: an immutable, pre-compiled view of everything the data plane needs at one
// store revision. Built off the request path by the compiler (compile/compiler.h) and published through a
// SnapshotSource (source.h). Workers pin one snapshot per request; nothing here changes after
// publication except the HealthCell bits, which the health prober flips.
#pragma once
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/policy.h"
#include "common/request_target.h"
#include "model/config.h"
#include "snapshot/sharded_map.h"

namespace trellis::snapshot {

// The one mutable thing a snapshot points at: whether the prober currently lets a target take
// traffic. Shared by every snapshot that holds the same (target group, target, port), so a rebuild
// never resets health.
struct HealthCell {
  std::atomic<bool> healthy{false};  // false until the first successful check (INITIAL)
};

// An immutable array shared by every snapshot that holds the same compiled value, so a rebuild copies
// one pointer instead of every element (SnapshotCompiler). Reads like a const std::vector.
template <typename T>
class SharedVector {
 public:
  SharedVector() = default;
  SharedVector(std::vector<T> items)  // NOLINT: implicit, so compiled vectors assign straight in
      : items_(items.empty() ? nullptr : std::make_shared<const std::vector<T>>(std::move(items))) {}

  const T* begin() const { return items_ ? items_->data() : nullptr; }
  const T* end() const { return items_ ? items_->data() + items_->size() : nullptr; }
  size_t size() const { return items_ ? items_->size() : 0; }
  bool empty() const { return size() == 0; }
  const T& operator[](size_t i) const { return (*items_)[i]; }
  const T& at(size_t i) const {
    if (i >= size()) throw std::out_of_range("SharedVector::at");
    return (*items_)[i];
  }
  const T& front() const { return (*items_).front(); }
  const T& back() const { return (*items_).back(); }
  // Whether both hold the very same elements (not merely equal ones).
  bool sameAs(const SharedVector& other) const { return items_ == other.items_; }

 private:
  std::shared_ptr<const std::vector<T>> items_;
};

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
};

struct Target {
  std::string id;       // as registered: an IP literal or an instance id
  uint16_t port = 0;    // traffic port (the target group's port when the target has none)
  std::string address;  // resolved IP literal; empty when an INSTANCE id is unknown to the config
  std::string ipPort;   // "10.0.0.1:80" / "[fd00::1]:80", for logs and headers
  SocketAddress socketAddress;
  bool draining = false;  // deregistered: no new requests
  std::shared_ptr<HealthCell> health;

  bool resolvable() const { return socketAddress.length != 0; }
};

// The records' protocol strings, compiled once so that the data plane compares enums.
enum class ListenerProtocol { Http, Https, TlsPassthrough };
enum class TargetProtocol { Http, Https, Tcp };
enum class ProtocolVersion { Http1, Http2, Grpc };

struct HealthCheck {
  bool enabled = true;
  TargetProtocol protocol = TargetProtocol::Http;            // Http | Https
  ProtocolVersion protocolVersion = ProtocolVersion::Http1;  // Http2: h2c with prior knowledge, or ALPN h2 over TLS
  uint16_t port = 0;  // 0: the target's traffic port
  std::string path = "/";
  int intervalSeconds = 30;
  int timeoutSeconds = 5;
  int healthyThreshold = 5;
  int unhealthyThreshold = 2;
  std::vector<std::pair<int, int>> matcher{{200, 200}};  // inclusive status ranges

  bool matches(int status) const;
};

struct TargetGroup;

// The config's `lambda:` endpoint, compiled: where LAMBDA target groups send their invocations. Shared by
// every LAMBDA group of the snapshots compiled from one config.
struct LambdaEndpoint {
  std::shared_ptr<const TargetGroup> server;  // HTTP or HTTPS, one target: the endpoint's address
  std::string host;                           // the Host field and the host signed ("h:p" unless default)
  std::string pathPrefix;                     // the URL's path, without a trailing '/'
  model::LambdaSettings settings;             // credentials and timeout
  std::string region;                         // signed for
};

struct TargetGroup {
  uint64_t serial = 0;  // one per compiled target group record revision
  std::string id, arn, name;
  std::string type;                      // IP | INSTANCE | LAMBDA | ALB
  TargetProtocol protocol = TargetProtocol::Http;
  ProtocolVersion protocolVersion = ProtocolVersion::Http1;
  std::string vpcId;
  uint16_t port = 0;
  HealthCheck healthCheck;
  SharedVector<Target> targets;
  bool used = false;  // referenced by some listener or rule
  // LAMBDA: the event format (lambdaEventStructureVersion V2, else V1) and where the function runs (null:
  // no endpoint configured). Its target's ipPort is the function's ARN, for logs.
  bool lambdaEventV2 = false;
  std::shared_ptr<const LambdaEndpoint> lambda;
};

struct WeightedTargetGroup {
  std::string id;
  const TargetGroup* group = nullptr;  // null when the id names no target group (answered with 503)
  int weight = 100;
  // Owns *group, the snapshot's own targetGroups entry, which listeners shared with later snapshots
  // keep alive.
  std::shared_ptr<const TargetGroup> sharedGroup;
};

struct Action {
  enum class Kind { Forward, FixedResponse };
  uint64_t serial = 0;  // one per compiled rule or listener record revision
  Kind kind = Kind::FixedResponse;
  std::vector<WeightedTargetGroup> targetGroups;  // Forward: entries with weight 0 are dropped here
  int totalWeight = 0;
  int statusCode = 404;  // FixedResponse
};

struct HeaderMatch {
  enum class Kind { Exact, Prefix, Contains };
  std::string name;  // lower-case
  Kind kind = Kind::Exact;
  std::string value;  // lower-cased when !caseSensitive
  bool caseSensitive = false;
};

struct HttpMatch {
  enum class PathKind { Any, Exact, Prefix };
  std::string method;  // empty: any
  PathKind pathKind = PathKind::Any;
  std::string path;  // lower-cased when !pathCaseSensitive
  bool pathCaseSensitive = false;
  std::vector<HeaderMatch> headers;
};

// A query parameter match (Trellis extension): case-sensitive on the decoded name and value.
struct QueryMatch {
  enum class Kind { Exact, Prefix, Present };
  std::string name;
  Kind kind = Kind::Exact;
  std::string value;  // Exact, Prefix
};

// Trellis extensions that change a request or its response (names lower-case).
struct HeaderModifier {
  std::vector<std::pair<std::string, std::string>> set, add;
  std::vector<std::string> remove;
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
};

struct PathModifier {
  enum class Kind { None, ReplaceFullPath, ReplacePrefixMatch };
  Kind kind = Kind::None;
  std::string value;
};

struct UrlRewrite {
  std::string hostname;  // empty: keep the Host
  PathModifier path;
};

struct Redirect {
  bool enabled = false;
  std::string scheme, hostname;  // empty: the request's
  PathModifier path;
  uint16_t port = 0;  // 0: the scheme's default when the scheme changes, else the listener's
  int statusCode = 302;
};

// Trellis extension: retries the proxy makes for a rule (docs in README.md, "rule extensions").
struct Retry {
  int attempts = 0;                // extra tries; 0: only the proxy's own retry of a failed connection
  int backoffMs = 0;               // wait before each retry
  std::vector<int> statusCodes;    // responses retried when attempts > 0; empty: 503
  bool retriesStatus(int status) const {
    if (statusCodes.empty()) return status == 503;
    for (int code : statusCodes)
      if (code == status) return true;
    return false;
  }
};

struct Rule {
  std::string id, arn, name;
  int priority = 0;
  HttpMatch match;
  // Trellis extensions: the rule matches when `match` or any of `alternatives` does, and every one of
  // `queries` does too.
  std::vector<HttpMatch> alternatives;
  std::vector<QueryMatch> queries;
  HeaderModifier requestHeaders, responseHeaders;
  UrlRewrite rewrite;
  Redirect redirect;  // enabled: answered by the proxy instead of `action`
  // Until the response head comes from a target: the whole exchange and each attempt; 0: no such deadline.
  int requestTimeoutMs = 0, backendTimeoutMs = 0;
  Retry retry;
  Action action;
};

struct Listener {
  std::string id, arn, name;
  ListenerProtocol protocol = ListenerProtocol::Http;
  uint16_t port = 0;
  SharedVector<Rule> rules;  // ascending priority
  Action defaultAction;
};

struct AccessLogDestination {
  std::string subscriptionId;
  std::string destinationArn;
  std::string resourceId;  // the service or service network the subscription is on
  // A Firehose destination's HTTP endpoint, from the config (accessLogs.firehose); empty: none configured.
  std::string firehoseUrl, firehoseAccessKey;
  std::string firehoseCaFile;  // https: PEM bundle to verify it against; empty: the system trust store
};

// An auth policy compiled once per snapshot. Null when the resource has none, or when the stored
// one does not parse (logged): either way an AWS_IAM layer without a policy denies.
using AuthPolicyPtr = std::shared_ptr<const auth::Policy>;

struct ServiceNetwork {
  std::string id, arn, name, authType;
  bool usesIam = false;  // authType AWS_IAM
  AuthPolicyPtr authPolicy;
  std::vector<AccessLogDestination> accessLogs;  // subscriptions with log type SERVICE
};

struct Service {
  std::string id, arn, name, authType;
  bool usesIam = false;  // authType AWS_IAM
  AuthPolicyPtr authPolicy;
  std::vector<std::string> hostNames;  // lower-case: generated DNS name, customDomainName
  std::string generatedName, customDomainName;  // lower-case; either may be empty
  std::string certificateArn;                   // for HTTPS to customDomainName
  std::vector<std::pair<std::string, std::string>> tags;  // aws:ResourceTag/* in auth policies
  int idleTimeoutSeconds = 60;
  SharedVector<Listener> listeners;  // shared with earlier snapshots while their records stay unchanged
  // Associated (ACTIVE) service networks: the snapshot's own serviceNetworks entries.
  std::vector<const ServiceNetwork*> networks;
  std::vector<AccessLogDestination> accessLogs;  // the service's own and its networks'

  const Listener* listenerOnPort(uint16_t port) const;
};

// A client or CIDR address in one 128-bit space. IPv4 is kept IPv4-mapped (::ffff:a.b.c.d) so one
// table serves both families, with the family kept apart so ::/0 never matches an IPv4 client.
struct Address {
  uint64_t high = 0, low = 0;
  bool v4 = false;
  bool operator==(const Address&) const = default;
};

// Reads a sockaddr_in / sockaddr_in6 (an IPv4-mapped IPv6 peer counts as IPv4); false for other families.
bool addressOf(const sockaddr* address, Address& out);

struct Prefix {
  Address network;  // host bits zero
  int length = 0;   // 0-128 in the mapped space (an IPv4 /24 is 120)

  // "10.0.0.0/16", "fd00::/8", or a bare address (a host prefix); false when malformed.
  static bool parse(std::string_view cidr, Prefix& out);
  bool contains(const Address& address) const;
};

// What an association's security groups let in: a source CIDR and a listener port range.
struct IngressAllowance {
  Prefix source;
  uint16_t fromPort = 0, toPort = 65535;
};

// A VPC of the config with everything the data plane asks about a client in it, precomputed.
struct Vpc {
  std::string id;
  std::string arn;  // arn:{partition}:ec2:{region}:{account}:vpc/{id}
  std::vector<Prefix> cidrs;
  std::vector<const ServiceNetwork*> networks;  // through its SNVAs (at most one: a quota the API enforces)
  // Whether an association names security groups; when it does, only `ingress` may connect.
  bool securityGroupsApply = false;
  std::vector<IngressAllowance> ingress;

  // The network through which a client here reaches `service` (the service's first association this
  // VPC shares), or null: the service is not reachable from here. Allocation-free.
  const ServiceNetwork* networkFor(const Service& service) const {
    for (const auto* network : service.networks)
      for (const auto* mine : networks)
        if (mine == network) return network;
    return nullptr;
  }
  // Whether a client at `address` may open a connection to listener port `port`. Allocation-free.
  bool admits(const Address& address, uint16_t port) const;
};

// Longest-prefix match over the VPCs' CIDRs: one hash lookup per distinct prefix length, longest first.
class VpcTable {
 public:
  void add(const Prefix& prefix, const Vpc* vpc);  // a duplicate CIDR keeps the first VPC
  const Vpc* find(const Address& address) const;

 private:
  struct Hash {
    size_t operator()(const Address& a) const {
      return std::hash<uint64_t>()(a.high * 0x9e3779b97f4a7c15ull ^ a.low) ^ static_cast<size_t>(a.v4);
    }
  };
  struct Level {
    int length;
    std::unordered_map<Address, const Vpc*, Hash> networks;
  };
  std::vector<Level> levels_;  // descending length
};

// A config identity as the data plane sees a SigV4 caller: its compiled identity-based policy and what
// Lattice writes about it, prepared once per snapshot so the request path only copies.
struct Caller {
  model::Identity identity;
  AuthPolicyPtr policy;         // identity-based policy; null: none (allow)
  // The values of x-amzn-lattice-identity and x-amzn-lattice-identity-tags, sent to targets.
  std::string identityHeader, identityTagsHeader;
  std::string tagsJson;         // the access log's callerPrincipalTags; empty: no tags
};

struct Snapshot {
  Snapshot() = default;
  Snapshot(const Snapshot&) = delete;  // holds pointers into itself
  Snapshot& operator=(const Snapshot&) = delete;

  int64_t revision = 0;
  std::string region, accountId, partition;
  int64_t connectionLifetimeMs = 10 * 60 * 1000;  // config dataPlane.connectionLifetimeSeconds
  bool verifyTargetCertificates = false;          // config dataPlane (a Trellis extension)
  std::string targetCaFile;
  // config dataPlane: what hostile and slow clients get (docs/request-paths.md, docs/configuration.md).
  int64_t requestHeadTimeoutMs = 10 * 1000;
  int requestBodyMinBytesPerSecond = 512;
  int maxConnectionsPerTarget = 1024;
  EncodedSlashes encodedSlashes = EncodedSlashes::Reject;
  // By id. Shared, entry by entry, with the snapshots before and after this one (SnapshotCompiler).
  ShardedMap<std::shared_ptr<const Service>> services;
  ShardedMap<const Service*> servicesByHost;  // lower-case host name → an entry of `services`
  // Every proper ancestor of those host names ("b.c" and "c" for "a.b.c") → how many of them are below it:
  // lets DNS answer a name nothing is under with NXDOMAIN without walking the services.
  ShardedMap<size_t> hostAncestors;
  ShardedMap<std::shared_ptr<const TargetGroup>> targetGroups;
  ShardedMap<std::shared_ptr<const ServiceNetwork>> serviceNetworks;
  std::unordered_map<std::string, Vpc> vpcs;  // by id: the config's VPCs (node-based: pointers stay valid)
  VpcTable vpcTable;
  const Vpc* defaultVpc = nullptr;  // config `defaultVpc`: where clients outside every VPC belong
  std::vector<uint16_t> httpListenerPorts;  // sorted, unique: the ports the HTTP proxy serves
  std::vector<uint16_t> listenerPorts;      // sorted, unique: every listener's port (HTTP, HTTPS, TLS_PASSTHROUGH)
  // SigV4 callers by access key id (config identities).
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  std::unordered_map<std::string, Caller, KeyHash, std::equal_to<>> callers;

  // `host` lower-case, without port. Allocation-free.
  const Service* serviceByHost(std::string_view host) const {
    const Service* const* service = servicesByHost.find(host);
    return service ? *service : nullptr;
  }
  // The source VPC of a client (sockaddr_in/in6): the longest CIDR holding its address, else the
  // default VPC, else null (the client is refused). Allocation-free: the accept path calls it.
  const Vpc* sourceVpc(const sockaddr* address) const;
  const Vpc* sourceVpc(const Address& address) const;
  // sourceVpc's id, or empty.
  std::string vpcOf(const sockaddr* address) const;
  // The caller that owns `accessKeyId`, or null. Allocation-free.
  const Caller* callerByAccessKey(std::string_view accessKeyId) const {
    auto it = callers.find(accessKeyId);
    return it == callers.end() ? nullptr : &it->second;
  }
  // The service network through which a client in `vpcId` reaches `service`, or null.
  const ServiceNetwork* networkFor(const Service& service, std::string_view vpcId) const;
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;


}  // namespace trellis::snapshot
