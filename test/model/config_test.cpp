#include "model/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace trellis::model {
namespace {

const char* kExample = R"(region: us-east-1
accountId: "111122223333"
identities:
  - arn: arn:aws:iam::111122223333:role/admin
    accessKeyId: AKIAEXAMPLEADMIN01
    secretAccessKey: secret
    tags: {team: platform}
    orgId: o-exampleorg
vpcs:
  - id: vpc-0123456789abcdef0
    cidrs: ["127.0.1.0/24"]
securityGroups:
  - id: sg-0123456789abcdef0
    vpcId: vpc-0123456789abcdef0
    ingress: [{cidr: "127.0.1.0/25", fromPort: 1, toPort: 65535}]
instances:
  - id: i-0123456789abcdef0
    vpcId: vpc-0123456789abcdef0
    address: 127.0.0.5
)";

// The ConfigError message for `yaml`, or "" when it parses.
std::string errorOf(const std::string& yaml) {
  try {
    parseConfig(yaml, "t.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Asserts that `yaml` fails at `line` with a message containing `reason`.
void expectError(const std::string& yaml, int line, const std::string& reason) {
  std::string error = errorOf(yaml);
  SCOPED_TRACE(yaml);
  ASSERT_FALSE(error.empty()) << "parsed without error";
  std::string prefix = "t.yaml:" + std::to_string(line) + ": ";
  EXPECT_EQ(error.substr(0, prefix.size()), prefix) << error;
  EXPECT_NE(error.find(reason), std::string::npos) << error;
}

// A valid base with one VPC, to which a test appends its own section.
const char* kBase = R"(accountId: "111122223333"
vpcs:
  - id: vpc-0123456789abcdef0
    cidrs: ["10.0.0.0/16"]
)";

TEST(Config, FullExample) {
  Config c = parseConfig(kExample, "example.yaml");
  EXPECT_EQ(c.region, "us-east-1");
  EXPECT_EQ(c.accountId, "111122223333");
  EXPECT_EQ(c.partition, "aws");
  ASSERT_EQ(c.identities.size(), 1u);
  const Identity& id = c.identities[0];
  EXPECT_EQ(id.arn, "arn:aws:iam::111122223333:role/admin");
  EXPECT_EQ(id.accessKeyId, "AKIAEXAMPLEADMIN01");
  EXPECT_EQ(id.secretAccessKey, "secret");
  EXPECT_EQ(id.sessionToken, "");
  EXPECT_EQ(id.tags, (std::map<std::string, std::string>{{"team", "platform"}}));
  EXPECT_EQ(id.orgId, "o-exampleorg");
  EXPECT_TRUE(id.orgPaths.empty());
  EXPECT_EQ(id.policy, "");
  ASSERT_EQ(c.vpcs.size(), 1u);
  EXPECT_EQ(c.vpcs[0].id, "vpc-0123456789abcdef0");
  EXPECT_EQ(c.vpcs[0].cidrs, std::vector<std::string>{"127.0.1.0/24"});
  ASSERT_EQ(c.securityGroups.size(), 1u);
  EXPECT_EQ(c.securityGroups[0].id, "sg-0123456789abcdef0");
  EXPECT_EQ(c.securityGroups[0].vpcId, "vpc-0123456789abcdef0");
  ASSERT_EQ(c.securityGroups[0].ingress.size(), 1u);
  EXPECT_EQ(c.securityGroups[0].ingress[0].cidr, "127.0.1.0/25");
  EXPECT_EQ(c.securityGroups[0].ingress[0].fromPort, 1);
  EXPECT_EQ(c.securityGroups[0].ingress[0].toPort, 65535);
  ASSERT_EQ(c.instances.size(), 1u);
  EXPECT_EQ(c.instances[0].id, "i-0123456789abcdef0");
  EXPECT_EQ(c.instances[0].vpcId, "vpc-0123456789abcdef0");
  EXPECT_EQ(c.instances[0].address, "127.0.0.5");
  EXPECT_EQ(c.drainSeconds, 60);
  EXPECT_EQ(c.quotas.services, 2000);

  EXPECT_EQ(c.identityByAccessKey("AKIAEXAMPLEADMIN01"), &c.identities[0]);
  EXPECT_EQ(c.identityByAccessKey("AKIAEXAMPLEADMIN02"), nullptr);
}

TEST(Config, EmptyFileGivesDefaults) {
  for (const char* text : {"", "\n", "# only a comment\n", "---\n"}) {
    Config c = parseConfig(text, "empty.yaml");
    EXPECT_EQ(c.region, "us-east-1");
    EXPECT_EQ(c.accountId, "111122223333");
    EXPECT_EQ(c.partition, "aws");
    EXPECT_EQ(c.partitionId, "7d67968");
    EXPECT_EQ(c.effectiveServiceDomain(), "vpc-lattice-svcs.us-east-1.on.aws");
    EXPECT_TRUE(c.identities.empty());
    EXPECT_TRUE(c.vpcs.empty());
    EXPECT_EQ(c.drainSeconds, 60);
    EXPECT_EQ(c.quotas.serviceNetworks, 50);
    EXPECT_EQ(c.quotas.listenersPerService, 2);
  }
}

TEST(Config, EveryOtherField) {
  Config c = parseConfig(R"(region: eu-west-2
accountId: 012345678901
partition: aws-cn
serviceDomain: lattice.example.internal
partitionId: abc123
identities:
  - arn: arn:aws-cn:iam::444455556666:user/dev/alice
    accessKeyId: ASIAEXAMPLETEMP0001
    secretAccessKey: s3cr3t
    sessionToken: token-value
    orgPaths: ["o-exampleorg/r-ab12/ou-ab12-11111111/"]
    policy: '{"Version": "2012-10-17", "Statement": []}'
  - arn: arn:aws-cn:iam::111122223333:role/yaml-policy
    accessKeyId: AKIAEXAMPLEYAML0001
    secretAccessKey: x
    policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: ["vpc-lattice-svcs:Invoke"]
          Resource: "*"
vpcs:
  - id: vpc-01234567
    cidrs: ["10.0.0.0/16", "fd00:ec2::/64"]
quotas:
  serviceNetworks: 3
  services: 4
  targetGroups: 5
  listenersPerService: 6
  rulesPerListener: 7
  targetGroupsPerService: 8
  targetsPerTargetGroup: 9
  serviceAssociationsPerServiceNetwork: 10
  vpcAssociationsPerServiceNetwork: 11
  resourceGatewaysPerVpc: 12
  resourceConfigurations: 13
  childResourceConfigurationsPerGroup: 14
  resourceAssociationsPerServiceNetwork: 15
  domainVerifications: 16
drainSeconds: 0
)",
                         "t.yaml");
  EXPECT_EQ(c.region, "eu-west-2");
  EXPECT_EQ(c.accountId, "012345678901") << "an unquoted account id keeps its leading zero";
  EXPECT_EQ(c.partition, "aws-cn");
  EXPECT_EQ(c.effectiveServiceDomain(), "lattice.example.internal");
  EXPECT_EQ(c.partitionId, "abc123");
  ASSERT_EQ(c.identities.size(), 2u);
  EXPECT_EQ(c.identities[0].sessionToken, "token-value");
  EXPECT_EQ(c.identities[0].orgPaths, std::vector<std::string>{"o-exampleorg/r-ab12/ou-ab12-11111111/"});
  EXPECT_EQ(nlohmann::json::parse(c.identities[0].policy)["Version"], "2012-10-17");
  auto yamlPolicy = nlohmann::json::parse(c.identities[1].policy);
  EXPECT_EQ(yamlPolicy["Statement"][0]["Action"][0], "vpc-lattice-svcs:Invoke");
  EXPECT_EQ(yamlPolicy["Statement"][0]["Resource"], "*");
  EXPECT_EQ(c.vpcs[0].cidrs[1], "fd00:ec2::/64");
  EXPECT_EQ(c.quotas.serviceNetworks, 3);
  EXPECT_EQ(c.quotas.services, 4);
  EXPECT_EQ(c.quotas.targetGroups, 5);
  EXPECT_EQ(c.quotas.listenersPerService, 6);
  EXPECT_EQ(c.quotas.rulesPerListener, 7);
  EXPECT_EQ(c.quotas.targetGroupsPerService, 8);
  EXPECT_EQ(c.quotas.targetsPerTargetGroup, 9);
  EXPECT_EQ(c.quotas.serviceAssociationsPerServiceNetwork, 10);
  EXPECT_EQ(c.quotas.vpcAssociationsPerServiceNetwork, 11);
  EXPECT_EQ(c.quotas.resourceGatewaysPerVpc, 12);
  EXPECT_EQ(c.quotas.resourceConfigurations, 13);
  EXPECT_EQ(c.quotas.childResourceConfigurationsPerGroup, 14);
  EXPECT_EQ(c.quotas.resourceAssociationsPerServiceNetwork, 15);
  EXPECT_EQ(c.quotas.domainVerifications, 16);
  EXPECT_EQ(c.drainSeconds, 0);
}

TEST(Config, SectionsMayComeInAnyOrder) {
  Config c = parseConfig(R"(instances:
  - {id: i-0123abcd, vpcId: vpc-0123456789abcdef0, address: "::1"}
securityGroups:
  - {id: sg-0123abcd, vpcId: vpc-0123456789abcdef0}
vpcs:
  - id: vpc-0123456789abcdef0
)",
                         "t.yaml");
  EXPECT_EQ(c.instances.size(), 1u);
  ASSERT_EQ(c.securityGroups.size(), 1u);
  EXPECT_TRUE(c.securityGroups[0].ingress.empty());
}

