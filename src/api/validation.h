// Field validation for API inputs. Every check records its failure in FieldErrors (so one
// ValidationException lists every bad field) and returns nullopt/nullptr for a bad or absent value.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/errors.h"

namespace trellis::api {

using nlohmann::json;

class FieldErrors {
 public:
  void add(std::string name, std::string message) { list_.push_back({std::move(name), std::move(message)}); }
  bool empty() const { return list_.empty(); }
  // Throws a ValidationException naming every recorded field.
  void throwIfAny() const;

 private:
  std::vector<FieldError> list_;
};

struct StringRule {
  bool required = false;
  size_t minLength = 0;
  size_t maxLength = SIZE_MAX;
  std::vector<std::string_view> oneOf;  // enum values, if any
  // Extra check: returns an error message, or empty when fine.
  std::string (*check)(std::string_view) = nullptr;
};

// `obj` is the JSON object holding the member (may be null/absent); `path` names it in fieldList.
std::optional<std::string> readString(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                                      const StringRule& rule);
std::optional<int64_t> readInt(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                               bool required, int64_t min, int64_t max);
std::optional<bool> readBool(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                             bool required = false);
// An object member; nullptr when absent (recorded if required) or not an object.
const json* readObject(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                       bool required = false);
const json* readArray(FieldErrors& errors, const json& obj, const char* key, const std::string& path, bool required,
                      size_t minItems, size_t maxItems);

// Lattice names: [a-z0-9-]+, no leading/trailing '-', no "--", length limits, optional reserved prefix.
std::string checkName(std::string_view value, size_t minLength, size_t maxLength, std::string_view reservedPrefix);
// Named checks used as StringRule::check.
std::string checkServiceNetworkName(std::string_view v);
std::string checkServiceName(std::string_view v);
std::string checkListenerName(std::string_view v);
std::string checkRuleName(std::string_view v);
std::string checkTargetGroupName(std::string_view v);
std::string checkClientToken(std::string_view v);
std::string checkVpcId(std::string_view v);
std::string checkSecurityGroupId(std::string_view v);
std::string checkCertificateArn(std::string_view v);
std::string checkDomainName(std::string_view v);
std::string checkArn(std::string_view v);
std::string checkMatchPath(std::string_view v);

// Listener/rule/target-group helpers (ops_listener, ops_rule, ops_target_group).
std::string checkTargetGroupIdentifier(std::string_view v);
// HealthCheck matcher httpCode: comma-separated codes or ranges ("200", "200,202", "200-299"), each 200-499.
std::string checkHttpCodeMatcher(std::string_view v);
// A union (exactly one member set): the chosen member's name, or nullopt (recorded under `path`) when none or
// several are set.
std::optional<std::string> readUnionMember(FieldErrors& errors, const json& obj, const std::string& path,
                                           std::initializer_list<const char*> members);

// Tags: map of 1-128 char keys to 0-256 char values, at most 200. Records errors; returns the map.
std::optional<json> readTags(FieldErrors& errors, const json& obj, const char* key = "tags");

// --- Identifiers of associations, policies, access log subscriptions and tags ---

// StringRule::check functions for id-or-ARN members: "Member must satisfy ..." or "".
std::string checkServiceNetworkIdentifier(std::string_view v);
std::string checkServiceIdentifier(std::string_view v);
// A ResourceIdentifier (auth policies, access log subscriptions): id or ARN of a service network,
// service or resource configuration.
std::string checkResourceIdentifier(std::string_view v);
// A ResourceArn (resource policies): the ARN of a service network, service or resource configuration.
std::string checkResourceArn(std::string_view v);

struct ResourceRef {
  model::Kind kind;
  std::string id;
};
// The kind and bare id named by a ResourceIdentifier, or nullopt when it has neither shape.
std::optional<ResourceRef> parseResourceIdentifier(std::string_view v);


}  // namespace trellis::api
