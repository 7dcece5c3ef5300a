// The index records the API keeps beside its documents, so that no call reads more than what it names
// plus look-ups (docs/store-schema.md, "Indexes: what a call reads"). Every index is written in the commit
// that writes its documents, so it is never behind, and it reads the same on SQLite and on etcd: the ids
// of one index kind, under a prefix. Entries are keyed "<parent>/<...>" and their value names the document:
// {"id": ...} (the forward index by target group says {"serviceId"} instead).
#pragma once
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/api.h"

namespace trellis::api {

// ---- Which listeners and rules forward to which target groups ----
// "index.forward.tg" "<tg>/<doc>" → {"serviceId"}, and "index.forward.service" "<service>/<tg>/<doc>" → {}.
inline constexpr const char* kForwardByTargetGroup = "index.forward.tg";
inline constexpr const char* kForwardByService = "index.forward.service";

// The target group ids an action forwards to.
std::vector<std::string> forwardedTargetGroups(const json& action);
// Adds to `tx` what changes when document `docId` (a listener, or a rule that is not a default rule) of
// `serviceId` goes from forwarding as `before` to forwarding as `after` (either may be null: created, deleted).
void indexForwards(Tx& tx, const std::string& serviceId, const std::string& docId, const json& before,
                   const json& after);
// Ids of the services whose listeners or rules forward to `targetGroupId`, skipping document `excludeDocId`
// (a listener or rule about to be replaced).
std::set<std::string> servicesUsing(Resources& r, const std::string& targetGroupId,
                                    const std::string& excludeDocId = "");
// The target groups `serviceId`'s listeners and rules forward to, skipping document `excludeDocId`.
std::set<std::string> targetGroupsOf(Resources& r, const std::string& serviceId, const std::string& excludeDocId);

// ---- Name indexes: uniqueness guards that also list children ----
// "index.name.<kind>" keyed "<name>" for networks, services and target groups, "<service id>/<name>" for listeners,
// "<listener id>/<name>" for rules (default rules have none), "<network id>/<service id>" for service associations,
// "<vpc id>" for VPC associations, "<network id>/<resource configuration id>" for resource associations, the
// lower-cased domain for domain verifications → {"id"}. Each ops_*.cpp writes its own.

// ---- Member indexes: a kind by a member that never changes after create ----
// "index.<kind>.<member>" keyed "<member's value>/<doc id>" → {"id"}, written by indexCreated and removed by
// indexDeleted for every document of `kind`.
struct MemberIndex {
  const char* name;
  const char* kind;
  std::string (*memberOf)(const json& doc);  // "": the document is not indexed
};
extern const MemberIndex kServiceAssociationsByService;  // a service's network associations
extern const MemberIndex kCustomDomainsByNetwork;        // "<network>/<custom domain>": one service each
extern const MemberIndex kVpcAssociationsByNetwork;      // a network's VPC associations
extern const MemberIndex kVpcAssociationsByVpc;          // a VPC's (at most one: the name index guards it)
extern const MemberIndex kAccessLogsByResource;          // a network's or a service's subscriptions
extern const MemberIndex kTargetGroupsByVpc;             // ListTargetGroups' vpcIdentifier filter
extern const MemberIndex kTargetGroupsByType;            // its targetGroupType filter
extern const MemberIndex kResourceGatewaysByVpc;                       // the resource-gateways-per-VPC quota
extern const MemberIndex kResourceConfigurationsByGateway;             // a gateway's configurations
extern const MemberIndex kResourceConfigurationsByGroup;               // a group's children
extern const MemberIndex kResourceConfigurationsByDomainVerification;  // what a verification covers
extern const MemberIndex kResourceAssociationsByConfiguration;         // a configuration's network associations
// Every member index, for the build at start and the tests.
const std::vector<const MemberIndex*>& memberIndexes();
// Adds to `tx` the member index entries of document `doc` of `kind`, created or deleted.
void indexCreated(Tx& tx, std::string_view kind, const json& doc);
void indexDeleted(Tx& tx, std::string_view kind, const json& doc);

// ---- Documents with a uniqueness guard ----
// Adds to `tx` the new document `doc` of `kind`, its guard entry `key` in `nameIndex` (which must not exist yet), its
// member index entries, its tags and the idempotency record of `response`.
void createGuarded(Resources& r, Tx& tx, const Call& call, std::string_view kind, std::string_view nameIndex,
                   const std::string& key, const json& doc, const std::optional<json>& tags, const json& response);
// Adds to `tx` the deletion of `doc` of `kind` (guarded by the revision it was read at), of its guard entry `key` in
// `nameIndex`, its member index entries and its tags.
void deleteGuarded(Tx& tx, std::string_view kind, std::string_view nameIndex, const std::string& key, const Doc& doc);

// ---- Reading an index ----
// The index entries under `prefix`, in key order.
std::vector<store::Record> indexEntries(store::Store& store, std::string_view index, const std::string& prefix);
// The documents of `kind` the entries of `index` under `parentId + "/"` name.
std::vector<Doc> indexedDocs(Resources& r, std::string_view index, std::string_view kind, const std::string& parentId);
// How many entries `index` has under `parentId + "/"`, without reading them.
size_t countIndexed(Resources& r, std::string_view index, const std::string& parentId);

// Writes the indexes a store written by an older trellisd lacks (at start; each index once, marked in
// "index.version"). In commits within etcd's per-transaction limits, each guarded by the revisions of the
// documents it read, so a document changed meanwhile is read again rather than indexed stale.
void buildIndexesIfMissing(store::Store& store);

}  // namespace trellis::api