TEST(Config, SyntaxErrors) {
  expectError("region: us-east-1\nvpcs: [\n", 3, "invalid YAML");
  expectError("a: b\n  c: d: e\n", 2, "invalid YAML");
  expectError("- a\n- b\n", 1, "must be a mapping");
  expectError("region: us-east-1\n---\nregion: us-west-2\n", 2, "one YAML document");
  // yaml-cpp's LoadAll never returns on this input; the parser must.
  EXPECT_NE(errorOf(","), "");
  EXPECT_NE(errorOf("a: 1\n,\n"), "");
}

TEST(Config, UnknownAndDuplicateKeys) {
  expectError("region: us-east-1\nregoin: us-east-1\n", 2, "unknown key 'regoin'");
  expectError("region: us-east-1\nregion: us-west-2\n", 2, "duplicate key 'region'");
  expectError(std::string(kBase) + "    owner: me\n", 5, "unknown key 'owner' in vpc");
  expectError("quotas:\n  services: 5\n  lambdas: 3\n", 3, "unknown key 'lambdas' in quotas");
  expectError(
      "identities:\n  - arn: arn:aws:iam::111122223333:role/a\n    accessKeyId: AKIAEXAMPLEADMIN01\n"
      "    secretAccessKey: s\n    password: x\n",
      5, "unknown key 'password' in identity");
}

