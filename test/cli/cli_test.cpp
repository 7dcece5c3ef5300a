#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "common/http_server.h"
#include "common/strings.h"

namespace trellis::cli {
namespace {

using nlohmann::json;

int parse(std::vector<std::string> argv, Options& out, std::string* err = nullptr) {
  argv.insert(argv.begin(), "trellis");
  std::ostringstream o, e;
  int code = parseArgs(argv, out, o, e);
  if (err) *err = e.str();
  return code;
}

TEST(CliArgs, GetWithParentsAndGlobalOptionsAnywhere) {
  Options o;
  ASSERT_EQ(parse({"--endpoint", "http://h:1", "get", "rules", "svc-1", "listener-2", "-o", "json"}, o), -1);
  EXPECT_EQ(o.command, "get");
  EXPECT_EQ(o.resource, "rules");
  EXPECT_EQ(o.args, (std::vector<std::string>{"svc-1", "listener-2"}));
  EXPECT_EQ(o.output, "json");
  EXPECT_EQ(o.endpoint, "http://h:1");
}

TEST(CliArgs, Describe) {
  Options o;
  ASSERT_EQ(parse({"describe", "svc-0123456789abcdef0", "--region", "eu-west-1"}, o), -1);
  EXPECT_EQ(o.command, "describe");
  EXPECT_EQ(o.args, std::vector<std::string>{"svc-0123456789abcdef0"});
  EXPECT_EQ(o.region, "eu-west-1");
  EXPECT_EQ(o.output, "table");
}

TEST(CliArgs, UsageErrorsExitTwo) {
  Options o;
  std::string err;
  EXPECT_EQ(parse({}, o, &err), 2);
  EXPECT_EQ(parse({"get"}, o, &err), 2);
  EXPECT_EQ(parse({"describe"}, o, &err), 2);
  EXPECT_EQ(parse({"get", "services", "-o", "yaml"}, o, &err), 2);
  EXPECT_NE(err.find("yaml"), std::string::npos) << err;
  EXPECT_EQ(parse({"frobnicate"}, o, &err), 2);
  EXPECT_EQ(parse({"--config", "/nonexistent/trellis.yaml", "get", "services"}, o, &err), 2);
  EXPECT_EQ(parse({"--help"}, o), 0);
}

TEST(CliPlan, ListRequests) {
  ListPlan p;
  std::string err;
  ASSERT_TRUE(planList("services", {}, p, err));
  EXPECT_EQ(p.request.method, "GET");
  EXPECT_EQ(p.request.path, "/services");
  ASSERT_TRUE(planList("rules", {"svc-1", "listener-2"}, p, err));
  EXPECT_EQ(p.request.path, "/services/svc-1/listeners/listener-2/rules");
  ASSERT_TRUE(planList("targets", {"arn:aws:vpc-lattice:us-east-1:111122223333:targetgroup/tg-1"}, p, err));
  EXPECT_EQ(p.request.method, "POST");
  EXPECT_EQ(p.request.path, "/targetgroups/arn%3Aaws%3Avpc-lattice%3Aus-east-1%3A111122223333%3Atargetgroup%2Ftg-1/listtargets");
  EXPECT_EQ(p.request.body, "{}");
  ASSERT_TRUE(planList("proxies", {}, p, err));  // signed for "trellis": docs/fleet.md
  EXPECT_EQ(p.request.path, "/_trellis/v1/proxies");

  EXPECT_FALSE(planList("listeners", {}, p, err));
  EXPECT_EQ(err, "usage: trellis get listeners SERVICE");
  EXPECT_FALSE(planList("gateways", {}, p, err));
  EXPECT_NE(err.find("unknown resource 'gateways'"), std::string::npos);
}

TEST(CliPlan, DescribeByIdPrefix) {
  std::map<std::string, std::string> expected = {
      {"sn-0123456789abcdef0", "/servicenetworks/sn-0123456789abcdef0"},
      {"svc-0123456789abcdef0", "/services/svc-0123456789abcdef0"},
      {"tg-0123456789abcdef0", "/targetgroups/tg-0123456789abcdef0"},
      {"snsa-0123456789abcdef0", "/servicenetworkserviceassociations/snsa-0123456789abcdef0"},
      {"snva-0123456789abcdef0", "/servicenetworkvpcassociations/snva-0123456789abcdef0"},
      {"als-0123456789abcdef0", "/accesslogsubscriptions/als-0123456789abcdef0"},
  };
  for (const auto& [id, path] : expected) {
    ApiRequest r;
    std::string err;
    ASSERT_TRUE(planDescribe(id, r, err)) << id << ": " << err;
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.path, path);
  }
  ApiRequest r;
  std::string err;
  EXPECT_FALSE(planDescribe("listener-0123456789abcdef0", r, err));
  EXPECT_NE(err.find("describe it by ARN"), std::string::npos);
  EXPECT_FALSE(planDescribe("vpc-123", r, err));
  EXPECT_FALSE(planDescribe("nodash", r, err));
}

TEST(CliPlan, DescribeByArn) {
  ApiRequest r;
  std::string err;
  ASSERT_TRUE(planDescribe("arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0", r, err));
  EXPECT_EQ(r.path, "/services/svc-0123456789abcdef0");
  ASSERT_TRUE(planDescribe(
      "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0/listener/listener-0123456789abcdef0",
      r, err));
  EXPECT_EQ(r.path, "/services/svc-0123456789abcdef0/listeners/listener-0123456789abcdef0");
  ASSERT_TRUE(planDescribe("arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0/listener/"
                           "listener-0123456789abcdef0/rule/rule-0123456789abcdef0",
                           r, err));
  EXPECT_EQ(r.path,
            "/services/svc-0123456789abcdef0/listeners/listener-0123456789abcdef0/rules/rule-0123456789abcdef0");
  ASSERT_TRUE(planDescribe("arn:aws:vpc-lattice:us-east-1:111122223333:servicenetwork/sn-0123456789abcdef0", r, err));
  EXPECT_EQ(r.path, "/servicenetworks/sn-0123456789abcdef0");
  EXPECT_FALSE(planDescribe("arn:aws:s3:::bucket", r, err));
  EXPECT_FALSE(planDescribe("arn:aws:vpc-lattice:us-east-1:111122223333:gadget/g-1", r, err));
  EXPECT_FALSE(planDescribe("arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-1/listener", r, err));
}

TEST(CliFormat, AlignedTable) {
  json items = json::parse(R"([
    {"id": "svc-0123456789abcdef0", "name": "checkout", "status": "ACTIVE",
     "dnsEntry": {"domainName": "checkout-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-east-1.on.aws"},
     "createdAt": "2024-05-06T07:08:09Z"},
    {"id": "svc-1", "name": "a", "status": "CREATE_IN_PROGRESS"}
  ])");
  std::vector<Column> cols = {{"ID", "id"}, {"NAME", "name"}, {"STATUS", "status"}, {"DNS", "dnsEntry.domainName"}};
  EXPECT_EQ(formatTable(items, cols),
            "ID                      NAME       STATUS               DNS\n"
            "svc-0123456789abcdef0   checkout   ACTIVE               "
            "checkout-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-east-1.on.aws\n"
            "svc-1                   a          CREATE_IN_PROGRESS   -\n");
  EXPECT_EQ(formatTable(json::array(), cols), "ID   NAME   STATUS   DNS\n");
  // Numbers and booleans print as JSON literals.
  EXPECT_EQ(formatTable(json::parse(R"([{"id":"rule-1","priority":10,"isDefault":false}])"),
                        {{"ID", "id"}, {"PRIORITY", "priority"}, {"DEFAULT", "isDefault"}}),
            "ID       PRIORITY   DEFAULT\nrule-1   10         false\n");
}

