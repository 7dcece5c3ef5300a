// The forward index (docs/store-schema.md, "index.forward.*") against what a scan of every listener and
// rule says: empty when they agree, else what differs. For the API's tests and its fuzz target.
#pragma once
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <tuple>

#include "api/actions.h"
#include "store/store.h"

namespace trellis::testing {

inline std::string forwardIndexMismatch(store::Store& store) {
  using json = nlohmann::json;
  std::set<std::string> scanned, byTargetGroup, byService;
  auto add = [&](const std::string& serviceId, const std::string& docId, const json& action) {
    for (const auto& tg : api::forwardedTargetGroups(action)) {
      scanned.insert(tg + "/" + docId + " " + serviceId);
    }
  };
  for (const auto& record : store.list("listener")) {
    json doc = json::parse(record.value);
    add(doc.value("serviceId", ""), record.id, doc.value("defaultAction", json::object()));
  }
  for (const auto& record : store.list("rule")) {
    json doc = json::parse(record.value);
    if (!doc.value("isDefault", false)) add(doc.value("serviceId", ""), record.id, doc.value("action", json::object()));
  }
  for (const auto& record : store.list(api::kForwardByTargetGroup)) {
    byTargetGroup.insert(record.id + " " + json::parse(record.value).value("serviceId", ""));
  }
  for (const auto& record : store.list(api::kForwardByService)) {
    // "<service>/<tg>/<doc>" → "<tg>/<doc> <service>"
    size_t slash = record.id.find('/');
    byService.insert(record.id.substr(slash + 1) + " " + record.id.substr(0, slash));
  }
  std::string problems;
  auto compare = [&](const std::set<std::string>& index, const char* name) {
    for (const auto& entry : scanned)
      if (!index.count(entry)) problems += std::string(name) + " lacks " + entry + "\n";
    for (const auto& entry : index)
      if (!scanned.count(entry)) problems += std::string(name) + " has stale " + entry + "\n";
  };
  compare(byTargetGroup, api::kForwardByTargetGroup);
  compare(byService, api::kForwardByService);
  return problems;
}

}  // namespace trellis::testing