TEST(Config, TopLevelValues) {
  expectError("accountId: 12345\n", 1, "accountId must be 12 digits");
  expectError("accountId: \"1111222233334\"\n", 1, "accountId must be 12 digits");
  expectError("accountId: [1]\n", 1, "accountId must be a string");
  expectError("\nregion: US-EAST-1\n", 2, "region 'US-EAST-1'");
  expectError("region: useast1\n", 1, "is not a region");
  expectError("region:\n", 1, "region must be a string");
  expectError("partition: azure\n", 1, "partition 'azure'");
  expectError("serviceDomain: Bad_Domain.example\n", 1, "serviceDomain");
  expectError("partitionId: -x\n", 1, "partitionId");
  expectError("drainSeconds: 3601\n", 1, "drainSeconds must be an integer from 0 to 3600");
  expectError("drainSeconds: -1\n", 1, "drainSeconds must be an integer");
  expectError("drainSeconds: 1.5\n", 1, "drainSeconds must be an integer");
  expectError("quotas:\n  services: 0\n", 2, "quota services must be an integer from 1");
  expectError("quotas:\n  services: lots\n", 2, "quota services");
  expectError("quotas:\n  services: 99999999999999999999\n", 2, "quota services");
  expectError("quotas: 5\n", 1, "quotas must be a mapping");
  expectError("vpcs: {id: vpc-01234567}\n", 1, "vpcs must be a list");
  expectError("region: us-east-1\naccountId:\nvpcs: []\n", 2, "accountId must be a string");
  expectError("vpcs:\n  - id:\n    cidrs: []\n", 2, "vpc id must be a string");
}

