#include "store/etcd_store.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "common/thread_name.h"
#include "store/etcd/etcd.grpc.pb.h"
#include "store/etcd_codec.h"

namespace trellis::store {

namespace {

namespace pb = etcdserverpb;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// etcd's defaults (https://etcd.io/docs/v3.4/op-guide/configuration/): --max-txn-ops 128, checked per list
// (compares, success ops, failure ops); --max-request-bytes 1.5 MiB, checked on the request as etcd wraps it
// for raft, a few bytes more than the Txn itself: keep a margin.
constexpr size_t kMaxTxnOps = 128;
constexpr size_t kMaxRequestBytes = 1536 * 1024;
constexpr size_t kRequestMargin = 1024;
// Range pages: a record is at most 1.5 MiB, so a page stays below the receive limit set on the channel.
constexpr int64_t kRangePage = 100;
constexpr int kMaxReceiveBytes = static_cast<int>(kRangePage) * 2 * 1024 * 1024;
// The compaction lock's lease. etcd's minimum TTL is 2 s at its default election timeout; renewed every third.
constexpr int64_t kLockTtlSeconds = 10;
constexpr auto kWatchBackoffMin = 100ms;
constexpr auto kWatchBackoffMax = 2000ms;

using Key = std::pair<std::string, std::string>;

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// gRPC's target for a list of members: `ipv4:a:p,b:p` (or ipv6:), which round_robin spreads calls over and
// skips members that are down. Names are resolved once, here.
std::string channelTarget(const std::vector<std::string>& endpoints, std::string& firstHostName) {
  std::vector<std::string> v4, v6;
  for (const auto& endpoint : endpoints) {
    auto colon = endpoint.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("etcd endpoint " + endpoint + " has no port");
    std::string host = endpoint.substr(0, colon), port = endpoint.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[') {
      v6.push_back(endpoint);
      continue;
    }
    in_addr address{};
    if (inet_pton(AF_INET, host.c_str(), &address) == 1) {
      v4.push_back(endpoint);
      continue;
    }
    if (firstHostName.empty()) firstHostName = host;
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
      throw std::runtime_error("etcd endpoint " + endpoint + ": " + gai_strerror(rc));
    for (auto* a = found; a; a = a->ai_next) {
      char text[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, text, sizeof text);
      v4.push_back(std::string(text) + ":" + port);
    }
    freeaddrinfo(found);
  }
  if (!v4.empty() && !v6.empty())
    throw std::invalid_argument("etcd endpoints mix IPv4 and IPv6 addresses: use one family");
  const auto& list = v4.empty() ? v6 : v4;
  if (list.empty()) throw std::invalid_argument("no etcd endpoint given");
  std::string target = v4.empty() ? "ipv6:" : "ipv4:";
  for (size_t i = 0; i < list.size(); ++i) target += (i ? "," : "") + list[i];
  return target;
}

[[noreturn]] void fail(const grpc::Status& status, const std::string& what) {
  std::string message = "etcd " + what + " failed: " + status.error_message() + " (gRPC status " +
                        std::to_string(static_cast<int>(status.error_code())) + ")";
  // Deadlines and unreachable or leaderless members (etcd answers UNAVAILABLE for "no leader" and
  // "request timed out"): the caller may retry later.
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      status.error_code() == grpc::StatusCode::UNAVAILABLE)
    throw Unavailable(message);
  throw std::runtime_error(message);
}

class EtcdStore final : public Store {
 public:
  explicit EtcdStore(const EtcdOptions& options);
  ~EtcdStore() override;
  EtcdStore(const EtcdStore&) = delete;
  EtcdStore& operator=(const EtcdStore&) = delete;

  std::optional<Record> get(std::string_view kind, std::string_view id) override;
  std::vector<std::optional<Record>> getMany(const std::vector<RecordKey>& keys) override;
  std::vector<Record> list(std::string_view kind, std::string_view after = {}, size_t limit = 0) override;
  size_t count(std::string_view kind, std::string_view idPrefix = {}) override;
  StoreContents readAll() override;
  StoreChanges changesSince(int64_t revision) override;
  std::optional<int64_t> commit(const std::vector<Condition>& conditions, const std::vector<Op>& ops) override;
  int64_t revision() override;
  void watch(std::function<void(int64_t revision)> fn) override;

