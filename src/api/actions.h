// What listeners and rules share (docs/architecture.md, "The life of a request"): reading rule actions and matches,
// resolving the target groups an action forwards to, and finding listeners and rules under their
// parents. Used by ops_listener.cpp, ops_rule.cpp and ops_target_group.cpp.
#pragma once
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "api/api.h"
#include "api/validation.h"

namespace trellis::api {

// Reads the RuleAction union at obj[key] (`path` names it in fieldList). The result keeps only
// known members, target group identifiers as the caller gave them, and an explicit weight for
// every target group (default 100).
std::optional<json> readRuleAction(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                                   bool required);
// Reads the RuleMatch union ({httpMatch}); the result keeps only known members.
std::optional<json> readRuleMatch(FieldErrors& errors, const json& obj, const char* key, const std::string& path,
                                  bool required);

// Reads the optional Trellis rule extensions at obj[key] (features Lattice lacks: extra matches, query
// matches, header modifiers, rewrite, redirect, timeouts, retry). nullopt when absent or bad (recorded
// in `errors`); unknown members are errors so that a misspelt feature is never silently dropped.
std::optional<json> readRuleExtensions(FieldErrors& errors, const json& obj, const char* key, const std::string& path);

// Where an action is about to be stored.
struct ActionSite {
  const Doc& service;
  std::string listenerProtocol;  // HTTP | HTTPS | TLS_PASSTHROUGH
  std::string path;              // "defaultAction" or "action", for error fields
  std::string replacedDocId;     // the listener or rule whose current action this one replaces, if any
};

// Checks `action` for use at `site` and returns it with target group identifiers normalised to ids:
// every forwarded target group must exist (ResourceNotFound), suit the listener's protocol
// (TCP groups only behind TLS_PASSTHROUGH, and only they), and be used by no other service
// (Conflict); the service's distinct target groups must stay within quota. Adds guards to `tx`.
json resolveAction(Resources& r, Tx& tx, const json& action, const ActionSite& site);

// The target group ids an action forwards to.
std::vector<std::string> forwardedTargetGroups(const json& action);
// Which listeners' default actions and rules forward to which target groups, kept as index records in the
// transaction that writes the documents (docs/store-schema.md, "Indexes"), so no call scans every listener
// and rule: "index.forward.tg" "<tg>/<doc>" → {"serviceId"}, and "index.forward.service" "<service>/<tg>/<doc>".
inline constexpr const char* kForwardByTargetGroup = "index.forward.tg";
inline constexpr const char* kForwardByService = "index.forward.service";
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
// The listeners of a service (`kind` "listener"), the rules of a listener ("rule", its default rule
// excepted) or the service associations of a network ("servicenetworkserviceassociation"), found through
// their name index ("index.name.<kind>", keyed "<parent id>/<name or service id>"), not a scan.
std::vector<Doc> namedChildren(Resources& r, std::string_view kind, const std::string& parentId);
// The id of a listener's default rule, which mirrors its defaultAction.
std::string defaultRuleId(const std::string& listenerId);
// Adds to `tx` the deletion of `listener` of `serviceId` and of its rules (its default rule too), with
// their name index entries, forward index entries and tags.
void deleteListener(Resources& r, Tx& tx, const std::string& serviceId, const Doc& listener);
// Writes the index for a store written before it existed (once, at start).
void buildForwardIndexIfMissing(store::Store& store);

// Re-writes `doc` unchanged, guarded by its revision. Writes that depend on a parent or a
// referenced document touch it so that concurrent writes depending on the same document (a
// listener create against its service's deletion, two rules claiming one priority) cannot both win.
void touch(Tx& tx, std::string_view kind, const Doc& doc);

// The listener `identifier` of `service`, or ResourceNotFound (also when it belongs to another service).
Doc loadListener(Resources& r, const Doc& service, const std::string& identifier);
// The rule `identifier` of `listener`, or ResourceNotFound.
Doc loadRule(Resources& r, const Doc& listener, const std::string& identifier);

}  // namespace trellis::api
