// Auth on the data plane (docs/architecture.md) through real sockets: requests signed at test time with
// auth::signRequest / presignQuery go through a running DataPlane to an echo backend.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "auth/sigv4.h"
#include "common/time.h"
#include "proxy/proxy_harness.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kSvcArn = StoreFixture::arn("service", kSvc);
const std::string kTg = "tg-0000000000000000a";
const std::string kSn = "sn-0000000000000000a";
const std::string kSnArn = StoreFixture::arn("servicenetwork", kSn);
const std::string kHost = StoreFixture::generatedName(kSvc, "billing");
const std::string kVpcA = "vpc-000000000000000a1";  // 127.0.1.0/24
const std::string kVpcB = "vpc-000000000000000b2";  // 127.0.2.0/24
const std::string kVpcOther = "vpc-0000000000000c11e";  // the rest of 127.0.0.0/8

const std::string kAlice = "arn:aws:iam::111122223333:role/alice";
const std::string kBob = "arn:aws:iam::111122223333:user/bob";
const std::string kCarol = "arn:aws:iam::111122223333:role/carol";
const auth::Credentials kAliceKeys{"AKIDALICE000000001", "alice-secret", ""};
const auth::Credentials kBobKeys{"AKIDBOB00000000001", "bob-secret", ""};
const auth::Credentials kCarolKeys{"AKIDCAROL000000001", "carol-secret", "carol-session-token"};

model::Config authConfig() {
  model::Config c;
  c.vpcs.push_back({kVpcA, {"127.0.1.0/24"}});
  c.vpcs.push_back({kVpcB, {"127.0.2.0/24"}});
  c.vpcs.push_back({kVpcOther, {"127.0.0.0/8"}});
  model::Identity alice;
  alice.arn = kAlice;
  alice.accessKeyId = kAliceKeys.accessKeyId;
  alice.secretAccessKey = kAliceKeys.secretAccessKey;
  alice.tags = {{"team", "blue"}, {"cost;center", "a;b"}};
  alice.orgId = "o-abcdefghij";
  c.identities.push_back(alice);
  model::Identity bob;
  bob.arn = kBob;
  bob.accessKeyId = kBobKeys.accessKeyId;
  bob.secretAccessKey = kBobKeys.secretAccessKey;
  c.identities.push_back(bob);
  // Carol's identity-based policy lets her invoke anything but /secret.
  model::Identity carol;
  carol.arn = kCarol;
  carol.accessKeyId = kCarolKeys.accessKeyId;
  carol.secretAccessKey = kCarolKeys.secretAccessKey;
  carol.sessionToken = kCarolKeys.sessionToken;
  carol.policy = json{{"Version", "2012-10-17"},
                      {"Statement",
                       {{{"Effect", "Allow"}, {"Action", "vpc-lattice-svcs:Invoke"}, {"Resource", "*"}},
                        {{"Effect", "Deny"}, {"Action", "vpc-lattice-svcs:Invoke"}, {"Resource", "*/secret"}}}}}
                     .dump();
  c.identities.push_back(carol);
  return c;
}

json statement(const std::string& effect, const json& principal, const json& resource = "*",
               const json& condition = nullptr) {
  json s = {{"Effect", effect}, {"Principal", principal}, {"Action", "vpc-lattice-svcs:Invoke"}, {"Resource", resource}};
  if (!condition.is_null()) s["Condition"] = condition;
  return s;
}
json policy(std::initializer_list<json> statements) {
  json list = json::array();
  for (const auto& s : statements) list.push_back(s);
  return {{"Version", "2012-10-17"}, {"Statement", list}};
}
const json kAllowAll = policy({statement("Allow", "*")});

json echoed(const Response& r) { return json::parse(r.body, nullptr, false); }
std::string echoedHeader(const Response& r, const std::string& name) {
  json j = echoed(r);
  if (!j.is_object() || !j["headers"].contains(name)) return "<none>";
  return j["headers"][name].get<std::string>();
}

