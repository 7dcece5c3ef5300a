// Table tests of the Gateway API → Lattice translation (README.md, "Translation").
#include <gtest/gtest.h>

#include "gateway/translate.h"

using namespace trellis::gateway;

namespace {

const char* kGateway = R"(
apiVersion: gateway.networking.k8s.io/v1beta1
kind: GatewayClass
metadata: {name: amazon-vpc-lattice}
spec: {controllerName: application-networking.k8s.aws/gateway-api-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: demo, namespace: checkout}
spec:
  gatewayClassName: amazon-vpc-lattice
  listeners:
  - {name: http, protocol: HTTP, port: 80}
  - name: https
    protocol: HTTPS
    port: 443
    tls:
      options: {application-networking.k8s.aws/certificate-arn: "arn:aws:acm:us-east-1:111122223333:certificate/abc"}
  - name: tls
    protocol: TLS
    port: 8443
    tls: {mode: Passthrough}
---
apiVersion: v1
kind: Service
metadata: {name: checkout, namespace: checkout}
spec:
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: checkout-1
  namespace: checkout
  labels: {kubernetes.io/service-name: checkout}
addressType: IPv4
ports: [{name: http, port: 8080}, {name: metrics, port: 9090}]
endpoints:
- addresses: [127.0.0.11]
- addresses: [127.0.0.13]
  conditions: {ready: false, terminating: true}
---
apiVersion: v1
kind: Service
metadata: {name: checkout, namespace: checkoutv2}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: checkout-2
  namespace: checkoutv2
  labels: {kubernetes.io/service-name: checkout}
addressType: IPv4
endpoints:
- addresses: [127.0.0.12]
)";

const char* kWorkshopRoute = R"(
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: checkoutroute, namespace: checkout}
spec:
  parentRefs: [{name: demo, sectionName: http}]
  rules:
  - backendRefs:
    - {name: checkout, namespace: checkout, kind: Service, port: 80, weight: 25}
    - {name: checkout, namespace: checkoutv2, kind: Service, port: 80, weight: 75}
---
apiVersion: application-networking.k8s.aws/v1alpha1
kind: TargetGroupPolicy
metadata: {name: checkout-policy, namespace: checkout}
spec:
  targetRef: {group: "", kind: Service, name: checkout}
  protocol: HTTP
  protocolVersion: HTTP1
  healthCheck: {enabled: true, intervalSeconds: 10, timeoutSeconds: 1, healthyThresholdCount: 3,
                unhealthyThresholdCount: 2, path: "/health", port: 8080, protocol: HTTP, protocolVersion: HTTP1,
                statusMatch: "200"}
)";

Desired run(const std::string& extra, const std::vector<KnownGateway>& known = {}) {
  static std::vector<Object> objects;  // Desired points into the objects
  objects = parseManifests(std::string(kGateway) + extra, "t.yaml");
  return translate(objects, Options{}, known);
}

std::string errorOf(const std::string& extra) {
  try {
    run(extra);
  } catch (const ManifestError& e) {
    return e.what();
  }
  return "";
}

// An HTTPRoute on the http listener with one rule of `rule` (YAML flow mapping members).
std::string route(const std::string& rule, const std::string& name = "r", const std::string& annotations = "") {
  return "\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: " + name +
         ", namespace: checkout" + annotations + "}\nspec:\n  parentRefs: [{name: demo, sectionName: http}]\n"
         "  rules:\n  - {backendRefs: [{name: checkout, port: 80}]" + (rule.empty() ? "" : ", " + rule) + "}\n";
}

json firstRuleMatch(const Desired& d) { return d.services.at(0).listeners.at(0).rules.at(0).match; }

