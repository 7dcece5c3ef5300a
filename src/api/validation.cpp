#include "api/validation.h"

#include <algorithm>

#include "model/ids.h"

namespace trellis::api {

void FieldErrors::throwIfAny() const {
  if (list_.empty()) return;
  std::string message = list_.size() == 1 ? list_[0].name + ": " + list_[0].message
                                          : std::to_string(list_.size()) + " validation errors detected";
  throw validationError(message, list_);
}

namespace {
const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}
}  // namespace

std::optional<std::string> readString(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                                      const StringRule& rule) {
  const json* v = member(obj, key);
  if (!v) {
    if (rule.required) errors.add(path, "Member must not be null");
    return std::nullopt;
  }
  if (!v->is_string()) {
    errors.add(path, "Member must be a string");
    return std::nullopt;
  }
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() < rule.minLength || s.size() > rule.maxLength) {
    errors.add(path, "Member must have length between " + std::to_string(rule.minLength) + " and " +
                         (rule.maxLength == SIZE_MAX ? std::string("unbounded") : std::to_string(rule.maxLength)));
    return std::nullopt;
  }
  if (!rule.oneOf.empty() && std::find(rule.oneOf.begin(), rule.oneOf.end(), s) == rule.oneOf.end()) {
    std::string values;
    for (auto e : rule.oneOf) values += (values.empty() ? "" : ", ") + std::string(e);
    errors.add(path, "Member must satisfy enum value set: [" + values + "]");
    return std::nullopt;
  }
  if (rule.check) {
    std::string problem = rule.check(s);
    if (!problem.empty()) {
      errors.add(path, problem);
      return std::nullopt;
    }
  }
  return s;
}

std::optional<int64_t> readInt(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                               bool required, int64_t min, int64_t max) {
  const json* v = member(obj, key);
  if (!v) {
    if (required) errors.add(path, "Member must not be null");
    return std::nullopt;
  }
  if (!v->is_number_integer()) {
    errors.add(path, "Member must be an integer");
    return std::nullopt;
  }
  int64_t n = v->get<int64_t>();
  if (n < min || n > max) {
    errors.add(path, "Member must be between " + std::to_string(min) + " and " + std::to_string(max));
    return std::nullopt;
  }
  return n;
}

std::optional<bool> readBool(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                             bool required) {
  const json* v = member(obj, key);
  if (!v) {
    if (required) errors.add(path, "Member must not be null");
    return std::nullopt;
  }
  if (!v->is_boolean()) {
    errors.add(path, "Member must be a boolean");
    return std::nullopt;
  }
  return v->get<bool>();
}

const json* readObject(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                       bool required) {
  const json* v = member(obj, key);
  if (!v) {
    if (required) errors.add(path, "Member must not be null");
    return nullptr;
  }
  if (!v->is_object()) {
    errors.add(path, "Member must be an object");
    return nullptr;
  }
  return v;
}

const json* readArray(FieldErrors& errors, const json& obj, const char* key, const std::string& path, bool required,
                      size_t minItems, size_t maxItems) {
  const json* v = member(obj, key);
  if (!v) {
    if (required) errors.add(path, "Member must not be null");
    return nullptr;
  }
  if (!v->is_array()) {
    errors.add(path, "Member must be a list");
    return nullptr;
  }
  if (v->size() < minItems || v->size() > maxItems) {
    errors.add(path, "Member must have between " + std::to_string(minItems) + " and " + std::to_string(maxItems) +
                         " items");
    return nullptr;
  }
  return v;
}

std::string checkName(std::string_view v, size_t minLength, size_t maxLength, std::string_view reservedPrefix) {
  if (v.size() < minLength || v.size() > maxLength)
    return "Member must have length between " + std::to_string(minLength) + " and " + std::to_string(maxLength);
  for (char c : v)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return "Member must contain only lower-case letters, numbers and hyphens";
  if (v.front() == '-' || v.back() == '-') return "Member must not start or end with a hyphen";
  if (v.find("--") != std::string_view::npos) return "Member must not contain consecutive hyphens";
  if (!reservedPrefix.empty() && v.substr(0, reservedPrefix.size()) == reservedPrefix)
    return "Member must not start with '" + std::string(reservedPrefix) + "'";
  return "";
}

std::string checkServiceNetworkName(std::string_view v) { return checkName(v, 3, 63, ""); }
std::string checkServiceName(std::string_view v) { return checkName(v, 3, 40, "svc-"); }
std::string checkListenerName(std::string_view v) { return checkName(v, 3, 63, "listener-"); }
std::string checkRuleName(std::string_view v) { return checkName(v, 3, 63, "rule-"); }
std::string checkTargetGroupName(std::string_view v) { return checkName(v, 3, 128, "tg-"); }

std::string checkClientToken(std::string_view v) {
  for (char c : v)
    if (c < '!' || c > '~') return "Member must satisfy regular expression pattern: [!-~]+";
  return "";
}

namespace {
bool isLowerAlnum(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}
std::string checkAwsId(std::string_view v, std::string_view prefix) {
  if (v.substr(0, prefix.size()) == prefix) {
    auto rest = v.substr(prefix.size());
    if ((rest.size() == 8 || rest.size() == 17) && isLowerAlnum(rest)) return "";
  }
  return "Member must satisfy regular expression pattern: " + std::string(prefix) + "(([0-9a-z]{8})|([0-9a-z]{17}))";
}
}  // namespace

std::string checkVpcId(std::string_view v) { return checkAwsId(v, "vpc-"); }
std::string checkSecurityGroupId(std::string_view v) { return checkAwsId(v, "sg-"); }

