#include "model/config.h"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/crypto.h"
#include "common/http_server.h"
#include "common/strings.h"
#include "model/ids.h"

namespace trellis::model {

const Identity* Config::identityByAccessKey(const std::string& accessKeyId) const {
  for (const auto& identity : identities)
    if (identity.accessKeyId == accessKeyId) return &identity;
  return nullptr;
}

Identity makeDevelopmentIdentity(const std::string& accountId) {
  // Uniform picks from an alphabet: reject bytes beyond the largest multiple of its size.
  auto randomFrom = [](std::string_view alphabet, size_t count) {
    std::string out;
    const unsigned limit = 256 - 256 % alphabet.size();
    while (out.size() < count) {
      unsigned char bytes[64];
      randomBytes(bytes, sizeof bytes);
      for (unsigned char b : bytes)
        if (b < limit && out.size() < count) out += alphabet[b % alphabet.size()];
    }
    return out;
  };
  Identity identity;
  identity.arn = "arn:aws:iam::" + accountId + ":role/trellis-dev";
  identity.accessKeyId = "AKIA" + randomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 16);
  identity.secretAccessKey = randomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40);
  return identity;
}

namespace {

bool allOf(std::string_view s, const std::function<bool(char)>& ok) {
  for (char c : s)
    if (!ok(c)) return false;
  return true;
}
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isLowerAlnum(char c) { return isDigit(c) || (c >= 'a' && c <= 'z'); }
bool isLowerHex(char c) { return isDigit(c) || (c >= 'a' && c <= 'f'); }
bool isWordChar(char c) { return isLowerAlnum(c) || (c >= 'A' && c <= 'Z') || c == '_'; }

// "<prefix>" followed by 8 or 17 characters accepted by `ok`: the EC2 id shapes.
bool isEc2Id(std::string_view id, std::string_view prefix, bool (*ok)(char)) {
  if (!startsWith(id, prefix)) return false;
  auto rest = id.substr(prefix.size());
  return (rest.size() == 8 || rest.size() == 17) && allOf(rest, ok);
}

bool isAccountId(std::string_view s) { return s.size() == 12 && allOf(s, isDigit); }

// us-east-1, eu-central-2, us-gov-west-1, ap-southeast-4 ...
bool isRegion(std::string_view s) {
  auto parts = split(s, '-');
  if (parts.size() < 3) return false;
  if (parts[0].size() != 2 || !allOf(parts[0], [](char c) { return c >= 'a' && c <= 'z'; })) return false;
  for (size_t i = 1; i + 1 < parts.size(); ++i)
    if (parts[i].empty() || !allOf(parts[i], [](char c) { return c >= 'a' && c <= 'z'; })) return false;
  return !parts.back().empty() && parts.back().size() <= 2 && allOf(parts.back(), isDigit);
}

bool isDnsLabel(std::string_view s) {
  return !s.empty() && s.size() <= 63 && s.front() != '-' && s.back() != '-' &&
         allOf(s, [](char c) { return isLowerAlnum(c) || c == '-'; });
}

bool isDnsName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (auto label : split(s, '.'))
    if (!isDnsLabel(label)) return false;
  return true;
}

bool isIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// Empty when `cidr` is a valid network in CIDR notation, otherwise why not.
std::string cidrProblem(const std::string& cidr) {
  auto slash = cidr.find('/');
  if (slash == std::string::npos) return "is not in CIDR notation (address/prefix)";
  std::string address = cidr.substr(0, slash);
  std::string_view prefixText = std::string_view(cidr).substr(slash + 1);
  unsigned char bytes[16];
  int bits = 0;
  if (inet_pton(AF_INET, address.c_str(), bytes) == 1)
    bits = 32;
  else if (inet_pton(AF_INET6, address.c_str(), bytes) == 1)
    bits = 128;
  else
    return "has an invalid address '" + address + "'";
  int prefix = -1;
  auto [end, ec] = std::from_chars(prefixText.data(), prefixText.data() + prefixText.size(), prefix);
  if (ec != std::errc() || end != prefixText.data() + prefixText.size() || prefixText.empty() || prefix < 0 ||
      prefix > bits)
    return "has an invalid prefix length (0-" + std::to_string(bits) + ")";
  for (int bit = prefix; bit < bits; ++bit)
    if (bytes[bit / 8] & (0x80 >> (bit % 8))) return "has host bits set beyond the /" + std::to_string(prefix);
  return {};
}