TEST(Translate, WorkshopScenario) {
  Desired d = run(kWorkshopRoute);
  ASSERT_EQ(d.networks.size(), 1u);
  const Network& n = d.networks[0];
  EXPECT_EQ(n.name, "demo");  // the service network is named after the Gateway
  EXPECT_TRUE(n.associateVpc);
  EXPECT_EQ(n.tags.at(tag("ManagedBy")), "111122223333/trellis/vpc-0123456789abcdef0");
  EXPECT_EQ(n.tags.at(tag("GatewayNamespace")), "checkout");
  EXPECT_EQ(n.tags.at(tag("GatewayListeners")), "http:HTTP:80,https:HTTPS:443,tls:TLS_PASSTHROUGH:8443");

  ASSERT_EQ(d.services.size(), 1u);
  const Service& s = d.services[0];
  EXPECT_EQ(serviceName(s.routeName, s.routeNs), "checkoutroute-checkout");
  EXPECT_EQ(s.networks, std::vector<std::string>{"demo"});
  EXPECT_EQ(s.tags.at(tag("RouteName")), "checkoutroute");
  EXPECT_EQ(s.tags.at(tag("RouteNamespace")), "checkout");
  EXPECT_EQ(s.tags.at(tag("RouteType")), "http");
  ASSERT_EQ(s.listeners.size(), 1u);  // sectionName: http only
  const Listener& l = s.listeners[0];
  EXPECT_EQ(l.name, "checkoutroute-checkout-80-http");
  EXPECT_EQ(l.protocol, "HTTP");
  EXPECT_EQ(l.port, 80);
  EXPECT_EQ(l.defaultAction, json::parse(R"({"fixedResponse":{"statusCode":404}})"));
  ASSERT_EQ(l.rules.size(), 1u);
  EXPECT_EQ(l.rules[0].priority, 1);
  EXPECT_EQ(l.rules[0].match, json::parse(R"({"httpMatch":{"pathMatch":{"match":{"prefix":"/"}}}})"));
  const json& groups = l.rules[0].action["forward"]["targetGroups"];
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0]["weight"], 25);
  EXPECT_EQ(groups[1]["weight"], 75);

  ASSERT_EQ(d.targetGroups.size(), 2u);
  const TargetGroup& v1 = d.targetGroups[0];
  const TargetGroup& v2 = d.targetGroups[1];
  EXPECT_EQ(groups[0]["targetGroupIdentifier"], v1.key);
  EXPECT_EQ(groups[1]["targetGroupIdentifier"], v2.key);
  EXPECT_EQ(v1.name.substr(0, 22), "k8s-checkout-checkout-");
  EXPECT_EQ(v1.name.size(), 32u);
  EXPECT_EQ(v2.name.substr(0, 24), "k8s-checkoutv2-checkout-");
  EXPECT_EQ(v1.config["port"], 80);  // a placeholder: targets carry the real port
  EXPECT_EQ(v1.config["protocol"], "HTTP");
  EXPECT_EQ(v1.config["protocolVersion"], "HTTP1");
  EXPECT_EQ(v1.config["vpcIdentifier"], "vpc-0123456789abcdef0");
  // The TargetGroupPolicy's check on v1; the controller's default on v2 (no policy in checkoutv2 here).
  EXPECT_EQ(v1.config["healthCheck"], json::parse(R"({"enabled":true,"protocol":"HTTP","protocolVersion":"HTTP1",
      "path":"/health","port":8080,"healthCheckIntervalSeconds":10,"healthCheckTimeoutSeconds":1,
      "healthyThresholdCount":3,"unhealthyThresholdCount":2,"matcher":{"httpCode":"200"}})"));
  EXPECT_EQ(v2.config["healthCheck"], defaultHealthCheck("HTTP", "HTTP1"));
  EXPECT_EQ(v2.config["healthCheck"]["healthCheckIntervalSeconds"], 30);
  // Named targetPort "http" → the EndpointSlice port named http; terminating endpoints are left out.
  EXPECT_EQ(v1.targets, (std::vector<Target>{{"127.0.0.11", 8080}}));
  // No ports in the slice: the Service's numeric targetPort.
  EXPECT_EQ(v2.targets, (std::vector<Target>{{"127.0.0.12", 8080}}));
  for (const auto& [key, value] : std::map<std::string, std::string>{
           {"ManagedBy", "111122223333/trellis/vpc-0123456789abcdef0"}, {"ClusterName", "trellis"},
           {"ServiceName", "checkout"}, {"ServiceNamespace", "checkoutv2"}, {"RouteName", "checkoutroute"},
           {"RouteNamespace", "checkout"}, {"SourceTypeKey", "HTTPRoute"}, {"ProtocolVersion", "HTTP1"}})
    EXPECT_EQ(v2.tags.at(tag(key.c_str())), value) << key;
  EXPECT_TRUE(d.warnings.empty());
}

