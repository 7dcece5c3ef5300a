// Builds store::StoreContents out of the JSON documents the control-plane API writes
// (docs/store-schema.md), so snapshot and proxy tests compile the real input format.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "store/store.h"

namespace trellis::testing {

class StoreFixture {
 public:
  using json = nlohmann::json;

  void put(const std::string& kind, const std::string& id, const json& doc) {
    for (auto& r : contents_.records) {
      if (r.kind == kind && r.id == id) {
        r.value = doc.dump();
        r.modRevision = ++contents_.revision;
        return;
      }
    }
    ++contents_.revision;
    contents_.records.push_back({kind, id, doc.dump(), contents_.revision, contents_.revision});
  }
  void erase(const std::string& kind, const std::string& id) {
    std::erase_if(contents_.records, [&](const store::Record& r) { return r.kind == kind && r.id == id; });
    ++contents_.revision;
    deletions_.emplace_back(contents_.revision, store::RecordKey{kind, id});
  }
  const store::StoreContents& contents() const { return contents_; }
  // What Store::changesSince(revision) answers for these contents.
  store::StoreChanges changesSince(int64_t revision) const {
    store::StoreChanges changes;
    changes.revision = contents_.revision;
    for (const auto& [at, key] : deletions_)
      if (at > revision) changes.deleted.push_back(key);
    for (const auto& record : contents_.records)
      if (record.modRevision > revision) changes.records.push_back(record);
    return changes;
  }

  static std::string arn(const std::string& type, const std::string& id) {
    return "arn:aws:vpc-lattice:us-east-1:111122223333:" + type + "/" + id;
  }

  void service(const std::string& id, const std::string& name, const std::string& customDomain = {},
               int idleTimeoutSeconds = 0) {
    json doc = {{"id", id},
                {"name", name},
                {"arn", arn("service", id)},
                {"authType", "NONE"},
                {"dnsEntry",
                 {{"domainName", name + "-" + id.substr(4) + ".7d67968.vpc-lattice-svcs.us-east-1.on.aws"},
                  {"hostedZoneId", "Z0"}}},
                {"status", "ACTIVE"},
                {"createdAt", "2024-01-01T00:00:00Z"},
                {"lastUpdatedAt", "2024-01-01T00:00:00Z"}};
    if (!customDomain.empty()) doc["customDomainName"] = customDomain;
    if (idleTimeoutSeconds) doc["idleTimeoutSeconds"] = idleTimeoutSeconds;
    put("service", id, doc);
  }
  static std::string generatedName(const std::string& id, const std::string& name) {
    return name + "-" + id.substr(4) + ".7d67968.vpc-lattice-svcs.us-east-1.on.aws";
  }

  static json forward(std::initializer_list<std::pair<std::string, int>> groups) {
    json list = json::array();
    for (auto& [tg, weight] : groups) list.push_back({{"targetGroupIdentifier", tg}, {"weight", weight}});
    return {{"forward", {{"targetGroups", list}}}};
  }
  static json fixed(int status) { return {{"fixedResponse", {{"statusCode", status}}}}; }

  void listener(const std::string& id, const std::string& serviceId, int port, const json& defaultAction,
                const std::string& protocol = "HTTP") {
    put("listener", id,
        {{"id", id},
         {"name", "l-" + id},
         {"arn", arn("service", serviceId + "/listener/" + id)},
         {"protocol", protocol},
         {"port", port},
         {"serviceId", serviceId},
         {"serviceArn", arn("service", serviceId)},
         {"defaultAction", defaultAction},
         {"createdAt", "2024-01-01T00:00:00Z"},
         {"lastUpdatedAt", "2024-01-01T00:00:00Z"}});
  }

  void rule(const std::string& id, const std::string& serviceId, const std::string& listenerId, int priority,
            const json& httpMatch, const json& action) {
    put("rule", id,
        {{"id", id},
         {"name", "r-" + id},
         {"arn", arn("service", serviceId + "/listener/" + listenerId + "/rule/" + id)},
         {"priority", priority},
         {"match", {{"httpMatch", httpMatch}}},
         {"action", action},
         {"isDefault", false},
         {"serviceId", serviceId},
         {"listenerId", listenerId},
         {"createdAt", "2024-01-01T00:00:00Z"},
         {"lastUpdatedAt", "2024-01-01T00:00:00Z"}});
  }