// arn:PARTITION:iam::ACCOUNT:role/NAME or user/NAME (names may carry a path: role/team/NAME).
bool isIamPrincipalArn(std::string_view arn) {
  auto parsed = parseArn(arn);
  if (!parsed || parsed->service != "iam" || !parsed->region.empty() || !isAccountId(parsed->accountId)) return false;
  std::string_view resource = parsed->resource;
  std::string_view name;
  if (startsWith(resource, "role/"))
    name = resource.substr(5);
  else if (startsWith(resource, "user/"))
    name = resource.substr(5);
  else
    return false;
  return !name.empty() && name.front() != '/' && name.back() != '/' && name.size() <= 512 &&
         allOf(name, [](char c) { return isWordChar(c) || std::strchr("+=,.@/-", c) != nullptr; });
}

// aws:PrincipalOrgPaths entries: o-xxxxxxxxxx/r-xxxx/ou-xxxx-xxxxxxxx/.../
bool isOrgPath(std::string_view path) {
  if (path.size() < 2 || path.back() != '/') return false;
  auto parts = split(path.substr(0, path.size() - 1), '/');
  auto idWithPrefix = [](std::string_view s, std::string_view prefix, size_t minLen) {
    return startsWith(s, prefix) && s.size() >= prefix.size() + minLen && s.size() <= prefix.size() + 64 &&
           allOf(s.substr(prefix.size()), [](char c) { return isLowerAlnum(c) || c == '-'; });
  };
  if (parts.size() < 2 || !idWithPrefix(parts[0], "o-", 10) || !idWithPrefix(parts[1], "r-", 4)) return false;
  for (size_t i = 2; i < parts.size(); ++i)
    if (!idWithPrefix(parts[i], "ou-", 4)) return false;
  return true;
}

bool isOrgId(std::string_view s) {
  return startsWith(s, "o-") && s.size() >= 12 && s.size() <= 34 && allOf(s.substr(2), isLowerAlnum);
}

// One pass over the YAML tree. Every error names the file and the 1-based line of the offending node.
class Parser {
 public:
  explicit Parser(std::string fileName) : file_(std::move(fileName)) {}

  Config parse(const std::string& text);

 private:
  struct Field {
    std::string_view key;
    std::function<void(const YAML::Node&)> handle;
    bool required = false;
  };

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& reason) const {
    throw ConfigError(file_ + ":" + std::to_string(mark.is_null() ? 1 : mark.line + 1) + ": " + reason);
  }
  // yaml-cpp marks an empty value ("region:") at the next token, often on the next line: blame its key.
  [[noreturn]] void fail(const YAML::Node& at, const std::string& reason) const {
    fail(at.IsNull() && !keyMark_.is_null() ? keyMark_ : at.Mark(), reason);
  }

  void fields(const YAML::Node& node, const std::string& what, const std::vector<Field>& known) const;
  void sequence(const YAML::Node& node, const std::string& what,
                const std::function<void(const YAML::Node&)>& item) const;
  std::string text(const YAML::Node& node, const std::string& what) const;
  long integer(const YAML::Node& node, const std::string& what, long min, long max) const;
  bool boolean(const YAML::Node& node, const std::string& what) const;
  std::string policyJson(const YAML::Node& node) const;
  nlohmann::json toJson(const YAML::Node& node, size_t& budget) const;

  void identity(const YAML::Node& node, Config& config, std::map<std::string, int>& keyLines) const;
  void vpc(const YAML::Node& node, Config& config) const;
  void securityGroup(const YAML::Node& node, Config& config) const;
  void instance(const YAML::Node& node, Config& config) const;
  void alb(const YAML::Node& node, Config& config) const;
  void lambda(const YAML::Node& node, LambdaSettings& lambda) const;
  // `node` names one of the configured VPCs (read before the lists that name them).
  std::string knownVpc(const YAML::Node& node, const Config& config) const;
  // An http:// or https:// URL of printable characters with a host.
  std::string httpUrl(const YAML::Node& node, const std::string& what) const;
  void vpcEndpoint(const YAML::Node& node, Config& config) const;
  void quotas(const YAML::Node& node, Quotas& quotas) const;
  void dns(const YAML::Node& node, DnsSettings& dns) const;
  void accessLogs(const YAML::Node& node, AccessLogSettings& settings) const;

  std::string file_;
  mutable YAML::Mark keyMark_ = YAML::Mark::null_mark();  // the key whose value is being read
};

