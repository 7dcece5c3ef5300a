#include "fleet/changes.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/crypto.h"

namespace trellis::fleet {

using nlohmann::json;

std::string encodeChangeBatch(const ChangeBatch& batch) {
  json deleted = json::array();
  for (const auto& key : batch.deleted) deleted.push_back({{"kind", key.kind}, {"id", key.id}});
  json records = json::array();
  for (const auto& record : batch.records)
    records.push_back({{"kind", record.kind}, {"id", record.id}, {"value", record.value}});
  json doc{{"revision", batch.revision}, {"full", batch.full}, {"deleted", deleted}, {"records", records}};
  if (batch.config) doc["config"] = *batch.config;
  // Store values are the API's own JSON text; `replace` keeps a corrupted one from failing the whole batch.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

// A non-empty string member, or nullptr.
const std::string* text(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) return nullptr;
  return &it->get_ref<const std::string&>();
}

}  // namespace

std::optional<ChangeBatch> decodeChangeBatch(std::string_view body, std::string& error) {
  json doc = json::parse(body, nullptr, false);
  if (!doc.is_object()) {
    error = "the answer is not a JSON object";
    return std::nullopt;
  }
  ChangeBatch batch;
  auto revision = doc.find("revision");
  if (revision == doc.end() || !revision->is_number_integer() || revision->get<int64_t>() < 0) {
    error = "revision is missing or not a non-negative integer";
    return std::nullopt;
  }
  batch.revision = revision->get<int64_t>();
  auto full = doc.find("full");
  if (full == doc.end() || !full->is_boolean()) {
    error = "full is missing or not a boolean";
    return std::nullopt;
  }
  batch.full = full->get<bool>();
  auto deleted = doc.find("deleted");
  auto records = doc.find("records");
  if (deleted == doc.end() || !deleted->is_array() || records == doc.end() || !records->is_array()) {
    error = "deleted and records must be arrays";
    return std::nullopt;
  }
  for (const auto& entry : *deleted) {
    const std::string* kind = entry.is_object() ? text(entry, "kind") : nullptr;
    const std::string* id = kind ? text(entry, "id") : nullptr;
    if (!id) {
      error = "a deleted entry needs a kind and an id";
      return std::nullopt;
    }
    batch.deleted.push_back({*kind, *id});
  }
  for (const auto& entry : *records) {
    const std::string* kind = entry.is_object() ? text(entry, "kind") : nullptr;
    const std::string* id = kind ? text(entry, "id") : nullptr;
    auto value = id ? entry.find("value") : entry.end();
    if (!id || value == entry.end() || !value->is_string()) {
      error = "a record needs a kind, an id and a string value";
      return std::nullopt;
    }
    batch.records.push_back({*kind, *id, value->get<std::string>(), batch.revision, batch.revision});
  }
  if (auto config = doc.find("config"); config != doc.end()) {
    if (!config->is_string()) {
      error = "config must be a string";
      return std::nullopt;
    }
    batch.config = config->get<std::string>();
  }
  return batch;
}

std::string encodeHealthReport(const std::vector<TargetReport>& targets) {
  json list = json::array();
  for (const auto& t : targets)
    list.push_back({{"targetGroupId", t.targetGroupId},
                    {"targetId", t.targetId},
                    {"port", t.port},
                    {"status", t.status},
                    {"reasonCode", t.reasonCode}});
  return json{{"targets", list}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<std::vector<TargetReport>> decodeHealthReport(std::string_view body, std::string& error) {
  json doc = json::parse(body, nullptr, false);
  auto list = doc.is_object() ? doc.find("targets") : doc.end();
  if (!doc.is_object() || list == doc.end() || !list->is_array()) {
    error = "the report must be an object with a targets array";
    return std::nullopt;
  }
  std::vector<TargetReport> out;
  for (const auto& entry : *list) {
    const std::string* group = entry.is_object() ? text(entry, "targetGroupId") : nullptr;
    const std::string* target = group ? text(entry, "targetId") : nullptr;
    const std::string* status = target ? text(entry, "status") : nullptr;
    auto port = status ? entry.find("port") : entry.end();
    auto reason = status ? entry.find("reasonCode") : entry.end();
    if (!status || (*status != "HEALTHY" && *status != "UNHEALTHY" && *status != "INITIAL") || port == entry.end() ||
        !port->is_number_unsigned() || port->get<uint64_t>() > 65535 || reason == entry.end() || !reason->is_string()) {
      error = "each target needs targetGroupId, targetId, port (0-65535), status (HEALTHY, UNHEALTHY or INITIAL) "
              "and reasonCode";
      return std::nullopt;
    }
    out.push_back({*group, *target, static_cast<uint16_t>(port->get<uint64_t>()), *status, reason->get<std::string>()});
  }
  return out;
}

std::string contentDigest(const std::vector<store::Record>& records) {
  std::vector<const store::Record*> sorted;
  for (const auto& record : records) sorted.push_back(&record);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return std::tie(a->kind, a->id) < std::tie(b->kind, b->id); });
  std::string text;
  for (const auto* record : sorted)  // length-prefixed, so no two lists run together into the same text
    for (const std::string* part : {&record->kind, &record->id, &record->value})
      text.append(std::to_string(part->size())).append(":").append(*part);
  return sha256Hex(text);
}

std::string configDigest(std::string_view text) { return sha256Hex(text); }

}  // namespace trellis::fleet