struct MatchCase {
  const char* rule;
  const char* match;  // expected httpMatch JSON
};
class Matches : public ::testing::TestWithParam<MatchCase> {};
TEST_P(Matches, Translate) {
  EXPECT_EQ(firstRuleMatch(run(route(GetParam().rule)))["httpMatch"], json::parse(GetParam().match))
      << GetParam().rule;
}
INSTANTIATE_TEST_SUITE_P(
    Table, Matches,
    ::testing::Values(
        MatchCase{"", R"({"pathMatch":{"match":{"prefix":"/"}}})"},
        MatchCase{"matches: [{path: {type: PathPrefix, value: /api}}]", R"({"pathMatch":{"match":{"prefix":"/api"}}})"},
        MatchCase{"matches: [{path: {value: /api}}]", R"({"pathMatch":{"match":{"prefix":"/api"}}})"},
        MatchCase{"matches: [{path: {type: Exact, value: /health}}]", R"({"pathMatch":{"match":{"exact":"/health"}}})"},
        MatchCase{"matches: [{method: DELETE}]", R"({"method":"DELETE"})"},
        MatchCase{"matches: [{headers: [{name: x-role, value: admin}, {type: Exact, name: x-b, value: '1'}]}]",
                  R"({"headerMatches":[{"name":"x-role","match":{"exact":"admin"}},{"name":"x-b","match":{"exact":"1"}}]})"},
        MatchCase{"matches: [{path: {type: Exact, value: /a}, method: GET, headers: [{name: h, value: v}]}]",
                  R"({"method":"GET","pathMatch":{"match":{"exact":"/a"}},
                      "headerMatches":[{"name":"h","match":{"exact":"v"}}]})"}));

struct ErrorCase {
  std::string extra;
  std::vector<std::string> expected;
};
class Errors : public ::testing::TestWithParam<ErrorCase> {};
TEST_P(Errors, NameTheObjectAndField) {
  std::string error = errorOf(GetParam().extra);
  ASSERT_FALSE(error.empty()) << GetParam().extra;
  for (const auto& part : GetParam().expected) EXPECT_NE(error.find(part), std::string::npos) << part << " / " << error;
}
INSTANTIATE_TEST_SUITE_P(
    Table, Errors,
    ::testing::Values(
        ErrorCase{route("matches: [{path: {value: /a}, queryParams: [{name: a, value: b}]}, {path: {value: /b}}]"),
                  {"t.yaml: HTTPRoute checkout/r: spec.rules[0].matches[1].queryParams", "split the rule"}},
        ErrorCase{route("matches: [{queryParams: [{type: RegularExpression, name: a, value: b.*}]}]"),
                  {"spec.rules[0].matches[0].queryParams[0].type", "RegularExpression"}},
        ErrorCase{route("matches: [{queryParams: [{name: a}]}]"), {"matches[0].queryParams[0].value"}},
        ErrorCase{route("matches: [{path: {type: RegularExpression, value: /a.*}}]"),
                  {"spec.rules[0].matches[0].path.type", "LATTICE_UNSUPPORTED_PATH_MATCH_TYPE"}},
        ErrorCase{route("matches: [{headers: [{type: RegularExpression, name: a, value: b}]}]"),
                  {"headers[0].type", "LATTICE_UNSUPPORTED_HEADER_MATCH_TYPE"}},
        ErrorCase{route("matches: [{headers: [{name: a, value: b}, {name: b, value: b}, {name: c, value: b}, "
                        "{name: d, value: b}, {name: e, value: b}, {name: f, value: b}]}]"),
                  {"matches[0].headers", "LATTICE_EXCEED_MAX_HEADER_MATCHES"}},
        ErrorCase{"\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: "
                  "checkout}\nspec:\n  parentRefs: [{name: demo}]\n  rules:\n  - backendRefs: [{name: nope, port: 80}]\n",
                  {"HTTPRoute checkout/r: spec.rules[0].backendRefs[0]", "Service checkout/nope"}},
        ErrorCase{"\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: "
                  "checkout}\nspec:\n  parentRefs: [{name: other}]\n",
                  {"spec.parentRefs[0]", "Gateway checkout/other"}},
        ErrorCase{"\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: "
                  "checkout}\nspec:\n  parentRefs: [{name: demo, sectionName: nope}]\n",
                  {"spec.parentRefs[0]", "NoMatchingParent"}},
        ErrorCase{"\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: "
                  "checkout}\nspec:\n  parentRefs: [{name: demo}]\n  rules:\n  - backendRefs: [{name: b, kind: Bucket}]\n",
                  {"backendRefs[0].kind", "Bucket"}},
        ErrorCase{"\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: "
                  "checkout}\nspec:\n  parentRefs: [{name: demo}]\n  rules:\n  - backendRefs: [{name: checkout, port: "
                  "80, weight: 1000}]\n",
                  {"backendRefs[0].weight", "999"}},
        ErrorCase{"\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: "
                  "checkout}\nspec:\n  parentRefs: [{name: demo}]\n  rules:\n  - backendRefs: [{name: checkout, port: 81}]\n",
                  {"backendRefs[0].port", "no port 81"}},
        ErrorCase{"\n---\napiVersion: application-networking.k8s.aws/v1alpha1\nkind: TargetGroupPolicy\nmetadata: "
                  "{name: p, namespace: checkout}\nspec:\n  targetRef: {kind: Service, name: gone}\n",
                  {"TargetGroupPolicy checkout/p: spec.targetRef", "Service checkout/gone"}},
        ErrorCase{"\n---\napiVersion: application-networking.k8s.aws/v1alpha1\nkind: TargetGroupPolicy\nmetadata: "
                  "{name: p, namespace: checkout}\nspec:\n  targetRef: {kind: Service, name: checkout}\n  healthCheck: "
                  "{intervalSeconds: 1}\n",
                  {"spec.healthCheck.intervalSeconds", "out of range"}},
        ErrorCase{"\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g2, namespace: "
                  "checkout}\nspec:\n  gatewayClassName: someone-else\n  listeners: [{name: a, protocol: HTTP, port: 80}]\n",
                  {"Gateway checkout/g2: spec.gatewayClassName", "someone-else"}},
        ErrorCase{"\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g2, namespace: "
                  "checkout}\nspec:\n  gatewayClassName: amazon-vpc-lattice\n  listeners: [{name: a, protocol: UDP, "
                  "port: 80}]\n",
                  {"spec.listeners[0].protocol", "UDP"}},
        ErrorCase{route("", "r", ", annotations: {application-networking.k8s.aws/rule-0-priority: '101'}"),
                  {"rule-0-priority", "1 to 100"}}));

// Beyond the AWS controller: several matches and query parameter matches become Trellis rule extensions.
TEST(Translate, SeveralMatchesAndQueryParamsBecomeExtensions) {
  Desired d = run(route("matches: [{path: {value: /a}, queryParams: [{name: v, value: '2'}]}, "
                        "{path: {type: Exact, value: /b}, method: POST, "
                        "queryParams: [{type: Exact, name: v, value: '2'}]}]"));
  const Rule& rule = d.services.at(0).listeners.at(0).rules.at(0);
  EXPECT_EQ(rule.match, json::parse(R"({"httpMatch":{"pathMatch":{"match":{"prefix":"/a"}}}})"));
  EXPECT_EQ(rule.trellis, json::parse(R"({"matches":[{"method":"POST","pathMatch":{"match":{"exact":"/b"}}}],
                                          "queryMatches":[{"name":"v","exact":"2"}]})"));
  EXPECT_TRUE(d.warnings.empty());
  EXPECT_EQ(d.services.at(0).tags.count(kUnsupportedTag), 0u);

  // One match with query parameters; a plain rule has no extensions.
  d = run(route("matches: [{headers: [{name: x, value: y}], "
                "queryParams: [{name: a, value: b}, {name: c, value: d}]}]"));
  EXPECT_EQ(d.services.at(0).listeners.at(0).rules.at(0).trellis,
            json::parse(R"({"queryMatches":[{"name":"a","exact":"b"},{"name":"c","exact":"d"}]})"));
  d = run(route("matches: [{path: {value: /a}}]"));
  EXPECT_EQ(d.services.at(0).listeners.at(0).rules.at(0).trellis, json::object());
}

TEST(Translate, GrpcRouteMatchesAndTargetGroups) {
  std::string grpc = R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: checkout}
spec:
  parentRefs: [{name: demo}]
  rules:
  - matches: [{method: {service: pkg.Greeter, method: Hello}, headers: [{name: x-v, value: '2'}]}]
    backendRefs: [{name: checkout, port: 80}]
  - matches: [{method: {service: pkg.Greeter}}]
    backendRefs: [{name: checkout, port: 80}]
  - backendRefs: [{name: checkout, port: 80}]
)";
  Desired d = run(grpc);
  const Service& s = d.services.at(0);
  EXPECT_EQ(s.tags.at(tag("RouteType")), "grpc");
  ASSERT_EQ(s.listeners.size(), 1u);  // the HTTPS listener only
  EXPECT_EQ(s.listeners[0].protocol, "HTTPS");
  EXPECT_EQ(s.listeners[0].name, "g-checkout-443-https");
  EXPECT_EQ(s.certificateArn, "arn:aws:acm:us-east-1:111122223333:certificate/abc");
  const auto& rules = s.listeners[0].rules;
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].match["httpMatch"], json::parse(R"({"method":"POST","pathMatch":{"match":{"exact":"/pkg.Greeter/Hello"}},
      "headerMatches":[{"name":"x-v","match":{"exact":"2"}}]})"));
  EXPECT_EQ(rules[1].match["httpMatch"], json::parse(R"({"method":"POST","pathMatch":{"match":{"prefix":"/pkg.Greeter/"}}})"));
  EXPECT_EQ(rules[2].match["httpMatch"], json::parse(R"({"method":"POST","pathMatch":{"match":{"prefix":"/"}}})"));
  EXPECT_EQ(d.targetGroups.at(0).config["protocolVersion"], "GRPC");
  EXPECT_EQ(d.targetGroups.at(0).tags.at(tag("SourceTypeKey")), "GRPCRoute");
  EXPECT_EQ(d.targetGroups.size(), 1u);  // one target group per (route, Service)

  EXPECT_NE(errorOf(R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: checkout}
spec:
  parentRefs: [{name: demo, sectionName: http}]
)").find("HTTPS listener"),
            std::string::npos);
}