void Parser::fields(const YAML::Node& node, const std::string& what, const std::vector<Field>& known) const {
  if (!node.IsNull() && !node.IsMap()) fail(node, what + " must be a mapping");
  std::set<std::string_view> seen;
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) fail(it->first, "keys in " + what + " must be plain names");
      const std::string& key = it->first.Scalar();
      const Field* field = nullptr;
      for (const auto& f : known)
        if (f.key == key) field = &f;
      if (!field) {
        std::string names;
        for (const auto& f : known) names += (names.empty() ? "" : ", ") + std::string(f.key);
        fail(it->first, "unknown key '" + key + "' in " + what + " (expected one of: " + names + ")");
      }
      if (!seen.insert(field->key).second) fail(it->first, "duplicate key '" + key + "' in " + what);
      keyMark_ = it->first.Mark();
      field->handle(it->second);
    }
  }
  for (const auto& f : known)
    if (f.required && !seen.count(f.key)) fail(node, what + " needs '" + std::string(f.key) + "'");
}

void Parser::sequence(const YAML::Node& node, const std::string& what,
                      const std::function<void(const YAML::Node&)>& item) const {
  if (node.IsNull()) return;
  if (!node.IsSequence()) fail(node, what + " must be a list");
  for (const auto& element : node) item(element);
}

std::string Parser::text(const YAML::Node& node, const std::string& what) const {
  if (!node.IsScalar()) fail(node, what + " must be a string");
  return node.Scalar();
}

bool Parser::boolean(const YAML::Node& node, const std::string& what) const {
  std::string value = text(node, what);
  if (value != "true" && value != "false") fail(node, what + " must be true or false, not '" + value + "'");
  return value == "true";
}

long Parser::integer(const YAML::Node& node, const std::string& what, long min, long max) const {
  std::string value = text(node, what);
  long out = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || out < min || out > max)
    fail(node, what + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max) + ", not '" +
                   value + "'");
  return out;
}

// A policy written as YAML becomes JSON; scalars stay strings, as IAM policy values are.
nlohmann::json Parser::toJson(const YAML::Node& node, size_t& budget) const {
  // Aliases can make a small file expand exponentially; cap the work.
  if (budget-- == 0) fail(node, "policy is too large");
  if (node.IsMap()) {
    auto out = nlohmann::json::object();
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) fail(it->first, "policy keys must be strings");
      out[it->first.Scalar()] = toJson(it->second, budget);
    }
    return out;
  }
  if (node.IsSequence()) {
    auto out = nlohmann::json::array();
    for (const auto& element : node) out.push_back(toJson(element, budget));
    return out;
  }
  if (node.IsScalar()) return node.Scalar();
  return nullptr;
}

std::string Parser::policyJson(const YAML::Node& node) const {
  if (node.IsMap()) {
    size_t budget = 100000;
    auto json = toJson(node, budget);
    try {
      return json.dump();
    } catch (const nlohmann::json::exception&) {
      fail(node, "policy is not valid UTF-8");
    }
  }
  std::string value = text(node, "policy");
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(value);
  } catch (const nlohmann::json::exception& e) {
    fail(node, std::string("policy is not valid JSON: ") + e.what());
  }
  if (!parsed.is_object()) fail(node, "policy must be a JSON object");
  return value;
}

