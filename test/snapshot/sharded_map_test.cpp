#include "snapshot/sharded_map.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>

namespace trellis::snapshot {
namespace {

TEST(ShardedMap, CopiesShareShardsAndReportWhatChanged) {
  ShardedMap<int> older;
  for (int i = 0; i < 1000; ++i) older.set("key-" + std::to_string(i), i);
  ShardedMap<int> newer = older;
  newer.set("key-1", -1);     // changed
  newer.set("key-2", 2);      // set to what it was: no change
  newer.erase("key-3");       // gone
  newer.set("key-new", 1000);  // added
  std::map<std::string, std::pair<int, int>> seen;  // key → (before, after), -9 for absent
  newer.forEachChange(older, [&](const std::string& key, const int* before, const int* after) {
    seen[key] = {before ? *before : -9, after ? *after : -9};
  });
  std::map<std::string, std::pair<int, int>> expected{
      {"key-1", {1, -1}}, {"key-3", {3, -9}}, {"key-new", {-9, 1000}}};
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(older.size(), 1000u);  // the original is untouched
  EXPECT_EQ(older.at("key-1"), 1);
  EXPECT_TRUE(older.contains("key-3"));
  EXPECT_EQ(newer.size(), 1000u);
  size_t iterated = 0;
  for (const auto& entry : newer) iterated += entry.first.empty() ? 0 : 1;
  EXPECT_EQ(iterated, 1000u);
}

}  // namespace
}  // namespace trellis::snapshot