TEST(Config, Identities) {
  auto identity = [](const std::string& arn, const std::string& key, const std::string& extra = "") {
    return "identities:\n  - arn: " + arn + "\n    accessKeyId: " + key + "\n    secretAccessKey: s\n" + extra;
  };
  const std::string good = "arn:aws:iam::111122223333:role/admin";
  EXPECT_EQ(errorOf(identity(good, "AKIAEXAMPLEADMIN01")), "");
  EXPECT_EQ(errorOf(identity("arn:aws:iam::111122223333:role/path/to/Name+=,.@_-", "AKIAEXAMPLEADMIN01")), "");

  expectError(identity("arn:aws:s3:::bucket", "AKIAEXAMPLEADMIN01"), 2, "is not an IAM role or user ARN");
  expectError(identity("arn:aws:iam::1111:role/admin", "AKIAEXAMPLEADMIN01"), 2, "is not an IAM role or user ARN");
  expectError(identity("arn:aws:iam::111122223333:group/admins", "AKIAEXAMPLEADMIN01"), 2, "IAM role or user");
  expectError(identity("arn:aws:iam::111122223333:role/", "AKIAEXAMPLEADMIN01"), 2, "IAM role or user");
  expectError(identity("arn:aws:iam:us-east-1:111122223333:role/a", "AKIAEXAMPLEADMIN01"), 2, "IAM role or user");
  expectError(identity("arn:aws-cn:iam::111122223333:role/a", "AKIAEXAMPLEADMIN01"), 2, "not in partition 'aws'");
  expectError(identity(good, "AKIASHORT"), 3, "accessKeyId must be 16-128");
  expectError(identity(good, std::string(129, 'A')), 3, "accessKeyId must be 16-128");
  expectError(identity(good, "AKIA-EXAMPLE-ADMIN"), 3, "accessKeyId must be 16-128");
  expectError("identities:\n  - arn: " + good + "\n    accessKeyId: AKIAEXAMPLEADMIN01\n    secretAccessKey: ''\n", 4,
              "secretAccessKey must not be empty");
  expectError("identities:\n  - arn: " + good + "\n    accessKeyId: AKIAEXAMPLEADMIN01\n", 2,
              "identity needs 'secretAccessKey'");
  expectError("identities:\n  - arn: " + good +
                  "\n    accessKeyId: AKIAEXAMPLEADMIN01\n    secretAccessKey: a\n"
                  "  - arn: arn:aws:iam::111122223333:user/bob\n    accessKeyId: AKIAEXAMPLEADMIN01\n"
                  "    secretAccessKey: b\n",
              6, "accessKeyId 'AKIAEXAMPLEADMIN01' is already used by the identity at line 3");
  expectError(identity(good, "AKIAEXAMPLEADMIN01", "    orgId: org-1\n"), 5, "orgId 'org-1'");
  expectError(identity(good, "AKIAEXAMPLEADMIN01", "    orgPaths: [o-exampleorg/]\n"), 5, "orgPaths entry");
  expectError(identity(good, "AKIAEXAMPLEADMIN01", "    tags: [a, b]\n"), 5, "tags must be a mapping");
  expectError(identity(good, "AKIAEXAMPLEADMIN01", "    policy: '{\"Version\": '\n"), 5, "policy is not valid JSON");
  expectError(identity(good, "AKIAEXAMPLEADMIN01", "    policy: '[1, 2]'\n"), 5, "policy must be a JSON object");
  expectError(identity(good, "AKIAEXAMPLEADMIN01", "    policy: [1, 2]\n"), 5, "policy must be a string");
  expectError(identity(good, "AKIAEXAMPLEADMIN01", "    policy: {Resource: \"\xce\"}\n"), 5,
              "policy is not valid UTF-8");
}

TEST(Config, VpcsAndCidrs) {
  auto vpc = [](const std::string& id, const std::string& cidr) {
    return "vpcs:\n  - id: " + id + "\n    cidrs:\n      - \"" + cidr + "\"\n";
  };
  EXPECT_EQ(errorOf(vpc("vpc-01234567", "0.0.0.0/0")), "");
  EXPECT_EQ(errorOf(vpc("vpc-0123456789abcdefz", "::/0")), "");
  EXPECT_EQ(errorOf(vpc("vpc-01234567", "2001:db8::/32")), "");
  expectError(vpc("vpc-0123", "10.0.0.0/8"), 2, "'vpc-0123' is not a VPC id");
  expectError(vpc("vpc-0123456789ABCDEF0", "10.0.0.0/8"), 2, "is not a VPC id");
  expectError(vpc("subnet-01234567", "10.0.0.0/8"), 2, "is not a VPC id");
  expectError(vpc("vpc-01234567", "10.0.0.0"), 4, "not in CIDR notation");
  expectError(vpc("vpc-01234567", "10.0.0.256/8"), 4, "invalid address '10.0.0.256'");
  expectError(vpc("vpc-01234567", "10.0.0/8"), 4, "invalid address");
  expectError(vpc("vpc-01234567", "10.0.0.0/33"), 4, "invalid prefix length (0-32)");
  expectError(vpc("vpc-01234567", "10.0.0.0/"), 4, "invalid prefix length");
  expectError(vpc("vpc-01234567", "10.0.0.0/+8"), 4, "invalid prefix length");
  expectError(vpc("vpc-01234567", "fd00::/129"), 4, "invalid prefix length (0-128)");
  expectError(vpc("vpc-01234567", "10.0.0.1/24"), 4, "host bits set");
  expectError(vpc("vpc-01234567", "fd00::1/64"), 4, "host bits set");
  expectError("vpcs:\n  - id: vpc-01234567\n  - id: vpc-01234567\n", 3, "duplicate VPC");
  expectError("vpcs:\n  - cidrs: []\n", 2, "vpc needs 'id'");
}