TEST(CliFormat, ObjectIsFlattened) {
  json obj = json::parse(R"({"id":"tg-1","config":{"port":80,"healthCheck":{"enabled":true}},"tags":["a"]})");
  EXPECT_EQ(formatObject(obj),
            "FIELD                        VALUE\n"
            "config.healthCheck.enabled   true\n"
            "config.port                  80\n"
            "id                           tg-1\n"
            "tags                         [\"a\"]\n");
}

TEST(CliSettings, EnvironmentAndDefaults) {
  std::map<std::string, std::string> env = {{"AWS_ACCESS_KEY_ID", "AKID"},
                                            {"AWS_SECRET_ACCESS_KEY", "secret"},
                                            {"AWS_SESSION_TOKEN", "tok"},
                                            {"AWS_DEFAULT_REGION", "eu-west-1"}};
  auto lookup = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  Options o;
  Settings s;
  std::string err;
  ASSERT_TRUE(resolveSettings(o, lookup, s, err)) << err;
  EXPECT_EQ(s.credentials.accessKeyId, "AKID");
  EXPECT_EQ(s.credentials.sessionToken, "tok");
  EXPECT_EQ(s.region, "eu-west-1");
  EXPECT_EQ(s.endpoint.host, "127.0.0.1");
  EXPECT_EQ(s.endpoint.port, 8440);
  EXPECT_EQ(s.endpoint.hostHeader, "127.0.0.1:8440");

  env["TRELLIS_ENDPOINT"] = "http://[::1]:9000/";
  env["AWS_REGION"] = "ap-south-1";
  ASSERT_TRUE(resolveSettings(o, lookup, s, err)) << err;
  EXPECT_EQ(s.endpoint.host, "::1");
  EXPECT_EQ(s.endpoint.port, 9000);
  EXPECT_EQ(s.endpoint.hostHeader, "[::1]:9000");
  EXPECT_EQ(s.region, "ap-south-1");

  o.endpoint = "https://secure.example";  // an API behind a TLS-terminating proxy
  ASSERT_TRUE(resolveSettings(o, lookup, s, err)) << err;
  EXPECT_TRUE(s.endpoint.tls);
  EXPECT_EQ(s.endpoint.port, 443);
  EXPECT_EQ(s.endpoint.hostHeader, "secure.example");

  o.endpoint = "ftp://files.example";
  EXPECT_FALSE(resolveSettings(o, lookup, s, err));
  EXPECT_NE(err.find("http:// or https://"), std::string::npos) << err;

  o.endpoint.clear();
  env.erase("AWS_SECRET_ACCESS_KEY");
  EXPECT_FALSE(resolveSettings(o, lookup, s, err));
  EXPECT_NE(err.find("no credentials"), std::string::npos);
}

