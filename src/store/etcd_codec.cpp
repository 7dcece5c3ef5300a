#include "store/etcd_codec.h"

#include <algorithm>

#include "store/etcd/etcd.pb.h"

namespace trellis::store::etcd {

std::string recordKey(std::string_view prefix, std::string_view kind, std::string_view id) {
  std::string key;
  key.reserve(prefix.size() + kind.size() + 1 + id.size());
  key.append(prefix).append(kind).append(1, '/').append(id);
  return key;
}

std::string prefixEnd(std::string_view key) {
  std::string end(key);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

std::optional<RecordKey> parseKey(std::string_view prefix, std::string_view key) {
  if (!key.starts_with(prefix)) return std::nullopt;
  key.remove_prefix(prefix.size());
  auto slash = key.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  return RecordKey{std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
}

std::optional<Record> decodeRecord(std::string_view prefix, const etcdserverpb::KeyValue& kv) {
  auto key = parseKey(prefix, kv.key());
  if (!key) return std::nullopt;
  return Record{std::move(key->kind), std::move(key->id), kv.value(), kv.create_revision(), kv.mod_revision()};
}

std::vector<Record> decodeRange(std::string_view prefix, const etcdserverpb::RangeResponse& response) {
  std::vector<Record> out;
  out.reserve(static_cast<size_t>(response.kvs_size()));
  for (const auto& kv : response.kvs())
    if (auto record = decodeRecord(prefix, kv)) out.push_back(std::move(*record));
  return out;
}

WatchBatch decodeWatch(std::string_view prefix, const etcdserverpb::WatchResponse& response) {
  WatchBatch batch;
  batch.compactRevision = response.compact_revision();
  batch.canceled = response.canceled();
  batch.cancelReason = response.cancel_reason();
  for (const auto& event : response.events()) {
    batch.eventsRevision = std::max(batch.eventsRevision, event.kv().mod_revision());
    auto key = parseKey(prefix, event.kv().key());
    if (!key) continue;
    WatchBatch::Change change{
        std::move(*key), event.kv().mod_revision(), event.type() == etcdserverpb::Event::DELETE, {}};
    if (!change.deleted)
      change.record = {change.key.kind, change.key.id, event.kv().value(), event.kv().create_revision(),
                       event.kv().mod_revision()};
    batch.changes.push_back(std::move(change));
  }
  return batch;
}

}  // namespace trellis::store::etcd