class AuthTest : public ::testing::Test {
 public:
  void SetUp() override {
    std::filesystem::remove_all(dir);
    port = freePort();
    hostPort = kHost + ":" + std::to_string(port);
    h.store.service(kSvc, "billing");
    h.store.targetGroup(kTg, backend.port(), {{"127.0.0.1"}}, {{"enabled", false}});
    h.store.listener("listener-1", kSvc, port, StoreFixture::forward({{kTg, 100}}));
    h.store.serviceNetwork(kSn, "net");
    h.store.serviceAssociation("snsa-1", kSn, kSvc);
    h.store.vpcAssociation("snva-a", kSn, kVpcA);
    h.store.vpcAssociation("snva-b", kSn, kVpcB);
    h.store.vpcAssociation("snva-o", kSn, kVpcOther);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  void start() {
    h.start();
    ASSERT_TRUE(h.waitListening(port));
  }

  // authType on a service or service network, and its auth policy (null: none).
  void setAuth(const std::string& kind, const std::string& id, const std::string& authType,
               const json& authPolicy = nullptr) {
    for (const auto& r : h.store.contents().records) {
      if (r.kind != kind || r.id != id) continue;
      json doc = json::parse(r.value);
      doc["authType"] = authType;
      h.store.put(kind, id, doc);
      break;
    }
    if (authPolicy.is_null()) {
      h.store.erase("authpolicy", id);
    } else {
      h.store.put("authpolicy", id,
                  {{"policy", authPolicy.is_string() ? authPolicy.get<std::string>() : authPolicy.dump()},
                   {"createdAt", "2024-01-01T00:00:00Z"},
                   {"lastUpdatedAt", "2024-01-01T00:00:00Z"}});
    }
  }
  void serviceAuth(const json& authPolicy, const std::string& authType = "AWS_IAM") {
    setAuth("service", kSvc, authType, authPolicy);
  }
  void networkAuth(const json& authPolicy, const std::string& authType = "AWS_IAM") {
    setAuth("servicenetwork", kSn, authType, authPolicy);
  }
  void republish() { h.publish(); }

  std::string unsignedRequest(const std::string& method, const std::string& target, const std::string& extra = {}) {
    return method + " " + target + " HTTP/1.1\r\nhost: " + hostPort + "\r\n" + extra + "\r\n";
  }
  // A request signed like the JS SDK does for Lattice: x-amz-content-sha256: UNSIGNED-PAYLOAD.
  std::string signedRequest(const std::string& method, const std::string& path, const std::string& query,
                            const auth::Credentials& keys, HeaderList headers = {},
                            auth::SignOptions options = {true, true}, const std::string& body = {},
                            SystemTime when = systemNow()) {
    headers.emplace_back("host", hostPort);
    auth::signRequest(method, hostPort, path, query, headers, body, keys, "us-east-1", "vpc-lattice-svcs", when,
                      options);
    std::string out = method + " " + path + (query.empty() ? "" : "?" + query) + " HTTP/1.1\r\n";
    for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
    if (!body.empty()) out += "content-length: " + std::to_string(body.size()) + "\r\n";
    return out + "\r\n" + body;
  }
  Response send(const std::string& request, const std::string& source = "127.0.0.1") {
    Client c(port, source);
    EXPECT_TRUE(c.connected());
    c.send(request);
    return c.read();
  }
  std::string denied(const std::string& user, const std::string& resource, const std::string& why) {
    return "AccessDeniedException: User: " + user +
           " is not authorized to perform: vpc-lattice-svcs:Invoke on resource: " + resource + " " + why;
  }
  std::vector<json> accessLog() {
    h.dataPlane().stop();  // flushes the writer
    std::ifstream in(dir + "/access-logs/cloudwatch/auth.jsonl");
    std::vector<json> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    return lines;
  }

  std::string dir = std::filesystem::temp_directory_path() / ("trellis-auth-" + std::to_string(getpid()));
  EchoBackend backend{"backend"};
  uint16_t port = 0;
  std::string hostPort;
  ProxyHarness h{authConfig(), 2, dir};
};

TEST_F(AuthTest, AuthOffVerifiesNothingAndPassesAuthorizationOn) {
  start();
  // A signature that would never verify: with both layers at NONE it is the target's business.
  Response r = send(unsignedRequest("GET", "/", "authorization: AWS4-HMAC-SHA256 Credential=AKIDNOBODY00000001/x\r\n"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoedHeader(r, "authorization"), "AWS4-HMAC-SHA256 Credential=AKIDNOBODY00000001/x");
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity"), "<none>");
  // A valid signature does not make the caller authenticated either (no identity headers).
  r = send(signedRequest("GET", "/", "", kAliceKeys));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity"), "<none>");
}

TEST_F(AuthTest, AwsIamWithoutPolicyDeniesEveryone) {
  serviceAuth(nullptr);
  start();
  Response r = send(unsignedRequest("GET", "/"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, denied("anonymous", kSvcArn + "/", "because no service-based policy allows the "
                                                        "vpc-lattice-svcs:Invoke action"));
  ASSERT_NE(r.header("content-type"), nullptr);
  EXPECT_EQ(*r.header("content-type"), "text/plain");
  EXPECT_NE(r.header("x-amzn-requestid"), nullptr);
  r = send(signedRequest("GET", "/rates", "", kAliceKeys));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, denied(kAlice, kSvcArn + "/rates", "because no service-based policy allows the "
                                                        "vpc-lattice-svcs:Invoke action"));
  // The network layer alone at AWS_IAM, without a policy: the network denies.
  serviceAuth(nullptr, "NONE");
  networkAuth(nullptr);
  republish();
  r = send(signedRequest("GET", "/", "", kAliceKeys));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("because no network-based policy allows"), std::string::npos) << r.body;
  EXPECT_EQ(backend.requests(), 0);
}

TEST_F(AuthTest, AnonymousCallersPassOnlyWherePolicyAllowsThem) {
  serviceAuth(kAllowAll);
  start();
  Response r = send(unsignedRequest("GET", "/"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity"), "<none>");  // only after SigV4 auth succeeded
  // The usual "authenticated callers only" policy.
  serviceAuth(policy({statement("Allow", "*", "*",
                                {{"StringNotEqualsIgnoreCase", {{"aws:PrincipalType", "anonymous"}}}})}));
  republish();
  EXPECT_EQ(send(unsignedRequest("GET", "/")).status, 403);
  EXPECT_EQ(send(signedRequest("GET", "/", "", kAliceKeys)).status, 200);
  EXPECT_EQ(send(signedRequest("GET", "/", "", kBobKeys)).status, 200);
}

// The policy's resource is the path the target gets (docs/request-paths.md): no request shape reaches
// /admin past a Deny on it.
TEST_F(AuthTest, ADenyOnAPathHoldsForEveryShapeOfThatPath) {
  serviceAuth(policy({statement("Allow", "*"), statement("Deny", "*", kSvcArn + "/admin/*")}));
  start();
  const std::pair<std::string, std::string> shapes[] = {
      {"/admin/secret", "/admin/secret"},         {"http://" + hostPort + "/admin/secret", "/admin/secret"},
      {"/%61dmin/secret", "/admin/secret"},       {"//admin/secret", "/admin/secret"},
      {"/public/../admin/secret", "/admin/secret"}, {"/./admin/secret", "/admin/secret"},
      {"/public/%2e%2e/admin/x", "/admin/x"},
  };
  for (const auto& [target, resource] : shapes) {
    Response r = send(unsignedRequest("GET", target));
    EXPECT_EQ(r.status, 403) << target;
    EXPECT_EQ(r.body, denied("anonymous", kSvcArn + resource, "with an explicit deny in a service-based policy"))
        << target;
  }
  // Absolute-form's authority decides the service; the Host header beside it cannot send the request
  // elsewhere half-way.
  Response r = send("GET http://" + hostPort + "/admin/secret HTTP/1.1\r\nhost: nobody.example\r\n\r\n");
  EXPECT_EQ(r.status, 403);
  r = send(unsignedRequest("GET", "/public/x/../y"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoed(r)["target"], "/public/y");
  EXPECT_EQ(backend.requests(), 1);
}

TEST_F(AuthTest, SignedCallerReachesTargetWithIdentityHeaders) {
  serviceAuth(policy({statement("Allow", json{{"AWS", kAlice}})}));
  start();
  Response r = send(signedRequest("GET", "/rates", "", kAliceKeys));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity"),
            "Principal=" + kAlice + "; PrincipalOrgID=o-abcdefghij; SessionName=; Type=AWS_IAM");
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity-tags"),
            "principal=" + kAlice + ";principalorgid=o-abcdefghij;cost\\;center=a\\;b;team=blue");
  // Another principal, and nobody at all.
  r = send(signedRequest("GET", "/rates", "", kBobKeys));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, denied(kBob, kSvcArn + "/rates", "because no service-based policy allows the "
                                                     "vpc-lattice-svcs:Invoke action"));
  EXPECT_EQ(send(unsignedRequest("GET", "/rates")).status, 403);
  // Bob's identity headers carry no org and no tags.
  serviceAuth(kAllowAll);
  republish();
  r = send(signedRequest("GET", "/", "", kBobKeys));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity"), "Principal=" + kBob + "; PrincipalOrgID=; SessionName=; Type=AWS_IAM");
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity-tags"), "principal=" + kBob + ";principalorgid=");
}

TEST_F(AuthTest, ClientsCannotForgeIdentityHeaders) {
  serviceAuth(kAllowAll);
  start();
  const std::string forged =
      "x-amzn-lattice-identity: Principal=arn:aws:iam::111122223333:role/admin; Type=AWS_IAM\r\n"
      "x-amzn-lattice-identity-tags: principal=arn:aws:iam::111122223333:role/admin;team=root\r\n";
  Response r = send(unsignedRequest("GET", "/", forged));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity"), "<none>");
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity-tags"), "<none>");
  // Signed, with forged copies added: the target sees exactly the real ones.
  std::string request = signedRequest("GET", "/", "", kAliceKeys);
  request.insert(request.size() - 2, forged);
  r = send(request);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity"),
            "Principal=" + kAlice + "; PrincipalOrgID=o-abcdefghij; SessionName=; Type=AWS_IAM");
  EXPECT_EQ(echoed(r)["headers"]["x-amzn-lattice-identity-tags"].get<std::string>().find("root"), std::string::npos);
}

