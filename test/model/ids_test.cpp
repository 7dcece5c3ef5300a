#include "model/ids.h"

#include <gtest/gtest.h>

#include <set>

namespace trellis::model {
namespace {

const Kind kAllKinds[] = {
    Kind::ServiceNetwork,
    Kind::Service,
    Kind::Listener,
    Kind::Rule,
    Kind::TargetGroup,
    Kind::ServiceNetworkServiceAssociation,
    Kind::ServiceNetworkVpcAssociation,
    Kind::AccessLogSubscription,
    Kind::ServiceNetworkResourceAssociation,
    Kind::ResourceGateway,
    Kind::ResourceConfiguration,
    Kind::ResourceEndpointAssociation,
    Kind::DomainVerification,
};

TEST(Ids, NewIdsHaveTheSpecShapeAndDiffer) {
  for (Kind kind : kAllKinds) {
    std::string id = newId(kind);
    SCOPED_TRACE(id);
    EXPECT_EQ(id.size(), idPrefix(kind).size() + 18);
    EXPECT_EQ(id.substr(0, idPrefix(kind).size() + 1), std::string(idPrefix(kind)) + "-");
    EXPECT_TRUE(isId(kind, id));
    EXPECT_NE(id, newId(kind));
  }
  std::set<std::string> many;
  for (int i = 0; i < 1000; ++i) many.insert(newId(Kind::Service));
  EXPECT_EQ(many.size(), 1000u);
}

TEST(Ids, IsIdFollowsTheSpecRegexes) {
  EXPECT_TRUE(isId(Kind::Service, "svc-0cfe1f49ff3266204"));
  EXPECT_TRUE(isId(Kind::Service, "svc-0123456789abcdxyz")) << "[0-9a-z]";
  EXPECT_FALSE(isId(Kind::Service, "svc-0cfe1f49ff326620")) << "16 chars";
  EXPECT_FALSE(isId(Kind::Service, "svc-0cfe1f49ff32662045")) << "18 chars";
  EXPECT_FALSE(isId(Kind::Service, "svc-0CFE1F49FF3266204")) << "upper case";
  EXPECT_FALSE(isId(Kind::Service, "svc_0cfe1f49ff3266204"));
  EXPECT_FALSE(isId(Kind::Service, "sn-0cfe1f49ff3266204"));
  EXPECT_FALSE(isId(Kind::ServiceNetwork, "svc-0cfe1f49ff3266204"));
  EXPECT_FALSE(isId(Kind::Service, ""));
  EXPECT_TRUE(isId(Kind::Listener, "listener-0123456789abcdefg"));
  EXPECT_TRUE(isId(Kind::Rule, "rule-0123456789abcdefg"));
  // Hex-only kinds.
  EXPECT_TRUE(isId(Kind::ServiceNetworkResourceAssociation, "snra-0123456789abcdef0"));
  EXPECT_FALSE(isId(Kind::ServiceNetworkResourceAssociation, "snra-0123456789abcdefg"));
  EXPECT_FALSE(isId(Kind::ResourceEndpointAssociation, "rea-0123456789abcdefz"));
  EXPECT_TRUE(isId(Kind::DomainVerification, "dv-0123456789ABCDEF0"));
  EXPECT_FALSE(isId(Kind::DomainVerification, "dv-0123456789ABCDEFG"));
  EXPECT_FALSE(isId(Kind::ServiceNetwork, std::string_view("sn-0123456789abcdef\0", 20)));
}

TEST(Ids, Names) {
  EXPECT_EQ(idPrefix(Kind::ServiceNetworkVpcAssociation), "snva");
  EXPECT_EQ(kindName(Kind::ServiceNetworkServiceAssociation), "servicenetworkserviceassociation");
  EXPECT_EQ(kindName(Kind::TargetGroup), "targetgroup");
  EXPECT_EQ(resourceType(Kind::ServiceNetwork), "SERVICE_NETWORK");
  EXPECT_EQ(resourceType(Kind::AccessLogSubscription), "ACCESS_LOG_SUBSCRIPTION");
  std::set<std::string_view> prefixes, names;
  for (Kind kind : kAllKinds) {
    prefixes.insert(idPrefix(kind));
    names.insert(kindName(kind));
  }
  EXPECT_EQ(prefixes.size(), std::size(kAllKinds)) << "prefixes must be distinct";
  EXPECT_EQ(names.size(), std::size(kAllKinds));
}

TEST(Ids, Arns) {
  ArnContext ctx{"aws", "ap-southeast-2", "444455556666"};
  EXPECT_EQ(arnFor(ctx, Kind::ServiceNetwork, "sn-0123456789abcdef0"),
            "arn:aws:vpc-lattice:ap-southeast-2:444455556666:servicenetwork/sn-0123456789abcdef0");
  EXPECT_EQ(arnFor(ArnContext{}, Kind::TargetGroup, "tg-0123456789abcdef0"),
            "arn:aws:vpc-lattice:us-east-1:111122223333:targetgroup/tg-0123456789abcdef0");
  EXPECT_EQ(listenerArn(ctx, "svc-0123456789abcdef0", "listener-0123456789abcdef0"),
            "arn:aws:vpc-lattice:ap-southeast-2:444455556666:service/svc-0123456789abcdef0/listener/"
            "listener-0123456789abcdef0");
  EXPECT_EQ(ruleArn(ctx, "svc-0123456789abcdef0", "listener-0123456789abcdef0", "rule-0123456789abcdef0"),
            "arn:aws:vpc-lattice:ap-southeast-2:444455556666:service/svc-0123456789abcdef0/listener/"
            "listener-0123456789abcdef0/rule/rule-0123456789abcdef0");
}

TEST(Ids, ParseArn) {
  auto arn = parseArn("arn:aws-cn:vpc-lattice:cn-north-1:444455556666:service/svc-0123456789abcdef0");
  ASSERT_TRUE(arn);
  EXPECT_EQ(arn->partition, "aws-cn");
  EXPECT_EQ(arn->service, "vpc-lattice");
  EXPECT_EQ(arn->region, "cn-north-1");
  EXPECT_EQ(arn->accountId, "444455556666");
  EXPECT_EQ(arn->resource, "service/svc-0123456789abcdef0");

  auto iam = parseArn("arn:aws:iam::111122223333:role/admin");
  ASSERT_TRUE(iam);
  EXPECT_EQ(iam->region, "");
  EXPECT_EQ(iam->resource, "role/admin");
  // Colons inside the resource stay in the resource.
  auto logs = parseArn("arn:aws:logs:us-east-1:111122223333:log-group:my-group:*");
  ASSERT_TRUE(logs);
  EXPECT_EQ(logs->resource, "log-group:my-group:*");
  auto s3 = parseArn("arn:aws:s3:::bucket");
  ASSERT_TRUE(s3);
  EXPECT_EQ(s3->resource, "bucket");

  EXPECT_FALSE(parseArn(""));
  EXPECT_FALSE(parseArn("arn:aws:iam::111122223333"));
  EXPECT_FALSE(parseArn("arn:aws:iam::111122223333:"));
  EXPECT_FALSE(parseArn("nra:aws:iam::111122223333:role/a"));
  EXPECT_FALSE(parseArn("arn::iam::111122223333:role/a"));
  EXPECT_FALSE(parseArn("arn:aws:::111122223333:role/a"));
}

TEST(Ids, IdFromIdentifier) {
  const std::string svc = "svc-0123456789abcdef0", lis = "listener-0123456789abcdef0", rule = "rule-0123456789abcdef0";
  ArnContext ctx;
  EXPECT_EQ(idFromIdentifier(Kind::Service, svc), svc);
  EXPECT_EQ(idFromIdentifier(Kind::Service, arnFor(ctx, Kind::Service, svc)), svc);
  EXPECT_EQ(idFromIdentifier(Kind::Listener, lis), lis);
  EXPECT_EQ(idFromIdentifier(Kind::Listener, listenerArn(ctx, svc, lis)), lis);
  EXPECT_EQ(idFromIdentifier(Kind::Rule, ruleArn(ctx, svc, lis, rule)), rule);
  for (Kind kind : kAllKinds) {
    if (kind == Kind::Listener || kind == Kind::Rule) continue;
    std::string id = newId(kind);
    EXPECT_EQ(idFromIdentifier(kind, arnFor(ctx, kind, id)), id) << id;
  }

  EXPECT_FALSE(idFromIdentifier(Kind::Service, "my-service")) << "names are not identifiers";
  EXPECT_FALSE(idFromIdentifier(Kind::ServiceNetwork, svc)) << "wrong kind of id";
  EXPECT_FALSE(idFromIdentifier(Kind::ServiceNetwork, arnFor(ctx, Kind::Service, svc)));
  EXPECT_FALSE(idFromIdentifier(Kind::Service, "arn:aws:ec2:us-east-1:111122223333:service/" + svc));
  EXPECT_FALSE(idFromIdentifier(Kind::Service, arnFor(ctx, Kind::Service, svc) + "/extra"));
  EXPECT_FALSE(idFromIdentifier(Kind::Service, "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-bad"));
  EXPECT_FALSE(idFromIdentifier(Kind::Listener, arnFor(ctx, Kind::Service, svc)));
  EXPECT_FALSE(idFromIdentifier(Kind::Listener, "arn:aws:vpc-lattice:us-east-1:111122223333:listener/" + lis));
  EXPECT_FALSE(idFromIdentifier(Kind::Rule, listenerArn(ctx, svc, lis) + "/rules/" + rule));
  // The parents in a child ARN must be ids of the right kinds too.
  EXPECT_FALSE(idFromIdentifier(Kind::Listener, listenerArn(ctx, "svc-nope", lis)));
  EXPECT_FALSE(idFromIdentifier(Kind::Rule, ruleArn(ctx, svc, "listener-nope", rule)));
  EXPECT_FALSE(idFromIdentifier(Kind::Rule, ruleArn(ctx, "x", lis, rule)));
}

TEST(Ids, ServiceDnsName) {
  EXPECT_EQ(serviceDnsName("test2", "svc-0cfe1f49ff3266204", "7d67968", "vpc-lattice-svcs.ap-southeast-2.on.aws"),
            "test2-0cfe1f49ff3266204.7d67968.vpc-lattice-svcs.ap-southeast-2.on.aws");
}

}  // namespace
}  // namespace trellis::model
