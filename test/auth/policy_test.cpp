// IAM policy engine: parse errors, every condition operator, set operators, variables, wildcards, the Not*
// elements, missing keys, case rules, and the Lattice combination of identity, network and service policies.
#include "auth/policy.h"

#include <gtest/gtest.h>

#include <deque>

using namespace trellis;
using namespace trellis::auth;

namespace {

constexpr std::string_view kService = "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0";
constexpr std::string_view kRole = "arn:aws:iam::111122223333:role/admin";

Policy mustParse(const std::string& text, PolicyKind kind = PolicyKind::Resource) {
  auto parsed = parsePolicy(text, kind);
  if (auto* error = std::get_if<PolicyError>(&parsed)) {
    ADD_FAILURE() << error->message << "\n in " << text;
    return std::get<Policy>(parsePolicy(R"({"Statement":{"Effect":"Deny","Principal":"*","Action":"*"}})"));
  }
  return std::get<Policy>(parsed);
}

std::string parseError(const std::string& text, PolicyKind kind = PolicyKind::Resource) {
  auto parsed = parsePolicy(text, kind);
  if (auto* error = std::get_if<PolicyError>(&parsed)) return error->message;
  return "(parsed)";
}

struct KeyValue {
  std::string name;
  std::string value;
  bool multiValued = false;
};

// A request context that owns its strings (tests only; the data plane points into its buffers).
struct Request {
  std::string principal = std::string(kRole);
  std::string action = "vpc-lattice-svcs:Invoke";
  std::string resource = std::string(kService) + "/rates";
  std::vector<KeyValue> keys;