TEST(CliSettings, FirstIdentityOfTheConfigFile) {
  std::string path = ::testing::TempDir() + "/trellis-cli-test.yaml";
  std::ofstream(path) << "region: eu-central-1\n"
                         "identities:\n"
                         "  - arn: arn:aws:iam::111122223333:role/admin\n"
                         "    accessKeyId: AKIAEXAMPLEADMIN01\n"
                         "    secretAccessKey: secret\n"
                         "  - arn: arn:aws:iam::111122223333:role/other\n"
                         "    accessKeyId: AKIAEXAMPLEOTHER01\n"
                         "    secretAccessKey: other\n";
  auto noEnv = [](const char*) -> const char* { return nullptr; };
  Options o;
  o.configPath = path;
  Settings s;
  std::string err;
  ASSERT_TRUE(resolveSettings(o, noEnv, s, err)) << err;
  EXPECT_EQ(s.credentials.accessKeyId, "AKIAEXAMPLEADMIN01");
  EXPECT_EQ(s.credentials.secretAccessKey, "secret");
  EXPECT_EQ(s.region, "eu-central-1");
  o.region = "us-west-2";
  ASSERT_TRUE(resolveSettings(o, noEnv, s, err)) << err;
  EXPECT_EQ(s.region, "us-west-2");

  std::ofstream(path) << "identities: 7\n";
  EXPECT_FALSE(resolveSettings(o, noEnv, s, err));
  EXPECT_NE(err.find("trellis-cli-test.yaml"), std::string::npos) << err;  // the config error names the file
}

TEST(CliErrors, ReadsErrorsLikeTheSdk) {
  HttpResult r;
  r.status = 404;
  r.headers = {{"x-amzn-errortype", "ResourceNotFoundException:http://internal.amazon.com/"}};
  r.body = R"({"message":"Service svc-1 not found","resourceId":"svc-1"})";
  ApiError e = apiErrorOf(r);
  EXPECT_EQ(e.type, "ResourceNotFoundException");
  EXPECT_EQ(e.message, "Service svc-1 not found");
  r.headers.clear();
  r.body = R"({"__type":"com.amazon.coral#InvalidSignatureException","Message":"bad"})";
  e = apiErrorOf(r);
  EXPECT_EQ(e.type, "InvalidSignatureException");
  EXPECT_EQ(e.message, "bad");
  r.status = 502;
  r.body = "<html>bad gateway</html>";
  e = apiErrorOf(r);
  EXPECT_EQ(e.type, "HTTP 502");
  EXPECT_EQ(e.message, "<html>bad gateway</html>");
}

