// The Store: durable, revisioned resource records. Backends: SQLite (embedded default) and etcd.
// The interface speaks of resources and revisions, not SQL, so both backends fit it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace trellis::store {

// One resource: a JSON document under (kind, id). Revisions come from one store-wide counter
// that every commit advances, as in etcd.
struct Record {
  std::string kind;  // "servicenetwork", "service", "listener", ...
  std::string id;
  std::string value;  // JSON text
  int64_t createRevision = 0;
  int64_t modRevision = 0;
};

struct Op {
  enum class Type { Put, Delete };
  Type type = Type::Put;
  std::string kind;
  std::string id;
  std::string value;  // Put only

  static Op put(std::string kind, std::string id, std::string value) {
    return {Type::Put, std::move(kind), std::move(id), std::move(value)};
  }
  static Op del(std::string kind, std::string id) { return {Type::Delete, std::move(kind), std::move(id), {}}; }
};

// A guard on a commit: the record's modRevision must equal `modRevision`
// (kMustNotExist: absent; kMustExist: present at any revision).
struct Condition {
  static constexpr int64_t kMustNotExist = 0;
  static constexpr int64_t kMustExist = -1;
  std::string kind;
  std::string id;
  int64_t modRevision = kMustNotExist;
};

struct RecordKey {
  std::string kind;
  std::string id;
};

// What changed after a revision, for readers that follow the store (the snapshot builder compiles only these):
// shaped like an etcd watch from a revision, so an etcd backend answers it with the same meaning.
struct StoreChanges {
  int64_t revision = 0;  // the store's revision these changes bring the reader to
  // The history since the asked revision is no longer kept (or never was): read everything instead.
  bool compacted = false;
  // In no particular order.
  std::vector<RecordKey> deleted;  // keys deleted after the asked revision; apply before `records`
  std::vector<Record> records;     // records put after the asked revision (modRevision > it), current values
};

struct StoreContents {
  // The revision of the contents; etcd may report a lower one its change feed has reached (changesSince from
  // it then repeats changes already in the contents, which applies cleanly).
  int64_t revision = 0;
  std::vector<Record> records;  // every record of every kind, at `revision` (readAll: ascending by (kind, id))
};

// A commit the backend cannot take whole (etcd: too many ops in one Txn, or a request too large). Thrown
// before anything is sent: nothing is applied.
class LimitExceeded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The backend cannot answer in time (etcd: quorum lost, no member reachable). A commit that throws it may or
// may not have been applied; the caller retries later.
class Unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual std::optional<Record> get(std::string_view kind, std::string_view id) = 0;
  // Several records at one consistent revision, in the order of `keys` (nullopt: absent). On etcd one round
  // trip per hundred keys, where a get per key would pay one each.
  virtual std::vector<std::optional<Record>> getMany(const std::vector<RecordKey>& keys) = 0;
  // Records of one kind with id > `after`, ascending by id; at most `limit` (0: no limit).
  virtual std::vector<Record> list(std::string_view kind, std::string_view after = {}, size_t limit = 0) = 0;
  // How many records of `kind` there are whose id starts with `idPrefix` (quotas, index entries under a
  // parent), without reading them.
  virtual size_t count(std::string_view kind, std::string_view idPrefix = {}) = 0;
  // A consistent view of everything, for compiling the routing snapshot.
  virtual StoreContents readAll() = 0;
  // Everything that changed after `revision`, at one consistent revision. A key deleted and re-created
  // since appears in both lists. `compacted` when `revision` predates the kept history.
  virtual StoreChanges changesSince(int64_t revision) = 0;
  // Applies every op atomically and durably if all conditions hold. Returns the new revision,
  // or nullopt (nothing applied) when a condition failed. With no ops, only checks the conditions
  // and returns the current revision (as in etcd, nothing is written and the revision stays).
  virtual std::optional<int64_t> commit(const std::vector<Condition>& conditions, const std::vector<Op>& ops) = 0;
  virtual int64_t revision() = 0;
  // `fn(revision)` runs after every commit that is durable, on the committing thread, outside the
  // store's locks (it may call the store). Commits from several threads may report out of order:
  // read the store rather than assume each revision arrives once and in sequence. Keep it short.
  virtual void watch(std::function<void(int64_t revision)> fn) = 0;
};

// Opens (creating and migrating as needed) the SQLite store in `dataDir`. Throws std::runtime_error
// with a readable message, e.g. when another trellisd holds the directory.
std::unique_ptr<Store> openSqliteStore(const std::string& dataDir);

}  // namespace trellis::store