  RequestContext context() const {
    RequestContext ctx;
    ctx.principal = principal;
    ctx.action = action;
    ctx.resource = resource;
    for (const auto& k : keys) ctx.add(k.name, k.value, k.multiValued);
    return ctx;
  }
};

Effect decide(const std::string& policy, const Request& request = {}) {
  return evaluate(mustParse(policy), request.context()).effect;
}

std::string allowWithCondition(const std::string& condition) {
  return R"({"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*",)"
         R"("Action":"vpc-lattice-svcs:Invoke","Resource":"*","Condition":)" +
         condition + "}}";
}

struct ConditionCase {
  std::string condition;
  std::vector<KeyValue> keys;
  bool matches;
};

void PrintTo(const ConditionCase& c, std::ostream* os) {
  *os << c.condition << " with";
  for (const auto& k : c.keys) *os << " " << k.name << "=" << k.value << (k.multiValued ? "[]" : "");
}

class ConditionTest : public testing::TestWithParam<ConditionCase> {};

TEST_P(ConditionTest, Matches) {
  const auto& c = GetParam();
  Request request;
  request.keys = c.keys;
  EXPECT_EQ(decide(allowWithCondition(c.condition), request), c.matches ? Effect::Allow : Effect::ImplicitDeny);
}

const std::string kHeader = "vpc-lattice-svcs:RequestHeader/x-team";
const std::string kQuery = "vpc-lattice-svcs:RequestQueryString/color";

// clang-format off
INSTANTIATE_TEST_SUITE_P(Operators, ConditionTest, testing::Values(
  // String operators: exact, case of values, wildcards only in Like.
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})", {{kHeader, "blue"}}, true},
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})", {{kHeader, "Blue"}}, false},
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"bl*"}})", {{kHeader, "blue"}}, false},
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":["red","blue"]}})",
                {{kHeader, "blue"}}, true},
  ConditionCase{R"({"StringNotEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})", {{kHeader, "blue"}}, false},
  ConditionCase{R"({"StringNotEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})", {{kHeader, "red"}}, true},
  ConditionCase{R"({"StringNotEquals":{"vpc-lattice-svcs:RequestHeader/x-team":["red","blue"]}})",
                {{kHeader, "red"}}, false},
  ConditionCase{R"({"StringEqualsIgnoreCase":{"vpc-lattice-svcs:RequestHeader/x-team":"BLUE"}})",
                {{kHeader, "blue"}}, true},
  ConditionCase{R"({"StringEqualsIgnoreCase":{"vpc-lattice-svcs:RequestHeader/x-team":"BLUE"}})",
                {{kHeader, "blues"}}, false},
  ConditionCase{R"({"StringNotEqualsIgnoreCase":{"vpc-lattice-svcs:RequestHeader/x-team":"BLUE"}})",
                {{kHeader, "blue"}}, false},
  ConditionCase{R"({"StringNotEqualsIgnoreCase":{"vpc-lattice-svcs:RequestHeader/x-team":"BLUE"}})",
                {{kHeader, "red"}}, true},
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"b*e"}})", {{kHeader, "blue"}}, true},
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"b?ue"}})", {{kHeader, "blue"}}, true},
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"b?e"}})", {{kHeader, "blue"}}, false},
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"*"}})", {{kHeader, ""}}, true},
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"B*"}})", {{kHeader, "blue"}}, false},
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"a*b*c"}})", {{kHeader, "axxbxxbxc"}}, true},
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"a*b*c"}})", {{kHeader, "axxbxxcx"}}, false},
  ConditionCase{R"({"StringNotLike":{"vpc-lattice-svcs:RequestHeader/x-team":["r*","g*"]}})",
                {{kHeader, "blue"}}, true},
  ConditionCase{R"({"StringNotLike":{"vpc-lattice-svcs:RequestHeader/x-team":["r*","b*"]}})",
                {{kHeader, "blue"}}, false},
  // Escapes make wildcard characters literal.
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"a${*}"}})", {{kHeader, "a*"}}, true},
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"a${*}"}})", {{kHeader, "ab"}}, false},
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"${$}${?}"}})", {{kHeader, "$?"}}, true},
  // Numeric: JSON numbers or strings, integers and decimals.
  ConditionCase{R"({"NumericEquals":{"vpc-lattice-svcs:Port":443}})", {{"vpc-lattice-svcs:Port", "443"}}, true},
  ConditionCase{R"({"NumericEquals":{"vpc-lattice-svcs:Port":"443"}})", {{"vpc-lattice-svcs:Port", "80"}}, false},
  ConditionCase{R"({"NumericNotEquals":{"vpc-lattice-svcs:Port":[80,8080]}})",
                {{"vpc-lattice-svcs:Port", "443"}}, true},
  ConditionCase{R"({"NumericNotEquals":{"vpc-lattice-svcs:Port":[80,443]}})",
                {{"vpc-lattice-svcs:Port", "443"}}, false},
  ConditionCase{R"({"NumericLessThan":{"vpc-lattice-svcs:Port":1024}})", {{"vpc-lattice-svcs:Port", "443"}}, true},
  ConditionCase{R"({"NumericLessThan":{"vpc-lattice-svcs:Port":443}})", {{"vpc-lattice-svcs:Port", "443"}}, false},
  ConditionCase{R"({"NumericLessThanEquals":{"vpc-lattice-svcs:Port":443}})", {{"vpc-lattice-svcs:Port", "443"}}, true},
  ConditionCase{R"({"NumericGreaterThan":{"vpc-lattice-svcs:Port":"1.5"}})", {{"vpc-lattice-svcs:Port", "1.75"}}, true},
  ConditionCase{R"({"NumericGreaterThan":{"vpc-lattice-svcs:Port":443}})", {{"vpc-lattice-svcs:Port", "443"}}, false},
  ConditionCase{R"({"NumericGreaterThanEquals":{"vpc-lattice-svcs:Port":443}})",
                {{"vpc-lattice-svcs:Port", "443"}}, true},
  ConditionCase{R"({"NumericEquals":{"vpc-lattice-svcs:Port":443}})", {{"vpc-lattice-svcs:Port", "https"}}, false},
  ConditionCase{R"({"NumericNotEquals":{"vpc-lattice-svcs:Port":443}})", {{"vpc-lattice-svcs:Port", "https"}}, false},
  // Dates: ISO 8601 with zones, date only, epoch seconds.
  ConditionCase{R"({"DateEquals":{"aws:CurrentTime":"2024-05-01T12:00:00Z"}})",
                {{"aws:CurrentTime", "2024-05-01T14:00:00+02:00"}}, true},
  ConditionCase{R"({"DateNotEquals":{"aws:CurrentTime":"2024-05-01T12:00:00Z"}})",
                {{"aws:CurrentTime", "2024-05-01T12:00:01Z"}}, true},
  ConditionCase{R"({"DateNotEquals":{"aws:CurrentTime":"2024-05-01T12:00:00Z"}})",
                {{"aws:CurrentTime", "2024-05-01T12:00:00Z"}}, false},
  ConditionCase{R"({"DateLessThan":{"aws:CurrentTime":"2024-05-01"}})",
                {{"aws:CurrentTime", "2024-04-30T23:59:59Z"}}, true},
  ConditionCase{R"({"DateLessThan":{"aws:CurrentTime":"2024-05-01"}})",
                {{"aws:CurrentTime", "2024-05-01T00:00:00Z"}}, false},
  ConditionCase{R"({"DateLessThanEquals":{"aws:CurrentTime":"2024-05-01"}})",
                {{"aws:CurrentTime", "2024-05-01T00:00:00Z"}}, true},
  ConditionCase{R"({"DateGreaterThan":{"aws:CurrentTime":"1714564800"}})",
                {{"aws:CurrentTime", "2024-05-01T12:00:00.5Z"}}, true},
  ConditionCase{R"({"DateGreaterThan":{"aws:CurrentTime":"1714564800"}})",
                {{"aws:CurrentTime", "2024-05-01T12:00:00Z"}}, false},
  ConditionCase{R"({"DateGreaterThanEquals":{"aws:CurrentTime":"1714564800"}})",
                {{"aws:CurrentTime", "1714564800"}}, true},
  ConditionCase{R"({"DateEquals":{"aws:CurrentTime":"2024-05-01T12:00:00Z"}})",
                {{"aws:CurrentTime", "yesterday"}}, false},
  // Bool: values compare case-insensitively; a request value that is no boolean never matches.
  ConditionCase{R"({"Bool":{"aws:SecureTransport":"true"}})", {{"aws:SecureTransport", "TRUE"}}, true},
  ConditionCase{R"({"Bool":{"aws:SecureTransport":true}})", {{"aws:SecureTransport", "false"}}, false},
  ConditionCase{R"({"Bool":{"aws:SecureTransport":"false"}})", {{"aws:SecureTransport", "no"}}, false},
  // IpAddress: v4 and v6, CIDRs and single addresses; a v6 caller is outside every v4 block.
  ConditionCase{R"({"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}})", {{"aws:SourceIp", "10.1.2.3"}}, true},
  ConditionCase{R"({"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}})", {{"aws:SourceIp", "11.1.2.3"}}, false},
  ConditionCase{R"({"IpAddress":{"aws:SourceIp":["192.168.1.7","10.0.0.0/8"]}})",
                {{"aws:SourceIp", "192.168.1.7"}}, true},
  ConditionCase{R"({"IpAddress":{"aws:SourceIp":"192.168.1.0/25"}})", {{"aws:SourceIp", "192.168.1.128"}}, false},
  ConditionCase{R"({"IpAddress":{"aws:SourceIp":"2001:db8::/32"}})", {{"aws:SourceIp", "2001:db8:1::5"}}, true},
  ConditionCase{R"({"IpAddress":{"aws:SourceIp":"2001:db8::/32"}})", {{"aws:SourceIp", "10.0.0.1"}}, false},
  ConditionCase{R"({"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}})", {{"aws:SourceIp", "not-an-ip"}}, false},
  ConditionCase{R"({"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}})", {{"aws:SourceIp", "11.1.2.3"}}, true},
  ConditionCase{R"({"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}})", {{"aws:SourceIp", "10.1.2.3"}}, false},
  ConditionCase{R"({"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}})", {{"aws:SourceIp", "2001:db8::1"}}, true},
  ConditionCase{R"({"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}})", {{"aws:SourceIp", "garbage"}}, false},
  // Arn operators: segment-wise wildcards, case-sensitive; ArnEquals takes wildcards too.
  ConditionCase{R"({"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/ad*"}})",
                {{"aws:PrincipalArn", "arn:aws:iam::111122223333:role/admin"}}, true},
  ConditionCase{R"({"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/ad*"}})",
                {{"aws:PrincipalArn", "arn:aws:iam::111122223333:role/Admin"}}, false},
  ConditionCase{R"({"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::1111*:role/admin"}})",
                {{"aws:PrincipalArn", "arn:aws:iam::111122223333:role/admin"}}, true},
  ConditionCase{R"({"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::4444*:role/admin"}})",
                {{"aws:PrincipalArn", "arn:aws:iam::111122223333:role/admin"}}, false},
  ConditionCase{R"({"ArnEquals":{"vpc-lattice-svcs:ServiceArn":"arn:aws:vpc-lattice:us-east-1:111122223333:service/*"}})",
                {{"vpc-lattice-svcs:ServiceArn", std::string(kService)}}, true},
  ConditionCase{R"({"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:role/admin"}})",
                {{"aws:PrincipalArn", "arn:aws:iam::111122223333:role/other"}}, true},
  ConditionCase{R"({"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}})",
                {{"aws:PrincipalArn", "arn:aws:iam::111122223333:role/other"}}, false},
  ConditionCase{R"({"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}})",
                {{"aws:PrincipalArn", "not-an-arn"}}, false},
  ConditionCase{R"({"BinaryEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"Qmx1ZQ=="}})",
                {{kHeader, "Qmx1ZQ=="}}, true},
  // Null: true means the key is absent.
  ConditionCase{R"({"Null":{"aws:PrincipalOrgID":"true"}})", {}, true},
  ConditionCase{R"({"Null":{"aws:PrincipalOrgID":"true"}})", {{"aws:PrincipalOrgID", "o-abc"}}, false},
  ConditionCase{R"({"Null":{"aws:PrincipalOrgID":false}})", {{"aws:PrincipalOrgID", "o-abc"}}, true},
  ConditionCase{R"({"Null":{"aws:PrincipalOrgID":"false"}})", {}, false}
));

INSTANTIATE_TEST_SUITE_P(MissingKeysAndIfExists, ConditionTest, testing::Values(
  // A missing key fails a positive operator and passes a negated one.
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})", {}, false},
  ConditionCase{R"({"StringNotEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})", {}, true},
  ConditionCase{R"({"StringNotLike":{"vpc-lattice-svcs:RequestHeader/x-team":"b*"}})", {}, true},
  ConditionCase{R"({"NumericLessThan":{"vpc-lattice-svcs:Port":1024}})", {}, false},
  ConditionCase{R"({"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}})", {}, true},
  ConditionCase{R"({"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}})", {}, true},
  ConditionCase{R"({"Bool":{"aws:SecureTransport":"true"}})", {}, false},
  // ...IfExists: a missing key passes, a present one is checked.
  ConditionCase{R"({"StringEqualsIfExists":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})", {}, true},
  ConditionCase{R"({"StringEqualsIfExists":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})",
                {{kHeader, "red"}}, false},
  ConditionCase{R"({"StringEqualsIfExists":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})",
                {{kHeader, "blue"}}, true},
  ConditionCase{R"({"NumericLessThanIfExists":{"vpc-lattice-svcs:Port":1024}})",
                {{"vpc-lattice-svcs:Port", "8080"}}, false},
  ConditionCase{R"({"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}})", {}, true},
  ConditionCase{R"({"DateLessThanIfExists":{"aws:CurrentTime":"2024-05-01"}})", {}, true},
  ConditionCase{R"({"BoolIfExists":{"aws:SecureTransport":"true"}})", {{"aws:SecureTransport", "false"}}, false},
  ConditionCase{R"({"ArnLikeIfExists":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}})", {}, true},
  // Several keys in one operator, several operators: all must hold.
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue","vpc-lattice-svcs:RequestMethod":"GET"}})",
                {{kHeader, "blue"}, {"vpc-lattice-svcs:RequestMethod", "GET"}}, true},
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue","vpc-lattice-svcs:RequestMethod":"GET"}})",
                {{kHeader, "blue"}, {"vpc-lattice-svcs:RequestMethod", "POST"}}, false},
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"},"NumericEquals":{"vpc-lattice-svcs:Port":80}})",
                {{kHeader, "blue"}, {"vpc-lattice-svcs:Port", "443"}}, false}
));

INSTANTIATE_TEST_SUITE_P(SetOperators, ConditionTest, testing::Values(
  ConditionCase{R"({"ForAnyValue:StringEquals":{"vpc-lattice-svcs:RequestQueryString/color":["red","blue"]}})",
                {{kQuery, "green", true}, {kQuery, "blue", true}}, true},
  ConditionCase{R"({"ForAnyValue:StringEquals":{"vpc-lattice-svcs:RequestQueryString/color":["red","blue"]}})",
                {{kQuery, "green", true}}, false},
  ConditionCase{R"({"ForAnyValue:StringEquals":{"vpc-lattice-svcs:RequestQueryString/color":"red"}})", {}, false},
  ConditionCase{R"({"ForAllValues:StringEquals":{"vpc-lattice-svcs:RequestQueryString/color":["red","blue"]}})",
                {{kQuery, "red", true}, {kQuery, "blue", true}}, true},
  ConditionCase{R"({"ForAllValues:StringEquals":{"vpc-lattice-svcs:RequestQueryString/color":["red","blue"]}})",
                {{kQuery, "red", true}, {kQuery, "green", true}}, false},
  ConditionCase{R"({"ForAllValues:StringEquals":{"vpc-lattice-svcs:RequestQueryString/color":"red"}})", {}, true},
  ConditionCase{R"({"ForAllValues:StringNotEquals":{"vpc-lattice-svcs:RequestQueryString/color":["red","blue"]}})",
                {{kQuery, "green", true}, {kQuery, "pink", true}}, true},
  ConditionCase{R"({"ForAnyValue:StringNotEquals":{"vpc-lattice-svcs:RequestQueryString/color":["red"]}})",
                {{kQuery, "red", true}, {kQuery, "pink", true}}, true},
  ConditionCase{R"({"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-a/r-ab/ou-1/*"}})",
                {{"aws:PrincipalOrgPaths", "o-a/r-ab/ou-2/", true}, {"aws:PrincipalOrgPaths", "o-a/r-ab/ou-1/ou-3/", true}}, true},
  ConditionCase{R"({"ForAnyValue:NumericLessThan":{"vpc-lattice-svcs:Port":100}})",
                {{"vpc-lattice-svcs:Port", "80"}}, true},
  // Without a set operator, a multi-valued key never matches, not even a negated operator or IfExists.
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestQueryString/color":"red"}})",
                {{kQuery, "red", true}}, false},
  ConditionCase{R"({"StringNotEquals":{"vpc-lattice-svcs:RequestQueryString/color":"blue"}})",
                {{kQuery, "red", true}}, false},
  ConditionCase{R"({"StringEqualsIfExists":{"vpc-lattice-svcs:RequestQueryString/color":"red"}})",
                {{kQuery, "red", true}}, false}
));

INSTANTIATE_TEST_SUITE_P(CaseRules, ConditionTest, testing::Values(
  // Key names and operator names are case-insensitive; values keep their operator's rule.
  ConditionCase{R"({"StringEquals":{"VPC-LATTICE-SVCS:requestheader/X-Team":"blue"}})", {{kHeader, "blue"}}, true},
  ConditionCase{R"({"stringequals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})",
                {{"Vpc-Lattice-Svcs:REQUESTHEADER/X-TEAM", "blue"}}, true},
  ConditionCase{R"({"forallvalues:stringequalsifexists":{"aws:PrincipalTag/Team":"blue"}})",
                {{"aws:principaltag/team", "blue"}}, true},
  ConditionCase{R"({"StringEquals":{"aws:PrincipalTag/team":"Blue"}})", {{"aws:PrincipalTag/team", "blue"}}, false}
));

INSTANTIATE_TEST_SUITE_P(Variables, ConditionTest, testing::Values(
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"${aws:PrincipalTag/team}"}})",
                {{kHeader, "blue"}, {"aws:PrincipalTag/team", "blue"}}, true},
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"${aws:principaltag/TEAM}"}})",
                {{kHeader, "blue"}, {"aws:PrincipalTag/team", "blue"}}, true},
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"team-${aws:PrincipalTag/team}"}})",
                {{kHeader, "team-blue"}, {"aws:PrincipalTag/team", "blue"}}, true},
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"*-${aws:PrincipalTag/team}"}})",
                {{kHeader, "x-y-blue"}, {"aws:PrincipalTag/team", "blue"}}, true},
  // A substituted value is literal: its '*' is no wildcard.
  ConditionCase{R"({"StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":"${aws:PrincipalTag/team}"}})",
                {{kHeader, "blue"}, {"aws:PrincipalTag/team", "*"}}, false},
  // A missing variable matches nothing, neither way; a fallback fills in.
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"${aws:PrincipalTag/team}"}})",
                {{kHeader, "blue"}}, false},
  ConditionCase{R"({"StringNotEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"${aws:PrincipalTag/team}"}})",
                {{kHeader, "blue"}}, false},
  ConditionCase{R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"${aws:PrincipalTag/team, 'none'}"}})",
                {{kHeader, "none"}}, true},
  ConditionCase{R"({"ArnLike":{"vpc-lattice-svcs:ServiceArn":"arn:aws:vpc-lattice:us-east-1:111122223333:service/${aws:PrincipalTag/svc}"}})",
                {{"vpc-lattice-svcs:ServiceArn", std::string(kService)}, {"aws:PrincipalTag/svc", "svc-0123456789abcdef0"}}, true}
));
// clang-format on

// ---- Statements: principals, actions, resources ----

std::string statement(const std::string& members, const std::string& version = "2012-10-17") {
  return R"({"Version":")" + version + R"(","Statement":[{"Effect":"Allow",)" + members + "}]}";
}

TEST(PolicyStatement, PrincipalForms) {
  std::string rest = R"("Action":"vpc-lattice-svcs:Invoke","Resource":"*")";
  Request role;
  Request anonymous;
  anonymous.principal = "";
  Request otherAccount;
  otherAccount.principal = "arn:aws:iam::444455556666:role/admin";
  Request session;
  session.principal = "arn:aws:sts::111122223333:assumed-role/admin/alice";

  auto check = [&](const std::string& principal, std::initializer_list<std::pair<const Request*, bool>> cases) {
    std::string policy = statement(principal + "," + rest);
    for (auto [request, allowed] : cases)
      EXPECT_EQ(decide(policy, *request), allowed ? Effect::Allow : Effect::ImplicitDeny)
          << policy << " for " << (request->principal.empty() ? "anonymous" : request->principal);
  };
  check(R"("Principal":"*")", {{&role, true}, {&anonymous, true}});
  check(R"("Principal":{"AWS":"*"})", {{&role, true}, {&anonymous, true}});
  check(R"("Principal":{"AWS":"arn:aws:iam::111122223333:role/admin"})",
        {{&role, true}, {&anonymous, false}, {&otherAccount, false}, {&session, true}});
  check(R"("Principal":{"AWS":"111122223333"})", {{&role, true}, {&anonymous, false}, {&otherAccount, false}});
  check(R"("Principal":{"AWS":"arn:aws:iam::444455556666:root"})", {{&role, false}, {&otherAccount, true}});
  check(R"("Principal":{"AWS":["111122223333","444455556666"]})", {{&role, true}, {&otherAccount, true}});
  check(R"("Principal":{"AWS":"arn:aws:iam::111122223333:role/Admin"})", {{&role, false}});
  check(R"("NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/admin"})",
        {{&role, false}, {&anonymous, true}, {&otherAccount, true}});
  check(R"("Principal":{"Service":"lambda.amazonaws.com"})", {{&role, false}, {&anonymous, false}});
}

TEST(PolicyStatement, ActionsMatchCaseInsensitivelyWithWildcards) {
  auto allowed = [](const std::string& actionMember, const std::string& action) {
    Request request;
    request.action = action;
    return decide(statement(R"("Principal":"*",)" + actionMember + R"(,"Resource":"*")"), request) == Effect::Allow;
  };
  EXPECT_TRUE(allowed(R"("Action":"vpc-lattice-svcs:Invoke")", "vpc-lattice-svcs:Invoke"));
  EXPECT_TRUE(allowed(R"("Action":"VPC-Lattice-Svcs:invoke")", "vpc-lattice-svcs:Invoke"));
  EXPECT_TRUE(allowed(R"("Action":"vpc-lattice-svcs:*")", "vpc-lattice-svcs:Connect"));
  EXPECT_TRUE(allowed(R"("Action":"vpc-lattice-svcs:In*")", "vpc-lattice-svcs:Invoke"));
  EXPECT_TRUE(allowed(R"("Action":"vpc-lattice-svcs:Invok?")", "vpc-lattice-svcs:Invoke"));
  EXPECT_TRUE(allowed(R"("Action":"*")", "vpc-lattice-svcs:Invoke"));
  EXPECT_TRUE(allowed(R"("Action":["s3:GetObject","vpc-lattice-svcs:Invoke"])", "vpc-lattice-svcs:Invoke"));
  EXPECT_FALSE(allowed(R"("Action":"vpc-lattice-svcs:Connect")", "vpc-lattice-svcs:Invoke"));
  EXPECT_FALSE(allowed(R"("Action":"vpc-lattice:*")", "vpc-lattice-svcs:Invoke"));
  EXPECT_FALSE(allowed(R"("NotAction":"vpc-lattice-svcs:Invoke")", "vpc-lattice-svcs:Invoke"));
  EXPECT_TRUE(allowed(R"("NotAction":"vpc-lattice-svcs:Invoke")", "vpc-lattice-svcs:Connect"));
  EXPECT_FALSE(allowed(R"("NotAction":["s3:*","vpc-lattice-svcs:*"])", "vpc-lattice-svcs:Connect"));
}

TEST(PolicyStatement, ResourcesMatchSegmentWiseAndCaseSensitively) {
  auto allowed = [](const std::string& resourceMember, const std::string& resource, std::string version = "2012-10-17",
                    std::vector<KeyValue> keys = {}) {
    Request request;
    request.resource = resource;
    request.keys = std::move(keys);
    std::string policy = statement(R"("Principal":"*","Action":"vpc-lattice-svcs:Invoke",)" + resourceMember, version);
    return decide(policy, request) == Effect::Allow;
  };
  std::string svc(kService);
  EXPECT_TRUE(allowed(R"("Resource":"*")", svc + "/rates"));
  EXPECT_TRUE(allowed(R"("Resource":")" + svc + R"(/rates")", svc + "/rates"));
  EXPECT_FALSE(allowed(R"("Resource":")" + svc + R"(/Rates")", svc + "/rates"));
  EXPECT_FALSE(allowed(R"("Resource":")" + svc + R"(/rates")", svc + "/rates/x"));
  EXPECT_TRUE(allowed(R"("Resource":")" + svc + R"(/*")", svc + "/"));
  EXPECT_TRUE(allowed(R"("Resource":")" + svc + R"(/*")", svc + "/a/b/c"));
  EXPECT_TRUE(allowed(R"("Resource":"arn:aws:vpc-lattice:us-east-1:111122223333:service/*/rates")", svc + "/rates"));
  EXPECT_TRUE(allowed(R"("Resource":"arn:aws:vpc-lattice:*:*:service/svc-0123456789abcdef?/*")", svc + "/x"));
  EXPECT_TRUE(
      allowed(R"("Resource":"arn:aws:vpc-lattice:*:*:service/*/api.parking/*")", svc + "/api.parking/GetRates"));
  EXPECT_TRUE(allowed(R"("Resource":"arn:aws:vpc-lattice:us-*:*:service/*")", svc + "/x"));
  EXPECT_FALSE(allowed(R"("Resource":"arn:aws:vpc-lattice:eu-*:*:service/*")", svc + "/x"));
  EXPECT_FALSE(allowed(R"("Resource":"arn:aws:vpc-lattice:us-east-1:444455556666:service/*")", svc + "/x"));
  EXPECT_TRUE(allowed(R"("Resource":["arn:aws:s3:::bucket","arn:aws:vpc-lattice:*:*:service/*"])", svc + "/x"));
  EXPECT_FALSE(allowed(R"("NotResource":")" + svc + R"(/admin*")", svc + "/admin/users"));
  EXPECT_TRUE(allowed(R"("NotResource":")" + svc + R"(/admin*")", svc + "/rates"));
  // Policy variables in resources (2012-10-17 only).
  std::vector<KeyValue> tag = {{"aws:PrincipalTag/svc", "svc-0123456789abcdef0"}};
  std::string byTag = R"("Resource":"arn:aws:vpc-lattice:us-east-1:111122223333:service/${aws:PrincipalTag/svc}/*")";
  EXPECT_TRUE(allowed(byTag, svc + "/rates", "2012-10-17", tag));
  EXPECT_FALSE(allowed(byTag, svc + "/rates", "2012-10-17"));
  EXPECT_FALSE(allowed(byTag, svc + "/rates", "2008-10-17", tag));
  EXPECT_TRUE(allowed(byTag, "arn:aws:vpc-lattice:us-east-1:111122223333:service/${aws:PrincipalTag/svc}/rates",
                      "2008-10-17", tag));
}

TEST(PolicyEvaluation, DenyWinsAndDecisionNamesTheStatement) {
  std::string policy = R"({"Version":"2012-10-17","Statement":[
    {"Sid":"all","Effect":"Allow","Principal":"*","Action":"*","Resource":"*"},
    {"Sid":"admin","Effect":"Deny","Principal":"*","Action":"vpc-lattice-svcs:Invoke",
     "Resource":"arn:aws:vpc-lattice:*:*:service/*/admin/*"}]})";
  Policy parsed = mustParse(policy);
  EXPECT_EQ(parsed.statementCount(), 2u);
  EXPECT_EQ(parsed.sid(1), "admin");
  Request request;
  auto allow = evaluate(parsed, request.context());
  EXPECT_EQ(allow.effect, Effect::Allow);
  EXPECT_EQ(allow.statement, 0);
  request.resource = std::string(kService) + "/admin/users";
  auto deny = evaluate(parsed, request.context());
  EXPECT_EQ(deny.effect, Effect::ExplicitDeny);
  EXPECT_EQ(deny.statement, 1);
}

TEST(PolicyEvaluation, StatementObjectAndMissingResourceOrPrincipal) {
  EXPECT_EQ(decide(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:*"}})"), Effect::Allow);
  EXPECT_EQ(decide(R"({"Statement":{"Effect":"Deny","Principal":"*","Action":"vpc-lattice-svcs:*"}})"),
            Effect::ExplicitDeny);
  // In an auth policy, a statement without Principal names nobody.
  EXPECT_EQ(decide(R"({"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}})"), Effect::ImplicitDeny);
  EXPECT_EQ(decide(R"({"Statement":[{"Effect":"Deny","Action":"*"},{"Effect":"Allow","Principal":"*","Action":"*"}]})"),
            Effect::Allow);
}

TEST(PolicyParse, ErrorsSayWhere) {
  EXPECT_EQ(parseError("{\"Statement\": ["), "The policy is not valid JSON (at byte 16)");
  EXPECT_EQ(parseError("[]"), "Policy: must be a JSON object");
  EXPECT_EQ(parseError("33333e3333333"), "The policy is not valid JSON (a number is out of range)");  // fuzzer find
  EXPECT_EQ(parseError(R"({"Statement":[],"Extra":1})"), "Policy: unknown key Extra");
  EXPECT_EQ(parseError(R"({"Version":"2020-01-01","Statement":[]})"),
            R"(Version: must be "2012-10-17" or "2008-10-17", not "2020-01-01")");
  EXPECT_EQ(parseError(R"({"Version":"2012-10-17"})"), "The policy has no Statement");
  EXPECT_EQ(parseError(R"({"Statement":[]})"), "Statement: is empty");
  EXPECT_EQ(parseError(R"({"Statement":[{"Principal":"*","Action":"*"}]})"), "Statement[0].Effect is missing");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"allow","Principal":"*","Action":"*"}})"),
            R"(Statement.Effect: must be "Allow" or "Deny", not "allow")");
  std::string ok = R"({"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"})";
  EXPECT_EQ(parseError(R"({"Statement":[)" + ok + R"(,{"Effect":"Allow","Principal":"*","Action":"*",
            "Condition":{"StringEqualz":{"a:b":"c"}}}]})"),
            "Statement[1].Condition: unknown operator StringEqualz");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*",
            "Condition":{"ForSomeValues:StringEquals":{"a:b":"c"}}}})"),
            "Statement.Condition: unknown set operator ForSomeValues (expected ForAllValues or ForAnyValue)");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*",
            "Condition":{"NullIfExists":{"a:b":"true"}}}})"),
            "Statement.Condition: unknown operator NullIfExists");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*",
            "Condition":{"NumericLessThan":{"vpc-lattice-svcs:Port":"many"}}}})"),
            R"(Statement.Condition.NumericLessThan.vpc-lattice-svcs:Port: "many" is not a number)");
  EXPECT_EQ(
      parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","10.0.0.0/33"]}}}})"),
      R"(Statement.Condition.IpAddress.aws:SourceIp: "10.0.0.0/33" is not an IPv4 or IPv6 address or CIDR block)");
  EXPECT_EQ(
      parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*",
            "Condition":{"DateLessThan":{"aws:CurrentTime":"soon"}}}})"),
      R"(Statement.Condition.DateLessThan.aws:CurrentTime: "soon" is not a date (ISO 8601 such as 2024-05-01T00:00:00Z, or epoch seconds))");
  EXPECT_EQ(
      parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*",
            "Condition":{"ArnLike":{"aws:PrincipalArn":"role/admin"}}}})"),
      R"(Statement.Condition.ArnLike.aws:PrincipalArn: "role/admin" is not a valid ARN (arn:partition:service:region:account:resource))");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"svc-1/*"}})"),
            R"(Statement.Resource: "svc-1/*" is not a valid ARN (arn:partition:service:region:account:resource))");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"arn:aws:s3"}})"),
            R"(Statement.Resource: "arn:aws:s3" is not a valid ARN (arn:partition:service:region:account:resource))");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"me","Action":"*"}})"),
            R"(Statement.Principal: must be "*" or an object such as {"AWS": "arn:..."}, not "me")");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"*"}})"),
            R"(Statement.Principal.AWS: "alice" is neither an ARN, an account id nor "*")");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":{"User":"x"},"Action":"*"}})"),
            "Statement.Principal: unknown principal type User (expected AWS, Service, Federated or CanonicalUser)");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*"}})", PolicyKind::Identity),
            "Statement: an identity-based policy cannot name a Principal or NotPrincipal");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*"}})"), "Statement.Action is missing");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Action":"*"}})", PolicyKind::Identity),
            "Statement.Resource is missing");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"Invoke"}})"),
            R"(Statement.Action: "Invoke" is not service:action or "*")");
  EXPECT_EQ(
      parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","NotResource":"*"}})"),
      "Statement: has both Resource and NotResource");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":["*",3]}})"),
            "Statement.Action[1]: must be a string");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Effects":"x"}})"),
            "Statement: unknown key Effects");
  EXPECT_EQ(parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*",
            "Condition":{"StringEquals":{"a:b":[]}}}})"),
            "Statement.Condition.StringEquals.a:b: has no values");
  EXPECT_EQ(
      parseError(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*",
            "Condition":{"StringEquals":{"a:b":{"c":1}}}}})"),
      R"(Statement.Condition.StringEquals.a:b: a condition value must be a string, number or boolean, not {"c":1})");
}

// ---- Lattice combination and messages ----

TEST(LatticeAuth, CombinesLayersAndExplainsDenials) {
  Policy allowAll = mustParse(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}})");
  Policy denyAll = mustParse(R"({"Statement":{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}})");
  Policy allowRole =
      mustParse(R"({"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/admin"},
                                   "Action":"vpc-lattice-svcs:Invoke","Resource":"*"}})");
  Policy identityNothing =
      mustParse(R"({"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}})", PolicyKind::Identity);
  Request request;
  RequestContext ctx = request.context();

  EXPECT_TRUE(authorizeLattice({}, ctx).allowed);  // no layer in force
  EXPECT_TRUE(authorizeLattice({.serviceUsesIam = true, .service = &allowRole}, ctx).allowed);

  auto noPolicy = authorizeLattice({.serviceUsesIam = true}, ctx);
  EXPECT_FALSE(noPolicy.allowed);
  EXPECT_EQ(noPolicy.deniedBy, AuthLayer::Service);
  EXPECT_EQ(accessDeniedMessage(noPolicy, ctx),
            "AccessDeniedException: User: arn:aws:iam::111122223333:role/admin is not authorized to perform: "
            "vpc-lattice-svcs:Invoke on resource: arn:aws:vpc-lattice:us-east-1:111122223333:service/"
            "svc-0123456789abcdef0/rates because no service-based policy allows the vpc-lattice-svcs:Invoke action");

  // A network-level explicit Deny beats a service-level Allow, and beats an earlier implicit deny.
  auto networkDeny = authorizeLattice({.identity = &identityNothing,
                                       .networkUsesIam = true,
                                       .network = &denyAll,
                                       .serviceUsesIam = true,
                                       .service = &allowAll},
                                      ctx);
  EXPECT_FALSE(networkDeny.allowed);
  EXPECT_TRUE(networkDeny.explicitDeny);
  EXPECT_EQ(networkDeny.deniedBy, AuthLayer::Network);
  EXPECT_EQ(authLayerName(networkDeny.deniedBy), "Network");
  EXPECT_EQ(accessDeniedMessage(networkDeny, ctx),
            "AccessDeniedException: User: arn:aws:iam::111122223333:role/admin is not authorized to perform: "
            "vpc-lattice-svcs:Invoke on resource: arn:aws:vpc-lattice:us-east-1:111122223333:service/"
            "svc-0123456789abcdef0/rates with an explicit deny in a network-based policy");

  auto identity = authorizeLattice({.identity = &identityNothing, .serviceUsesIam = true, .service = &allowAll}, ctx);
  EXPECT_FALSE(identity.allowed);
  EXPECT_EQ(identity.deniedBy, AuthLayer::Identity);
  EXPECT_TRUE(accessDeniedMessage(identity, ctx)
                  .ends_with("because no identity-based policy allows the vpc-lattice-svcs:Invoke action"));
  Policy identityDeny =
      mustParse(R"({"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}})", PolicyKind::Identity);
  auto explicitIdentity =
      authorizeLattice({.identity = &identityDeny, .serviceUsesIam = true, .service = &denyAll}, ctx);
  EXPECT_EQ(explicitIdentity.deniedBy, AuthLayer::Identity);
  EXPECT_TRUE(
      accessDeniedMessage(explicitIdentity, ctx).ends_with("with an explicit deny in an identity-based policy"));

  // NONE layers are skipped even when they have a policy.
  EXPECT_TRUE(authorizeLattice({.networkUsesIam = false, .network = &denyAll}, ctx).allowed);

  // Anonymous callers pass only where a policy allows "*".
  Request anonymousRequest;
  anonymousRequest.principal = "";
  RequestContext anonymous = anonymousRequest.context();
  auto anon = authorizeLattice({.serviceUsesIam = true, .service = &allowRole}, anonymous);
  EXPECT_FALSE(anon.allowed);
  EXPECT_EQ(accessDeniedMessage(anon, anonymous).substr(0, 45), "AccessDeniedException: User: anonymous is not");
  EXPECT_TRUE(authorizeLattice({.serviceUsesIam = true, .service = &allowAll}, anonymous).allowed);
}

TEST(LatticeAuth, PrincipalKeysComeFromTheIdentity) {
  model::Identity alice;
  alice.arn = "arn:aws:iam::111122223333:user/dev/alice";
  alice.orgId = "o-abc123";
  alice.orgPaths = {"o-abc123/r-ab12/ou-ab12-11111111/"};
  alice.tags = {{"team", "blue"}};
  RequestContext ctx;
  ctx.action = "vpc-lattice-svcs:Invoke";
  ctx.resource = "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-1/x";
  addPrincipalKeys(ctx, &alice);
  EXPECT_EQ(ctx.principal, alice.arn);
  Policy policy = mustParse(R"({"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"*",
    "Resource":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"111122223333","aws:PrincipalType":"User",
    "aws:PrincipalOrgID":"o-abc123","aws:username":"alice","aws:PrincipalTag/Team":"blue",
    "aws:PrincipalArn":"arn:aws:iam::111122223333:user/dev/alice"},
    "ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-abc123/r-ab12/*"}}}})");
  EXPECT_EQ(evaluate(policy, ctx).effect, Effect::Allow);

  RequestContext anonymous;
  addPrincipalKeys(anonymous, nullptr);
  Policy notAnonymous = mustParse(R"({"Statement":{"Effect":"Allow","Principal":"*","Action":"*",
    "Condition":{"StringNotEqualsIgnoreCase":{"aws:PrincipalType":"Anonymous"}}}})");
  EXPECT_EQ(evaluate(notAnonymous, anonymous).effect, Effect::ImplicitDeny);
  EXPECT_EQ(evaluate(notAnonymous, ctx).effect, Effect::Allow);
}

TEST(LatticeAuth, RequestKeys) {
  std::vector<std::pair<std::string, std::string>> headers = {{"x-team", "blue"}, {"accept", "*/*"}};
  std::vector<std::pair<std::string, std::string>> query = {{"color", "red"}, {"color", "blue"}, {"size", "xl"}};
  LatticeRequest request{.serviceArn = kService,
                         .serviceNetworkArn = "arn:aws:vpc-lattice:us-east-1:111122223333:servicenetwork/sn-1",
                         .sourceVpc = "vpc-0a1b2c3d",
                         .sourceVpcOwnerAccount = "111122223333",
                         .port = "443",
                         .method = "GET",
                         .path = "/rates",
                         .headers = &headers,
                         .query = &query,
                         .sourceIp = "10.0.1.7",
                         .currentTime = "2024-05-01T12:00:00Z",
                         .secureTransport = true};
  RequestContext ctx;
  ctx.principal = kRole;
  std::string resource = std::string(kService) + "/rates";
  ctx.resource = resource;
  addLatticeRequestKeys(ctx, request);
  EXPECT_EQ(ctx.action, "vpc-lattice-svcs:Invoke");
  Policy policy = mustParse(R"({"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*",
    "Action":"vpc-lattice-svcs:Invoke","Resource":"*","Condition":{
    "StringEquals":{"vpc-lattice-svcs:RequestHeader/X-Team":"blue","vpc-lattice-svcs:RequestMethod":"GET",
      "vpc-lattice-svcs:RequestPath":"/rates","vpc-lattice-svcs:SourceVpc":"vpc-0a1b2c3d",
      "vpc-lattice-svcs:SourceVpcOwnerAccount":"111122223333"},
    "ForAllValues:StringEquals":{"vpc-lattice-svcs:RequestQueryString/color":["red","blue"]},
    "ForAnyValue:StringEquals":{"vpc-lattice-svcs:RequestQueryString/size":"xl"},
    "NumericEquals":{"vpc-lattice-svcs:Port":443},
    "ArnLike":{"vpc-lattice-svcs:ServiceArn":"arn:aws:vpc-lattice:*:*:service/svc-0123456789abcdef0",
      "vpc-lattice-svcs:ServiceNetworkArn":"arn:aws:vpc-lattice:*:*:servicenetwork/sn-1"},
    "IpAddress":{"aws:SourceIp":"10.0.0.0/16"},"DateEquals":{"aws:CurrentTime":"2024-05-01T12:00:00Z"},
    "Bool":{"aws:SecureTransport":"true"}}}})");
  EXPECT_EQ(evaluate(policy, ctx).effect, Effect::Allow);

  // Connect carries only Port, ServiceArn, ServiceNetworkArn, SourceVpc and SourceVpcOwnerAccount of the svcs keys.
  RequestContext tcp;
  request.connect = true;
  addLatticeRequestKeys(tcp, request);
  EXPECT_EQ(tcp.action, "vpc-lattice-svcs:Connect");
  for (const auto& key : tcp.keys()) {
    std::string name = std::string(key.prefix) + std::string(key.name);
    EXPECT_TRUE(name.find("Request") == std::string::npos) << name;
  }
}

TEST(LatticeAuth, PrefixedKeysAvoidConcatenation) {
  RequestContext ctx;
  ctx.principal = kRole;
  ctx.action = "vpc-lattice-svcs:Invoke";
  ctx.resource = "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-1/x";
  ctx.add("vpc-lattice-svcs:RequestHeader/", "X-Team", "blue", false);
  ctx.add("vpc-lattice-svcs:RequestHeader/", "X-Teams", "red", false);
  Policy policy = mustParse(allowWithCondition(R"({"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-team":"blue"}})"));
  EXPECT_EQ(evaluate(policy, ctx).effect, Effect::Allow);
  ctx.clear();
  EXPECT_TRUE(ctx.keys().empty());
}

}  // namespace
