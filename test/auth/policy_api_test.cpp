// Control-plane authorization: identity-based policies with vpc-lattice:* actions and control-plane keys.
#include "auth/policy_api.h"

#include <gtest/gtest.h>

using namespace trellis;
using namespace trellis::auth;

namespace {

constexpr std::string_view kService = "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0";

model::Identity developer(std::string policy) {
  model::Identity identity;
  identity.arn = "arn:aws:iam::111122223333:role/dev";
  identity.tags = {{"team", "payments"}};
  identity.policy = std::move(policy);
  return identity;
}

TEST(ApiAuthorization, NoPolicyAllowsEverything) {
  EXPECT_TRUE(authorizeApiCall(developer(""), "DeleteServiceNetwork", "*").allowed);
}

TEST(ApiAuthorization, ActionsAndResources) {
  auto dev = developer(R"({"Version":"2012-10-17","Statement":[
    {"Effect":"Allow","Action":["vpc-lattice:Get*","vpc-lattice:List*"],"Resource":"*"},
    {"Effect":"Allow","Action":"vpc-lattice:*","Resource":"arn:aws:vpc-lattice:*:111122223333:service/svc-0123456789abcdef0*"},
    {"Effect":"Deny","Action":"vpc-lattice:DeleteService","Resource":"*"}]})");
  EXPECT_TRUE(authorizeApiCall(dev, "ListServices", "*").allowed);
  EXPECT_TRUE(authorizeApiCall(dev, "GetService", kService).allowed);
  EXPECT_TRUE(authorizeApiCall(dev, "UpdateService", kService).allowed);
  EXPECT_TRUE(
      authorizeApiCall(dev, "CreateListener", std::string(kService) + "/listener/listener-0123456789abcdef0").allowed);

  auto other = authorizeApiCall(dev, "UpdateService",
                                "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0fedcba987654321f");
  EXPECT_FALSE(other.allowed);
  EXPECT_EQ(other.message,
            "User: arn:aws:iam::111122223333:role/dev is not authorized to perform: vpc-lattice:UpdateService on "
            "resource: arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0fedcba987654321f because no "
            "identity-based policy allows the vpc-lattice:UpdateService action");

  auto deleted = authorizeApiCall(dev, "DeleteService", kService);
  EXPECT_FALSE(deleted.allowed);
  EXPECT_EQ(deleted.message,
            "User: arn:aws:iam::111122223333:role/dev is not authorized to perform: vpc-lattice:DeleteService on "
            "resource: " +
                std::string(kService) + " with an explicit deny in an identity-based policy");
  EXPECT_FALSE(authorizeApiCall(dev, "CreateServiceNetwork", "*").allowed);
}

TEST(ApiAuthorization, ControlPlaneConditionKeys) {
  auto dev = developer(R"({"Version":"2012-10-17","Statement":[
    {"Effect":"Allow","Action":"vpc-lattice:CreateService","Resource":"*",
     "Condition":{"StringEquals":{"vpc-lattice:AuthType":"AWS_IAM"}}},
    {"Effect":"Allow","Action":"vpc-lattice:CreateServiceNetworkVpcAssociation","Resource":"*",
     "Condition":{"ForAllValues:StringLike":{"vpc-lattice:SecurityGroupIds":"sg-0aa*"}}}]})");
  EXPECT_TRUE(authorizeApiCall(dev, "CreateService", "*", {{"vpc-lattice:AuthType", "AWS_IAM"}}).allowed);
  EXPECT_FALSE(authorizeApiCall(dev, "CreateService", "*", {{"vpc-lattice:AuthType", "NONE"}}).allowed);
  EXPECT_FALSE(authorizeApiCall(dev, "CreateService", "*").allowed);
  EXPECT_TRUE(
      authorizeApiCall(dev, "CreateServiceNetworkVpcAssociation", "*",
                       {{"vpc-lattice:SecurityGroupIds", "sg-0aa1"}, {"vpc-lattice:SecurityGroupIds", "sg-0aa2"}})
          .allowed);
  EXPECT_FALSE(
      authorizeApiCall(dev, "CreateServiceNetworkVpcAssociation", "*",
                       {{"vpc-lattice:SecurityGroupIds", "sg-0aa1"}, {"vpc-lattice:SecurityGroupIds", "sg-0bb"}})
          .allowed);
}

TEST(ApiAuthorization, PrincipalKeysVariablesAndTime) {
  auto dev = developer(R"({"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"vpc-lattice:TagResource",
    "Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/team":"${aws:PrincipalTag/team}"},
    "DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}})");
  auto before2030 = *parseRfc3339("2029-12-31T23:59:59Z");
  auto after2030 = *parseRfc3339("2030-01-01T00:00:01Z");
  EXPECT_TRUE(
      authorizeApiCall(dev, "TagResource", kService, {{"aws:ResourceTag/team", "payments"}}, before2030).allowed);
  EXPECT_FALSE(
      authorizeApiCall(dev, "TagResource", kService, {{"aws:ResourceTag/team", "search"}}, before2030).allowed);
  EXPECT_FALSE(
      authorizeApiCall(dev, "TagResource", kService, {{"aws:ResourceTag/team", "payments"}}, after2030).allowed);
}

TEST(ApiAuthorization, AnInvalidPolicyDenies) {
  auto broken = authorizeApiCall(developer(R"({"Statement":{"Effect":"Allow","Action":"*"}})"), "ListServices", "*");
  EXPECT_FALSE(broken.allowed);
  EXPECT_EQ(broken.message,
            "User: arn:aws:iam::111122223333:role/dev is not authorized to perform: vpc-lattice:ListServices on "
            "resource: * because the identity-based policy is invalid: Statement.Resource is missing");
}

}  // namespace