 private:
  // What the change feed knows of one key changed within the kept window.
  struct KeyState {
    int64_t putRevision = 0;
    int64_t deleteRevision = 0;
    std::optional<Record> current;  // the value at the last put, none after a deletion
  };
  struct LogEntry {
    int64_t revision;
    Key key;
  };

  template <class Call, class Retry>
  grpc::Status unary(Call&& call, Retry&& retry);
  template <class Call>
  grpc::Status unary(Call&& call);
  std::pair<int64_t, std::vector<pb::KeyValue>> range(const std::string& begin, const std::string& end, size_t limit);
  // How many keys start with `keyPrefix`, and etcd's revision (a status code, so each caller decides).
  grpc::Status countKeys(const std::string& keyPrefix, pb::RangeResponse& response);
  void watchLoop();
  void resynchronize();
  void apply(const etcd::WatchBatch& batch);
  void notifyWatchers(int64_t revision);
  void compactionLoop();
  bool holdCompactionLock();
  void compactOnce();
  void releaseCompactionLock();
  bool sleepUnlessStopping(std::chrono::milliseconds delay);

  EtcdOptions options_;
  std::string prefix_;
  std::string lockKey_;  // no '/' after the prefix: never read as a record
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::KV::Stub> kv_;
  std::unique_ptr<pb::Watch::Stub> watchStub_;
  std::unique_ptr<pb::Lease::Stub> lease_;

  std::mutex mutex_;  // the change feed and the watch stream's bookkeeping
  std::condition_variable changed_;
  bool stopping_ = false;
  int64_t seen_ = 0;         // every event up to here has been applied
  int64_t notified_ = 0;     // watchers have run for every revision up to here
  int64_t windowStart_ = 0;  // the feed is complete for changes after this revision
  std::deque<LogEntry> log_;
  std::map<Key, KeyState> keys_;
  grpc::ClientContext* watchContext_ = nullptr;

  std::mutex watchersMutex_;
  std::vector<std::function<void(int64_t)>> watchers_;

  int64_t leaseId_ = 0;  // compaction thread only
  int64_t compactedTo_ = 0;
  Clock::time_point nextCompaction_{};

  std::thread watchThread_;
  std::thread compactionThread_;
};

EtcdStore::EtcdStore(const EtcdOptions& options)
    : options_(options), prefix_(options.prefix), lockKey_(options.prefix + "compaction-lock") {
  if (prefix_.empty()) throw std::invalid_argument("the etcd key prefix must not be empty");
  options_.keptRevisions = std::max<int64_t>(1, options_.keptRevisions);
  std::string hostName;
  std::string target = channelTarget(options_.endpoints, hostName);
  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName("round_robin");
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  // Reconnect to a member that came back within a second, not gRPC's default of up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options_.caFile.empty()) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = readFile(options_.caFile);
    if (!options_.certFile.empty()) ssl.pem_cert_chain = readFile(options_.certFile);
    if (!options_.keyFile.empty()) ssl.pem_private_key = readFile(options_.keyFile);
    credentials = grpc::SslCredentials(ssl);
    // Members were resolved to addresses: check their certificates against the name that was given.
    if (!hostName.empty()) args.SetSslTargetNameOverride(hostName);
  }
  channel_ = grpc::CreateCustomChannel(target, credentials, args);
  kv_ = pb::KV::NewStub(channel_);
  watchStub_ = pb::Watch::NewStub(channel_);
  lease_ = pb::Lease::NewStub(channel_);

  // The feed starts at the revision read now; the watch takes over from the next one.
  pb::RangeResponse response;
  auto status = countKeys(prefix_, response);
  if (!status.ok()) fail(status, "reading the revision at " + target);
  seen_ = notified_ = windowStart_ = response.header().revision();
  watchThread_ = std::thread([this] {
    nameThisThread("etcd-watch");
    watchLoop();
  });
  if (options_.compactionInterval.count() > 0)
    compactionThread_ = std::thread([this] {
      nameThisThread("etcd-compact");
      compactionLoop();
    });
}

EtcdStore::~EtcdStore() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (watchContext_) watchContext_->TryCancel();
  }
  changed_.notify_all();
  if (watchThread_.joinable()) watchThread_.join();
  if (compactionThread_.joinable()) compactionThread_.join();
}

// etcd's answer, before proposing anything, to a call carrying `hasleader` on a member without a leader.
bool refusedForNoLeader(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE && status.error_message() == "etcdserver: no leader";
}