void Parser::identity(const YAML::Node& node, Config& config, std::map<std::string, int>& keyLines) const {
  Identity id;
  fields(node, "identity",
         {{"arn",
           [&](const YAML::Node& v) {
             id.arn = text(v, "arn");
             if (!isIamPrincipalArn(id.arn))
               fail(v, "arn '" + id.arn + "' is not an IAM role or user ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)");
             if (parseArn(id.arn)->partition != config.partition)
               fail(v, "arn '" + id.arn + "' is not in partition '" + config.partition + "'");
           },
           true},
          {"accessKeyId",
           [&](const YAML::Node& v) {
             id.accessKeyId = text(v, "accessKeyId");
             if (id.accessKeyId.size() < 16 || id.accessKeyId.size() > 128 || !allOf(id.accessKeyId, isWordChar))
               fail(v, "accessKeyId must be 16-128 letters, digits or '_'");
             auto [it, inserted] = keyLines.emplace(id.accessKeyId, v.Mark().line + 1);
             if (!inserted)
               fail(v, "accessKeyId '" + id.accessKeyId + "' is already used by the identity at line " +
                           std::to_string(it->second));
           },
           true},
          {"secretAccessKey",
           [&](const YAML::Node& v) {
             id.secretAccessKey = text(v, "secretAccessKey");
             if (id.secretAccessKey.empty()) fail(v, "secretAccessKey must not be empty");
           },
           true},
          {"sessionToken", [&](const YAML::Node& v) { id.sessionToken = text(v, "sessionToken"); }},
          {"tags",
           [&](const YAML::Node& v) {
             if (!v.IsNull() && !v.IsMap()) fail(v, "tags must be a mapping of key: value");
             for (auto it = v.begin(); v.IsMap() && it != v.end(); ++it) {
               std::string key = text(it->first, "tag key");
               if (key.empty() || key.size() > 128) fail(it->first, "tag keys must be 1-128 characters");
               std::string value = text(it->second, "tag value");
               if (value.size() > 256) fail(it->second, "tag values must be at most 256 characters");
               if (!id.tags.emplace(key, value).second) fail(it->first, "duplicate tag '" + key + "'");
             }
           }},
          {"orgId",
           [&](const YAML::Node& v) {
             id.orgId = text(v, "orgId");
             if (!isOrgId(id.orgId)) fail(v, "orgId '" + id.orgId + "' is not an organization id (o-xxxxxxxxxx)");
           }},
          {"orgPaths",
           [&](const YAML::Node& v) {
             sequence(v, "orgPaths", [&](const YAML::Node& p) {
               std::string path = text(p, "orgPaths entry");
               if (!isOrgPath(path))
                 fail(p, "orgPaths entry '" + path + "' is not of the form o-xxxxxxxxxx/r-xxxx/ou-…/");
               id.orgPaths.push_back(path);
             });
           }},
          {"policy",
           [&](const YAML::Node& v) {
             id.policy = policyJson(v);
             id.policyLine = v.Mark().line + 1;
           }}});
  config.identities.push_back(std::move(id));
}

void Parser::vpc(const YAML::Node& node, Config& config) const {
  Vpc vpc;
  fields(node, "vpc",
         {{"id",
           [&](const YAML::Node& v) {
             vpc.id = text(v, "vpc id");
             if (!isEc2Id(vpc.id, "vpc-", isLowerAlnum))
               fail(v, "'" + vpc.id + "' is not a VPC id (vpc- and 8 or 17 characters of 0-9a-z)");
             for (const auto& other : config.vpcs)
               if (other.id == vpc.id) fail(v, "duplicate VPC '" + vpc.id + "'");
           },
           true},
          {"cidrs", [&](const YAML::Node& v) {
             sequence(v, "cidrs", [&](const YAML::Node& c) {
               std::string cidr = text(c, "cidr");
               if (auto problem = cidrProblem(cidr); !problem.empty()) fail(c, "cidr '" + cidr + "' " + problem);
               vpc.cidrs.push_back(cidr);
             });
           }}});
  config.vpcs.push_back(std::move(vpc));
}

void Parser::securityGroup(const YAML::Node& node, Config& config) const {
  SecurityGroup sg;
  fields(
      node, "security group",
      {{"id",
        [&](const YAML::Node& v) {
          sg.id = text(v, "security group id");
          if (!isEc2Id(sg.id, "sg-", isLowerAlnum))
            fail(v, "'" + sg.id + "' is not a security group id (sg- and 8 or 17 characters of 0-9a-z)");
          for (const auto& other : config.securityGroups)
            if (other.id == sg.id) fail(v, "duplicate security group '" + sg.id + "'");
        },
        true},
       {"vpcId",
        [&](const YAML::Node& v) {
          sg.vpcId = text(v, "vpcId");
          bool known = false;
          for (const auto& vpc : config.vpcs) known = known || vpc.id == sg.vpcId;
          if (!known) fail(v, "vpcId '" + sg.vpcId + "' is not one of the configured vpcs");
        },
        true},
       {"ingress", [&](const YAML::Node& v) {
          sequence(v, "ingress", [&](const YAML::Node& r) {
            IngressRule rule;
            fields(
                r, "ingress rule",
                {{"cidr",
                  [&](const YAML::Node& c) {
                    rule.cidr = text(c, "cidr");
                    if (auto problem = cidrProblem(rule.cidr); !problem.empty())
                      fail(c, "cidr '" + rule.cidr + "' " + problem);
                  },
                  true},
                 {"fromPort", [&](const YAML::Node& p) { rule.fromPort = uint16_t(integer(p, "fromPort", 0, 65535)); }},
                 {"toPort", [&](const YAML::Node& p) { rule.toPort = uint16_t(integer(p, "toPort", 0, 65535)); }}});
            if (rule.fromPort > rule.toPort)
              fail(r, "fromPort " + std::to_string(rule.fromPort) + " is above toPort " + std::to_string(rule.toPort));
            sg.ingress.push_back(rule);
          });
        }}});
  config.securityGroups.push_back(std::move(sg));
}