TEST_F(AuthTest, ExplicitDenyWinsAtEachLayer) {
  networkAuth(policy({statement("Allow", "*"), statement("Deny", "*", "*/network-only")}));
  serviceAuth(policy({statement("Allow", "*"), statement("Deny", "*", kSvcArn + "/service-only")}));
  start();
  EXPECT_EQ(send(signedRequest("GET", "/open", "", kAliceKeys)).status, 200);

  Response r = send(signedRequest("GET", "/network-only", "", kAliceKeys));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, denied(kAlice, kSvcArn + "/network-only", "with an explicit deny in a network-based policy"));
  r = send(signedRequest("GET", "/service-only", "", kAliceKeys));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, denied(kAlice, kSvcArn + "/service-only", "with an explicit deny in a service-based policy"));
  // Carol's own identity policy denies /secret; the auth policies allow it.
  r = send(signedRequest("GET", "/secret", "", kCarolKeys));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, denied(kCarol, kSvcArn + "/secret", "with an explicit deny in an identity-based policy"));
  EXPECT_EQ(send(signedRequest("GET", "/public", "", kCarolKeys)).status, 200);

  // A network-level explicit Deny beats a service-level Allow naming the caller.
  networkAuth(policy({statement("Allow", "*"), statement("Deny", json{{"AWS", kAlice}})}));
  serviceAuth(policy({statement("Allow", json{{"AWS", kAlice}})}));
  republish();
  r = send(signedRequest("GET", "/", "", kAliceKeys));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("explicit deny in a network-based policy"), std::string::npos) << r.body;
  // An explicit deny is reported before an implicit one of an earlier layer.
  networkAuth(policy({statement("Allow", json{{"AWS", kBob}})}));
  serviceAuth(policy({statement("Deny", "*")}));
  republish();
  r = send(signedRequest("GET", "/", "", kAliceKeys));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("explicit deny in a service-based policy"), std::string::npos) << r.body;
}

