// Lattice's Lambda event (V1 and V2) and the function's answer, on their own: every field the user guide
// shows (https://docs.aws.amazon.com/vpc-lattice/latest/ug/lambda-functions.html), repeated fields and
// query keys, the base64 rule, and the answers a proxy must refuse.
#include "proxy/upstream/lambda_event.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace trellis::proxy {
namespace {

using nlohmann::json;

LambdaRequest request(bool v2) {
  LambdaRequest r;
  r.v2 = v2;
  r.method = "POST";
  r.target = "/orders/7?id=1&tag=a&tag=b%20c&flag";
  r.headers = {{"host", "svc.example"},
               {"accept", "text/html"},
               {"accept", "application/json"},
               {"content-type", "application/json"},
               {"x-forwarded-for", "10.0.0.9"}};
  r.body = R"({"n":1})";
  r.serviceNetworkArn = "arn:aws:vpc-lattice:us-east-1:111122223333:servicenetwork/sn-0123456789abcdef0";
  r.serviceArn = "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0";
  r.targetGroupArn = "arn:aws:vpc-lattice:us-east-1:111122223333:targetgroup/tg-0123456789abcdef0";
  r.sourceVpcArn = "arn:aws:ec2:us-east-1:111122223333:vpc/vpc-0123456789abcdef0";
  r.region = "us-east-1";
  r.timeEpochMicros = 1690497599177430;
  return r;
}

TEST(LambdaEvent, V1HasTheUserGuidesFieldsAndNoOthers) {
  json event = json::parse(lambdaEvent(request(false)));
  EXPECT_EQ(event.size(), 6u) << event.dump();
  EXPECT_EQ(event["raw_path"], "/orders/7?id=1&tag=a&tag=b%20c&flag");
  EXPECT_EQ(event["method"], "POST");
  EXPECT_EQ(event["headers"]["accept"], "text/html, application/json");  // repeated: joined
  EXPECT_EQ(event["headers"]["x-forwarded-for"], "10.0.0.9");
  EXPECT_EQ(event["query_string_parameters"], json({{"id", "1"}, {"tag", "b c"}, {"flag", ""}}));  // last value
  EXPECT_EQ(event["body"], R"({"n":1})");
  EXPECT_EQ(event["is_base64_encoded"], false);
}

TEST(LambdaEvent, V2ListsValuesAndCarriesTheRequestContext) {
  json event = json::parse(lambdaEvent(request(true)));
  EXPECT_EQ(event["version"], "2.0");
  EXPECT_EQ(event["path"], "/orders/7?id=1&tag=a&tag=b%20c&flag");
  EXPECT_EQ(event["method"], "POST");
  EXPECT_EQ(event["headers"]["accept"], json({"text/html", "application/json"}));
  EXPECT_EQ(event["headers"]["host"], json({"svc.example"}));
  EXPECT_EQ(event["queryStringParameters"], json({{"id", {"1"}}, {"tag", {"a", "b c"}}, {"flag", {""}}}));
  EXPECT_EQ(event["isBase64Encoded"], false);
  const json& context = event["requestContext"];
  EXPECT_EQ(context["serviceNetworkArn"],
            "arn:aws:vpc-lattice:us-east-1:111122223333:servicenetwork/sn-0123456789abcdef0");
  EXPECT_EQ(context["serviceArn"], "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0");
  EXPECT_EQ(context["targetGroupArn"], "arn:aws:vpc-lattice:us-east-1:111122223333:targetgroup/tg-0123456789abcdef0");
  EXPECT_EQ(context["region"], "us-east-1");
  EXPECT_EQ(context["timeEpoch"], "1690497599177430");  // microseconds, as a string
  // Without auth, the identity is only where the request came from.
  EXPECT_EQ(context["identity"],
            json({{"sourceVpcArn", "arn:aws:ec2:us-east-1:111122223333:vpc/vpc-0123456789abcdef0"}}));
  EXPECT_FALSE(event.contains("raw_path"));
  EXPECT_FALSE(event.contains("query_string_parameters"));
}

TEST(LambdaEvent, V2IdentityNamesTheAuthenticatedCaller) {
  model::Identity caller;
  caller.arn = "arn:aws:sts::111122223333:assumed-role/checkout/session-42";
  caller.orgId = "o-abcdef123456";
  LambdaRequest r = request(true);
  r.caller = &caller;
  json identity = json::parse(lambdaEvent(r))["requestContext"]["identity"];
  EXPECT_EQ(identity["type"], "AWS_IAM");
  EXPECT_EQ(identity["principal"], caller.arn);
  EXPECT_EQ(identity["principalOrgID"], "o-abcdef123456");
  EXPECT_EQ(identity["sessionName"], "session-42");
  EXPECT_EQ(identity["sourceVpcArn"], "arn:aws:ec2:us-east-1:111122223333:vpc/vpc-0123456789abcdef0");

  caller.arn = "arn:aws:iam::111122223333:user/alice";  // no session, no organization
  caller.orgId.clear();
  identity = json::parse(lambdaEvent(r))["requestContext"]["identity"];
  EXPECT_EQ(identity["principal"], caller.arn);
  EXPECT_FALSE(identity.contains("sessionName"));
  EXPECT_FALSE(identity.contains("principalOrgID"));
}

TEST(LambdaEvent, BodiesGoBase64UnlessTextTypedAndUnencoded) {
  auto encoded = [](std::vector<HeaderView> headers, std::string_view body) {
    LambdaRequest r = request(false);
    r.headers = std::move(headers);
    r.body = body;
    json event = json::parse(lambdaEvent(r));
    return std::make_pair(event["is_base64_encoded"].get<bool>(), event["body"].get<std::string>());
  };
  EXPECT_EQ(encoded({{"content-type", "text/plain; charset=utf-8"}}, "héllo"),
            std::make_pair(false, std::string("héllo")));
  EXPECT_EQ(encoded({{"content-type", "application/xml"}}, "<a/>"), std::make_pair(false, std::string("<a/>")));
  EXPECT_EQ(encoded({{"content-type", "APPLICATION/JAVASCRIPT"}}, "x()"), std::make_pair(false, std::string("x()")));
  EXPECT_EQ(encoded({{"content-type", "application/octet-stream"}}, std::string("\0\1\2\xff", 4)),
            std::make_pair(true, std::string("AAEC/w==")));
  EXPECT_EQ(encoded({}, "abc"), std::make_pair(true, std::string("YWJj")));  // no type at all
  EXPECT_EQ(encoded({{"content-type", "application/json"}, {"content-encoding", "gzip"}}, "abc"),
            std::make_pair(true, std::string("YWJj")));
  // A "text" body that is not UTF-8 could not be a JSON string as it is.
  EXPECT_EQ(encoded({{"content-type", "text/plain"}}, "\xc3\x28"), std::make_pair(true, std::string("wyg=")));
  EXPECT_EQ(encoded({}, ""), std::make_pair(false, std::string()));  // no body: nothing to encode
}

TEST(LambdaResponse, BecomesAResponseWithMultiValueHeaders) {
  LambdaResponse out;
  std::string error;
  ASSERT_TRUE(parseLambdaResponse(
      R"({"statusCode":201,"statusDescription":"201 Created","headers":{"Content-Type":"text/plain","Set-Cookie":["a=1","b=2"],"X-Count":3,"Connection":"close","Content-Length":"999","Transfer-Encoding":"chunked"},"body":"made","isBase64Encoded":false})",
      out, error))
      << error;
  EXPECT_EQ(out.status, 201);
  EXPECT_EQ(out.body, "made");
  Headers expected{{"content-type", "text/plain"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}, {"x-count", "3"}};
  EXPECT_EQ(out.headers, expected);  // hop-by-hop and the length dropped: the proxy frames the response
}

TEST(LambdaResponse, DecodesABase64Body) {
  LambdaResponse out;
  std::string error;
  ASSERT_TRUE(parseLambdaResponse(R"({"statusCode":200,"body":"AAEC/w==","isBase64Encoded":true})", out, error));
  EXPECT_EQ(out.body, std::string("\0\1\2\xff", 4));
  ASSERT_TRUE(parseLambdaResponse(R"({"statusCode":204})", out, error));
  EXPECT_EQ(out.body, "");
}

TEST(LambdaResponse, RefusesWhatIsNotAnAnswer) {
  for (const char* bad : {
           R"("just a string")",
           R"([200])",
           R"({"body":"no status"})",
           R"({"statusCode":"200"})",
           R"({"statusCode":100})",
           R"({"statusCode":600})",
           R"({"statusCode":200,"headers":["a"]})",
           R"({"statusCode":200,"headers":{"bad name":"x"}})",
           R"({"statusCode":200,"headers":{"x-a":"one\r\nx-injected: yes"}})",
           R"({"statusCode":200,"headers":{"x-a":{"nested":1}}})",
           R"({"statusCode":200,"body":42})",
           R"({"statusCode":200,"body":"@@@","isBase64Encoded":true})",
           R"({"statusCode":200,"body":"YQ","isBase64Encoded":true})",
           R"({"statusCode":200,"body":"x","isBase64Encoded":"yes"})",
           R"({"statusCode":200)",
       }) {
    LambdaResponse out;
    std::string error;
    EXPECT_FALSE(parseLambdaResponse(bad, out, error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

}  // namespace
}  // namespace trellis::proxy