void Parser::instance(const YAML::Node& node, Config& config) const {
  Instance instance;
  fields(node, "instance",
         {{"id",
           [&](const YAML::Node& v) {
             instance.id = text(v, "instance id");
             if (!isEc2Id(instance.id, "i-", isLowerHex))
               fail(v, "'" + instance.id + "' is not an instance id (i- and 8 or 17 hex digits)");
             for (const auto& other : config.instances)
               if (other.id == instance.id) fail(v, "duplicate instance '" + instance.id + "'");
           },
           true},
          {"vpcId", [&](const YAML::Node& v) { instance.vpcId = knownVpc(v, config); }, true},
          {"address",
           [&](const YAML::Node& v) {
             instance.address = text(v, "address");
             if (!isIpAddress(instance.address)) fail(v, "address '" + instance.address + "' is not an IP address");
           },
           true}});
  config.instances.push_back(std::move(instance));
}

std::string Parser::knownVpc(const YAML::Node& node, const Config& config) const {
  std::string id = text(node, "vpcId");
  for (const auto& vpc : config.vpcs)
    if (vpc.id == id) return id;
  fail(node, "vpcId '" + id + "' is not one of the configured vpcs");
}

std::string Parser::httpUrl(const YAML::Node& node, const std::string& what) const {
  std::string url = text(node, what);
  size_t scheme = startsWith(url, "http://") ? 7 : startsWith(url, "https://") ? 8 : 0;
  if (scheme == 0 || url.size() == scheme || url[scheme] == '/' ||
      !allOf(url, [](char c) { return c > ' ' && c < 127; }))
    fail(node, what + " must look like http(s)://host[:port][/path], not '" + url + "'");
  return url;
}

void Parser::alb(const YAML::Node& node, Config& config) const {
  Alb alb;
  fields(node, "alb",
         {{"arn",
           [&](const YAML::Node& v) {
             alb.arn = text(v, "alb arn");
             auto arn = parseArn(alb.arn);
             if (!arn || arn->service != "elasticloadbalancing" || !startsWith(arn->resource, "loadbalancer/app/"))
               fail(v, "'" + alb.arn + "' is not an Application Load Balancer ARN (arn:aws:elasticloadbalancing:" +
                           "REGION:ACCOUNT:loadbalancer/app/NAME/ID)");
             for (const auto& other : config.albs)
               if (other.arn == alb.arn) fail(v, "duplicate alb '" + alb.arn + "'");
           },
           true},
          {"vpcId", [&](const YAML::Node& v) { alb.vpcId = knownVpc(v, config); }, true},
          {"address",
           [&](const YAML::Node& v) {
             alb.address = text(v, "address");
             if (!isIpAddress(alb.address)) fail(v, "address '" + alb.address + "' is not an IP address");
           },
           true}});
  config.albs.push_back(std::move(alb));
}

void Parser::lambda(const YAML::Node& node, LambdaSettings& lambda) const {
  auto credential = [&](std::string_view key, std::string& field) {
    return Field{key, [this, key, &field](const YAML::Node& v) {
                   field = text(v, "lambda " + std::string(key));
                   if (!allOf(field, [](char c) { return c > ' ' && c < 127; }))
                     fail(v, "lambda " + std::string(key) + " must be printable characters without spaces");
                 }};
  };
  fields(node, "lambda",
         {{"endpoint", [&](const YAML::Node& v) { lambda.endpoint = httpUrl(v, "lambda endpoint"); }, true},
          credential("accessKeyId", lambda.accessKeyId),
          credential("secretAccessKey", lambda.secretAccessKey),
          credential("sessionToken", lambda.sessionToken),
          {"timeoutSeconds",
           [&](const YAML::Node& v) { lambda.timeoutSeconds = int(integer(v, "lambda timeoutSeconds", 1, 900)); }}});
  if (lambda.accessKeyId.empty() != lambda.secretAccessKey.empty())
    fail(node, "lambda accessKeyId and secretAccessKey go together");
}