TEST(Config, DefaultVpc) {
  EXPECT_EQ(parseConfig(kBase, "t.yaml").defaultVpc, "");  // clients outside every VPC are refused
  // Read before the vpcs it names, wherever it stands in the file.
  Config c = parseConfig("defaultVpc: vpc-0123456789abcdef0\n" + std::string(kBase), "t.yaml");
  EXPECT_EQ(c.defaultVpc, "vpc-0123456789abcdef0");
  expectError(std::string(kBase) + "defaultVpc: vpc-99999999\n", 5,
              "defaultVpc 'vpc-99999999' is not one of the configured vpcs");
  expectError("defaultVpc: vpc-0123456789abcdef0\n", 1, "is not one of the configured vpcs");
  expectError(std::string(kBase) + "defaultVpc: [vpc-0123456789abcdef0]\n", 5, "defaultVpc must be a string");
  expectError(std::string(kBase) + "defaultVpc:\n", 5, "defaultVpc must be a string");
}

TEST(Config, SecurityGroups) {
  auto sg = [](const std::string& body) { return std::string(kBase) + "securityGroups:\n" + body; };
  EXPECT_EQ(errorOf(sg("  - id: sg-01234567\n    vpcId: vpc-0123456789abcdef0\n")), "");
  expectError(sg("  - id: sgx-01234567\n    vpcId: vpc-0123456789abcdef0\n"), 6, "not a security group id");
  expectError(sg("  - id: sg-01234567\n    vpcId: vpc-99999999\n"), 7,
              "vpcId 'vpc-99999999' is not one of the configured vpcs");
  expectError(sg("  - id: sg-01234567\n"), 6, "security group needs 'vpcId'");
  expectError(sg("  - id: sg-01234567\n    vpcId: vpc-0123456789abcdef0\n"
                 "    ingress:\n      - {cidr: 10.0.0.0/8, fromPort: 80, toPort: 65536}\n"),
              9, "toPort must be an integer from 0 to 65535, not '65536'");
  expectError(sg("  - id: sg-01234567\n    vpcId: vpc-0123456789abcdef0\n"
                 "    ingress:\n      - {cidr: 10.0.0.0/8, fromPort: 443, toPort: 80}\n"),
              9, "fromPort 443 is above toPort 80");
  expectError(sg("  - id: sg-01234567\n    vpcId: vpc-0123456789abcdef0\n"
                 "    ingress:\n      - cidr: 10.0.0.0/8\n        fromPort: x\n"),
              10, "fromPort must be an integer");
  expectError(sg("  - id: sg-01234567\n    vpcId: vpc-0123456789abcdef0\n"
                 "    ingress:\n      - {cidr: 10.0.0.0/40}\n"),
              9, "cidr '10.0.0.0/40' has an invalid prefix length");
  expectError(sg("  - id: sg-01234567\n    vpcId: vpc-0123456789abcdef0\n"
                 "    ingress:\n      - {fromPort: 1}\n"),
              9, "ingress rule needs 'cidr'");
}

TEST(Config, Instances) {
  auto inst = [](const std::string& body) { return std::string(kBase) + "instances:\n" + body; };
  EXPECT_EQ(errorOf(inst("  - {id: i-0123abcd, vpcId: vpc-0123456789abcdef0, address: 10.0.0.1}\n")), "");
  expectError(inst("  - {id: i-0123abcg, vpcId: vpc-0123456789abcdef0, address: 10.0.0.1}\n"), 6,
              "'i-0123abcg' is not an instance id");
  expectError(inst("  - {id: i-0123abcd, vpcId: vpc-00000000, address: 10.0.0.1}\n"), 6,
              "not one of the configured vpcs");
  expectError(inst("  - id: i-0123abcd\n    vpcId: vpc-0123456789abcdef0\n    address: 10.0.0.300\n"), 8,
              "address '10.0.0.300' is not an IP address");
  expectError(inst("  - id: i-0123abcd\n    vpcId: vpc-0123456789abcdef0\n"), 6, "instance needs 'address'");
  expectError(inst("  - {id: i-0123abcd, vpcId: vpc-0123456789abcdef0, address: 10.0.0.1}\n"
                   "  - {id: i-0123abcd, vpcId: vpc-0123456789abcdef0, address: 10.0.0.2}\n"),
              7, "duplicate instance");
}

