// Every index the API keeps (src/api/indexes.h) against what a scan of the documents says: empty when
// they agree, else what differs. For the API's tests and its fuzz target.
#pragma once
#include <nlohmann/json.hpp>

#include <set>
#include <string>

#include "api/indexes.h"
#include "common/strings.h"
#include "store/store.h"

namespace trellis::testing {

inline std::string indexMismatch(store::Store& store) {
  using json = nlohmann::json;
  std::string problems;
  // `expected` and `index` hold "<index kind> <key> <value>" lines.
  auto compare = [&](const std::set<std::string>& expected, const std::set<std::string>& index) {
    for (const auto& entry : expected)
      if (!index.count(entry)) problems += "lacks " + entry + "\n";
    for (const auto& entry : index)
      if (!expected.count(entry)) problems += "has stale " + entry + "\n";
  };
  auto entries = [&](const std::string& kind, bool withValue) {
    std::set<std::string> out;
    for (const auto& record : store.list(kind))
      out.insert(kind + " " + record.id + (withValue ? " " + record.value : ""));
    return out;
  };

  // Which documents forward to which target groups.
  std::set<std::string> byTargetGroup, byService;
  auto forwards = [&](const std::string& serviceId, const std::string& docId, const json& action) {
    for (const auto& tg : api::forwardedTargetGroups(action)) {
      byTargetGroup.insert(std::string(api::kForwardByTargetGroup) + " " + tg + "/" + docId + " " +
                           json{{"serviceId", serviceId}}.dump());
      byService.insert(std::string(api::kForwardByService) + " " + serviceId + "/" + tg + "/" + docId);
    }
  };
  // Names: "<parent>/<name>" (or "<name>") → {"id"}.
  std::set<std::string> names;
  auto named = [&](const std::string& kind, const std::string& key, const std::string& id) {
    names.insert("index.name." + kind + " " + key + " " + json{{"id", id}}.dump());
  };
  for (const char* kind : {"servicenetwork", "service", "targetgroup"})
    for (const auto& record : store.list(kind)) named(kind, json::parse(record.value).value("name", ""), record.id);
  for (const auto& record : store.list("listener")) {
    json doc = json::parse(record.value);
    forwards(doc.value("serviceId", ""), record.id, doc.value("defaultAction", json::object()));
    named("listener", doc.value("serviceId", "") + "/" + doc.value("name", ""), record.id);
  }
  for (const auto& record : store.list("rule")) {
    json doc = json::parse(record.value);
    if (doc.value("isDefault", false)) continue;  // mirrors its listener's defaultAction; has no name entry
    forwards(doc.value("serviceId", ""), record.id, doc.value("action", json::object()));
    named("rule", doc.value("listenerId", "") + "/" + doc.value("name", ""), record.id);
  }
  for (const auto& record : store.list("servicenetworkserviceassociation")) {
    json doc = json::parse(record.value);
    named("servicenetworkserviceassociation", doc.value("serviceNetworkId", "") + "/" + doc.value("serviceId", ""),
          record.id);
  }
  for (const auto& record : store.list("servicenetworkvpcassociation"))
    named("servicenetworkvpcassociation", json::parse(record.value).value("vpcId", ""), record.id);
  for (const char* kind : {"resourcegateway", "resourceconfiguration"})
    for (const auto& record : store.list(kind)) named(kind, json::parse(record.value).value("name", ""), record.id);
  for (const auto& record : store.list("servicenetworkresourceassociation")) {
    json doc = json::parse(record.value);
    named("servicenetworkresourceassociation",
          doc.value("serviceNetworkId", "") + "/" + doc.value("resourceConfigurationId", ""), record.id);
  }
  for (const auto& record : store.list("domainverification")) {
    named("domainverification", toLower(json::parse(record.value).value("domainName", "")), record.id);
  }

  compare(byTargetGroup, entries(api::kForwardByTargetGroup, true));
  compare(byService, entries(api::kForwardByService, false));
  std::set<std::string> nameEntries;
  for (const char* kind : {"servicenetwork", "service", "targetgroup", "listener", "rule",
                           "servicenetworkserviceassociation", "servicenetworkvpcassociation", "resourcegateway",
                           "resourceconfiguration", "servicenetworkresourceassociation", "domainverification"})
    nameEntries.merge(entries(std::string("index.name.") + kind, true));
  compare(names, nameEntries);

  for (const api::MemberIndex* index : api::memberIndexes()) {
    std::set<std::string> expected;
    for (const auto& record : store.list(index->kind)) {
      std::string member = index->memberOf(json::parse(record.value));
      if (!member.empty())
        expected.insert(std::string(index->name) + " " + member + "/" + record.id + " " +
                        json{{"id", record.id}}.dump());
    }
    compare(expected, entries(index->name, true));
  }
  return problems;
}

}  // namespace trellis::testing