void Parser::vpcEndpoint(const YAML::Node& node, Config& config) const {
  VpcEndpoint endpoint;
  YAML::Node target;
  fields(node, "vpc endpoint",
         {{"id",
           [&](const YAML::Node& v) {
             endpoint.id = text(v, "vpc endpoint id");
             if (!isEc2Id(endpoint.id, "vpce-", isLowerHex) || endpoint.id.size() != 22)
               fail(v, "'" + endpoint.id + "' is not a VPC endpoint id (vpce- and 17 hex digits)");
             for (const auto& other : config.vpcEndpoints)
               if (other.id == endpoint.id) fail(v, "duplicate VPC endpoint '" + endpoint.id + "'");
           },
           true},
          {"vpcId", [&](const YAML::Node& v) { endpoint.vpcId = knownVpc(v, config); }, true},
          {"type",
           [&](const YAML::Node& v) {
             endpoint.type = text(v, "type");
             if (endpoint.type != "Resource" && endpoint.type != "ServiceNetwork")
               fail(v, "type '" + endpoint.type + "' is not Resource or ServiceNetwork");
           },
           true},
          {"target",
           [&](const YAML::Node& v) {
             endpoint.target = text(v, "target");
             target.reset(v);
           },
           true}});
  // The target is checked once the type is known, wherever the keys are in the entry.
  Kind kind = endpoint.type == "Resource" ? Kind::ResourceConfiguration : Kind::ServiceNetwork;
  if (!startsWith(endpoint.target, "arn:") || !idFromIdentifier(kind, endpoint.target))
    fail(target, "target '" + endpoint.target + "' is not the ARN of a " +
                     (kind == Kind::ServiceNetwork ? "service network" : "resource configuration"));
  config.vpcEndpoints.push_back(std::move(endpoint));
}

void Parser::quotas(const YAML::Node& node, Quotas& q) const {
  auto quota = [&](std::string_view key, int& field) {
    return Field{key, [this, key, &field](const YAML::Node& v) {
                   field = int(integer(v, "quota " + std::string(key), 1, 1000000000));
                 }};
  };
  fields(node, "quotas",
         {quota("serviceNetworks", q.serviceNetworks), quota("services", q.services),
          quota("targetGroups", q.targetGroups), quota("listenersPerService", q.listenersPerService),
          quota("rulesPerListener", q.rulesPerListener), quota("targetGroupsPerService", q.targetGroupsPerService),
          quota("targetsPerTargetGroup", q.targetsPerTargetGroup),
          quota("serviceAssociationsPerServiceNetwork", q.serviceAssociationsPerServiceNetwork),
          quota("vpcAssociationsPerServiceNetwork", q.vpcAssociationsPerServiceNetwork),
          quota("resourceGatewaysPerVpc", q.resourceGatewaysPerVpc),
          quota("resourceConfigurations", q.resourceConfigurations),
          quota("childResourceConfigurationsPerGroup", q.childResourceConfigurationsPerGroup),
          quota("resourceAssociationsPerServiceNetwork", q.resourceAssociationsPerServiceNetwork),
          quota("domainVerifications", q.domainVerifications)});
}

void Parser::accessLogs(const YAML::Node& node, AccessLogSettings& settings) const {
  fields(node, "accessLogs", {{"firehose", [&](const YAML::Node& streams) {
           if (!streams.IsNull() && !streams.IsMap())
             fail(streams, "accessLogs firehose must be a mapping of delivery stream name: {url: ...}");
           if (!streams.IsMap()) return;
           for (auto it = streams.begin(); it != streams.end(); ++it) {
             if (!it->first.IsScalar()) fail(it->first, "firehose delivery stream names must be plain names");
             std::string name = it->first.Scalar();
             // Firehose's own rule for stream names.
             if (name.empty() || name.size() > 64 ||
                 !allOf(name, [](char c) { return isWordChar(c) || c == '.' || c == '-'; }))
               fail(it->first, "'" + name + "' is not a delivery stream name (1-64 of a-z, A-Z, 0-9, _ . -)");
             FirehoseEndpoint endpoint;
             YAML::Mark caFileMark;
             keyMark_ = it->first.Mark();
             fields(it->second, "firehose stream " + name,
                    {{"url", [&](const YAML::Node& v) { endpoint.url = httpUrl(v, "url"); }, true},
                     {"accessKey",
                      [&](const YAML::Node& v) {
                        endpoint.accessKey = text(v, "accessKey");
                        if (endpoint.accessKey.size() > 4096 ||
                            !allOf(endpoint.accessKey, [](char c) { return c >= ' ' && c < 127; }))
                          fail(v, "accessKey must be up to 4096 printable characters");
                      }},
                     {"caFile", [&](const YAML::Node& v) {
                        endpoint.caFile = text(v, "caFile");
                        // Checked now: a typo should stop the start, not fail every delivery later.
                        if (!std::ifstream(endpoint.caFile))
                          fail(v, "firehose stream " + name + " caFile: cannot read " + endpoint.caFile);
                        caFileMark = v.Mark();
                      }}});
             if (!endpoint.caFile.empty() && !startsWith(endpoint.url, "https://"))
               fail(caFileMark, "firehose stream " + name + " caFile needs an https:// url");
             if (!settings.firehose.emplace(name, endpoint).second)
               fail(it->first, "duplicate delivery stream '" + name + "'");
           }
         }}});
}

