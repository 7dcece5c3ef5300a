// How the etcd store lays records out in etcd's keyspace, and decodes etcd's answers back into records.
// Kept apart from the client so that the decoding can be fuzzed without a cluster.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace etcdserverpb {
class KeyValue;
class RangeResponse;
class WatchResponse;
}  // namespace etcdserverpb

namespace trellis::store::etcd {

// `<prefix><kind>/<id>`. Kinds never contain '/'; ids may contain anything, '/' and NUL included.
std::string recordKey(std::string_view prefix, std::string_view kind, std::string_view id);
// The first key after every key that starts with `key` (etcd's range_end for a prefix): the key with its
// last byte below 0xff incremented and what follows dropped; "\0" (all keys to the end) if there is none.
std::string prefixEnd(std::string_view key);
// The (kind, id) of a key under `prefix`, or nullopt for a key that is not a record (outside the prefix,
// no '/', an empty kind): the store's own keys, such as the compaction lock, have no '/'.
std::optional<RecordKey> parseKey(std::string_view prefix, std::string_view key);
std::optional<Record> decodeRecord(std::string_view prefix, const etcdserverpb::KeyValue& kv);
// The records of a Range answer, in the answer's order; keys that are not records are skipped.
std::vector<Record> decodeRange(std::string_view prefix, const etcdserverpb::RangeResponse& response);

// One watch answer reduced to what the change feed keeps.
struct WatchBatch {
  int64_t compactRevision = 0;  // > 0: the watch started below etcd's compaction point
  bool canceled = false;
  std::string cancelReason;
  int64_t eventsRevision = 0;  // the highest revision among the events, records or not (0: none)
  struct Change {
    RecordKey key;
    int64_t revision = 0;  // the event's: a put's mod_revision, a deletion's revision
    bool deleted = false;
    Record record;  // puts only
  };
  std::vector<Change> changes;  // in revision order
};
WatchBatch decodeWatch(std::string_view prefix, const etcdserverpb::WatchResponse& response);

}  // namespace trellis::store::etcd