// One unary call with the request deadline, tried again until the deadline while it fails in a way that says it
// was not applied (`retry`). `hasleader` makes a member without a leader refuse at once rather than wait for
// one, so calls resume as soon as a leader is elected.
template <class Call, class Retry>
grpc::Status EtcdStore::unary(Call&& call, Retry&& retry) {
  auto deadline = std::chrono::system_clock::now() + options_.requestTimeout;
  for (;;) {
    grpc::ClientContext context;
    context.set_deadline(deadline);
    context.set_wait_for_ready(true);  // wait for a reachable member rather than fail while connecting
    context.AddMetadata("hasleader", "true");
    auto status = call(context);
    if (!retry(status) || std::chrono::system_clock::now() + 50ms >= deadline) return status;
    std::this_thread::sleep_for(50ms);
  }
}

// Reads, leases and compaction are safe to repeat after any UNAVAILABLE (a member going down mid-call).
template <class Call>
grpc::Status EtcdStore::unary(Call&& call) {
  return unary(std::forward<Call>(call),
               [](const grpc::Status& status) { return status.error_code() == grpc::StatusCode::UNAVAILABLE; });
}

// Every key in [begin, end) up to `limit` (0: all), in pages all read at the revision of the first.
grpc::Status EtcdStore::countKeys(const std::string& keyPrefix, pb::RangeResponse& response) {
  pb::RangeRequest request;
  request.set_key(keyPrefix);
  request.set_range_end(etcd::prefixEnd(keyPrefix));
  request.set_count_only(true);
  return unary([&](grpc::ClientContext& c) { return kv_->Range(&c, request, &response); });
}

std::pair<int64_t, std::vector<pb::KeyValue>> EtcdStore::range(const std::string& begin, const std::string& end,
                                                               size_t limit) {
  for (;;) {
    int64_t revision = 0;
    std::vector<pb::KeyValue> out;
    std::string from = begin;
    bool restart = false;
    for (;;) {
      pb::RangeRequest request;
      request.set_key(from);
      request.set_range_end(end);
      request.set_revision(revision);
      int64_t want = limit ? std::min<int64_t>(kRangePage, static_cast<int64_t>(limit - out.size())) : kRangePage;
      request.set_limit(want);
      pb::RangeResponse response;
      auto status = unary([&](grpc::ClientContext& c) { return kv_->Range(&c, request, &response); });
      // Compacted between two pages: read again from the start at the newest revision.
      if (status.error_code() == grpc::StatusCode::OUT_OF_RANGE && revision != 0) {
        restart = true;
        break;
      }
      if (!status.ok()) fail(status, "range read");
      if (revision == 0) revision = response.header().revision();
      for (auto& kv : *response.mutable_kvs()) out.push_back(std::move(kv));
      if (!response.more() || response.kvs_size() == 0 || (limit && out.size() >= limit)) break;
      from = out.back().key() + std::string(1, '\0');
    }
    if (!restart) return {revision, std::move(out)};
  }
}

std::optional<Record> EtcdStore::get(std::string_view kind, std::string_view id) {
  pb::RangeRequest request;
  request.set_key(etcd::recordKey(prefix_, kind, id));
  pb::RangeResponse response;
  auto status = unary([&](grpc::ClientContext& c) { return kv_->Range(&c, request, &response); });
  if (!status.ok()) fail(status, "get");
  if (response.kvs_size() == 0) return std::nullopt;
  return etcd::decodeRecord(prefix_, response.kvs(0));
}

// One Txn of ranges per kMaxTxnOps keys, the later ones at the first one's revision: one consistent read, and
// one round trip per hundred keys instead of one per key.
std::vector<std::optional<Record>> EtcdStore::getMany(const std::vector<RecordKey>& keys) {
  std::vector<std::optional<Record>> out;
  out.reserve(keys.size());
  int64_t revision = 0;
  for (size_t first = 0; first < keys.size(); first += kMaxTxnOps) {
    size_t end = std::min(keys.size(), first + kMaxTxnOps);
    pb::TxnRequest txn;
    for (size_t i = first; i < end; ++i) {
      auto* range = txn.add_success()->mutable_request_range();
      range->set_key(etcd::recordKey(prefix_, keys[i].kind, keys[i].id));
      range->set_revision(revision);
    }
    pb::TxnResponse response;
    auto status = unary([&](grpc::ClientContext& c) { return kv_->Txn(&c, txn, &response); });
    // Compacted past the first chunk's revision between two chunks: read them all again, newer.
    if (status.error_code() == grpc::StatusCode::OUT_OF_RANGE && revision != 0) return getMany(keys);
    if (!status.ok()) fail(status, "get");
    if (revision == 0) revision = response.header().revision();
    for (const auto& answer : response.responses()) {
      const auto& kvs = answer.response_range().kvs();
      out.push_back(kvs.empty() ? std::nullopt : etcd::decodeRecord(prefix_, kvs[0]));
    }
  }
  return out;
}