TEST(Config, AlbsAndTheLambdaEndpoint) {
  const std::string arn = "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/web/50dc6c495c0c9188";
  auto albs = [](const std::string& body) { return std::string(kBase) + "albs:\n" + body; };
  Config c = parseConfig(albs("  - {arn: " + arn + ", vpcId: vpc-0123456789abcdef0, address: 10.0.3.7}\n"), "t.yaml");
  ASSERT_EQ(c.albs.size(), 1u);
  EXPECT_EQ(c.albs[0].arn, arn);
  EXPECT_EQ(c.albs[0].vpcId, "vpc-0123456789abcdef0");
  EXPECT_EQ(c.albs[0].address, "10.0.3.7");
  expectError(albs("  - {arn: arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/net/n/1, "
                   "vpcId: vpc-0123456789abcdef0, address: 10.0.3.7}\n"),
              6, "is not an Application Load Balancer ARN");
  expectError(albs("  - {arn: " + arn + ", vpcId: vpc-00000000, address: 10.0.3.7}\n"), 6,
              "not one of the configured vpcs");
  expectError(albs("  - {arn: " + arn + ", vpcId: vpc-0123456789abcdef0, address: web.internal}\n"), 6,
              "address 'web.internal' is not an IP address");
  expectError(albs("  - {arn: " + arn +
                   ", vpcId: vpc-0123456789abcdef0, address: 10.0.3.7}\n"
                   "  - {arn: " +
                   arn + ", vpcId: vpc-0123456789abcdef0, address: 10.0.3.8}\n"),
              7, "duplicate alb");

  auto lambda = [](const std::string& body) { return std::string(kBase) + "lambda:\n" + body; };
  c = parseConfig(lambda("  endpoint: http://localhost:9001/fn\n  accessKeyId: AKIAX\n  secretAccessKey: s\n"
                         "  timeoutSeconds: 5\n"),
                  "t.yaml");
  EXPECT_EQ(c.lambda.endpoint, "http://localhost:9001/fn");
  EXPECT_EQ(c.lambda.accessKeyId, "AKIAX");
  EXPECT_EQ(c.lambda.secretAccessKey, "s");
  EXPECT_EQ(c.lambda.timeoutSeconds, 5);
  EXPECT_EQ(parseConfig(kBase, "t.yaml").lambda.endpoint, "");  // none: LAMBDA targets are unreachable
  EXPECT_EQ(parseConfig(kBase, "t.yaml").lambda.timeoutSeconds, 60);
  expectError(lambda("  timeoutSeconds: 5\n"), 6, "lambda needs 'endpoint'");
  expectError(lambda("  endpoint: \"localhost:9001\"\n"), 6, "lambda endpoint must look like http(s)://host");
  expectError(lambda("  endpoint: http:///path\n"), 6, "lambda endpoint must look like http(s)://host");
  expectError(lambda("  endpoint: http://h\n  timeoutSeconds: 0\n"), 7, "lambda timeoutSeconds");
  expectError(lambda("  endpoint: http://h\n  accessKeyId: AKIAX\n"), 6, "accessKeyId and secretAccessKey go together");
}

TEST(Config, VpcEndpoints) {
  auto endpoints = [](const std::string& body) { return std::string(kBase) + "vpcEndpoints:\n" + body; };
  const std::string rcfg = "arn:aws:vpc-lattice:us-east-1:111122223333:resourceconfiguration/rcfg-0123456789abcdef0";
  const std::string sn = "arn:aws:vpc-lattice:us-east-1:111122223333:servicenetwork/sn-0123456789abcdef0";
  Config c = parseConfig(endpoints("  - {id: vpce-0123456789abcdef0, vpcId: vpc-0123456789abcdef0, type: Resource, "
                                   "target: " +
                                   rcfg +
                                   "}\n"
                                   "  - {target: " +
                                   sn +
                                   ", type: ServiceNetwork, id: vpce-0123456789abcdef1, "
                                   "vpcId: vpc-0123456789abcdef0}\n"),
                         "t.yaml");
  ASSERT_EQ(c.vpcEndpoints.size(), 2u);
  EXPECT_EQ(c.vpcEndpoints[0].type, "Resource");
  EXPECT_EQ(c.vpcEndpoints[0].target, rcfg);
  EXPECT_EQ(c.vpcEndpoints[1].id, "vpce-0123456789abcdef1");
  EXPECT_EQ(c.vpcEndpoints[1].vpcId, "vpc-0123456789abcdef0");
  expectError(
      endpoints("  - {id: vpce-01234567, vpcId: vpc-0123456789abcdef0, type: Resource, target: " + rcfg + "}\n"), 6,
      "is not a VPC endpoint id");
  expectError(
      endpoints("  - {id: vpce-0123456789abcdef0, vpcId: vpc-00000000, type: Resource, target: " + rcfg + "}\n"), 6,
      "not one of the configured vpcs");
  expectError(endpoints("  - {id: vpce-0123456789abcdef0, vpcId: vpc-0123456789abcdef0, type: Gateway, target: " +
                        rcfg + "}\n"),
              6, "is not Resource or ServiceNetwork");
  // The target must be an ARN of what the type reaches.
  expectError(endpoints("  - {id: vpce-0123456789abcdef0, vpcId: vpc-0123456789abcdef0, type: ServiceNetwork, "
                        "target: " +
                        rcfg + "}\n"),
              6, "is not the ARN of a service network");
  expectError(endpoints("  - {id: vpce-0123456789abcdef0, vpcId: vpc-0123456789abcdef0, type: Resource, "
                        "target: rcfg-0123456789abcdef0}\n"),
              6, "is not the ARN of a resource configuration");
  expectError(endpoints("  - {id: vpce-0123456789abcdef0, vpcId: vpc-0123456789abcdef0, type: Resource}\n"), 6,
              "vpc endpoint needs 'target'");
  expectError(
      endpoints("  - {id: vpce-0123456789abcdef0, vpcId: vpc-0123456789abcdef0, type: Resource, target: " + rcfg +
                "}\n  - {id: vpce-0123456789abcdef0, vpcId: vpc-0123456789abcdef0, type: Resource, "
                "target: " +
                rcfg + "}\n"),
      7, "duplicate VPC endpoint");
}