TEST_F(AuthTest, BadSignaturesAre403NeverAnonymous) {
  serviceAuth(kAllowAll);  // anonymous callers would get through
  start();
  // Tampered path: signed for /a, sent to /b.
  std::string request = signedRequest("GET", "/a", "", kAliceKeys);
  request.replace(request.find("/a"), 2, "/b");
  Response r = send(request);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body.rfind("InvalidSignatureException: ", 0), 0u) << r.body;
  // Tampered signed header.
  request = signedRequest("GET", "/", "", kAliceKeys, {{"x-team", "blue"}});
  request.replace(request.find("x-team: blue"), 12, "x-team: red!");
  EXPECT_EQ(send(request).status, 403);
  // Wrong secret, unknown key, a clock 10 minutes off, another signing name.
  EXPECT_EQ(send(signedRequest("GET", "/", "", {kAliceKeys.accessKeyId, "wrong", ""})).status, 403);
  r = send(signedRequest("GET", "/", "", {"AKIDNOBODY00000001", "x", ""}));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body.rfind("UnrecognizedClientException: ", 0), 0u) << r.body;
  EXPECT_EQ(send(signedRequest("GET", "/", "", kAliceKeys, {}, {true, true}, {},
                               systemNow() - std::chrono::minutes(10)))
                .status,
            403);
  HeaderList headers = {{"host", hostPort}};
  auth::signRequest("GET", hostPort, "/", "", headers, "", kAliceKeys, "us-east-1", "execute-api", systemNow(),
                    {true, true});
  std::string wrongService = "GET / HTTP/1.1\r\n";
  for (const auto& [n, v] : headers) wrongService += n + ": " + v + "\r\n";
  EXPECT_EQ(send(wrongService + "\r\n").status, 403);
  // Session credentials without their token.
  EXPECT_EQ(send(signedRequest("GET", "/", "", {kCarolKeys.accessKeyId, kCarolKeys.secretAccessKey, ""})).status, 403);
  EXPECT_EQ(send(signedRequest("GET", "/", "", kCarolKeys)).status, 200);
  // SigV4A is signed too: not verifiable here, so refused rather than anonymous.
  EXPECT_EQ(send(unsignedRequest("GET", "/", "authorization: AWS4-ECDSA-P256-SHA256 Credential=x\r\n")).status, 403);
  EXPECT_EQ(backend.requests(), 1);
}

