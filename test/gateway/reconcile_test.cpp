// apply / delete / get against the real Lattice API, in process (src/api over a SQLite store).
#include <gtest/gtest.h>

#include <filesystem>

#include "api/api.h"
#include "gateway/reconcile.h"
#include "common/strings.h"
#include "store/store.h"

using namespace trellis;
using namespace trellis::gateway;

namespace {

class InProcessApi : public LatticeApi {
 public:
  InProcessApi() : dir_(std::filesystem::temp_directory_path() / ("trellis-gw-" + std::to_string(::getpid()) + "-" +
                                                                 std::to_string(counter_++))) {
    std::filesystem::create_directories(dir_);
    store_ = store::openSqliteStore(dir_.string());
    auto config = std::make_shared<model::Config>();
    config->vpcs.push_back({"vpc-0123456789abcdef0", {"127.0.1.0/24"}});
    config->vpcs.push_back({"vpc-0123456789abcdef1", {"127.0.2.0/24"}});
    config->identities.push_back(model::makeDevelopmentIdentity(config->accountId));
    config_ = config;
    api_ = std::make_unique<api::Api>(
        *store_, [this] { return config_; },
        [](const HttpRequest&, const model::Config& c) {
          return std::variant<const model::Identity*, api::ApiError>(&c.identities.front());
        });
  }
  ~InProcessApi() override {
    api_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  json call(const std::string& method, const std::string& path, const std::string& query, const json& body) override {
    HttpRequest request;
    request.method = method;
    request.path = path;
    request.query = query;
    request.target = query.empty() ? path : path + "?" + query;
    if (!body.is_null()) {
      request.body = body.dump();
      request.headers.emplace_back("content-type", "application/json");
    }
    ++calls;
    HttpResponse response = api_->handle(request);
    json out = response.body.empty() ? json::object() : json::parse(response.body, nullptr, false);
    if (response.status >= 300) {
      std::string type;
      for (const auto& [k, v] : response.headers)
        if (k == "x-amzn-errortype") type = v.substr(0, v.find(':'));
      throw ApiCallError(response.status, type, out.is_object() ? out.value("message", "") : response.body);
    }
    return out;
  }

  int64_t revision() { return store_->revision(); }
  size_t count(const std::string& path, const std::string& query = "") { return call("GET", path, query, json())["items"].size(); }

  size_t calls = 0;

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  model::ConfigPtr config_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<api::Api> api_;
};

const std::string kFiles = R"(
apiVersion: gateway.networking.k8s.io/v1beta1
kind: GatewayClass
metadata: {name: amazon-vpc-lattice}
spec: {controllerName: application-networking.k8s.aws/gateway-api-controller}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: Gateway
metadata: {name: demo, namespace: checkout}
spec:
  gatewayClassName: amazon-vpc-lattice
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: v1
kind: Namespace
metadata: {name: checkout}
---
apiVersion: v1
kind: Service
metadata: {name: checkout, namespace: checkout}
spec: {ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: checkout-v1, namespace: checkout, labels: {kubernetes.io/service-name: checkout}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [127.0.0.11]}]
---
apiVersion: v1
kind: Service
metadata: {name: checkout, namespace: checkoutv2}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: checkout-v2, namespace: checkoutv2, labels: {kubernetes.io/service-name: checkout}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [127.0.0.12]}]
---
apiVersion: application-networking.k8s.aws/v1alpha1
kind: TargetGroupPolicy
metadata: {name: checkout-policy, namespace: checkout}
spec:
  targetRef: {group: "", kind: Service, name: checkout}
  healthCheck: {enabled: true, intervalSeconds: 10, timeoutSeconds: 1, healthyThresholdCount: 3,
                unhealthyThresholdCount: 2, path: /health, port: 8080, statusMatch: "200"}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: checkoutroute, namespace: checkout}
spec:
  parentRefs: [{name: demo, sectionName: http}]
  rules:
  - backendRefs:
    - {name: checkout, namespace: checkout, kind: Service, port: 80, weight: 25}
    - {name: checkout, namespace: checkoutv2, kind: Service, port: 80, weight: WEIGHT}
)";

std::vector<Object> files(const std::string& weight = "75", const std::string& extra = "") {
  std::string text = kFiles;
  text.replace(text.find("WEIGHT"), 6, weight);
  return parseManifests(text + extra, "workshop.yaml");
}

json only(InProcessApi& api, const std::string& path) {
  json items = api.call("GET", path, "", json())["items"];
  EXPECT_EQ(items.size(), 1u) << path << ": " << items.dump();
  return items.empty() ? json::object() : items[0];
}

