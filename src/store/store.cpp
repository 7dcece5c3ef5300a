#include "store/store.h"

#include <algorithm>
#include <tuple>

namespace trellis::store {

namespace {

template <class A, class B>
bool keyLess(const A& a, const B& b) {
  return std::tie(a.kind, a.id) < std::tie(b.kind, b.id);
}

template <class A, class B>
bool sameKey(const A& a, const B& b) {
  return a.kind == b.kind && a.id == b.id;
}

// Few changes (the usual commit): binary searches, so an update costs O(log n) and nothing moves.
constexpr size_t kInPlaceChanges = 64;

}  // namespace

void StoreContents::apply(StoreChanges changes) {
  auto& deleted = changes.deleted;
  auto& puts = changes.records;
  if (deleted.size() + puts.size() <= kInPlaceChanges) {
    // Deletions first: a key deleted and re-created since is in both lists, and the put is current.
    for (const auto& key : deleted) {
      auto it = std::lower_bound(records.begin(), records.end(), key, keyLess<Record, RecordKey>);
      if (it != records.end() && sameKey(*it, key)) records.erase(it);
    }
    for (auto& record : puts) {
      auto it = std::lower_bound(records.begin(), records.end(), record, keyLess<Record, Record>);
      if (it != records.end() && sameKey(*it, record))
        *it = std::move(record);
      else
        records.insert(it, std::move(record));
    }
  } else {
    // Many changes (a burst, a bulk import): one merge pass instead of many insertions.
    std::sort(deleted.begin(), deleted.end(), keyLess<RecordKey, RecordKey>);
    std::sort(puts.begin(), puts.end(), keyLess<Record, Record>);
    std::vector<Record> merged;
    merged.reserve(records.size() + puts.size());
    auto del = deleted.begin();
    auto put = puts.begin();
    for (auto& record : records) {
      while (put != puts.end() && keyLess(*put, record)) merged.push_back(std::move(*put++));
      while (del != deleted.end() && keyLess(*del, record)) ++del;
      if (put != puts.end() && sameKey(*put, record)) {
        merged.push_back(std::move(*put++));
      } else if (del == deleted.end() || !sameKey(*del, record)) {
        merged.push_back(std::move(record));
      }
    }
    merged.insert(merged.end(), std::make_move_iterator(put), std::make_move_iterator(puts.end()));
    records = std::move(merged);
  }
  revision = changes.revision;
}

}  // namespace trellis::store
