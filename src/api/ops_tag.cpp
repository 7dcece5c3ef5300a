// TagResource, UntagResource, ListTagsForResource.
//
// Tags live under kind "tags", keyed by the resource's ARN (creates store theirs through
// Resources::putTags; deletes remove them). Every taggable Trellis resource is addressed by its exact ARN.
#include <algorithm>

#include "api/api.h"
#include "api/validation.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kTags = "tags";
constexpr size_t kMaxTags = 200;

// The model's Arn pattern: arn:PARTITION:vpc-lattice:REGION?:ACCOUNT12:RESOURCE (not starting with '/').
std::string checkLatticeArn(std::string_view v) {
  auto arn = model::parseArn(v);
  bool ok = arn && arn->service == "vpc-lattice" && arn->accountId.size() == 12 &&
            arn->accountId.find_first_not_of("0123456789") == std::string::npos && arn->resource.front() != '/';
  return ok ? ""
            : "Member must satisfy regular expression pattern: "
              "arn:[a-z0-9][-.a-z0-9]{0,62}:vpc-lattice:([a-z0-9][-.a-z0-9]{0,62})?:\\d{12}?:[^/].{0,1023}";
}

constexpr StringRule kArnRule = {.required = true, .maxLength = 1224, .check = checkLatticeArn};

struct Tagged {
  Doc resource;
  std::string kind;
  std::string arn;
};

// The resource the ARN names, which must exist with exactly that ARN (so a listener ARN naming the
// wrong service, or another account or Region, is not found).
Tagged loadTagged(Resources& r, const Call& call, FieldErrors& errors) {
  json label = {{"resourceArn", call.labels.at(0)}};
  auto arn = readString(errors, label, "resourceArn", "resourceArn", kArnRule);
  errors.throwIfAny();
  std::string_view type = "RESOURCE";
  for (auto kind : {Kind::ServiceNetwork, Kind::Service, Kind::Listener, Kind::Rule, Kind::TargetGroup,
                    Kind::ServiceNetworkServiceAssociation, Kind::ServiceNetworkVpcAssociation,
                    Kind::AccessLogSubscription, Kind::ServiceNetworkResourceAssociation, Kind::ResourceGateway,
                    Kind::ResourceConfiguration, Kind::ResourceEndpointAssociation, Kind::DomainVerification}) {
    auto id = model::idFromIdentifier(kind, *arn);
    if (!id) continue;
    type = model::resourceType(kind);
    auto doc = r.find(model::kindName(kind), *id);
    if (doc && doc->value.value("arn", "") == *arn) return {*doc, std::string(model::kindName(kind)), *arn};
  }
  throw notFound(std::string(type), *arn, "The resource " + *arn + " could not be found.");
}

// Writes `tags` (or removes the record when empty), guarded so that neither a concurrent tag change
// nor the resource's delete (which removes its tags) is lost.
void saveTags(Resources& r, const Tagged& target, const std::optional<Doc>& existing, const json& tags) {
  Tx tx;
  tx.requireRevision(target.kind, target.resource.id, target.resource.modRevision);
  if (existing)
    tx.requireRevision(kTags, target.arn, existing->modRevision);
  else
    tx.requireAbsent(kTags, target.arn);
  if (tags.empty())
    tx.del(kTags, target.arn);
  else
    tx.put(kTags, target.arn, tags);
  r.commit(tx, "TAGS", target.arn);
}

json tagResource(Resources& r, Call& call) {
  FieldErrors errors;
  auto tags = readTags(errors, call.body);
  if (!tags && errors.empty()) errors.add("tags", "Member must not be null");
  auto target = loadTagged(r, call, errors);  // throws the field errors too

  auto existing = r.find(kTags, target.arn);
  json merged = existing ? existing->value : json::object();
  // Keys already present take the new value (tag keys are unique per resource).
  for (auto& [key, value] : tags->items()) merged[key] = value;
  if (merged.size() > kMaxTags)
    throw validationError(
        "tags: the resource would have " + std::to_string(merged.size()) + " tags; a resource can have at most 200",
        {{"tags", "A resource can have at most 200 tags"}});
  saveTags(r, target, existing, merged);
  return json::object();
}

json untagResource(Resources& r, Call& call) {
  FieldErrors errors;
  // Required (1-200 keys); the SDKs omit the parameter for an empty list, which is as absent.
  auto keys = call.queryValues("tagKeys");
  if (keys.empty()) errors.add("tagKeys", "Member must not be null");
  if (keys.size() > kMaxTags) errors.add("tagKeys", "Member must have between 0 and 200 items");
  for (size_t i = 0; i < keys.size() && i < kMaxTags; ++i)
    if (keys[i].empty() || keys[i].size() > 128)
      errors.add("tagKeys[" + std::to_string(i) + "]", "Member must have length between 1 and 128");
  auto target = loadTagged(r, call, errors);

  auto existing = r.find(kTags, target.arn);
  if (!existing) return json::object();
  json remaining = existing->value;
  for (const auto& key : keys) remaining.erase(key);
  if (remaining.size() != existing->value.size()) saveTags(r, target, existing, remaining);
  return json::object();
}

json listTags(Resources& r, Call& call) {
  FieldErrors errors;
  auto target = loadTagged(r, call, errors);
  auto existing = r.find(kTags, target.arn);
  return {{"tags", existing ? existing->value : json::object()}};
}

}  // namespace

void registerTagOps(HandlerMap& handlers) {
  handlers["TagResource"] = tagResource;
  handlers["UntagResource"] = untagResource;
  handlers["ListTagsForResource"] = listTags;
}

}  // namespace trellis::api
