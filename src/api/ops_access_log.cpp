// CreateAccessLogSubscription, GetAccessLogSubscription, UpdateAccessLogSubscription,
// DeleteAccessLogSubscription, ListAccessLogSubscriptions.
//
// A subscription names a service network, service or resource configuration and one destination: a CloudWatch
// Logs log group, an S3 bucket or a Firehose delivery stream. A resource has at most one subscription per destination
// type (for service networks: per destination type and log type).
#include "api/actions.h"
#include "api/api.h"
#include "api/indexes.h"
#include "api/validation.h"
#include "common/strings.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kKind = "accesslogsubscription";

// "logs", "s3" or "firehose" for an ARN of a destination Lattice can deliver to; "" otherwise.
std::string destinationType(std::string_view arn) {
  auto parsed = model::parseArn(arn);
  if (!parsed) return "";
  auto isAccount = [](const std::string& s) {
    return s.size() == 12 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  const std::string& resource = parsed->resource;
  if (parsed->service == "logs" && !parsed->region.empty() && isAccount(parsed->accountId) &&
      startsWith(resource, "log-group:") && resource.size() > 10)
    return "logs";
  // S3 ARNs carry no region or account; the resource is the bucket, optionally with a key prefix.
  if (parsed->service == "s3" && parsed->region.empty() && parsed->accountId.empty()) {
    std::string_view bucket = std::string_view(resource).substr(0, resource.find('/'));
    if (bucket.size() >= 3 && bucket.size() <= 63 &&
        bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") == std::string_view::npos)
      return "s3";
  }
  if (parsed->service == "firehose" && !parsed->region.empty() && isAccount(parsed->accountId) &&
      startsWith(resource, "deliverystream/") && resource.size() > 15)
    return "firehose";
  return "";
}

std::string checkDestinationArn(std::string_view arn) {
  if (!destinationType(arn).empty()) return "";
  return "Member must be the ARN of a CloudWatch Logs log group (arn:aws:logs:REGION:ACCOUNT:log-group:NAME), "
         "an S3 bucket (arn:aws:s3:::BUCKET) or a Firehose delivery stream "
         "(arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME)";
}

constexpr StringRule kDestinationRule = {
    .required = true, .minLength = 20, .maxLength = 2048, .check = checkDestinationArn};
constexpr StringRule kResourceIdentifierRule = {
    .required = true, .minLength = 17, .maxLength = 200, .check = checkResourceIdentifier};

const char* describe(const std::string& type) {
  if (type == "logs") return "CloudWatch Logs log group";
  if (type == "s3") return "S3 bucket";
  return "Firehose delivery stream";
}

// Another subscription of the same resource (and log type) that already delivers to `type`.
std::optional<Doc> sameTypeSibling(Resources& r, const json& subscription, const std::string& type) {
  for (auto& other : indexedDocs(r, kAccessLogsByResource.name, kKind, subscription.value("resourceId", ""))) {
    if (other.id == subscription.value("id", "")) continue;
    if (other.value.value("serviceNetworkLogType", "") != subscription.value("serviceNetworkLogType", "")) continue;
    if (destinationType(other.value.value("destinationArn", "")) == type) return other;
  }
  return std::nullopt;
}

[[noreturn]] void throwDuplicate(const json& subscription, const Doc& other, const std::string& type) {
  throw conflict("ACCESS_LOG_SUBSCRIPTION", other.id,
                 "The resource " + subscription.value("resourceId", "") + " already has the access log subscription " +
                     other.id + " to a " + describe(type) +
                     "; a resource can have one subscription per destination type.");
}

// Rewrites the subscribed resource unchanged, guarded by its revision: serialises creates against each
// other (the one-per-type check) and against the resource's delete, which removes its subscriptions.
void touch(Tx& tx, Kind kind, const Doc& resource) {
  tx.requireRevision(model::kindName(kind), resource.id, resource.modRevision);
  tx.put(model::kindName(kind), resource.id, resource.value);
}

json create(Resources& r, Call& call) {
  FieldErrors errors;
  readString(errors, call.body, "clientToken", "clientToken",
             {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto identifier = readString(errors, call.body, "resourceIdentifier", "resourceIdentifier", kResourceIdentifierRule);
  auto destination = readString(errors, call.body, "destinationArn", "destinationArn", kDestinationRule);
  auto logType = readString(errors, call.body, "serviceNetworkLogType", "serviceNetworkLogType",
                            {.oneOf = {"SERVICE", "RESOURCE"}});
  auto tags = readTags(errors, call.body);
  auto ref = identifier ? parseResourceIdentifier(*identifier) : std::nullopt;
  if (ref && ref->kind != Kind::ServiceNetwork && logType)
    errors.add("serviceNetworkLogType", "Member is only supported for service networks");
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  auto resource = r.load(ref->kind, *identifier, "resourceIdentifier");
  std::string id = model::newId(Kind::AccessLogSubscription);
  std::string now = r.now();
  json doc = {{"id", id},
              {"arn", model::arnFor(r.arns(), Kind::AccessLogSubscription, id)},
              {"resourceId", resource.id},
              {"resourceArn", resource.value["arn"]},
              {"destinationArn", *destination},
              {"createdAt", now},
              {"lastUpdatedAt", now}};
  // Service networks log SERVICE traffic unless told otherwise (RESOURCE: connections to the network's resource
  // configurations).
  if (ref->kind == Kind::ServiceNetwork) doc["serviceNetworkLogType"] = logType.value_or("SERVICE");
  std::string type = destinationType(*destination);
  if (auto other = sameTypeSibling(r, doc, type)) throwDuplicate(doc, *other, type);
  json response = pick(doc, {"id", "arn", "resourceId", "resourceArn", "serviceNetworkLogType", "destinationArn"});

  Tx tx;
  touch(tx, ref->kind, resource);
  tx.put(kKind, id, doc);
  indexCreated(tx, kKind, doc);
  r.putTags(tx, doc["arn"], tags);
  r.remember(call, tx, response);
  r.commit(tx, "ACCESS_LOG_SUBSCRIPTION", id);
  return response;
}

json get(Resources& r, Call& call) {
  return r.load(Kind::AccessLogSubscription, call.labels[0], "accessLogSubscriptionIdentifier").value;
}

// The destination may move to another type (the console offers "change the delivery destination at any
// time" with a type picker; the API reference says nothing against it), as long as the resource has no
// other subscription of that type: that is a ConflictException, as on create.
json update(Resources& r, Call& call) {
  FieldErrors errors;
  auto destination = readString(errors, call.body, "destinationArn", "destinationArn", kDestinationRule);
  errors.throwIfAny();
  auto doc = r.load(Kind::AccessLogSubscription, call.labels[0], "accessLogSubscriptionIdentifier");
  std::string type = destinationType(*destination);
  Tx tx;
  if (type != destinationType(doc.value.value("destinationArn", ""))) {
    if (auto other = sameTypeSibling(r, doc.value, type)) throwDuplicate(doc.value, *other, type);
    std::string resourceId = doc.value.value("resourceId", "");
    auto ref = parseResourceIdentifier(resourceId);
    if (auto resource = ref ? r.find(model::kindName(ref->kind), resourceId) : std::nullopt)
      touch(tx, ref->kind, *resource);
  }
  doc.value["destinationArn"] = *destination;
  doc.value["lastUpdatedAt"] = r.now();
  tx.requireRevision(kKind, doc.id, doc.modRevision);
  tx.put(kKind, doc.id, doc.value);
  r.commit(tx, "ACCESS_LOG_SUBSCRIPTION", doc.id);
  return pick(doc.value, {"id", "arn", "resourceId", "resourceArn", "destinationArn"});
}

json remove(Resources& r, Call& call) {
  auto doc = r.load(Kind::AccessLogSubscription, call.labels[0], "accessLogSubscriptionIdentifier");
  Tx tx;
  tx.requireRevision(kKind, doc.id, doc.modRevision);
  tx.del(kKind, doc.id);
  indexDeleted(tx, kKind, doc.value);
  tx.del("tags", doc.value["arn"].get<std::string>());
  r.commit(tx, "ACCESS_LOG_SUBSCRIPTION", doc.id);
  return nullptr;
}

json list(Resources& r, Call& call) {
  FieldErrors errors;
  json query = json::object();
  if (auto value = call.queryValue("resourceIdentifier")) query["resourceIdentifier"] = *value;
  auto identifier = readString(errors, query, "resourceIdentifier", "resourceIdentifier", kResourceIdentifierRule);
  errors.throwIfAny();
  // Like every top-level List, an unknown resource lists nothing rather than failing.
  std::string resourceId = parseResourceIdentifier(*identifier)->id;
  return r.pageIndex(
      kAccessLogsByResource.name, resourceId + "/", kKind, call, [](const json&) { return true; },
      [](const json& doc) {
        return pick(doc, {"id", "arn", "resourceId", "resourceArn", "destinationArn", "serviceNetworkLogType",
                          "createdAt", "lastUpdatedAt"});
      });
}

}  // namespace

void deleteAccessLogSubscriptions(Resources& r, Tx& tx, const std::string& resourceId) {
  for (const auto& subscription : indexedDocs(r, kAccessLogsByResource.name, kKind, resourceId)) {
    tx.del(kKind, subscription.id);
    indexDeleted(tx, kKind, subscription.value);
    tx.del("tags", subscription.value["arn"].get<std::string>());
  }
}

void registerAccessLogOps(HandlerMap& handlers) {
  handlers["CreateAccessLogSubscription"] = create;
  handlers["GetAccessLogSubscription"] = get;
  handlers["UpdateAccessLogSubscription"] = update;
  handlers["DeleteAccessLogSubscription"] = remove;
  handlers["ListAccessLogSubscriptions"] = list;
}

}  // namespace trellis::api
