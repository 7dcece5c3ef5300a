// A real SQLite store in a temp directory, kept equal to a StoreFixture's contents by committing the
// difference: builder tests read the store the way trellisd does.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "store/sqlite_store.h"

namespace trellis::testing {

class SqliteFixture {
 public:
  explicit SqliteFixture(int64_t keptRevisions = store::kDefaultKeptRevisions) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "trellis-snapshot-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    store = std::make_unique<store::SqliteStore>(dir_, keptRevisions);
  }
  ~SqliteFixture() {
    store.reset();
    std::filesystem::remove_all(dir_);
  }

  // Commits (as one revision) what differs between `contents` and what was synced before; returns the
  // store's revision.
  int64_t sync(const store::StoreContents& contents) {
    std::map<std::pair<std::string, std::string>, std::string> now;
    std::vector<store::Op> ops;
    for (const auto& r : contents.records) {
      auto key = std::make_pair(r.kind, r.id);
      auto old = committed_.find(key);
      if (old == committed_.end() || old->second != r.value) ops.push_back(store::Op::put(r.kind, r.id, r.value));
      now.emplace(key, r.value);
    }
    for (const auto& [key, value] : committed_)
      if (!now.count(key)) ops.push_back(store::Op::del(key.first, key.second));
    committed_ = std::move(now);
    if (!ops.empty()) store->commit({}, ops);
    return store->revision();
  }

  std::unique_ptr<store::Store> store;

 private:
  std::string dir_;
  std::map<std::pair<std::string, std::string>, std::string> committed_;
};

}  // namespace trellis::testing