std::string checkCertificateArn(std::string_view v) {
  if (v.empty()) return "";
  auto arn = model::parseArn(v);
  if (arn && arn->service == "acm" && arn->resource.substr(0, 12) == "certificate/" && arn->resource.size() > 12) {
    auto rest = std::string_view(arn->resource).substr(12);
    if (std::all_of(rest.begin(), rest.end(),
                    [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }))
      return "";
  }
  return "Member must satisfy regular expression pattern: ^(arn(:[a-z0-9]+([.-][a-z0-9]+)*){2}(:([a-z0-9]+([.-][a-z0-9]+)*)?){2}:certificate/[0-9a-z-]+)?$";
}

std::string checkDomainName(std::string_view v) {
  // A DNS name: labels of letters, digits and hyphens (optionally a leading "*." wildcard label).
  auto labels = v;
  if (labels.substr(0, 2) == "*.") labels.remove_prefix(2);
  size_t start = 0;
  while (start <= labels.size()) {
    size_t dot = labels.find('.', start);
    auto label = labels.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return "Member must be a valid domain name";
    for (char c : label)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
        return "Member must be a valid domain name";
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return "";
}

std::string checkArn(std::string_view v) {
  return model::parseArn(v) ? "" : "Member must satisfy regular expression pattern: ^arn:[a-z0-9\\-]+:[a-z0-9\\-]+:.*$";
}

std::string checkMatchPath(std::string_view v) {
  if (v.empty() || v.front() != '/') return "Member must satisfy regular expression pattern: ^\\/[a-zA-Z0-9@:%_+.~#?&\\/=-]*$";
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("@:%_+.~#?&/=-").find(c) != std::string_view::npos;
    if (!ok) return "Member must satisfy regular expression pattern: ^\\/[a-zA-Z0-9@:%_+.~#?&\\/=-]*$";
  }
  return "";
}

std::string checkTargetGroupIdentifier(std::string_view v) {
  if (model::idFromIdentifier(model::Kind::TargetGroup, v)) return "";
  return "Member must satisfy regular expression pattern: "
         "((tg-[0-9a-z]{17})|(arn:[a-z0-9\\-]+:vpc-lattice:[a-zA-Z0-9\\-]+:\\d{12}:targetgroup/tg-[0-9a-z]{17}))";
}

std::string checkHttpCodeMatcher(std::string_view v) {
  const std::string problem = "Member must be HTTP codes between 200 and 499, as a list (200,202) or a range (200-299)";
  auto code = [](std::string_view s) -> int {
    if (s.size() != 3 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
    int n = std::stoi(std::string(s));
    return n >= 200 && n <= 499 ? n : -1;
  };
  size_t start = 0;
  while (true) {
    size_t comma = v.find(',', start);
    auto item = v.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      if (code(item) < 0) return problem;
    } else {
      int low = code(item.substr(0, dash)), high = code(item.substr(dash + 1));
      if (low < 0 || high < 0 || low > high) return problem;
    }
    if (comma == std::string_view::npos) return "";
    start = comma + 1;
  }
}

std::optional<std::string> readUnionMember(FieldErrors& errors, const json& obj, const std::string& path,
                                           std::initializer_list<const char*> members) {
  std::optional<std::string> chosen;
  int count = 0;
  for (const char* m : members)
    if (member(obj, m)) {
      chosen = m;
      ++count;
    }
  if (count == 1) return chosen;
  std::string names;
  for (const char* m : members) names += (names.empty() ? "" : ", ") + std::string(m);
  errors.add(path, "Member must have exactly one of the members [" + names + "] set");
  return std::nullopt;
}

std::optional<json> readTags(FieldErrors& errors, const json& obj, const char* key) {
  if (!obj.is_object()) return std::nullopt;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) {
    errors.add(key, "Member must be a map");
    return std::nullopt;
  }
  if (it->size() > 200) {
    errors.add(key, "Member must have at most 200 entries");
    return std::nullopt;
  }
  bool ok = true;
  for (auto& [k, v] : it->items()) {
    if (k.empty() || k.size() > 128) {
      errors.add(std::string(key) + "." + k, "Tag key must have length between 1 and 128");
      ok = false;
    }
    if (!v.is_string() || v.get_ref<const std::string&>().size() > 256) {
      errors.add(std::string(key) + "." + k, "Tag value must be a string of at most 256 characters");
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return *it;
}

std::string checkServiceNetworkIdentifier(std::string_view v) {
  if (model::idFromIdentifier(model::Kind::ServiceNetwork, v)) return "";
  return "Member must be a service network id (sn-...) or ARN";
}

std::string checkServiceIdentifier(std::string_view v) {
  if (model::idFromIdentifier(model::Kind::Service, v)) return "";
  return "Member must be a service id (svc-...) or ARN";
}

std::optional<ResourceRef> parseResourceIdentifier(std::string_view v) {
  for (auto kind : {model::Kind::ServiceNetwork, model::Kind::Service, model::Kind::ResourceConfiguration})
    if (auto id = model::idFromIdentifier(kind, v)) return ResourceRef{kind, *id};
  return std::nullopt;
}

std::string checkResourceIdentifier(std::string_view v) {
  if (parseResourceIdentifier(v)) return "";
  return "Member must be the id or ARN of a service network, service or resource configuration";
}

std::string checkResourceArn(std::string_view v) {
  if (v.substr(0, 4) == "arn:" && parseResourceIdentifier(v)) return "";
  return "Member must be the ARN of a service network, service or resource configuration";
}

}  // namespace trellis::api