std::vector<Record> EtcdStore::list(std::string_view kind, std::string_view after, size_t limit) {
  std::string kindPrefix = etcd::recordKey(prefix_, kind, "");
  // The first key after `after`: `after` followed by the smallest byte.
  std::string begin = after.empty() ? kindPrefix : kindPrefix + std::string(after) + std::string(1, '\0');
  auto [revision, kvs] = range(begin, etcd::prefixEnd(kindPrefix), limit);
  std::vector<Record> out;
  out.reserve(kvs.size());
  for (const auto& kv : kvs)
    if (auto record = etcd::decodeRecord(prefix_, kv)) out.push_back(std::move(*record));
  return out;
}

size_t EtcdStore::count(std::string_view kind, std::string_view idPrefix) {
  pb::RangeResponse response;
  auto status = countKeys(etcd::recordKey(prefix_, kind, idPrefix), response);
  if (!status.ok()) fail(status, "count");
  return static_cast<size_t>(response.count());
}

StoreContents EtcdStore::readAll() {
  auto [revision, kvs] = range(prefix_, etcd::prefixEnd(prefix_), 0);
  StoreContents out;
  // Writes outside the prefix move etcd's revision without an event for the watch: report no more than the
  // watch has reached, so that the reader's next changesSince is answered at once. The changes between the
  // two are then reported again, which is harmless: they are current values and deletions.
  {
    std::lock_guard lock(mutex_);
    out.revision = std::min(revision, seen_);
  }
  out.records.reserve(kvs.size());
  for (const auto& kv : kvs)
    if (auto record = etcd::decodeRecord(prefix_, kv)) out.records.push_back(std::move(*record));
  // etcd orders by key, where "a.b/…" comes before "a/…" ('.' < '/'): the interface orders by (kind, id).
  std::sort(out.records.begin(), out.records.end(),
            [](const Record& a, const Record& b) { return std::tie(a.kind, a.id) < std::tie(b.kind, b.id); });
  return out;
}

StoreChanges EtcdStore::changesSince(int64_t revision) {
  std::unique_lock lock(mutex_);
  // A revision this store's watch has not reached: a commit of another thread whose event is on its way, or
  // one from another history. Wait a little, then send the reader to read everything.
  if (revision > seen_)
    changed_.wait_for(lock, options_.requestTimeout, [&] { return seen_ >= revision || stopping_; });
  StoreChanges out;
  out.revision = seen_;
  // A reader from before the window, or one ahead of what etcd answers (another history): read everything.
  if (revision < windowStart_ || revision > seen_) {
    out.compacted = true;
    return out;
  }
  auto it = std::partition_point(log_.begin(), log_.end(), [&](const LogEntry& e) { return e.revision <= revision; });
  std::set<Key> reported;
  for (; it != log_.end(); ++it) {
    if (!reported.insert(it->key).second) continue;
    const auto& state = keys_.at(it->key);
    if (state.deleteRevision > revision) out.deleted.push_back({it->key.first, it->key.second});
    if (state.current) out.records.push_back(*state.current);
  }
  return out;
}