TEST(Config, Dns) {
  auto dns = [](const std::string& body) { return std::string(kBase) + "dns:\n" + body; };
  Config defaults = parseConfig(kBase, "t.yaml");
  EXPECT_TRUE(defaults.dns.answerAddresses.empty());
  EXPECT_TRUE(defaults.dns.upstreams.empty());
  EXPECT_EQ(defaults.dns.ttl, 5);

  Config c = parseConfig(dns("  answerAddresses: [127.0.0.1, \"::1\"]\n"
                             "  upstreams: [127.0.0.53, \"127.0.0.1:5353\", \"[::1]:53\", \"fd00::53\"]\n"
                             "  ttl: 30\n"),
                         "t.yaml");
  EXPECT_EQ(c.dns.answerAddresses, (std::vector<std::string>{"127.0.0.1", "::1"}));
  EXPECT_EQ(c.dns.upstreams, (std::vector<std::string>{"127.0.0.53", "127.0.0.1:5353", "[::1]:53", "fd00::53"}));
  EXPECT_EQ(c.dns.ttl, 30);

  expectError(dns("  answerAddresses: [lattice.local]\n"), 6, "answer address 'lattice.local' is not an IP address");
  expectError(dns("  answerAddresses: [0.0.0.0]\n"), 6, "is a wildcard");
  expectError(dns("  upstreams:\n    - 127.0.0.1:0\n"), 7, "upstream '127.0.0.1:0' is not IP, IP:PORT");
  expectError(dns("  upstreams: [\"resolver:53\"]\n"), 6, "upstream 'resolver:53' is not IP");
  expectError(dns("  ttl: -1\n"), 6, "dns ttl must be an integer from 0 to 86400");
  expectError(dns("  tll: 5\n"), 6, "unknown key 'tll' in dns (expected one of: answerAddresses, upstreams, ttl)");
  expectError(dns("  - 127.0.0.1\n"), 6, "dns must be a mapping");
}

TEST(Config, DataPlaneLimitsOnHostileClients) {
  auto dataPlane = [](const std::string& body) { return std::string(kBase) + "dataPlane:\n" + body; };
  Config defaults = parseConfig(kBase, "t.yaml");
  EXPECT_EQ(defaults.dataPlane.requestHeadTimeoutSeconds, 10);
  EXPECT_EQ(defaults.dataPlane.requestBodyMinBytesPerSecond, 512);
  EXPECT_EQ(defaults.dataPlane.maxConnectionsPerTarget, 1024);
  EXPECT_FALSE(defaults.dataPlane.keepEncodedSlashes);

  Config c = parseConfig(dataPlane("  requestHeadTimeoutSeconds: 3\n  requestBodyMinBytesPerSecond: 0\n"
                                   "  maxConnectionsPerTarget: 8\n  encodedSlashes: keep\n"),
                         "t.yaml");
  EXPECT_EQ(c.dataPlane.requestHeadTimeoutSeconds, 3);
  EXPECT_EQ(c.dataPlane.requestBodyMinBytesPerSecond, 0);
  EXPECT_EQ(c.dataPlane.maxConnectionsPerTarget, 8);
  EXPECT_TRUE(c.dataPlane.keepEncodedSlashes);

  expectError(dataPlane("  requestHeadTimeoutSeconds: 0\n"), 6, "requestHeadTimeoutSeconds must be an integer from 1");
  expectError(dataPlane("  maxConnectionsPerTarget: 0\n"), 6, "maxConnectionsPerTarget must be an integer from 1");
  expectError(dataPlane("  requestBodyMinBytesPerSecond: -1\n"), 6, "requestBodyMinBytesPerSecond must be an integer");
  expectError(dataPlane("  encodedSlashes: decode\n"), 6, "encodedSlashes: 'decode' is not reject or keep");
}