TEST_F(AuthTest, PayloadSigningIsRefused) {
  serviceAuth(kAllowAll);
  start();
  // The body's hash instead of UNSIGNED-PAYLOAD (aws4's default).
  Response r = send(signedRequest("POST", "/", "", kAliceKeys, {}, {true, false}, "{\"a\":1}"));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("UNSIGNED-PAYLOAD"), std::string::npos) << r.body;
  // No x-amz-content-sha256 at all (botocore's default).
  EXPECT_EQ(send(signedRequest("GET", "/", "", kAliceKeys, {}, {false, false})).status, 403);
  // UNSIGNED-PAYLOAD with a body streams through.
  r = send(signedRequest("POST", "/", "", kAliceKeys, {}, {true, true}, "{\"a\":1}"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echoed(r)["bodySize"], 7);
}

TEST_F(AuthTest, PresignedUrlsWork) {
  serviceAuth(policy({statement("Allow", json{{"AWS", kAlice}})}));
  start();
  std::string query = auth::presignQuery("GET", hostPort, "/reports/q1", "format=csv", kAliceKeys, "us-east-1",
                                         "vpc-lattice-svcs", systemNow(), 300);
  Response r = send(unsignedRequest("GET", "/reports/q1?" + query));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(echoedHeader(r, "x-amzn-lattice-identity"),
            "Principal=" + kAlice + "; PrincipalOrgID=o-abcdefghij; SessionName=; Type=AWS_IAM");
  // Tampered query, expired URL.
  std::string tampered = query;
  tampered.replace(tampered.find("format=csv"), 10, "format=pdf");
  EXPECT_EQ(send(unsignedRequest("GET", "/reports/q1?" + tampered)).status, 403);
  std::string old = auth::presignQuery("GET", hostPort, "/reports/q1", "", kAliceKeys, "us-east-1", "vpc-lattice-svcs",
                                       systemNow() - std::chrono::minutes(3), 60);
  EXPECT_EQ(send(unsignedRequest("GET", "/reports/q1?" + old)).status, 403);
}

