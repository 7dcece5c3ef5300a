#include "api/indexes.h"

#include "common/log.h"

namespace trellis::api {

namespace {

// "<tg>/<doc>" and "<service>/<tg>/<doc>": ids have no '/'.
std::pair<std::string, std::string> splitLast(const std::string& key) {
  size_t slash = key.rfind('/');
  return {key.substr(0, slash), key.substr(slash + 1)};
}

std::set<std::string> targetGroupSet(const json& action) {
  std::set<std::string> out;
  if (action.is_object()) {
    for (auto& id : forwardedTargetGroups(action)) out.insert(std::move(id));
  }
  return out;
}

std::string memberString(const json& doc, const char* member) {
  auto it = doc.find(member);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

std::vector<std::string> forwardedTargetGroups(const json& action) {
  std::vector<std::string> ids;
  auto forward = action.find("forward");
  if (forward == action.end() || !forward->is_object()) return ids;
  for (const auto& entry : forward->value("targetGroups", json::array()))
    ids.push_back(entry.value("targetGroupIdentifier", ""));
  return ids;
}

void indexForwards(Tx& tx, const std::string& serviceId, const std::string& docId, const json& before,
                   const json& after) {
  std::set<std::string> was = targetGroupSet(before), is = targetGroupSet(after);
  for (const auto& tg : was) {
    if (is.count(tg)) continue;
    tx.del(kForwardByTargetGroup, tg + "/" + docId);
    tx.del(kForwardByService, serviceId + "/" + tg + "/" + docId);
  }
  for (const auto& tg : is) {
    if (was.count(tg)) continue;
    tx.put(kForwardByTargetGroup, tg + "/" + docId, {{"serviceId", serviceId}});
    tx.put(kForwardByService, serviceId + "/" + tg + "/" + docId, json::object());
  }
}

std::set<std::string> servicesUsing(Resources& r, const std::string& targetGroupId, const std::string& excludeDocId) {
  std::set<std::string> services;
  for (const auto& record : indexEntries(r.store(), kForwardByTargetGroup, targetGroupId + "/")) {
    if (splitLast(record.id).second == excludeDocId) continue;
    services.insert(json::parse(record.value).value("serviceId", ""));
  }
  return services;
}

std::set<std::string> targetGroupsOf(Resources& r, const std::string& serviceId, const std::string& excludeDocId) {
  std::set<std::string> out;
  for (const auto& record : indexEntries(r.store(), kForwardByService, serviceId + "/")) {
    auto [serviceTg, doc] = splitLast(record.id);
    if (doc != excludeDocId) out.insert(serviceTg.substr(serviceId.size() + 1));
  }
  return out;
}

const MemberIndex kServiceAssociationsByService = {
    "index.servicenetworkserviceassociation.serviceId", "servicenetworkserviceassociation",
    [](const json& doc) { return memberString(doc, "serviceId"); }};
const MemberIndex kCustomDomainsByNetwork = {
    "index.servicenetworkserviceassociation.customDomainName", "servicenetworkserviceassociation",
    [](const json& doc) {
      std::string domain = memberString(doc, "customDomainName");
      return domain.empty() ? domain : memberString(doc, "serviceNetworkId") + "/" + domain;
    }};
const MemberIndex kVpcAssociationsByNetwork = {
    "index.servicenetworkvpcassociation.serviceNetworkId", "servicenetworkvpcassociation",
    [](const json& doc) { return memberString(doc, "serviceNetworkId"); }};
const MemberIndex kVpcAssociationsByVpc = {"index.servicenetworkvpcassociation.vpcId", "servicenetworkvpcassociation",
                                           [](const json& doc) { return memberString(doc, "vpcId"); }};
const MemberIndex kAccessLogsByResource = {"index.accesslogsubscription.resourceId", "accesslogsubscription",
                                           [](const json& doc) { return memberString(doc, "resourceId"); }};
const MemberIndex kTargetGroupsByVpc = {"index.targetgroup.vpcIdentifier", "targetgroup", [](const json& doc) {
                                          auto config = doc.find("config");
                                          return config != doc.end() && config->is_object()
                                                     ? memberString(*config, "vpcIdentifier")
                                                     : std::string();
                                        }};
const MemberIndex kTargetGroupsByType = {"index.targetgroup.type", "targetgroup",
                                         [](const json& doc) { return memberString(doc, "type"); }};

const MemberIndex kResourceGatewaysByVpc = {"index.resourcegateway.vpcId", "resourcegateway",
                                            [](const json& doc) { return memberString(doc, "vpcId"); }};
const MemberIndex kResourceConfigurationsByGateway = {
    "index.resourceconfiguration.resourceGatewayId", "resourceconfiguration",
    [](const json& doc) { return memberString(doc, "resourceGatewayId"); }};
const MemberIndex kResourceConfigurationsByGroup = {
    "index.resourceconfiguration.resourceConfigurationGroupId", "resourceconfiguration",
    [](const json& doc) { return memberString(doc, "resourceConfigurationGroupId"); }};
const MemberIndex kResourceConfigurationsByDomainVerification = {
    "index.resourceconfiguration.domainVerificationId", "resourceconfiguration",
    [](const json& doc) { return memberString(doc, "domainVerificationId"); }};
const MemberIndex kResourceAssociationsByConfiguration = {
    "index.servicenetworkresourceassociation.resourceConfigurationId", "servicenetworkresourceassociation",
    [](const json& doc) { return memberString(doc, "resourceConfigurationId"); }};

const std::vector<const MemberIndex*>& memberIndexes() {
  static const std::vector<const MemberIndex*> all = {&kServiceAssociationsByService,
                                                      &kCustomDomainsByNetwork,
                                                      &kVpcAssociationsByNetwork,
                                                      &kVpcAssociationsByVpc,
                                                      &kAccessLogsByResource,
                                                      &kTargetGroupsByVpc,
                                                      &kTargetGroupsByType,
                                                      &kResourceGatewaysByVpc,
                                                      &kResourceConfigurationsByGateway,
                                                      &kResourceConfigurationsByGroup,
                                                      &kResourceConfigurationsByDomainVerification,
                                                      &kResourceAssociationsByConfiguration};
  return all;
}

void indexCreated(Tx& tx, std::string_view kind, const json& doc) {
  for (const MemberIndex* index : memberIndexes()) {
    if (index->kind != kind) continue;
    std::string member = index->memberOf(doc);
    if (!member.empty()) tx.put(index->name, member + "/" + doc["id"].get<std::string>(), {{"id", doc["id"]}});
  }
}

void indexDeleted(Tx& tx, std::string_view kind, const json& doc) {
  for (const MemberIndex* index : memberIndexes()) {
    if (index->kind != kind) continue;
    std::string member = index->memberOf(doc);
    if (!member.empty()) tx.del(index->name, member + "/" + doc["id"].get<std::string>());
  }
}

void createGuarded(Resources& r, Tx& tx, const Call& call, std::string_view kind, std::string_view nameIndex,
                   const std::string& key, const json& doc, const std::optional<json>& tags, const json& response) {
  tx.requireAbsent(nameIndex, key);
  tx.put(nameIndex, key, {{"id", doc["id"]}});
  tx.put(kind, doc["id"].get<std::string>(), doc);
  indexCreated(tx, kind, doc);
  r.putTags(tx, doc["arn"], tags);
  r.remember(call, tx, response);
}

void deleteGuarded(Tx& tx, std::string_view kind, std::string_view nameIndex, const std::string& key, const Doc& doc) {
  tx.requireRevision(kind, doc.id, doc.modRevision);
  tx.del(kind, doc.id);
  tx.del(nameIndex, key);
  indexDeleted(tx, kind, doc.value);
  tx.del("tags", doc.value["arn"].get<std::string>());
}

std::vector<store::Record> indexEntries(store::Store& store, std::string_view index, const std::string& prefix) {
  constexpr size_t kPage = 100;
  std::vector<store::Record> out;
  std::string after = prefix;
  while (true) {
    auto page = store.list(index, after, kPage);
    for (auto& record : page) {
      if (record.id.compare(0, prefix.size(), prefix) != 0) return out;
      out.push_back(std::move(record));
    }
    if (page.size() < kPage) return out;
    after = out.back().id;
  }
}

std::vector<Doc> indexedDocs(Resources& r, std::string_view index, std::string_view kind, const std::string& parentId) {
  std::vector<store::RecordKey> keys;
  for (const auto& entry : indexEntries(r.store(), index, parentId + "/"))
    keys.push_back({std::string(kind), json::parse(entry.value).value("id", "")});
  std::vector<Doc> out;
  for (auto& record : r.store().getMany(keys))
    if (record) out.push_back(Doc{record->id, json::parse(record->value), record->modRevision});
  return out;
}

size_t countIndexed(Resources& r, std::string_view index, const std::string& parentId) {
  return r.store().count(index, parentId + "/");
}

namespace {

// etcd's default --max-txn-ops is 128 (for the compares and for the operations of one Txn): stay under it.
constexpr size_t kOpsPerCommit = 100;

// What indexing one document adds: guarded by the revision it was read at.
struct Indexed {
  store::Condition unchanged;
  std::vector<store::Op> ops;
};

// Commits `docs`' index entries in batches, then the marker. False when a document changed meanwhile
// (the caller reads again); the entries already committed are correct for what they were read from.
bool commitIndex(store::Store& store, const std::string& marker, const std::vector<Indexed>& docs) {
  std::vector<store::Condition> conditions;
  std::vector<store::Op> ops;
  auto flush = [&] {
    bool ok = store.commit(conditions, ops).has_value();
    conditions.clear();
    ops.clear();
    return ok;
  };
  for (const auto& doc : docs) {
    if (ops.size() + doc.ops.size() > kOpsPerCommit && !flush()) return false;
    conditions.push_back(doc.unchanged);
    ops.insert(ops.end(), doc.ops.begin(), doc.ops.end());
  }
  if (!flush()) return false;
  store.commit({{"index.version", marker, store::Condition::kMustNotExist}},
               {store::Op::put("index.version", marker, json{{"version", 1}}.dump())});
  return true;  // a failed marker commit: another trellisd on this store marked it first
}

Indexed indexed(const store::Record& record, const Tx& tx) {
  return {{record.kind, record.id, record.modRevision}, tx.ops};
}

std::vector<Indexed> forwardEntries(store::Store& store) {
  std::vector<Indexed> out;
  for (const auto& record : store.list("listener")) {
    json doc = json::parse(record.value);
    Tx tx;
    indexForwards(tx, doc.value("serviceId", ""), record.id, nullptr, doc.value("defaultAction", json::object()));
    out.push_back(indexed(record, tx));
  }
  // Default rules mirror their listener's defaultAction, indexed with the listener.
  for (const auto& record : store.list("rule")) {
    json doc = json::parse(record.value);
    if (doc.value("isDefault", false)) continue;
    Tx tx;
    indexForwards(tx, doc.value("serviceId", ""), record.id, nullptr, doc.value("action", json::object()));
    out.push_back(indexed(record, tx));
  }
  return out;
}

std::vector<Indexed> memberEntries(store::Store& store, const MemberIndex& index) {
  std::vector<Indexed> out;
  for (const auto& record : store.list(index.kind)) {
    std::string member = index.memberOf(json::parse(record.value));
    if (member.empty()) continue;
    Tx tx;
    tx.put(index.name, member + "/" + record.id, {{"id", record.id}});
    out.push_back(indexed(record, tx));
  }
  return out;
}

void build(store::Store& store, const std::string& marker, const std::function<std::vector<Indexed>()>& read) {
  if (store.get("index.version", marker)) return;
  logInfo("building the index ", marker, " for a store written before it");
  for (int attempt = 0; !commitIndex(store, marker, read()); ++attempt) {
    if (attempt == 100) throw std::runtime_error("could not build the index " + marker + ": the store keeps changing");
  }
}

}  // namespace

void buildIndexesIfMissing(store::Store& store) {
  build(store, kForwardByTargetGroup, [&] { return forwardEntries(store); });
  for (const MemberIndex* index : memberIndexes())
    build(store, index->name, [&] { return memberEntries(store, *index); });
}

}  // namespace trellis::api
