// What listeners and rules share (docs/architecture.md, "The life of a request"): reading rule actions and matches,
// resolving the target groups an action forwards to, finding listeners and rules under their
// parents, and the cascades of deletes. Used by the ops_*.cpp that write listeners, rules and services.
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

// The id of a listener's default rule, which mirrors its defaultAction.
std::string defaultRuleId(const std::string& listenerId);
// Adds to `tx` the deletion of `listener` of `serviceId` and of its rules (its default rule too), with
// their name index entries, forward index entries and tags.
void deleteListener(Resources& r, Tx& tx, const std::string& serviceId, const Doc& listener);
// Adds to `tx` the deletion of the access-log subscriptions of a network or service being deleted
// (ops_access_log.cpp).
void deleteAccessLogSubscriptions(Resources& r, Tx& tx, const std::string& resourceId);

// Re-writes `doc` unchanged, guarded by its revision. Writes that depend on a parent or a
// referenced document touch it so that concurrent writes depending on the same document (a
// listener create against its service's deletion, two rules claiming one priority) cannot both win.
void touch(Tx& tx, std::string_view kind, const Doc& doc);

// The listener `identifier` of `service`, or ResourceNotFound (also when it belongs to another service).
Doc loadListener(Resources& r, const Doc& service, const std::string& identifier);
// The rule `identifier` of `listener`, or ResourceNotFound.
Doc loadRule(Resources& r, const Doc& listener, const std::string& identifier);

}  // namespace trellis::api