TEST(Translate, TlsRoutePassesThroughToTcpTargetGroups) {
  Desired d = run(R"(
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: t, namespace: checkout}
spec:
  parentRefs: [{name: demo}]
  hostnames: [secure.example.com]
  rules:
  - backendRefs: [{name: checkout, port: 80}]
)");
  const Service& s = d.services.at(0);
  EXPECT_EQ(s.customDomainName, "secure.example.com");
  ASSERT_EQ(s.listeners.size(), 1u);
  EXPECT_EQ(s.listeners[0].protocol, "TLS_PASSTHROUGH");
  EXPECT_EQ(s.listeners[0].name, "t-checkout-8443-tls");
  EXPECT_TRUE(s.listeners[0].rules.empty());
  EXPECT_EQ(s.listeners[0].defaultAction["forward"]["targetGroups"][0]["targetGroupIdentifier"], d.targetGroups[0].key);
  EXPECT_EQ(d.targetGroups[0].config["protocol"], "TCP");
  EXPECT_FALSE(d.targetGroups[0].config.contains("protocolVersion"));
  EXPECT_EQ(d.targetGroups[0].config["healthCheck"]["enabled"], false);
}

TEST(Translate, RulesPrioritiesWeightsAndEmptyBackends) {
  std::string yaml = R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: p
  namespace: checkout
  annotations: {application-networking.k8s.aws/rule-1-priority: "50"}
spec:
  parentRefs: [{name: demo, sectionName: http}]
  rules:
  - backendRefs: [{name: checkout, port: 80}]
  - matches: [{path: {value: /b}}]
    backendRefs: [{name: checkout, port: 80, weight: 0}]
  - matches: [{path: {value: /c}}]
)";
  Desired d = run(yaml);
  const auto& rules = d.services.at(0).listeners.at(0).rules;
  ASSERT_EQ(rules.size(), 3u);
  // Sorted by priority: the annotated rule keeps 50; the others follow the highest annotated value.
  EXPECT_EQ(rules[0].priority, 50);
  EXPECT_EQ(rules[0].match["httpMatch"]["pathMatch"]["match"]["prefix"], "/b");
  EXPECT_EQ(rules[0].action["forward"]["targetGroups"][0]["weight"], 0);
  EXPECT_EQ(rules[1].priority, 51);
  EXPECT_EQ(rules[1].action["forward"]["targetGroups"][0]["weight"], 1);  // the default weight
  EXPECT_EQ(rules[2].priority, 52);
  EXPECT_EQ(rules[2].action, json::parse(R"({"fixedResponse":{"statusCode":500}})"));  // no backends
}

