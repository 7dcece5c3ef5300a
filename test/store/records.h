// Short printable forms of store answers, for comparing them in tests.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

#include "store/store.h"

namespace trellis::store {

inline std::vector<std::string> ids(const std::vector<Record>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.id);
  return out;
}

// Change lists come in no particular order: these sort.
inline std::vector<std::string> keys(const std::vector<RecordKey>& deleted) {
  std::vector<std::string> out;
  for (const auto& k : deleted) out.push_back(k.kind + "/" + k.id);
  std::sort(out.begin(), out.end());
  return out;
}

// `kind/id=value@modRevision`, with modRevision relative to `base` (a store's revision when the test began).
inline std::vector<std::string> changed(const std::vector<Record>& records, int64_t base = 0) {
  std::vector<std::string> out;
  for (const auto& r : records)
    out.push_back(r.kind + "/" + r.id + "=" + r.value + "@" + std::to_string(r.modRevision - base));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace trellis::store
