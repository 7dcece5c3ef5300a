// What the etcd store decodes from etcd's answers: a RangeResponse or WatchResponse protobuf (first byte picks
// which, or a raw key) into records. Any bytes either fail to parse or decode without crashing, and every
// record decoded names the key it came from.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "store/etcd/etcd.pb.h"
#include "store/etcd_codec.h"

namespace {

constexpr std::string_view kPrefix = "/trellis/";

void check(bool holds) {
  if (!holds) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trellis::store::etcd;
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      etcdserverpb::RangeResponse response;
      if (!response.ParseFromArray(body.data(), static_cast<int>(body.size()))) return 0;
      auto records = decodeRange(kPrefix, response);
      check(records.size() <= static_cast<size_t>(response.kvs_size()));
      size_t next = 0;
      for (const auto& kv : response.kvs()) {
        if (!parseKey(kPrefix, kv.key())) continue;
        const auto& record = records.at(next++);
        check(recordKey(kPrefix, record.kind, record.id) == kv.key());
        check(record.value == kv.value() && record.modRevision == kv.mod_revision());
      }
      check(next == records.size());
      break;
    }
    case 1: {
      etcdserverpb::WatchResponse response;
      if (!response.ParseFromArray(body.data(), static_cast<int>(body.size()))) return 0;
      auto batch = decodeWatch(kPrefix, response);
      check(batch.changes.size() <= static_cast<size_t>(response.events_size()));
      for (const auto& change : batch.changes) {
        check(change.revision <= batch.eventsRevision);
        if (!change.deleted) check(change.record.kind == change.key.kind && change.record.id == change.key.id);
      }
      break;
    }
    default: {
      if (auto key = parseKey(kPrefix, body)) {
        check(!key->kind.empty() && key->kind.find('/') == std::string::npos);
        check(recordKey(kPrefix, key->kind, key->id) == body);
      }
      auto end = prefixEnd(body);
      check(end == std::string(1, '\0') || (end > body && !std::string_view(end).starts_with(body)));
      break;
    }
  }
  return 0;
}