TEST(Translate, IgnoredFiltersAreReportedNotDropped) {
  Desired d = run(route("filters: [{type: RequestMirror, requestMirror: {backendRef: {name: checkout, port: 80}}}], "
                        "sessionPersistence: {sessionName: s}"));
  ASSERT_EQ(d.warnings.size(), 2u);
  EXPECT_NE(d.warnings[0].find("spec.rules[0].sessionPersistence: ignored"), std::string::npos) << d.warnings[0];
  EXPECT_NE(d.warnings[1].find("HTTPRoute checkout/r: spec.rules[0].filters[0]: ignored"), std::string::npos)
      << d.warnings[1];
  EXPECT_EQ(d.services.at(0).tags.at(kUnsupportedTag), "spec.rules[0].sessionPersistence,spec.rules[0].filters[0]");
}

// HTTPRoute timeouts and retry (Gateway API v1.2, GEP-1742 and GEP-1731) become Trellis extensions.
struct TimeoutCase {
  std::string rule;      // YAML flow mapping members of the rule
  std::string trellis;   // the rule's expected `trellis` member (JSON); empty: an error is expected
  std::string error;     // part of the expected error
};

class TimeoutsAndRetry : public ::testing::TestWithParam<TimeoutCase> {};

TEST_P(TimeoutsAndRetry, Translate) {
  const TimeoutCase& c = GetParam();
  if (c.trellis.empty()) {
    std::string error = errorOf(route(c.rule));
    EXPECT_NE(error.find(c.error), std::string::npos) << error;
    return;
  }
  Desired d = run(route(c.rule));
  EXPECT_EQ(d.services.at(0).listeners.at(0).rules.at(0).trellis, json::parse(c.trellis)) << c.rule;
  EXPECT_TRUE(d.warnings.empty()) << d.warnings.at(0);
  EXPECT_EQ(d.services.at(0).tags.count(kUnsupportedTag), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Translate, TimeoutsAndRetry,
    ::testing::Values(
        TimeoutCase{"timeouts: {request: 10s, backendRequest: 500ms}",
                    R"({"timeouts": {"requestMs": 10000, "backendRequestMs": 500}})"},
        TimeoutCase{"timeouts: {request: 1h, backendRequest: 59m2s3ms}",
                    R"({"timeouts": {"requestMs": 3600000, "backendRequestMs": 3542003}})"},
        TimeoutCase{"timeouts: {request: 1m500ms}", R"({"timeouts": {"requestMs": 60500}})"},
        TimeoutCase{"timeouts: {request: 0s, backendRequest: 2s}", R"({"timeouts": {"backendRequestMs": 2000}})"},
        TimeoutCase{"timeouts: {request: 0s}", R"({})"},  // 0 disables: nothing to apply
        TimeoutCase{"retry: {codes: [500, 503], attempts: 3, backoff: 100ms}",
                    R"({"retry": {"attempts": 3, "statusCodes": [500, 503], "backoffMs": 100}})"},
        TimeoutCase{"retry: {}", R"({"retry": {"attempts": 1}})"},  // unspecified attempts: one retry
        TimeoutCase{"retry: {attempts: 0}", R"({"retry": {"attempts": 0}})"},
        TimeoutCase{"timeouts: {request: 5s}, retry: {attempts: 2}, filters: [{type: ResponseHeaderModifier, "
                    "responseHeaderModifier: {add: [{name: x-by, value: t}]}}]",
                    R"({"timeouts": {"requestMs": 5000}, "retry": {"attempts": 2},
                        "responseHeaderModifier": {"add": [{"name": "x-by", "value": "t"}]}})"},
        TimeoutCase{"timeouts: {request: 10}", "", "spec.rules[0].timeouts.request: 10 is not a duration such as 10s"},
        TimeoutCase{"timeouts: {request: 1.5s}", "", "spec.rules[0].timeouts.request: '1.5s' is not a duration"},
        TimeoutCase{"timeouts: {request: 3s2h}", "", "'3s2h' is not a duration"},  // units out of order
        TimeoutCase{"timeouts: {request: 100000s}", "", "'100000s' is not a duration"},  // at most 5 digits
        TimeoutCase{"timeouts: {request: 2h}", "", "spec.rules[0].timeouts.request: is above Trellis's maximum"},
        TimeoutCase{"timeouts: {request: 1s, backendRequest: 2s}", "",
                    "spec.rules[0].timeouts.backendRequest: must not be longer than timeouts.request"},
        TimeoutCase{"retry: {attempts: 6}", "", "spec.rules[0].retry.attempts: 6 is out of range (0-5)"},
        TimeoutCase{"retry: {codes: [429]}", "",
                    "spec.rules[0].retry.codes[0]: 429: Trellis retries 5xx statuses only"},
        TimeoutCase{"retry: {codes: [600]}", "", "spec.rules[0].retry.codes[0]: 600 is out of range"},
        TimeoutCase{"retry: {backoff: 2m}", "", "spec.rules[0].retry.backoff: is above Trellis's maximum"},
        TimeoutCase{"retry: [1]", "", "spec.rules[0].retry: must be a mapping"}));