std::optional<int64_t> EtcdStore::commit(const std::vector<Condition>& conditions, const std::vector<Op>& ops) {
  // etcd refuses a key written twice in one Txn; applied in order, the last op on a key is what stays.
  std::map<Key, size_t> last;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind.empty() || ops[i].kind.find('/') != std::string::npos)
      throw std::invalid_argument("store kind '" + ops[i].kind + "' is empty or contains '/'");
    last[{ops[i].kind, ops[i].id}] = i;
  }
  pb::TxnRequest txn;
  for (const auto& condition : conditions) {
    auto* compare = txn.add_compare();
    compare->set_key(etcd::recordKey(prefix_, condition.kind, condition.id));
    // etcd compares a missing key as if all its revisions were 0.
    if (condition.modRevision == Condition::kMustNotExist) {
      compare->set_target(pb::Compare::CREATE);
      compare->set_result(pb::Compare::EQUAL);
      compare->set_create_revision(0);
    } else if (condition.modRevision == Condition::kMustExist) {
      compare->set_target(pb::Compare::CREATE);
      compare->set_result(pb::Compare::GREATER);
      compare->set_create_revision(0);
    } else {
      compare->set_target(pb::Compare::MOD);
      compare->set_result(pb::Compare::EQUAL);
      compare->set_mod_revision(condition.modRevision);
    }
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    const auto& op = ops[i];
    if (last[{op.kind, op.id}] != i) continue;
    auto* request = txn.add_success();
    if (op.type == Op::Type::Put) {
      auto* put = request->mutable_request_put();
      put->set_key(etcd::recordKey(prefix_, op.kind, op.id));
      put->set_value(op.value);
    } else {
      request->mutable_request_delete_range()->set_key(etcd::recordKey(prefix_, op.kind, op.id));
    }
  }
  if (static_cast<size_t>(txn.compare_size()) > kMaxTxnOps || static_cast<size_t>(txn.success_size()) > kMaxTxnOps)
    throw LimitExceeded("a commit of " + std::to_string(txn.success_size()) + " writes and " +
                        std::to_string(txn.compare_size()) + " conditions exceeds etcd's limit of " +
                        std::to_string(kMaxTxnOps) +
                        " of each in one transaction (--max-txn-ops); nothing was applied");
  if (txn.ByteSizeLong() + kRequestMargin > kMaxRequestBytes)
    throw LimitExceeded("a commit of " + std::to_string(txn.ByteSizeLong()) +
                        " bytes exceeds etcd's request limit of " + std::to_string(kMaxRequestBytes) +
                        " bytes (--max-request-bytes); nothing was applied");

  // Sent again only when etcd refused it unread: a Txn whose answer was lost may have been applied, and a
  // second one would then fail its own conditions. Otherwise the caller sees Unavailable.
  pb::TxnResponse response;
  auto status = unary([&](grpc::ClientContext& c) { return kv_->Txn(&c, txn, &response); }, refusedForNoLeader);
  if (!status.ok()) fail(status, "commit");
  if (!response.succeeded()) return std::nullopt;
  int64_t revision = response.header().revision();
  // Conditions only, or deletions of keys that are not there: etcd writes nothing and the revision stays.
  bool wrote = false;
  for (const auto& answer : response.responses())
    wrote = wrote || answer.has_response_put() || answer.response_delete_range().deleted() > 0;
  if (!wrote) return revision;

  // Watchers run on the watch thread when it sees the commit; wait for that so that they have run (and
  // revision() and changesSince know the commit) when commit returns, as with SQLite.
  std::unique_lock lock(mutex_);
  bool seen = changed_.wait_for(lock, options_.requestTimeout, [&] { return notified_ >= revision || stopping_; });
  lock.unlock();
  if (!seen) {
    logWarn("store: the etcd watch has not delivered revision ", revision, " yet; telling watchers directly");
    notifyWatchers(revision);
  }
  return revision;
}

int64_t EtcdStore::revision() {
  std::lock_guard lock(mutex_);
  return seen_;
}

void EtcdStore::watch(std::function<void(int64_t revision)> fn) {
  std::lock_guard lock(watchersMutex_);
  watchers_.push_back(std::move(fn));
}

void EtcdStore::notifyWatchers(int64_t revision) {
  std::vector<std::function<void(int64_t)>> watchers;
  {
    std::lock_guard lock(watchersMutex_);
    watchers = watchers_;
  }
  for (const auto& fn : watchers) {
    try {
      fn(revision);
    } catch (const std::exception& e) {
      logError("store: watcher failed at revision ", revision, ": ", e.what());
    }
  }
}

