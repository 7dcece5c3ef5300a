#include <gtest/gtest.h>

#include "api/validation.h"

namespace trellis::api {
namespace {

TEST(Validation, LatticeNames) {
  EXPECT_EQ(checkServiceNetworkName("my-net"), "");
  EXPECT_EQ(checkServiceNetworkName("a1b"), "");
  EXPECT_NE(checkServiceNetworkName("ab"), "");
  EXPECT_NE(checkServiceNetworkName(std::string(64, 'a')), "");
  EXPECT_EQ(checkServiceNetworkName(std::string(63, 'a')), "");
  EXPECT_NE(checkServiceNetworkName("-abc"), "");
  EXPECT_NE(checkServiceNetworkName("abc-"), "");
  EXPECT_NE(checkServiceNetworkName("a--b"), "");
  EXPECT_NE(checkServiceNetworkName("Abc"), "");
  EXPECT_NE(checkServiceNetworkName("a_b"), "");
  EXPECT_NE(checkServiceName("svc-abc"), "");
  EXPECT_EQ(checkServiceName("svcabc"), "");
  EXPECT_NE(checkServiceName(std::string(41, 'a')), "");
  EXPECT_NE(checkListenerName("listener-1"), "");
  EXPECT_NE(checkRuleName("rule-1"), "");
  EXPECT_NE(checkTargetGroupName("tg-1"), "");
  EXPECT_EQ(checkTargetGroupName(std::string(128, 'a')), "");
}

TEST(Validation, Identifiers) {
  EXPECT_EQ(checkVpcId("vpc-0123456789abcdef0"), "");
  EXPECT_EQ(checkVpcId("vpc-01234567"), "");
  EXPECT_NE(checkVpcId("vpc-0123456"), "");
  EXPECT_NE(checkVpcId("vpc-0123456789ABCDEF0"), "");
  EXPECT_EQ(checkSecurityGroupId("sg-0123456789abcdef0"), "");
  EXPECT_EQ(checkCertificateArn("arn:aws:acm:us-east-1:111122223333:certificate/abc-123"), "");
  EXPECT_EQ(checkCertificateArn(""), "");
  EXPECT_NE(checkCertificateArn("arn:aws:s3:::bucket"), "");
  EXPECT_EQ(checkClientToken("abc!~"), "");
  EXPECT_NE(checkClientToken("a b"), "");
  EXPECT_EQ(checkMatchPath("/a/b?c=d&e"), "");
  EXPECT_NE(checkMatchPath("a/b"), "");
  EXPECT_NE(checkMatchPath("/a b"), "");
  EXPECT_EQ(checkDomainName("billing.example.com"), "");
  EXPECT_NE(checkDomainName("bad..example"), "");
  EXPECT_NE(checkDomainName("-bad.example"), "");
}

TEST(Validation, CollectsEveryField) {
  json body = {{"name", 5}, {"port", 70000}, {"enabled", "yes"}, {"kind", "X"}};
  FieldErrors errors;
  EXPECT_FALSE(readString(errors, body, "name", "name", {.required = true}));
  EXPECT_FALSE(readInt(errors, body, "port", "port", false, 1, 65535));
  EXPECT_FALSE(readBool(errors, body, "enabled", "enabled"));
  EXPECT_FALSE(readString(errors, body, "kind", "kind", {.oneOf = {"A", "B"}}));
  EXPECT_FALSE(readString(errors, body, "missing", "missing", {.required = true}));
  try {
    errors.throwIfAny();
    FAIL() << "expected a ValidationException";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.type, "ValidationException");
    EXPECT_EQ(e.members["reason"], "fieldValidationFailed");
    ASSERT_EQ(e.members["fieldList"].size(), 5u);
    EXPECT_EQ(e.members["fieldList"][0]["name"], "name");
    EXPECT_EQ(e.members["fieldList"][4]["name"], "missing");
  }
}

TEST(Validation, Tags) {
  FieldErrors errors;
  json ok = {{"tags", {{"team", "a"}, {"empty", ""}}}};
  auto tags = readTags(errors, ok);
  ASSERT_TRUE(tags);
  EXPECT_EQ(tags->size(), 2u);
  EXPECT_TRUE(errors.empty());
  json bad = {{"tags", {{std::string(129, 'k'), "v"}, {"n", 1}}}};
  EXPECT_FALSE(readTags(errors, bad));
  EXPECT_FALSE(errors.empty());
}

}  // namespace
}  // namespace trellis::api