TEST(Translate, GrpcRouteTimeoutsAreStillReportedIgnored) {
  Desired d = run(R"(
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: checkout}
spec:
  parentRefs: [{name: demo, sectionName: https}]
  rules:
  - backendRefs: [{name: checkout, port: 80}]
    timeouts: {request: 5s}
)");
  ASSERT_EQ(d.warnings.size(), 1u);
  EXPECT_NE(d.warnings[0].find("spec.rules[0].timeouts: ignored"), std::string::npos) << d.warnings[0];
  EXPECT_EQ(d.services.at(0).listeners.at(0).rules.at(0).trellis, json::object());
}

// Beyond the AWS controller: the filters the proxy applies become Trellis rule extensions.
TEST(Translate, FiltersBecomeExtensions) {
  Desired d = run(route(
      "filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-env, value: prod}], "
      "remove: [cookie]}}, {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-by, value: t}]}}, "
      "{type: URLRewrite, urlRewrite: {hostname: backend.internal, path: {type: ReplacePrefixMatch, "
      "replacePrefixMatch: /}}}]"));
  EXPECT_EQ(d.services.at(0).listeners.at(0).rules.at(0).trellis, json::parse(R"({
      "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}], "remove": ["cookie"]},
      "responseHeaderModifier": {"add": [{"name": "x-by", "value": "t"}]},
      "urlRewrite": {"hostname": "backend.internal", "path": {"replacePrefixMatch": "/"}}})"));
  EXPECT_TRUE(d.warnings.empty());
  EXPECT_EQ(d.services.at(0).tags.count(kUnsupportedTag), 0u);

  d = run(route("filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: new.example.com, "
                "port: 8443, statusCode: 301, path: {type: ReplaceFullPath, replaceFullPath: /moved}}}]"));
  EXPECT_EQ(d.services.at(0).listeners.at(0).rules.at(0).trellis, json::parse(R"({"requestRedirect": {
      "scheme": "https", "hostname": "new.example.com", "port": 8443, "statusCode": 301,
      "path": {"replaceFullPath": "/moved"}}})"));

  EXPECT_NE(errorOf(route("filters: [{type: URLRewrite, urlRewrite: {hostname: a.b}}, "
                          "{type: RequestRedirect, requestRedirect: {}}]"))
                .find("cannot be used together"),
            std::string::npos);
  EXPECT_NE(errorOf(route("filters: [{type: URLRewrite, urlRewrite: {path: {type: Regex}}}]"))
                .find("spec.rules[0].filters[0].urlRewrite.path.type"),
            std::string::npos);
}