// A real HTTP server standing in for trellisd: it checks every request's SigV4 signature with our verifier
// and serves two pages of services, so the CLI's client, signer and pagination are exercised end to end.
TEST(CliRun, SignsPaginatesAndReportsErrorsOverHttp) {
  model::Identity identity;
  identity.accessKeyId = "AKIDCLITEST000000000";
  identity.secretAccessKey = "cli/secret";
  std::vector<std::string> targets;
  HttpServer server("cli-test", [&](const HttpRequest& req) {
    HttpResponse resp;
    resp.headers = {{"content-type", "application/json"}};
    auth::SigV4Request sreq{req.method, req.path, req.query, req.headers, req.body};
    auto verdict = auth::verifySigV4(
        sreq, "vpc-lattice", "us-east-1",
        [&](std::string_view akid) { return akid == identity.accessKeyId ? &identity : nullptr; }, systemNow());
    if (!verdict.ok()) {
      resp.status = verdict.status;
      resp.headers.emplace_back("x-amzn-ErrorType", verdict.errorCode);
      resp.body = json{{"message", verdict.message}}.dump();
      return resp;
    }
    targets.push_back(req.method + " " + req.target);
    if (req.path == "/services" && req.query.empty()) {
      resp.body = R"({"items":[{"id":"svc-a","name":"alpha","status":"ACTIVE"}],"nextToken":"page 2/+"})";
    } else if (req.path == "/services") {
      resp.body = R"({"items":[{"id":"svc-b","name":"beta","status":"ACTIVE"}]})";
    } else if (req.path == "/services/svc-a") {
      resp.body = R"({"id":"svc-a","name":"alpha","dnsEntry":{"domainName":"alpha.example"}})";
    } else {
      resp.status = 404;
      resp.headers.emplace_back("x-amzn-ErrorType", "ResourceNotFoundException");
      resp.body = R"({"message":"Service svc-zzz not found"})";
    }
    return resp;
  });
  server.start("127.0.0.1:0");

  Settings settings;
  std::string err;
  settings.endpoint = *parseEndpoint("http://127.0.0.1:" + std::to_string(server.port()), err);
  settings.credentials = {identity.accessKeyId, identity.secretAccessKey, ""};
  settings.region = "us-east-1";

  Options list;
  list.command = "get";
  list.resource = "services";
  std::ostringstream out, errs;
  ASSERT_EQ(run(list, settings, out, errs), 0) << errs.str();
  EXPECT_EQ(out.str(), "ID      NAME    STATUS   DNS   CREATED\n"
                       "svc-a   alpha   ACTIVE   -     -\n"
                       "svc-b   beta    ACTIVE   -     -\n");
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[1], "GET /services?nextToken=page%202%2F%2B");

  Options describe;
  describe.command = "describe";
  describe.args = {"svc-a"};
  describe.output = "json";
  out.str("");
  ASSERT_EQ(run(describe, settings, out, errs), 0) << errs.str();
  EXPECT_EQ(json::parse(out.str())["dnsEntry"]["domainName"], "alpha.example");

  describe.args = {"svc-zzz"};
  errs.str("");
  EXPECT_EQ(run(describe, settings, out, errs), 1);
  EXPECT_EQ(errs.str(), "trellis: ResourceNotFoundException (HTTP 404): Service svc-zzz not found\n");

  settings.credentials.secretAccessKey = "wrong";
  errs.str("");
  EXPECT_EQ(run(list, settings, out, errs), 1);
  EXPECT_NE(errs.str().find("InvalidSignatureException (HTTP 403): The request signature we calculated"),
            std::string::npos)
      << errs.str();
  server.stop(0);

  errs.str("");
  EXPECT_EQ(run(list, settings, out, errs), 1);
  EXPECT_NE(errs.str().find("cannot connect to http://127.0.0.1:"), std::string::npos) << errs.str();
}

}  // namespace
}  // namespace trellis::cli