// The one watch on the prefix: from the revision after the last one seen, on any member, again after every
// cancel or error (with backoff). `hasleader` makes a member that lost its leader cancel the watch instead of
// going silent, so the loop moves to a member in the majority.
void EtcdStore::watchLoop() {
  auto backoff = kWatchBackoffMin;
  for (;;) {
    grpc::ClientContext context;
    context.AddMetadata("hasleader", "true");
    int64_t from;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      watchContext_ = &context;
      from = seen_ + 1;
    }
    auto stream = watchStub_->Watch(&context);
    pb::WatchRequest request;
    auto* create = request.mutable_create_request();
    create->set_key(prefix_);
    create->set_range_end(etcd::prefixEnd(prefix_));
    create->set_start_revision(from);
    bool written = stream->Write(request);
    std::string why = "the stream ended";
    bool open = written;  // still open when the loop leaves it: cancel it before Finish, which would wait
    pb::WatchResponse response;
    while (open && (open = stream->Read(&response))) {
      auto batch = etcd::decodeWatch(prefix_, response);
      if (batch.compactRevision > 0) {
        why = "revision " + std::to_string(from) + " was compacted (etcd keeps " +
              std::to_string(batch.compactRevision) + " on)";
        resynchronize();
        break;
      }
      if (batch.canceled) {
        why = "etcd canceled it: " + batch.cancelReason;
        break;
      }
      if (response.created()) {
        backoff = kWatchBackoffMin;
        continue;
      }
      apply(batch);
    }
    if (open) context.TryCancel();
    auto status = stream->Finish();
    {
      std::lock_guard lock(mutex_);
      watchContext_ = nullptr;
      if (stopping_) return;
    }
    if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) why = status.error_message();
    logWarn("store: etcd watch on ", prefix_, " restarts in ", backoff.count(), " ms: ", why);
    if (!sleepUnlessStopping(backoff)) return;
    backoff = std::min(backoff * 2, kWatchBackoffMax);
  }
}

// The watch fell behind etcd's compaction: changes were lost, so the feed starts over at the current revision
// and every reader from before it reads everything.
void EtcdStore::resynchronize() {
  pb::RangeResponse response;
  auto status = countKeys(prefix_, response);
  if (!status.ok()) return;  // the loop tries again from the same revision, and is told again
  int64_t revision = response.header().revision();
  {
    std::lock_guard lock(mutex_);
    log_.clear();
    keys_.clear();
    seen_ = windowStart_ = std::max(seen_, revision);
  }
  notifyWatchers(revision);
  std::lock_guard lock(mutex_);
  notified_ = std::max(notified_, revision);
  changed_.notify_all();
}

// Only events move the feed on. etcd's progress answers could too, but 3.4.23 may send one ahead of events
// still queued (https://github.com/etcd-io/etcd/issues/15220), which would let a reader skip them.
void EtcdStore::apply(const etcd::WatchBatch& batch) {
  int64_t revision;
  {
    std::lock_guard lock(mutex_);
    for (const auto& change : batch.changes) {
      Key key{change.key.kind, change.key.id};
      log_.push_back({change.revision, key});
      auto& state = keys_[key];
      if (change.deleted) {
        state.deleteRevision = change.revision;
        state.current.reset();
      } else {
        state.putRevision = change.revision;
        state.current = change.record;
      }
    }
    if (batch.eventsRevision <= seen_) return;
    seen_ = batch.eventsRevision;
    // Keep the last keptRevisions revisions; a key leaves when its last change is older than the window.
    while (!log_.empty() && log_.front().revision <= seen_ - options_.keptRevisions) {
      windowStart_ = std::max(windowStart_, log_.front().revision);
      auto state = keys_.find(log_.front().key);
      if (state != keys_.end() && std::max(state->second.putRevision, state->second.deleteRevision) <= windowStart_)
        keys_.erase(state);
      log_.pop_front();
    }
    windowStart_ = std::max(windowStart_, seen_ - options_.keptRevisions);
    revision = seen_;
  }
  changed_.notify_all();
  notifyWatchers(revision);
  {
    std::lock_guard lock(mutex_);
    notified_ = std::max(notified_, revision);
  }
  changed_.notify_all();
}

bool EtcdStore::sleepUnlessStopping(std::chrono::milliseconds delay) {
  std::unique_lock lock(mutex_);
  return !changed_.wait_for(lock, delay, [&] { return stopping_; });
}