TEST(Config, FirehoseEndpoints) {
  std::string caFile =
      (std::filesystem::temp_directory_path() / ("trellis-ca-" + std::to_string(getpid()) + ".pem")).string();
  std::ofstream(caFile) << "-----BEGIN CERTIFICATE-----\n";  // only its readability is checked here
  auto firehose = [](const std::string& body) { return std::string(kBase) + "accessLogs:\n  firehose:\n" + body; };

  Config c = parseConfig(firehose("    plain: {url: \"http://127.0.0.1:8080/put\", accessKey: k1}\n"
                                  "    secure:\n"
                                  "      url: https://firehose.example.com/put\n"
                                  "      caFile: " + caFile + "\n"
                                  "    system: {url: \"https://firehose.example.com\"}\n"),
                         "t.yaml");
  ASSERT_EQ(c.accessLogs.firehose.size(), 3u);
  EXPECT_EQ(c.accessLogs.firehose.at("plain").url, "http://127.0.0.1:8080/put");
  EXPECT_EQ(c.accessLogs.firehose.at("plain").accessKey, "k1");
  EXPECT_EQ(c.accessLogs.firehose.at("plain").caFile, "");
  EXPECT_EQ(c.accessLogs.firehose.at("secure").url, "https://firehose.example.com/put");
  EXPECT_EQ(c.accessLogs.firehose.at("secure").caFile, caFile);
  EXPECT_EQ(c.accessLogs.firehose.at("system").caFile, "");  // https verified against the system store

  std::string missing = caFile + ".missing";
  expectError(firehose("    s:\n      url: https://h.example\n      caFile: " + missing + "\n"), 9,
              "firehose stream s caFile: cannot read " + missing);
  expectError(firehose("    s:\n      caFile: " + caFile + "\n      url: http://h.example\n"), 8,
              "firehose stream s caFile needs an https:// url");
  expectError(firehose("    s: {url: \"ftp://h.example\"}\n"), 7, "url must look like http(s)://host[:port][/path]");
  expectError(firehose("    s: {url: \"https://\"}\n"), 7, "url must look like http(s)://host[:port][/path]");
  std::remove(caFile.c_str());
}

TEST(Config, AliasBombInPolicyIsRejected) {
  std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  // Each level refers to the previous ten times: 10^8 nodes if expanded.
  for (int i = 1; i <= 8; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
    for (int j = 0; j < 9; ++j) yaml += ", " + prev;
    yaml += "]\n";
  }
  // Unknown keys are rejected before anything expands; inside a policy the cap applies.
  expectError(yaml, 1, "unknown key 'a0'");
  std::string policy =
      "identities:\n  - arn: arn:aws:iam::111122223333:role/a\n    accessKeyId: AKIAEXAMPLEADMIN01\n"
      "    secretAccessKey: s\n    policy:\n      Statement: &s0 [{Effect: Allow}, {Effect: Allow}]\n";
  for (int i = 1; i <= 20; ++i)
    policy += "      S" + std::to_string(i) + ": &s" + std::to_string(i) + " [*s" + std::to_string(i - 1) + ", *s" +
              std::to_string(i - 1) + "]\n";
  EXPECT_NE(errorOf(policy).find("policy is too large"), std::string::npos) << errorOf(policy);
}

TEST(Config, LoadConfigReadsFileAndNamesIt) {
  std::string path =
      (std::filesystem::temp_directory_path() / ("trellis-config-" + std::to_string(getpid()) + ".yaml")).string();
  std::ofstream(path) << kExample << "bogus: 1\n";
  try {
    loadConfig(path);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ":20: unknown key 'bogus'", 0), 0u) << e.what();
  }
  std::ofstream(path) << kExample;
  EXPECT_EQ(loadConfig(path).instances.size(), 1u);
  std::remove(path.c_str());
  try {
    loadConfig(path);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": cannot read"), std::string::npos) << e.what();
  }
}

TEST(Config, DevelopmentIdentity) {
  Identity a = makeDevelopmentIdentity("444455556666");
  Identity b = makeDevelopmentIdentity("444455556666");
  EXPECT_EQ(a.arn, "arn:aws:iam::444455556666:role/trellis-dev");
  ASSERT_EQ(a.accessKeyId.size(), 20u);
  EXPECT_EQ(a.accessKeyId.substr(0, 4), "AKIA");
  for (char ch : a.accessKeyId)
    EXPECT_TRUE(std::isupper(static_cast<unsigned char>(ch)) || std::isdigit(static_cast<unsigned char>(ch)))
        << a.accessKeyId;
  EXPECT_EQ(a.secretAccessKey.size(), 40u);
  EXPECT_NE(a.accessKeyId, b.accessKeyId);
  EXPECT_NE(a.secretAccessKey, b.secretAccessKey);
  // What we make up must pass our own validation.
  std::string yaml = "identities:\n  - arn: " + a.arn + "\n    accessKeyId: " + a.accessKeyId +
                     "\n    secretAccessKey: \"" + a.secretAccessKey + "\"\n";
  EXPECT_EQ(errorOf(yaml), "");
}

}  // namespace
}  // namespace trellis::model