TEST(Reconcile, ApplyCreatesTheWorkshopAndReapplyWritesNothing) {
  InProcessApi api;
  Reconciler reconciler(api, Options{});
  auto objects = files();
  Report first = reconciler.apply(objects);
  EXPECT_GT(first.writes, 0u);

  json sn = only(api, "/servicenetworks");
  EXPECT_EQ(sn["name"], "demo");
  json tags = api.call("GET", "/tags/" + percentEncode(sn["arn"].get<std::string>()), "", json())["tags"];
  EXPECT_EQ(tags[tag("ManagedBy")], "111122223333/trellis/vpc-0123456789abcdef0");
  EXPECT_EQ(api.count("/servicenetworkvpcassociations", "serviceNetworkIdentifier=" + sn["id"].get<std::string>()), 1u);
  json svc = only(api, "/services");
  EXPECT_EQ(svc["name"], "checkoutroute-checkout");
  std::string base = "/services/" + svc["id"].get<std::string>() + "/listeners";
  json listener = only(api, base);
  EXPECT_EQ(listener["name"], "checkoutroute-checkout-80-http");
  EXPECT_EQ(listener["port"], 80);
  json got = api.call("GET", base + "/" + listener["id"].get<std::string>(), "", json());
  EXPECT_EQ(got["defaultAction"], json::parse(R"({"fixedResponse":{"statusCode":404}})"));
  auto rules = api.call("GET", base + "/" + listener["id"].get<std::string>() + "/rules", "", json())["items"];
  ASSERT_EQ(rules.size(), 2u);  // the default rule and rule 1
  EXPECT_EQ(api.count("/targetgroups"), 2u);
  EXPECT_EQ(api.count("/servicenetworkserviceassociations", "serviceIdentifier=" + svc["id"].get<std::string>()), 1u);

  // The same files again: no write at all (the store's revision does not move).
  int64_t revision = api.revision();
  Report second = reconciler.apply(objects);
  EXPECT_EQ(second.writes, 0u);
  EXPECT_EQ(api.revision(), revision);
  for (const auto& line : second.lines) EXPECT_NE(line.find("unchanged"), std::string::npos) << line;
}

TEST(Reconcile, ChangedFilesReconcileTheDifferenceInPlace) {
  InProcessApi api;
  Reconciler reconciler(api, Options{});
  reconciler.apply(files());
  json svc = only(api, "/services");
  std::string base = "/services/" + svc["id"].get<std::string>() + "/listeners";
  std::string rulesPath = base + "/" + only(api, base)["id"].get<std::string>() + "/rules";
  std::string ruleId;
  for (const auto& r : json(api.call("GET", rulesPath, "", json())["items"]))
    if (!r["isDefault"].get<bool>()) ruleId = r["id"];

  Report changed = reconciler.apply(files("50"));
  EXPECT_GT(changed.writes, 0u);
  json rule = api.call("GET", rulesPath + "/" + ruleId, "", json());  // updated, not replaced
  EXPECT_EQ(rule["action"]["forward"]["targetGroups"][1]["weight"], 50);
  EXPECT_EQ(reconciler.apply(files("50")).writes, 0u);

  // A second rule and a new endpoint.
  std::string extra = R"(
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: checkout-v2b, namespace: checkoutv2, labels: {kubernetes.io/service-name: checkout}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [127.0.0.14]}]
)";
  reconciler.apply(files("50", extra));
  std::string tgV2;
  for (const auto& tg : json(api.call("GET", "/targetgroups", "", json())["items"]))
    if (tg["name"].get<std::string>().find("checkoutv2") != std::string::npos) tgV2 = tg["id"];
  auto targets = api.call("POST", "/targetgroups/" + tgV2 + "/listtargets", "", json::object())["items"];
  EXPECT_EQ(targets.size(), 2u);
  EXPECT_EQ(reconciler.apply(files("50", extra)).writes, 0u);
  // Removed again: deregistered (draining), and still a no-op afterwards.
  reconciler.apply(files("50"));
  EXPECT_EQ(reconciler.apply(files("50")).writes, 0u);
}