void Parser::dns(const YAML::Node& node, DnsSettings& dns) const {
  fields(node, "dns",
         {{"answerAddresses",
           [&](const YAML::Node& v) {
             sequence(v, "answerAddresses", [&](const YAML::Node& a) {
               std::string address = text(a, "answerAddresses entry");
               if (!isIpAddress(address)) fail(a, "answer address '" + address + "' is not an IP address");
               if (address == "0.0.0.0" || address == "::")
                 fail(a, "answer address '" + address + "' is a wildcard, not an address clients can reach");
               dns.answerAddresses.push_back(address);
             });
           }},
          {"upstreams",
           [&](const YAML::Node& v) {
             sequence(v, "upstreams", [&](const YAML::Node& u) {
               std::string upstream = text(u, "upstreams entry");
               std::string host;
               uint16_t port = 0;
               bool ok =
                   isIpAddress(upstream) || (splitHostPort(upstream, host, port) && port != 0 && isIpAddress(host));
               if (!ok) fail(u, "upstream '" + upstream + "' is not IP, IP:PORT or [IPv6]:PORT");
               dns.upstreams.push_back(upstream);
             });
           }},
          {"ttl", [&](const YAML::Node& v) { dns.ttl = int(integer(v, "dns ttl", 0, 86400)); }}});
}

// Sees only where documents start: enough to refuse a second one.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { lastStart = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
  YAML::Mark lastStart;
};