// Only the instance holding the lock compacts: the lock is a key under the prefix, created only if absent and
// tied to a lease this instance keeps alive; when it dies, the lease expires and another instance takes over.
void EtcdStore::compactionLoop() {
  auto tick =
      std::min<std::chrono::milliseconds>(options_.compactionInterval, std::chrono::seconds(kLockTtlSeconds / 3));
  nextCompaction_ = Clock::now() + options_.compactionInterval;
  do {
    try {
      if (holdCompactionLock() && Clock::now() >= nextCompaction_) {
        compactOnce();
        nextCompaction_ = Clock::now() + options_.compactionInterval;
      }
    } catch (const std::exception& e) {
      logWarn("store: etcd compaction: ", e.what());
    }
  } while (sleepUnlessStopping(tick));
  releaseCompactionLock();
}

bool EtcdStore::holdCompactionLock() {
  if (leaseId_ != 0) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + options_.requestTimeout);
    context.set_wait_for_ready(true);
    auto stream = lease_->LeaseKeepAlive(&context);
    pb::LeaseKeepAliveRequest request;
    request.set_id(leaseId_);
    pb::LeaseKeepAliveResponse response;
    bool answered = stream->Write(request) && stream->Read(&response);
    stream->WritesDone();
    context.TryCancel();
    auto status = stream->Finish();
    // No answer says nothing about the lease: try again at the next tick, while the TTL lasts.
    if (!answered) fail(status, "keeping the compaction lock's lease alive");
    bool renewed = response.ttl() > 0;
    if (renewed) return true;
    logWarn("store: lost the etcd compaction lock (lease ", leaseId_, ")");
    leaseId_ = 0;
  }
  pb::LeaseGrantRequest grant;
  grant.set_ttl(kLockTtlSeconds);
  pb::LeaseGrantResponse granted;
  auto status = unary([&](grpc::ClientContext& c) { return lease_->LeaseGrant(&c, grant, &granted); });
  if (!status.ok()) fail(status, "lease grant");
  pb::TxnRequest txn;
  auto* compare = txn.add_compare();
  compare->set_key(lockKey_);
  compare->set_target(pb::Compare::CREATE);
  compare->set_result(pb::Compare::EQUAL);
  compare->set_create_revision(0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(lockKey_);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  put->set_value(std::string(host) + " pid " + std::to_string(getpid()));
  put->set_lease(granted.id());
  pb::TxnResponse response;
  status = unary([&](grpc::ClientContext& c) { return kv_->Txn(&c, txn, &response); });
  if (status.ok() && response.succeeded()) {
    leaseId_ = granted.id();
    logInfo("store: this instance compacts etcd's history under ", prefix_);
    return true;
  }
  // Someone else holds it (or the answer was lost: then the lease's expiry frees the lock).
  pb::LeaseRevokeRequest revoke;
  revoke.set_id(granted.id());
  pb::LeaseRevokeResponse revoked;
  unary([&](grpc::ClientContext& c) { return lease_->LeaseRevoke(&c, revoke, &revoked); });
  if (!status.ok()) fail(status, "taking the compaction lock");
  return false;
}

void EtcdStore::compactOnce() {
  int64_t target;
  {
    std::lock_guard lock(mutex_);
    target = seen_ - options_.keptRevisions;
  }
  if (target <= compactedTo_) return;
  pb::CompactionRequest request;
  request.set_revision(target);
  pb::CompactionResponse response;
  auto status = unary([&](grpc::ClientContext& c) { return kv_->Compact(&c, request, &response); });
  // OUT_OF_RANGE: etcd's history already starts after `target`.
  if (!status.ok() && status.error_code() != grpc::StatusCode::OUT_OF_RANGE) fail(status, "compaction");
  compactedTo_ = target;
  logDebug("store: compacted etcd's history up to revision ", target);
}

void EtcdStore::releaseCompactionLock() {
  if (leaseId_ == 0) return;
  pb::LeaseRevokeRequest request;
  request.set_id(leaseId_);
  pb::LeaseRevokeResponse response;
  // Revoking the lease deletes the lock key: another instance takes over at once rather than after the TTL.
  auto status = unary([&](grpc::ClientContext& c) { return lease_->LeaseRevoke(&c, request, &response); });
  if (!status.ok()) logWarn("store: releasing the etcd compaction lock: ", status.error_message());
  leaseId_ = 0;
}

}  // namespace

std::unique_ptr<Store> openEtcdStore(const EtcdOptions& options) { return std::make_unique<EtcdStore>(options); }

}  // namespace trellis::store