struct ConditionCase {
  const char* name;
  json condition;
  std::function<std::string(AuthTest&)> allowed, denied;
  std::string allowedFrom = "127.0.0.1", deniedFrom = "127.0.0.1";
};

TEST_F(AuthTest, ConditionKeysEachDecide) {
  start();
  auto get = [](const std::string& path, HeaderList headers = {}, const auth::Credentials& keys = kAliceKeys) {
    return [=](AuthTest& t) { return t.signedRequest("GET", path, "", keys, headers); };
  };
  std::vector<ConditionCase> cases = {
      {"RequestMethod", {{"StringEquals", {{"vpc-lattice-svcs:RequestMethod", "GET"}}}}, get("/"),
       [](AuthTest& t) { return t.signedRequest("DELETE", "/", "", kAliceKeys); }},
      {"RequestPath", {{"StringLike", {{"vpc-lattice-svcs:RequestPath", "/public/*"}}}}, get("/public/a"),
       get("/private/a")},
      {"RequestHeader", {{"StringEquals", {{"vpc-lattice-svcs:RequestHeader/x-team", "blue"}}}},
       get("/", {{"x-team", "blue"}}), get("/", {{"x-team", "red"}})},
      {"RequestQueryString",
       {{"ForAnyValue:StringEquals", {{"vpc-lattice-svcs:RequestQueryString/color", "red"}}}},
       [](AuthTest& t) { return t.signedRequest("GET", "/", "size=1&color=blue&color=red", kAliceKeys); },
       [](AuthTest& t) { return t.signedRequest("GET", "/", "color=blue", kAliceKeys); }},
      {"Port", {{"NumericEquals", {{"vpc-lattice-svcs:Port", std::to_string(port)}}}}, get("/"), get("/")},
      {"SourceVpc", {{"StringEquals", {{"vpc-lattice-svcs:SourceVpc", kVpcA}}}}, get("/"), get("/"), "127.0.1.5",
       "127.0.2.5"},
      {"SourceVpcOwnerAccount", {{"StringEquals", {{"vpc-lattice-svcs:SourceVpcOwnerAccount", "111122223333"}}}},
       get("/"), get("/"), "127.0.1.5", "127.0.1.5"},
      {"ServiceNetworkArn", {{"StringEquals", {{"vpc-lattice-svcs:ServiceNetworkArn", kSnArn}}}}, get("/"),
       get("/")},
      {"PrincipalTag", {{"StringEquals", {{"aws:PrincipalTag/team", "blue"}}}}, get("/"), get("/", {}, kBobKeys)},
      {"PrincipalOrgID", {{"StringEquals", {{"aws:PrincipalOrgID", "o-abcdefghij"}}}}, get("/"),
       get("/", {}, kBobKeys)},
      {"SourceIp", {{"IpAddress", {{"aws:SourceIp", "127.0.1.0/24"}}}}, get("/"), get("/"), "127.0.1.9",
       "127.0.2.9"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    serviceAuth(policy({statement("Allow", "*", "*", c.condition)}));
    republish();
    Response allowed = send(c.allowed(*this), c.allowedFrom);
    EXPECT_EQ(allowed.status, 200) << allowed.body;
    // The same policy with the condition negated by a Deny proves the key was there to match.
    if (std::string(c.name) == "Port" || std::string(c.name) == "ServiceNetworkArn" ||
        std::string(c.name) == "SourceVpcOwnerAccount") {
      serviceAuth(policy({statement("Allow", "*"), statement("Deny", "*", "*", c.condition)}));
      republish();
    }
    Response refused = send(c.denied(*this), c.deniedFrom);
    EXPECT_EQ(refused.status, 403) << refused.body;
  }
}

TEST_F(AuthTest, ResourceIsServiceArnPlusPath) {
  serviceAuth(policy({statement("Allow", "*", kSvcArn + "/api/*")}));
  start();
  EXPECT_EQ(send(unsignedRequest("GET", "/api/rates?x=1")).status, 200);
  EXPECT_EQ(send(unsignedRequest("GET", "/other")).status, 403);
  EXPECT_EQ(send(unsignedRequest("GET", "/")).status, 403);
  serviceAuth(policy({statement("Allow", "*", kSvcArn + "/")}));
  republish();
  EXPECT_EQ(send(unsignedRequest("GET", "/")).status, 200);
}

TEST_F(AuthTest, UnparsableStoredPolicyDenies) {
  serviceAuth(json("{\"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"*\", "
                   "\"Resource\": \"*\", \"Condition\": {\"StringEqualz\": {\"a\": \"b\"}}}]}"));
  start();
  Response r = send(unsignedRequest("GET", "/"));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("no service-based policy"), std::string::npos);
}