  // targets: {id, port, draining}
  struct TargetSpec {
    std::string id;
    int port = 0;
    bool draining = false;
  };
  void targetGroup(const std::string& id, int port, const std::vector<TargetSpec>& targets,
                   const json& healthCheck = json::object(), const std::string& type = "IP") {
    json list = json::array();
    for (const auto& t : targets) {
      json target = {{"id", t.id}, {"registeredAt", "2024-01-01T00:00:00Z"}};
      if (t.port) target["port"] = t.port;
      if (t.draining) target["drainingSince"] = "2024-01-01T00:00:00Z";
      list.push_back(target);
    }
    json config = {{"port", port},
                   {"protocol", "HTTP"},
                   {"protocolVersion", "HTTP1"},
                   {"ipAddressType", "IPV4"},
                   {"vpcIdentifier", "vpc-0123456789abcdef0"}};
    if (!healthCheck.empty()) config["healthCheck"] = healthCheck;
    put("targetgroup", id,
        {{"id", id},
         {"name", "tg-" + id.substr(3)},
         {"arn", arn("targetgroup", id)},
         {"type", type},
         {"config", config},
         {"status", "ACTIVE"},
         {"targets", list},
         {"createdAt", "2024-01-01T00:00:00Z"},
         {"lastUpdatedAt", "2024-01-01T00:00:00Z"}});
  }

  void serviceNetwork(const std::string& id, const std::string& name) {
    put("servicenetwork", id,
        {{"id", id}, {"name", name}, {"arn", arn("servicenetwork", id)}, {"authType", "NONE"},
         {"createdAt", "2024-01-01T00:00:00Z"}, {"lastUpdatedAt", "2024-01-01T00:00:00Z"}});
  }
  void serviceAssociation(const std::string& id, const std::string& snId, const std::string& svcId) {
    put("servicenetworkserviceassociation", id,
        {{"id", id}, {"arn", arn("servicenetworkserviceassociation", id)}, {"status", "ACTIVE"},
         {"serviceId", svcId}, {"serviceArn", arn("service", svcId)}, {"serviceNetworkId", snId},
         {"serviceNetworkArn", arn("servicenetwork", snId)}, {"createdAt", "2024-01-01T00:00:00Z"}});
  }
  void vpcAssociation(const std::string& id, const std::string& snId, const std::string& vpcId) {
    put("servicenetworkvpcassociation", id,
        {{"id", id}, {"arn", arn("servicenetworkvpcassociation", id)}, {"status", "ACTIVE"},
         {"serviceNetworkId", snId}, {"serviceNetworkArn", arn("servicenetwork", snId)}, {"vpcId", vpcId},
         {"securityGroupIds", json::array()}, {"createdAt", "2024-01-01T00:00:00Z"}});
  }
  // Makes `serviceId` reachable from `vpcId` through one shared service network.
  void reachableFrom(const std::string& vpcId, const std::string& serviceId) {
    const std::string network = "sn-000000000000000f1";
    serviceNetwork(network, "reachable");
    vpcAssociation("snva-" + vpcId.substr(4), network, vpcId);
    serviceAssociation("snsa-" + serviceId.substr(4), network, serviceId);
  }
  void accessLogSubscription(const std::string& id, const std::string& resourceId, const std::string& destination) {
    put("accesslogsubscription", id,
        {{"id", id}, {"arn", arn("accesslogsubscription", id)}, {"resourceId", resourceId},
         {"resourceArn", arn(resourceId.rfind("sn-", 0) == 0 ? "servicenetwork" : "service", resourceId)},
         {"destinationArn", destination}, {"createdAt", "2024-01-01T00:00:00Z"},
         {"lastUpdatedAt", "2024-01-01T00:00:00Z"}});
  }

 private:
  store::StoreContents contents_;
  std::vector<std::pair<int64_t, store::RecordKey>> deletions_;
};

}  // namespace trellis::testing