TEST(Translate, GatewayPolicies) {
  Desired d = run(route("") + R"(
---
apiVersion: application-networking.k8s.aws/v1alpha1
kind: VpcAssociationPolicy
metadata: {name: v, namespace: checkout}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: demo}
  securityGroupIds: [sg-0123456789abcdef0]
  associateWithVpc: false
---
apiVersion: application-networking.k8s.aws/v1alpha1
kind: IAMAuthPolicy
metadata: {name: gw-auth, namespace: checkout}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: demo}
  policy: '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}'
---
apiVersion: application-networking.k8s.aws/v1alpha1
kind: IAMAuthPolicy
metadata: {name: route-auth, namespace: checkout}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}
  policy:
    Version: "2012-10-17"
    Statement: [{Effect: Deny, Principal: "*", Action: "*", Resource: "*"}]
---
apiVersion: application-networking.k8s.aws/v1alpha1
kind: AccessLogPolicy
metadata: {name: logs, namespace: checkout}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}
  destinationArn: arn:aws:logs:us-east-1:111122223333:log-group:checkout
)");
  const Network& n = d.networks.at(0);
  EXPECT_FALSE(n.associateVpc);
  EXPECT_EQ(n.securityGroupIds, std::vector<std::string>{"sg-0123456789abcdef0"});
  ASSERT_TRUE(n.authPolicy);
  EXPECT_NE(n.authPolicy->find("\"Allow\""), std::string::npos);
  const Service& s = d.services.at(0);
  ASSERT_TRUE(s.authPolicy);
  EXPECT_EQ(json::parse(*s.authPolicy)["Statement"][0]["Effect"], "Deny");  // a YAML mapping becomes JSON
  EXPECT_EQ(s.accessLogDestinations, std::vector<std::string>{"arn:aws:logs:us-east-1:111122223333:log-group:checkout"});
}

