// StartDomainVerification, GetDomainVerification, DeleteDomainVerification, ListDomainVerifications.
//
// A verification answers the TXT record to publish and stays PENDING: this version of Trellis does not look the record
// up yet (docs/vpc-resources.md), so it never claims a domain VERIFIED that nobody checked.
#include "api/api.h"
#include "api/indexes.h"
#include "api/validation.h"
#include "common/crypto.h"
#include "common/strings.h"

namespace trellis::api {
namespace {

using model::Kind;
constexpr std::string_view kKind = "domainverification";
constexpr std::string_view kNameIndex = "index.name.domainverification";  // the lower-cased domain
constexpr const char* kType = "DOMAIN_VERIFICATION";
constexpr const char* kIdentifier = "domainVerificationIdentifier";

json withTags(Resources& r, json doc) {
  auto tags = r.find("tags", doc.value("arn", ""));
  if (tags) doc["tags"] = tags->value;
  return doc;
}

json start(Resources& r, Call& call) {
  FieldErrors errors;
  readString(errors, call.body, "clientToken", "clientToken",
             {.minLength = 1, .maxLength = 64, .check = checkClientToken});
  auto domain = readString(errors, call.body, "domainName", "domainName",
                           {.required = true, .minLength = 3, .maxLength = 255, .check = checkDomainName});
  auto tags = readTags(errors, call.body);
  if (domain && startsWith(*domain, "*.")) errors.add("domainName", "Member must not be a wildcard domain");
  errors.throwIfAny();
  if (auto previous = r.replay(call)) return *previous;

  std::string key = toLower(*domain);
  if (auto entry = r.store().get(kNameIndex, key))
    throw conflict(kType, json::parse(entry->value).value("id", ""),
                   "A domain verification for " + *domain + " already exists.");
  enforceQuota(r.store().count(kKind), r.config().quotas.domainVerifications, kType, "domainVerifications",
               "domain verifications per Region");

  std::string id = model::newId(Kind::DomainVerification);
  json doc = {
      {"id", id},
      {"arn", model::arnFor(r.arns(), Kind::DomainVerification, id)},
      {"domainName", *domain},
      {"status", "PENDING"},
      {"txtMethodConfig", {{"name", "_vpc-lattice-verification." + key}, {"value", "vpc-lattice:" + randomHex(32)}}},
      {"createdAt", r.now()}};
  json response = pick(doc, {"id", "arn", "domainName", "status", "txtMethodConfig"});

  Tx tx;
  createGuarded(r, tx, call, kKind, kNameIndex, key, doc, tags, response);
  r.commit(tx, kType, key);
  return response;
}

json get(Resources& r, Call& call) {
  return withTags(r, r.load(Kind::DomainVerification, call.labels[0], kIdentifier).value);
}

// Configurations that name the verification keep their custom domain; they report no verification status.
json remove(Resources& r, Call& call) {
  auto doc = r.load(Kind::DomainVerification, call.labels[0], kIdentifier);
  Tx tx;
  deleteGuarded(tx, kKind, kNameIndex, toLower(doc.value.value("domainName", "")), doc);
  r.commit(tx, kType, doc.id);
  return json::object();
}

json list(Resources& r, Call& call) {
  return r.page(
      kKind, call, [](const json&) { return true; },
      [&r](const json& doc) {
        return withTags(
            r, pick(doc, {"id", "arn", "domainName", "status", "txtMethodConfig", "createdAt", "lastVerifiedTime"}));
      });
}

}  // namespace

void registerDomainVerificationOps(HandlerMap& handlers) {
  handlers["StartDomainVerification"] = start;
  handlers["GetDomainVerification"] = get;
  handlers["DeleteDomainVerification"] = remove;
  handlers["ListDomainVerifications"] = list;
}

}  // namespace trellis::api