// Several matches and query parameters go into the rule's Trellis extensions, stored by the API,
// compared on re-apply and cleared when the route no longer needs them.
TEST(Reconcile, RuleExtensionsAreAppliedComparedAndCleared) {
  InProcessApi api;
  Reconciler reconciler(api, Options{});
  std::string text = kFiles;
  text.replace(text.find("WEIGHT"), 6, "75");
  std::string withMatches = text;
  withMatches.replace(withMatches.find("  - backendRefs:"), 16,
                      "  - matches: [{path: {value: /a}, queryParams: [{name: v, value: '2'}]},\n"
                      "              {path: {value: /b}, queryParams: [{name: v, value: '2'}]}]\n"
                      "    backendRefs:");
  auto objects = parseManifests(withMatches, "workshop.yaml");
  reconciler.apply(objects);
  json svc = only(api, "/services");
  std::string base = "/services/" + svc["id"].get<std::string>() + "/listeners";
  std::string rulesPath = base + "/" + only(api, base)["id"].get<std::string>() + "/rules";
  std::string ruleId;
  for (const auto& r : json(api.call("GET", rulesPath, "", json())["items"]))
    if (!r["isDefault"].get<bool>()) ruleId = r["id"];
  json rule = api.call("GET", rulesPath + "/" + ruleId, "", json());
  EXPECT_EQ(rule["match"], json::parse(R"({"httpMatch":{"pathMatch":{"match":{"prefix":"/a"}}}})"));
  EXPECT_EQ(rule["trellis"], json::parse(R"({"matches":[{"pathMatch":{"match":{"prefix":"/b"}}}],
                                             "queryMatches":[{"name":"v","exact":"2"}]})"));
  EXPECT_EQ(reconciler.apply(objects).writes, 0u);

  auto plain = parseManifests(text, "workshop.yaml");
  EXPECT_GT(reconciler.apply(plain).writes, 0u);
  rule = api.call("GET", rulesPath + "/" + ruleId, "", json());  // updated in place
  EXPECT_FALSE(rule.contains("trellis")) << rule.dump();
  EXPECT_EQ(reconciler.apply(plain).writes, 0u);
}

TEST(Reconcile, DeleteRemovesWhatApplyMadeAndNothingElse) {
  InProcessApi api;
  api.call("POST", "/services", "", {{"name", "bystander"}});
  api.call("POST", "/servicenetworks", "", {{"name", "bystander-net"}});
  Reconciler reconciler(api, Options{});
  auto objects = files();
  reconciler.apply(objects);
  Report removed = reconciler.remove(objects);
  EXPECT_GT(removed.writes, 0u);
  EXPECT_TRUE(removed.warnings.empty());
  EXPECT_EQ(only(api, "/services")["name"], "bystander");
  EXPECT_EQ(only(api, "/servicenetworks")["name"], "bystander-net");
  EXPECT_EQ(api.count("/targetgroups"), 0u);
  EXPECT_EQ(api.count("/servicenetworkvpcassociations", "vpcIdentifier=vpc-0123456789abcdef0"), 0u);
  EXPECT_EQ(reconciler.remove(objects).writes, 0u);
}

TEST(Reconcile, DeletingTheRouteAloneKeepsTheGateway) {
  InProcessApi api;
  Reconciler reconciler(api, Options{});
  auto objects = files();
  reconciler.apply(objects);
  std::vector<Object> route;
  for (const auto& o : objects)
    if (o.kind == "HTTPRoute") route.push_back(o);
  reconciler.remove(route);
  EXPECT_EQ(api.count("/services"), 0u);
  EXPECT_EQ(api.count("/targetgroups"), 0u);
  EXPECT_EQ(only(api, "/servicenetworks")["name"], "demo");
}

TEST(Reconcile, AnExistingNetworkIsUsedNotOwned) {
  InProcessApi api;
  json sn = api.call("POST", "/servicenetworks", "", {{"name", "demo"}, {"tags", {{"team", "net"}}}});
  Reconciler reconciler(api, Options{});
  auto objects = files();
  reconciler.apply(objects);
  EXPECT_EQ(only(api, "/servicenetworks")["id"], sn["id"]);
  reconciler.remove(objects);
  json left = only(api, "/servicenetworks");
  EXPECT_EQ(left["id"], sn["id"]);
  json tags = api.call("GET", "/tags/" + percentEncode(sn["arn"].get<std::string>()), "", json())["tags"];
  EXPECT_EQ(tags, json::parse(R"({"team":"net"})"));
}

TEST(Reconcile, ServiceNamesNeverCollideWithExistingServices) {
  InProcessApi api;
  api.call("POST", "/services", "", {{"name", "checkoutroute-checkout"}});
  Reconciler reconciler(api, Options{});
  reconciler.apply(files());
  bool hashed = false;
  for (const auto& s : json(api.call("GET", "/services", "", json())["items"]))
    if (s["name"] != "checkoutroute-checkout") hashed = s["name"] == hashedServiceName("checkoutroute", "checkout");
  EXPECT_TRUE(hashed);
  EXPECT_EQ(reconciler.apply(files()).writes, 0u);
}