TEST(Translate, StandaloneRoutesAndUserTags) {
  Desired d = run(route("", "r", ", annotations: {application-networking.k8s.aws/standalone: 'true', "
                                 "application-networking.k8s.aws/tags: 'team=pay, env=dev'}"));
  EXPECT_TRUE(d.services.at(0).networks.empty());
  EXPECT_EQ(d.services.at(0).tags.at("team"), "pay");
  EXPECT_EQ(d.services.at(0).tags.at("env"), "dev");
  EXPECT_EQ(d.targetGroups.at(0).tags.at("team"), "pay");
}

TEST(Translate, RoutesAttachToGatewaysKnownFromLattice) {
  std::vector<Object> objects = parseManifests(std::string(R"(
apiVersion: v1
kind: Service
metadata: {name: checkout, namespace: checkout}
spec: {ports: [{port: 80}]}
)") + route(""),
                                               "t.yaml");
  KnownGateway known{"checkout", "demo", "amazon-vpc-lattice", {{"http", "HTTP", 80, ""}}};
  Desired d = translate(objects, Options{}, {known});
  EXPECT_TRUE(d.networks.empty());
  EXPECT_EQ(d.services.at(0).networks, std::vector<std::string>{"demo"});
  EXPECT_EQ(d.services.at(0).listeners.at(0).port, 80);
  EXPECT_TRUE(d.targetGroups.at(0).targets.empty());  // no EndpointSlice: no targets yet
}

TEST(Translate, ServiceExportAndImport) {
  Desired d = run(R"(
---
apiVersion: application-networking.k8s.aws/v1alpha1
kind: ServiceExport
metadata: {name: checkout, namespace: checkoutv2}
spec:
  exportedPorts: [{port: 80, routeType: HTTP}]
---
apiVersion: application-networking.k8s.aws/v1alpha1
kind: ServiceImport
metadata: {name: checkout, namespace: checkoutv2}
spec: {type: ClusterSetIP, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: imp, namespace: checkout}
spec:
  parentRefs: [{name: demo, sectionName: http}]
  rules:
  - backendRefs: [{name: checkout, namespace: checkoutv2, kind: ServiceImport}]
)");
  ASSERT_EQ(d.targetGroups.size(), 1u);
  const TargetGroup& tg = d.targetGroups[0];
  EXPECT_EQ(tg.tags.at(tag("SourceTypeKey")), "ServiceExport");
  EXPECT_EQ(tg.tags.count(tag("RouteName")), 0u);
  EXPECT_EQ(tg.targets, (std::vector<Target>{{"127.0.0.12", 8080}}));
  EXPECT_EQ(d.services.at(0).listeners.at(0).rules.at(0).action["forward"]["targetGroups"][0]["targetGroupIdentifier"],
            tg.key);
}

TEST(Names, FollowTheControllerAndNeverCollide) {
  EXPECT_EQ(serviceName("checkoutroute", "checkout"), "checkoutroute-checkout");
  EXPECT_EQ(truncateName("abc-", 4), "abc");
  EXPECT_EQ(truncateName("-abc", 3), "ab");
  // Truncated names get a hash of the full names: the controller's collision (#657) cannot happen.
  std::string a = serviceName("a-very-long-route-name-one", "payments");
  std::string b = serviceName("a-very-long-route-name-two", "payments");
  EXPECT_NE(a, b);
  EXPECT_LE(a.size(), 40u);
  EXPECT_EQ(a.substr(0, 15), "a-very-long-ro-");
  EXPECT_EQ(serviceName("r", "a-very-long-namespace-name"), serviceName("r", "a-very-long-namespace-name"));
  EXPECT_NE(serviceName("r", "a-very-long-namespace-name-1"), serviceName("r", "a-very-long-namespace-name-2"));
  // Characters Lattice names cannot hold, and the reserved svc- prefix.
  EXPECT_EQ(serviceName("my.route", "ns").find('.'), std::string::npos);
  EXPECT_NE(serviceName("my.route", "ns"), serviceName("my-route", "ns"));
  EXPECT_EQ(serviceName("svc-a", "ns").substr(0, 4), "k8s-");
  EXPECT_EQ(hashedServiceName("a-b", "c") == hashedServiceName("a", "b-c"), false);
  EXPECT_EQ(listenerName("checkoutroute", "checkout", 80, "HTTP"), "checkoutroute-checkout-80-http");
  EXPECT_EQ(listenerName("a-very-long-route-name-one", "namespace-that-is-long", 443, "HTTPS"),
            "a-very-long-route-na-namespace-that-is-443-https");
  EXPECT_EQ(ruleName(1700000000, 3), "k8s-1700000000-rule-3");
}

}  // namespace