Config Parser::parse(const std::string& yamlText) {
  YAML::Node root;
  try {
    // Not YAML::LoadAll: in yaml-cpp 0.7 it loops forever on some malformed input (e.g. ",").
    // Parse at most two documents by hand, then load the one.
    std::istringstream in(yamlText);
    YAML::Parser parser(in);
    DocumentCounter counter;
    if (parser.HandleNextDocument(counter) && parser.HandleNextDocument(counter))
      fail(counter.lastStart, "expected one YAML document, found more");
    root = YAML::Load(yamlText);
  } catch (const YAML::Exception& e) {
    fail(e.mark, "invalid YAML: " + e.msg);
  }
  Config config;

  // Scalars first, in file order; the lists after, in dependency order (identities need the
  // partition, security groups and instances need the VPCs), wherever they appear in the file.
  YAML::Node identities, vpcs, securityGroups, instances, albs, vpcEndpoints, defaultVpc;  // null until seen
  auto keep = [](YAML::Node& slot) { return [&slot](const YAML::Node& v) { slot.reset(v); }; };
  fields(
      root, "the configuration",
      {{"region",
        [&](const YAML::Node& v) {
          config.region = text(v, "region");
          if (!isRegion(config.region)) fail(v, "region '" + config.region + "' is not a region like us-east-1");
        }},
       {"accountId",
        [&](const YAML::Node& v) {
          config.accountId = text(v, "accountId");
          if (!isAccountId(config.accountId)) fail(v, "accountId must be 12 digits, not '" + config.accountId + "'");
        }},
       {"partition",
        [&](const YAML::Node& v) {
          config.partition = text(v, "partition");
          if (!isDnsLabel(config.partition) || !startsWith(config.partition, "aws"))
            fail(v, "partition '" + config.partition + "' is not a partition like aws or aws-cn");
        }},
       {"serviceDomain",
        [&](const YAML::Node& v) {
          config.serviceDomain = text(v, "serviceDomain");
          if (!isDnsName(config.serviceDomain))
            fail(v, "serviceDomain '" + config.serviceDomain + "' is not a lower-case DNS name");
        }},
       {"partitionId",
        [&](const YAML::Node& v) {
          config.partitionId = text(v, "partitionId");
          if (!isDnsLabel(config.partitionId))
            fail(v, "partitionId '" + config.partitionId + "' is not a lower-case DNS label");
        }},
       {"identities", keep(identities)},
       {"vpcs", keep(vpcs)},
       {"defaultVpc",
        [&](const YAML::Node& v) {
          config.defaultVpc = text(v, "defaultVpc");
          defaultVpc.reset(v);  // checked against the vpcs once they are read
        }},
       {"securityGroups", keep(securityGroups)},
       {"instances", keep(instances)},
       {"albs", keep(albs)},
       {"lambda", [&](const YAML::Node& v) { lambda(v, config.lambda); }},
       {"vpcEndpoints", keep(vpcEndpoints)},
       {"quotas", [&](const YAML::Node& v) { quotas(v, config.quotas); }},
       {"drainSeconds", [&](const YAML::Node& v) { config.drainSeconds = int(integer(v, "drainSeconds", 0, 3600)); }},
       {"dns", [&](const YAML::Node& v) { dns(v, config.dns); }},
       {"accessLogs", [&](const YAML::Node& v) { accessLogs(v, config.accessLogs); }},
       {"dataPlane", [&](const YAML::Node& v) {
          fields(v, "dataPlane",
                 {{"connectionLifetimeSeconds",
                   [&](const YAML::Node& n) {
                     config.dataPlane.connectionLifetimeSeconds =
                         int(integer(n, "dataPlane connectionLifetimeSeconds", 1, 86400));
                   }},
                  {"verifyTargetCertificates",
                   [&](const YAML::Node& n) {
                     config.dataPlane.verifyTargetCertificates = boolean(n, "dataPlane verifyTargetCertificates");
                   }},
                  {"targetCaFile",
                   [&](const YAML::Node& n) {
                     config.dataPlane.targetCaFile = text(n, "dataPlane targetCaFile");
                     if (!std::ifstream(config.dataPlane.targetCaFile)) {
                       fail(n, "dataPlane targetCaFile: cannot read " + config.dataPlane.targetCaFile);
                     }
                   }},
                  {"requestHeadTimeoutSeconds",
                   [&](const YAML::Node& n) {
                     config.dataPlane.requestHeadTimeoutSeconds =
                         int(integer(n, "dataPlane requestHeadTimeoutSeconds", 1, 3600));
                   }},
                  {"requestBodyMinBytesPerSecond",
                   [&](const YAML::Node& n) {
                     config.dataPlane.requestBodyMinBytesPerSecond =
                         int(integer(n, "dataPlane requestBodyMinBytesPerSecond", 0, 1 << 30));
                   }},
                  {"maxConnectionsPerTarget",
                   [&](const YAML::Node& n) {
                     config.dataPlane.maxConnectionsPerTarget =
                         int(integer(n, "dataPlane maxConnectionsPerTarget", 1, 1000000));
                   }},
                  {"encodedSlashes", [&](const YAML::Node& n) {
                     std::string value = text(n, "dataPlane encodedSlashes");
                     if (value != "reject" && value != "keep")
                       fail(n, "dataPlane encodedSlashes: '" + value + "' is not reject or keep");
                     config.dataPlane.keepEncodedSlashes = value == "keep";
                   }}});
        }}});

  std::map<std::string, int> keyLines;
  sequence(identities, "identities", [&](const YAML::Node& n) { identity(n, config, keyLines); });
  sequence(vpcs, "vpcs", [&](const YAML::Node& n) { vpc(n, config); });
  if (!defaultVpc.IsNull()) {
    bool known = false;
    for (const auto& vpc : config.vpcs) known = known || vpc.id == config.defaultVpc;
    if (!known) fail(defaultVpc, "defaultVpc '" + config.defaultVpc + "' is not one of the configured vpcs");
  }
  sequence(securityGroups, "securityGroups", [&](const YAML::Node& n) { securityGroup(n, config); });
  sequence(instances, "instances", [&](const YAML::Node& n) { instance(n, config); });
  sequence(albs, "albs", [&](const YAML::Node& n) { alb(n, config); });
  sequence(vpcEndpoints, "vpcEndpoints", [&](const YAML::Node& n) { vpcEndpoint(n, config); });
  return config;
}

}  // namespace

Config parseConfig(const std::string& yamlText, const std::string& fileName) {
  return Parser(fileName).parse(yamlText);
}

Config loadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": cannot read: " + std::strerror(errno));
  return parseConfig(text.str(), path);
}

}  // namespace trellis::model