TEST(Reconcile, ConflictsAreFoundBeforeAnyWrite) {
  InProcessApi api;
  json other = api.call("POST", "/servicenetworks", "", {{"name", "other"}});
  api.call("POST", "/servicenetworkvpcassociations", "",
           {{"serviceNetworkIdentifier", other["id"]}, {"vpcIdentifier", "vpc-0123456789abcdef0"}});
  int64_t revision = api.revision();
  Reconciler reconciler(api, Options{});
  try {
    reconciler.apply(files());
    ADD_FAILURE() << "applied despite the VPC's association";
  } catch (const ManifestError& e) {
    EXPECT_NE(std::string(e.what()).find("Gateway checkout/demo"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("already associated with service network other"), std::string::npos);
  }
  EXPECT_EQ(api.revision(), revision);
  // Another VPC works.
  Reconciler elsewhere(api, Options{.vpcId = "vpc-0123456789abcdef1"});
  EXPECT_GT(elsewhere.apply(files()).writes, 0u);
}

TEST(Reconcile, IgnoredFieldsShowAsPartiallyInvalidUntilRemoved) {
  InProcessApi api;
  Reconciler reconciler(api, Options{});
  std::string text = kFiles;
  text.replace(text.find("WEIGHT"), 6, "75");
  std::string filtered = text;
  filtered.replace(filtered.find("  - backendRefs:"), 16,
                   "  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: checkout, port: 80}}}]\n"
                   "    backendRefs:");
  Report report = reconciler.apply(parseManifests(filtered, "w.yaml"));
  ASSERT_EQ(report.warnings.size(), 1u);
  auto condition = [&](const char* type) -> json {
    json routes = reconciler.get("HTTPRoute", "checkout");
    for (const auto& c : routes["items"][0]["status"]["parents"][0]["conditions"])
      if (c["type"] == type) return c;
    return nullptr;
  };
  json partial = condition("PartiallyInvalid");
  ASSERT_FALSE(partial.is_null());
  EXPECT_EQ(partial["reason"], "UnsupportedValue");
  EXPECT_NE(partial["message"].get<std::string>().find("spec.rules[0].filters"), std::string::npos);
  EXPECT_EQ(reconciler.apply(parseManifests(filtered, "w.yaml")).writes, 0u);
  EXPECT_EQ(reconciler.apply(parseManifests(text, "w.yaml")).writes, 1u);  // the tag goes
  EXPECT_TRUE(condition("PartiallyInvalid").is_null());
}

TEST(Reconcile, GetShowsRoutesAndGatewaysLikeKubectl) {
  InProcessApi api;
  Reconciler reconciler(api, Options{});
  reconciler.apply(files());
  json routes = reconciler.get("HTTPRoute", "checkout");
  ASSERT_EQ(routes["items"].size(), 1u);
  const json& r = routes["items"][0];
  EXPECT_EQ(r["metadata"]["name"], "checkoutroute");
  std::string dns = r["metadata"]["annotations"][kDomainAnnotation];
  EXPECT_EQ(dns, only(api, "/services")["dnsEntry"]["domainName"]);
  const json& parent = r["status"]["parents"][0];
  EXPECT_EQ(parent["parentRef"]["name"], "demo");
  EXPECT_EQ(parent["parentRef"]["namespace"], "checkout");
  for (const auto& c : parent["conditions"]) EXPECT_EQ(c["status"], "True") << c.dump();
  std::string table = formatStatusTable(routes, false);
  EXPECT_NE(table.find("checkoutroute"), std::string::npos);
  EXPECT_NE(table.find(dns), std::string::npos);
  EXPECT_EQ(reconciler.get("HTTPRoute", "other")["items"].size(), 0u);
  EXPECT_EQ(reconciler.get("GRPCRoute", "checkout")["items"].size(), 0u);

  json gateways = reconciler.get("Gateway", "checkout");
  ASSERT_EQ(gateways["items"].size(), 1u);
  EXPECT_EQ(gateways["items"][0]["status"]["addresses"][0]["value"], dns);
  EXPECT_NE(formatStatusTable(gateways, true).find("amazon-vpc-lattice"), std::string::npos);

  // A route applied later, without its Gateway's file, attaches through the network's tags.
  std::vector<Object> routeOnly;
  for (const auto& o : files("10"))
    if (o.kind == "HTTPRoute" || o.kind == "Service" || o.kind == "EndpointSlice" || o.kind == "TargetGroupPolicy")
      routeOnly.push_back(o);
  EXPECT_GT(reconciler.apply(routeOnly).writes, 0u);
  EXPECT_EQ(reconciler.apply(routeOnly).writes, 0u);
}

}  // namespace
