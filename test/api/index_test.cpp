// Every index the API keeps (src/api/indexes.h) stays what a full scan says, the cascades that find children
// through an index leave nothing behind, and the List operations that page through an index list what a scan
// would, through every path that writes one: creates, updates, BatchUpdateRule, deletes and their cascades,
// and refused calls (a target group another service uses, deletes of what is in use). A seeded random
// sequence of API calls, checked after each one; plus the indexes built for a store written before them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "api/api.h"
#include "api/index_check.h"
#include "api/indexes.h"
#include "common/log.h"
#include "model/config.h"
#include "store/store.h"

namespace trellis::api {
namespace {

using json = nlohmann::json;
const std::string kVpc = "vpc-0123456789abcdef0";
// VPC ids where one is a prefix of another, as an index key must not confuse them.
const std::vector<std::string> kVpcs = {kVpc, "vpc-01234567", "vpc-0fedcba9876543210"};

class Indexes : public ::testing::Test {
 protected:
  Indexes() {
    setLogLevel(LogLevel::Error);
    char dir[] = "/tmp/trellis-indexes-XXXXXX";
    dir_ = mkdtemp(dir);
    store_ = store::openSqliteStore(dir_);
    for (size_t i = 0; i < kVpcs.size(); ++i)
      config_.vpcs.push_back({kVpcs[i], {"10." + std::to_string(i) + ".0.0/16"}});
    identity_.arn = "arn:aws:iam::111122223333:role/test";
    startApi();
  }
  ~Indexes() override {
    api_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void startApi() {
    auto pinned = std::make_shared<const model::Config>(config_);
    api_ = std::make_unique<Api>(
        *store_, [pinned] { return pinned; },
        [this](const HttpRequest&, const model::Config&) {
          return std::variant<const model::Identity*, ApiError>(&identity_);
        });
  }
  // One API call; the response's JSON body, or null when it failed.
  json call(const std::string& method, const std::string& path, const json& body = nullptr,
            const std::string& query = "") {
    HttpRequest request;
    request.method = method;
    request.path = path;
    request.query = query;
    request.target = path + (query.empty() ? "" : "?" + query);
    request.headers = {{"host", "localhost"}, {"content-type", "application/json"}};
    if (!body.is_null()) request.body = body.dump();
    HttpResponse response = api_->handle(request);
    if (response.status / 100 != 2) {
      lastError_ = response.body;
      return nullptr;
    }
    return response.body.empty() ? json::object() : json::parse(response.body);
  }
  // Every item of a List call, a page of `pageSize` at a time, by "id"; "!error" when a call failed.
  std::set<std::string> listAll(const std::string& path, const std::string& query, int pageSize) {
    std::set<std::string> ids;
    std::string token;
    for (int pages = 0; pages < 1000; ++pages) {
      std::string q = query + (query.empty() ? "" : "&") + "maxResults=" + std::to_string(pageSize);
      if (!token.empty()) q += "&nextToken=" + token;
      json page = call("GET", path, nullptr, q);
      if (page.is_null()) return {"!error " + lastError_};
      for (const auto& item : page["items"]) EXPECT_TRUE(ids.insert(item.value("id", "")).second) << "listed twice";
      if (!page.contains("nextToken")) return ids;
      token = page["nextToken"];
    }
    return {"!endless"};
  }
  // The ids of the records of `kind` whose `member` is `value`: what a scan says a List should list.
  std::set<std::string> scan(const char* kind, const char* member, const std::string& value) {
    std::set<std::string> ids;
    for (const auto& record : store_->list(kind))
      if (json::parse(record.value).value(member, "") == value) ids.insert(record.id);
    return ids;
  }
  static json forward(const std::string& tg) {
    return {{"forward", {{"targetGroups", json::array({{{"targetGroupIdentifier", tg}, {"weight", 100}}})}}}};
  }

  std::string lastError_;  // the body of the last failed call, for failure messages
  std::string dir_;
  model::Config config_;
  model::Identity identity_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Api> api_;
};

TEST_F(Indexes, EqualFullScansThroughARandomSequenceOfCalls) {
  std::mt19937 random(12345);
  auto pick = [&](auto& list) -> auto& { return list[random() % list.size()]; };
  std::vector<std::string> services, groups;
  struct Listener {
    std::string service, id;
    std::vector<std::string> rules;
  };
  std::vector<Listener> listeners;
  int serial = 0;
  std::vector<std::string> networks;
  auto newService = [&] {
    json body = {{"name", "service-" + std::to_string(++serial)}};
    // Some share a custom domain name, which a network may hold once.
    if (random() % 3 == 0) body["customDomainName"] = "d" + std::to_string(random() % 3) + ".example.com";
    json s = call("POST", "/services", body);
    ASSERT_FALSE(s.is_null()) << lastError_;
    services.push_back(s["id"]);
  };
  for (int i = 0; i < 3; ++i) newService();
  auto newGroup = [&] {
    json tg = call("POST", "/targetgroups",
                   {{"name", "group-" + std::to_string(++serial)},
                    {"type", random() % 2 ? "IP" : "INSTANCE"},
                    {"config", {{"port", 80}, {"protocol", "HTTP"}, {"vpcIdentifier", pick(kVpcs)}}}});
    ASSERT_FALSE(tg.is_null()) << lastError_;
    groups.push_back(tg["id"]);
  };
  for (int i = 0; i < 5; ++i) newGroup();
  // Any record of `kind`, or "" when there is none.
  auto anyOf = [&](const char* kind) -> std::string {
    auto records = store_->list(kind);
    return records.empty() ? "" : records[random() % records.size()].id;
  };
  auto logDestination = [&]() -> std::string {
    switch (random() % 3) {
      case 0: return "arn:aws:logs:us-west-2:111122223333:log-group:lattice";
      case 1: return "arn:aws:s3:::lattice-logs";
      default: return "arn:aws:firehose:us-west-2:111122223333:deliverystream/lattice";
    }
  };
  auto action = [&]() -> json {
    return random() % 4 ? forward(pick(groups)) : json{{"fixedResponse", {{"statusCode", 404}}}};
  };
  int succeeded = 0;
  std::map<std::string, int> wins;  // successful calls by operation
  for (int step = 0; step < 600; ++step) {
    int op = static_cast<int>(random() % 16);
    json out;
    std::string what;
    if (op == 0 || listeners.empty()) {
      std::string service = pick(services);
      what = "CreateListener";
      out = call("POST", "/services/" + service + "/listeners",
                 {{"name", "l-" + std::to_string(++serial)}, {"protocol", "HTTP"},
                  {"port", 1000 + serial}, {"defaultAction", action()}});
      if (!out.is_null()) listeners.push_back({service, out["id"], {}});
    } else if (op == 1) {
      Listener& l = pick(listeners);
      what = "UpdateListener";
      out = call("PATCH", "/services/" + l.service + "/listeners/" + l.id, {{"defaultAction", action()}});
    } else if (op == 2 || op == 3) {
      Listener& l = pick(listeners);
      what = "CreateRule";
      out = call("POST", "/services/" + l.service + "/listeners/" + l.id + "/rules",
                 {{"name", "r-" + std::to_string(++serial)}, {"priority", serial},
                  {"match", {{"httpMatch", {{"pathMatch", {{"match", {{"prefix", "/p" + std::to_string(serial)}}}}}}}}},
                  {"action", action()}});
      if (!out.is_null()) l.rules.push_back(out["id"]);
    } else if (op == 4) {
      Listener& l = pick(listeners);
      if (l.rules.empty()) continue;
      what = "UpdateRule";
      out = call("PATCH", "/services/" + l.service + "/listeners/" + l.id + "/rules/" + pick(l.rules),
                 {{"action", action()}});
    } else if (op == 5) {
      Listener& l = pick(listeners);
      if (l.rules.empty()) continue;
      what = "BatchUpdateRule";
      json rules = json::array();
      for (const auto& rule : l.rules) rules.push_back({{"ruleIdentifier", rule}, {"action", action()}});
      if (rules.size() > 10) rules.erase(rules.begin() + 10, rules.end());
      out = call("PATCH", "/services/" + l.service + "/listeners/" + l.id + "/rules", {{"rules", rules}});
    } else if (op == 6) {
      Listener& l = pick(listeners);
      if (l.rules.empty()) continue;
      what = "DeleteRule";
      size_t i = random() % l.rules.size();
      out = call("DELETE", "/services/" + l.service + "/listeners/" + l.id + "/rules/" + l.rules[i]);
      if (!out.is_null()) l.rules.erase(l.rules.begin() + static_cast<long>(i));
    } else if (op == 7) {
      size_t i = random() % listeners.size();
      what = "DeleteListener";
      out = call("DELETE", "/services/" + listeners[i].service + "/listeners/" + listeners[i].id);
      if (!out.is_null()) {
        for (const auto& record : store_->list("rule")) {  // its rules, the default one too, went with it
          ASSERT_NE(json::parse(record.value).value("listenerId", ""), listeners[i].id) << record.id;
        }
        listeners.erase(listeners.begin() + static_cast<long>(i));
      }
    } else if (op == 9) {
      what = networks.size() < 4 ? "CreateServiceNetwork" : "DeleteServiceNetwork";  // refused while associated
      if (networks.size() < 4) {
        out = call("POST", "/servicenetworks", {{"name", "network-" + std::to_string(++serial)}});
        if (!out.is_null()) networks.push_back(out["id"]);
      } else {
        size_t i = random() % networks.size();
        out = call("DELETE", "/servicenetworks/" + networks[i]);
        if (!out.is_null()) networks.erase(networks.begin() + static_cast<long>(i));
      }
    } else if (op == 10 || op == 11) {
      if (networks.empty()) continue;
      what = "CreateServiceNetworkServiceAssociation";  // refused when associated, or for a taken custom domain
      out = call("POST", "/servicenetworkserviceassociations",
                 {{"serviceNetworkIdentifier", pick(networks)}, {"serviceIdentifier", pick(services)}});
    } else if (op == 12) {
      std::string assoc = anyOf("servicenetworkserviceassociation");
      if (assoc.empty()) continue;
      what = "DeleteServiceNetworkServiceAssociation";
      out = call("DELETE", "/servicenetworkserviceassociations/" + assoc);
    } else if (op == 13) {
      std::string assoc = anyOf("servicenetworkvpcassociation");
      if (networks.empty()) continue;
      if (assoc.empty() || random() % 2) {
        what = "CreateServiceNetworkVpcAssociation";  // refused when the VPC has one
        out = call("POST", "/servicenetworkvpcassociations",
                   {{"serviceNetworkIdentifier", pick(networks)}, {"vpcIdentifier", pick(kVpcs)}});
      } else {
        what = "DeleteServiceNetworkVpcAssociation";
        out = call("DELETE", "/servicenetworkvpcassociations/" + assoc);
      }
    } else if (op == 14) {
      std::string subscription = anyOf("accesslogsubscription");
      if (subscription.empty() || random() % 2) {
        what = "CreateAccessLogSubscription";  // refused for a second one of a destination type
        std::string resource = !networks.empty() && random() % 2 ? pick(networks) : pick(services);
        out = call("POST", "/accesslogsubscriptions",
                   {{"resourceIdentifier", resource}, {"destinationArn", logDestination()}});
      } else {
        what = "UpdateOrDeleteAccessLogSubscription";
        out = random() % 2 ? call("PATCH", "/accesslogsubscriptions/" + subscription,
                                  {{"destinationArn", logDestination()}})
                           : call("DELETE", "/accesslogsubscriptions/" + subscription);
      }
    } else if (op == 15) {
      what = "CreateTargetGroup";
      newGroup();
      out = json::object();
    } else {
      size_t i = random() % services.size();
      std::string service = services[i];
      what = random() % 2 ? "DeleteService" : "DeleteTargetGroup";
      if (what == "DeleteService") {
        out = call("DELETE", "/services/" + service);
        if (!out.is_null()) {
          // Its listeners and rules (found through their name index) went with it.
          for (const char* kind : {"listener", "rule"}) {
            for (const auto& record : store_->list(kind)) {
              ASSERT_NE(json::parse(record.value).value("serviceId", ""), service) << kind << " " << record.id;
            }
          }
          std::erase_if(listeners, [&](const Listener& l) { return l.service == service; });
          services.erase(services.begin() + static_cast<long>(i));
          newService();
        }
      } else {
        out = call("DELETE", "/targetgroups/" + pick(groups));  // refused while a service uses it
      }
    }
    succeeded += !out.is_null();
    wins[what] += !out.is_null();
    std::string mismatch = testing::indexMismatch(*store_);
    ASSERT_EQ(mismatch, "") << "after step " << step << " (" << what << ")";
  }
  EXPECT_GT(succeeded, 300);  // the sequence did write: most calls went through
  for (const char* what : {"CreateServiceNetworkServiceAssociation", "DeleteServiceNetworkServiceAssociation",
                           "CreateServiceNetworkVpcAssociation", "DeleteServiceNetworkVpcAssociation",
                           "CreateAccessLogSubscription", "DeleteService", "DeleteListener", "BatchUpdateRule"})
    EXPECT_GT(wins[what], 0) << what << " never succeeded";

  // Lists that page through an index list what a scan says, in pages of 1, 2 and 100.
  for (int size : {1, 2, 100}) {
    for (const auto& l : listeners) {
      EXPECT_EQ(listAll("/services/" + l.service + "/listeners", "", size), scan("listener", "serviceId", l.service));
      EXPECT_EQ(listAll("/services/" + l.service + "/listeners/" + l.id + "/rules", "", size),
                scan("rule", "listenerId", l.id));  // the default rule too
    }
    for (const auto& network : networks) {
      auto associated = scan("servicenetworkserviceassociation", "serviceNetworkId", network);
      EXPECT_EQ(listAll("/servicenetworkserviceassociations", "serviceNetworkIdentifier=" + network, size), associated);
      EXPECT_EQ(listAll("/servicenetworkvpcassociations", "serviceNetworkIdentifier=" + network, size),
                scan("servicenetworkvpcassociation", "serviceNetworkId", network));
      EXPECT_EQ(listAll("/accesslogsubscriptions", "resourceIdentifier=" + network, size),
                scan("accesslogsubscription", "resourceId", network));
      json got = call("GET", "/servicenetworks/" + network);
      EXPECT_EQ(got["numberOfAssociatedServices"], associated.size());
    }
    for (const auto& service : services) {
      EXPECT_EQ(listAll("/servicenetworkserviceassociations", "serviceIdentifier=" + service, size),
                scan("servicenetworkserviceassociation", "serviceId", service));
      EXPECT_EQ(listAll("/accesslogsubscriptions", "resourceIdentifier=" + service, size),
                scan("accesslogsubscription", "resourceId", service));
    }
    for (const auto& vpc : kVpcs) {
      EXPECT_EQ(listAll("/servicenetworkvpcassociations", "vpcIdentifier=" + vpc, size),
                scan("servicenetworkvpcassociation", "vpcId", vpc));
      std::set<std::string> inVpc;
      for (const auto& record : store_->list("targetgroup"))
        if (json::parse(record.value)["config"].value("vpcIdentifier", "") == vpc) inVpc.insert(record.id);
      EXPECT_EQ(listAll("/targetgroups", "vpcIdentifier=" + vpc, size), inVpc);
    }
    EXPECT_EQ(listAll("/targetgroups", "targetGroupType=INSTANCE", size), scan("targetgroup", "type", "INSTANCE"));
  }
  // A token of one parent's list is refused by another's.
  json first = call("GET", "/targetgroups", nullptr, "vpcIdentifier=" + kVpc + "&maxResults=1");
  ASSERT_TRUE(first.contains("nextToken")) << first.dump();
  EXPECT_TRUE(call("GET", "/targetgroups", nullptr,
                   "vpcIdentifier=" + kVpcs[2] + "&nextToken=" + first["nextToken"].get<std::string>())
                  .is_null());
  EXPECT_NE(lastError_.find("nextToken"), std::string::npos) << lastError_;
  // What the index answers is what the API reports: each target group's services.
  for (const auto& tg : groups) {
    json got = call("GET", "/targetgroups/" + tg);
    if (got.is_null()) continue;  // deleted
    Resources resources(*store_);
    EXPECT_EQ(got["serviceArns"].size(), servicesUsing(resources, tg).size()) << tg;
  }
}

// Resource gateways, configurations (groups and their children), resource associations and domain verifications: the
// indexes stay what a scan says through creates, deletes and refused deletes (a gateway in use, a group with children,
// a configuration or a network with associations), and the Lists that page through them agree.
TEST_F(Indexes, VpcResourcesEqualFullScans) {
  std::mt19937 random(4242);
  auto pick = [&](auto& list) -> auto& { return list[random() % list.size()]; };
  auto anyOf = [&](const char* kind, const char* member = nullptr, const std::string& value = "") -> std::string {
    std::vector<std::string> ids;
    for (const auto& record : store_->list(kind))
      if (!member || json::parse(record.value).value(member, "") == value) ids.push_back(record.id);
    return ids.empty() ? "" : ids[random() % ids.size()];
  };
  int serial = 0;
  std::map<std::string, int> wins;
  for (int step = 0; step < 250; ++step) {
    int op = static_cast<int>(random() % 10);
    std::string what;
    json out;
    std::string gateway = anyOf("resourcegateway"), group = anyOf("resourceconfiguration", "type", "GROUP");
    std::string configuration = anyOf("resourceconfiguration"), network = anyOf("servicenetwork");
    if (op == 0 || gateway.empty()) {
      what = "CreateResourceGateway";
      out = call("POST", "/resourcegateways",
                 {{"name", "gw-" + std::to_string(++serial)}, {"vpcIdentifier", pick(kVpcs)}});
    } else if (op == 1 || op == 2) {
      what = "CreateResourceConfiguration";
      std::string type = group.empty() || random() % 3 == 0 ? (random() % 2 ? "GROUP" : "SINGLE") : "CHILD";
      json body = {{"name", "rc-" + std::to_string(++serial)}, {"type", type}};
      json ip = {{"ipResource", {{"ipAddress", "10.0.0." + std::to_string(serial % 250 + 1)}}}};
      if (type == "CHILD") {
        body["resourceConfigurationGroupIdentifier"] = group;
        body["resourceConfigurationDefinition"] = ip;
      } else {
        body["resourceGatewayIdentifier"] = gateway;
        body["portRanges"] = {"5432", "8000-8100"};
        if (type == "SINGLE") body["resourceConfigurationDefinition"] = ip;
      }
      std::string verification = anyOf("domainverification");
      if (type == "SINGLE" && !verification.empty() && random() % 2) {
        body["customDomainName"] =
            "db." + json::parse(store_->get("domainverification", verification)->value).value("domainName", "");
        body["domainVerificationIdentifier"] = verification;
      }
      out = call("POST", "/resourceconfigurations", body);
    } else if (op == 3) {
      what = "DeleteResourceConfiguration";  // refused while associated or with children
      if (configuration.empty()) continue;
      out = call("DELETE", "/resourceconfigurations/" + configuration);
      if (!out.is_null()) EXPECT_EQ(anyOf("resourceconfiguration", "resourceConfigurationGroupId", configuration), "");
    } else if (op == 4) {
      what = "DeleteResourceGateway";  // refused while configurations use it
      out = call("DELETE", "/resourcegateways/" + gateway);
      if (!out.is_null()) EXPECT_EQ(anyOf("resourceconfiguration", "resourceGatewayId", gateway), "");
    } else if (op == 5 && (network.empty() || random() % 4 == 0)) {
      what = "CreateServiceNetwork";
      out = call("POST", "/servicenetworks", {{"name", "network-" + std::to_string(++serial)}});
    } else if (op == 5) {
      what = "DeleteServiceNetwork";  // refused while resources are associated
      out = call("DELETE", "/servicenetworks/" + network);
      if (!out.is_null()) EXPECT_EQ(anyOf("servicenetworkresourceassociation", "serviceNetworkId", network), "");
    } else if (op == 6 || op == 7) {
      what = "CreateServiceNetworkResourceAssociation";  // refused for a child or a pair already associated
      if (network.empty() || configuration.empty()) continue;
      out = call("POST", "/servicenetworkresourceassociations",
                 {{"serviceNetworkIdentifier", network}, {"resourceConfigurationIdentifier", configuration}});
    } else if (op == 8) {
      what = "DeleteServiceNetworkResourceAssociation";
      std::string association = anyOf("servicenetworkresourceassociation");
      if (association.empty()) continue;
      out = call("DELETE", "/servicenetworkresourceassociations/" + association);
    } else {
      std::string verification = anyOf("domainverification");
      what = verification.empty() || random() % 2 ? "StartDomainVerification" : "DeleteDomainVerification";
      out = what == "StartDomainVerification"
                ? call("POST", "/domainverifications",
                       {{"domainName", "d" + std::to_string(random() % 8) + ".example.com"}})
                : call("DELETE", "/domainverifications/" + verification);
    }
    wins[what] += !out.is_null();
    ASSERT_EQ(testing::indexMismatch(*store_), "") << "after step " << step << " (" << what << ")";
  }
  for (const char* what :
       {"CreateResourceGateway", "DeleteResourceGateway", "CreateResourceConfiguration", "DeleteResourceConfiguration",
        "CreateServiceNetworkResourceAssociation", "DeleteServiceNetworkResourceAssociation", "DeleteServiceNetwork",
        "StartDomainVerification", "DeleteDomainVerification"})
    EXPECT_GT(wins[what], 0) << what << " never succeeded";
  EXPECT_FALSE(scan("resourceconfiguration", "type", "CHILD").empty());

  for (int size : {1, 3, 100}) {
    EXPECT_EQ(listAll("/resourcegateways", "", size).size(), store_->list("resourcegateway").size());
    EXPECT_EQ(listAll("/resourceconfigurations", "", size).size(), store_->list("resourceconfiguration").size());
    EXPECT_EQ(listAll("/domainverifications", "", size).size(), store_->list("domainverification").size());
    for (const auto& record : store_->list("resourcegateway"))
      EXPECT_EQ(listAll("/resourceconfigurations", "resourceGatewayIdentifier=" + record.id, size),
                scan("resourceconfiguration", "resourceGatewayId", record.id));
    for (const auto& record : store_->list("resourceconfiguration")) {
      EXPECT_EQ(listAll("/resourceconfigurations", "resourceConfigurationGroupIdentifier=" + record.id, size),
                scan("resourceconfiguration", "resourceConfigurationGroupId", record.id));
      EXPECT_EQ(listAll("/servicenetworkresourceassociations", "resourceConfigurationIdentifier=" + record.id, size),
                scan("servicenetworkresourceassociation", "resourceConfigurationId", record.id));
    }
    for (const auto& record : store_->list("domainverification"))
      EXPECT_EQ(listAll("/resourceconfigurations", "domainVerificationIdentifier=" + record.id, size),
                scan("resourceconfiguration", "domainVerificationId", record.id));
    for (const auto& record : store_->list("servicenetwork")) {
      auto associated = scan("servicenetworkresourceassociation", "serviceNetworkId", record.id);
      EXPECT_EQ(listAll("/servicenetworkresourceassociations", "serviceNetworkIdentifier=" + record.id, size),
                associated);
      json networks = call("GET", "/servicenetworks");
      for (const auto& item : networks["items"])
        if (item["id"] == record.id) EXPECT_EQ(item["numberOfAssociatedResourceConfigurations"], associated.size());
    }
  }
}

TEST_F(Indexes, AreBuiltOnceForAStoreWrittenBeforeThem) {
  json service = call("POST", "/services", {{"name", "billing"}});
  json tg = call(
      "POST", "/targetgroups",
      {{"name", "group-a"}, {"type", "IP"}, {"config", {{"port", 80}, {"protocol", "HTTP"}, {"vpcIdentifier", kVpc}}}});
  std::string s = service["id"], t = tg["id"];
  json listener = call("POST", "/services/" + s + "/listeners",
                       {{"name", "web"}, {"protocol", "HTTP"}, {"port", 80}, {"defaultAction", forward(t)}});
  ASSERT_FALSE(listener.is_null()) << lastError_;
  json network = call("POST", "/servicenetworks", {{"name", "network-a"}});
  std::string n = network["id"];
  ASSERT_FALSE(call("POST", "/servicenetworkserviceassociations",
                    {{"serviceNetworkIdentifier", n}, {"serviceIdentifier", s}}).is_null()) << lastError_;
  ASSERT_FALSE(call("POST", "/servicenetworkvpcassociations",
                    {{"serviceNetworkIdentifier", n}, {"vpcIdentifier", kVpc}}).is_null()) << lastError_;
  ASSERT_FALSE(call("POST", "/accesslogsubscriptions",
                    {{"resourceIdentifier", s}, {"destinationArn", "arn:aws:s3:::lattice-logs"}}).is_null())
      << lastError_;
  // As a store of an older trellisd: documents, no index.
  std::vector<store::Op> drop;
  std::vector<std::string> kinds = {kForwardByTargetGroup, kForwardByService, "index.version"};
  for (const MemberIndex* index : memberIndexes()) kinds.push_back(index->name);
  for (const auto& kind : kinds)
    for (const auto& record : store_->list(kind)) drop.push_back(store::Op::del(kind, record.id));
  ASSERT_TRUE(store_->commit({}, drop));
  EXPECT_NE(testing::indexMismatch(*store_), "");

  buildIndexesIfMissing(*store_);  // as trellisd does at start
  EXPECT_EQ(testing::indexMismatch(*store_), "");
  // And the API acts on it: the target group is in use, the network's associations are counted and listed.
  EXPECT_EQ(call("GET", "/servicenetworks/" + n)["numberOfAssociatedVPCs"], 1);
  EXPECT_EQ(call("GET", "/servicenetworkserviceassociations", nullptr, "serviceIdentifier=" + s)["items"].size(), 1u);
  EXPECT_TRUE(call("DELETE", "/servicenetworks/" + n).is_null());
  EXPECT_TRUE(call("DELETE", "/targetgroups/" + t).is_null());
  EXPECT_EQ(call("GET", "/targetgroups/" + t)["serviceArns"].size(), 1u);
}

}  // namespace
}  // namespace trellis::api