TEST_F(AuthTest, AccessLogRecordsTheCaller) {
  h.store.accessLogSubscription("als-1", kSvc, "arn:aws:logs:us-east-1:111122223333:log-group:auth");
  serviceAuth(policy({statement("Allow", json{{"AWS", kAlice}})}));
  start();
  ASSERT_EQ(send(signedRequest("GET", "/ok", "", kAliceKeys)).status, 200);
  ASSERT_EQ(send(unsignedRequest("GET", "/no")).status, 403);
  ASSERT_EQ(send(signedRequest("GET", "/bad", "", {kAliceKeys.accessKeyId, "wrong", ""})).status, 403);
  std::vector<json> lines = accessLog();
  ASSERT_EQ(lines.size(), 3u);
  std::map<std::string, json> byPath;
  for (auto& line : lines) byPath[line["requestPath"]] = line;

  json ok = byPath["/ok"];
  EXPECT_EQ(ok["responseCode"], 200);
  EXPECT_EQ(ok["resolvedUser"], kAlice);
  EXPECT_TRUE(ok["authDeniedReason"].is_null());
  EXPECT_EQ(ok["callerPrincipal"], kAlice);
  EXPECT_EQ(ok["callerPrincipalOrgID"], "o-abcdefghij");
  EXPECT_EQ(ok["callerPrincipalTags"], (json{{"team", "blue"}, {"cost;center", "a;b"}}));
  EXPECT_EQ(ok["failureReason"], "-");

  json no = byPath["/no"];
  EXPECT_EQ(no["responseCode"], 403);
  EXPECT_EQ(no["resolvedUser"], "Anonymous");
  EXPECT_EQ(no["authDeniedReason"], "Service");
  EXPECT_EQ(no["callerPrincipal"], "-");
  EXPECT_EQ(no["failureReason"], "ClientAccessDenied");
  EXPECT_EQ(no["targetIpPort"], "-");

  json bad = byPath["/bad"];
  EXPECT_EQ(bad["responseCode"], 403);
  EXPECT_EQ(bad["resolvedUser"], "Unknown");
  EXPECT_TRUE(bad["authDeniedReason"].is_null());
  EXPECT_EQ(bad["failureReason"], "ClientAccessDenied");
}

TEST_F(AuthTest, AccessLogLeavesAuthFieldsNullWhenAuthIsOff) {
  h.store.accessLogSubscription("als-1", kSvc, "arn:aws:logs:us-east-1:111122223333:log-group:auth");
  start();
  ASSERT_EQ(send(signedRequest("GET", "/", "", kAliceKeys)).status, 200);
  std::vector<json> lines = accessLog();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0]["resolvedUser"].is_null());
  EXPECT_TRUE(lines[0]["authDeniedReason"].is_null());
  EXPECT_EQ(lines[0]["callerPrincipal"], "-");
  EXPECT_EQ(lines[0]["callerPrincipalTags"], "-");
}

}  // namespace
}  // namespace trellis::testing
