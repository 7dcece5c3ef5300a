// A string-keyed map that successive snapshots share shard by shard. Copying one copies 256 shard
// pointers; changing an entry afterwards copies only the shard it lands in. This is what lets the
// compiler build the next snapshot of 10,000 services in time proportional to the change, not to the
// size (SnapshotCompiler).
#pragma once
#include <array>
#include <bitset>
#include <cstdint>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace trellis::snapshot {

template <class V>
class ShardedMap {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>()(s); }
  };
  using Shard = std::unordered_map<std::string, V, Hash, std::equal_to<>>;
  static constexpr size_t kShards = 256;

 public:
  using value_type = typename Shard::value_type;

  ShardedMap() = default;
  // A copy shares every shard with the original until one of them writes to it: only the copy may
  // write afterwards (the original belongs to a published, immutable snapshot).
  ShardedMap(const ShardedMap& other) : shards_(other.shards_), size_(other.size_) {}
  ShardedMap& operator=(const ShardedMap& other) {
    shards_ = other.shards_;
    size_ = other.size_;
    owned_.reset();
    return *this;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Allocation-free: the request path looks services up by host here.
  const V* find(std::string_view key) const {
    const auto& shard = shards_[shardOf(key)];
    if (!shard) return nullptr;
    auto it = shard->find(key);
    return it == shard->end() ? nullptr : &it->second;
  }
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  const V& at(std::string_view key) const {
    const V* value = find(key);
    if (!value) throw std::out_of_range("ShardedMap::at: " + std::string(key));
    return *value;
  }

  void set(std::string_view key, V value) {
    Shard& shard = writable(shardOf(key));
    auto it = shard.find(key);
    if (it != shard.end()) {
      it->second = std::move(value);
      return;
    }
    shard.emplace(std::string(key), std::move(value));
    ++size_;
  }
  void erase(std::string_view key) {
    size_t index = shardOf(key);
    if (!shards_[index] || !shards_[index]->contains(key)) return;
    Shard& shard = writable(index);
    shard.erase(shard.find(key));
    --size_;
  }

  // Calls fn(key, before, after) for every key whose value differs between `older` and this map (before or
  // after null: absent there), looking only into the shards the two do not share: after one change to a
  // map of 10,000, a few dozen entries.
  template <class Fn>
  void forEachChange(const ShardedMap& older, Fn&& fn) const {
    for (size_t i = 0; i < kShards; ++i) {
      const Shard* mine = shards_[i].get();
      const Shard* theirs = older.shards_[i].get();
      if (mine == theirs) continue;
      if (theirs) {
        for (const auto& [key, value] : *theirs) {
          auto now = mine ? mine->find(key) : typename Shard::const_iterator{};
          if (!mine || now == mine->end()) {
            fn(key, &value, static_cast<const V*>(nullptr));
          } else if (!(now->second == value)) {
            fn(key, &value, &now->second);
          }
        }
      }
      if (mine) {
        for (const auto& [key, value] : *mine)
          if (!theirs || !theirs->contains(key)) fn(key, static_cast<const V*>(nullptr), &value);
      }
    }
  }

  // Every entry, in no particular order.
  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = ShardedMap::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = const value_type*;
    using reference = const value_type&;

    const_iterator() = default;
    reference operator*() const { return *entry_; }
    pointer operator->() const { return &*entry_; }
    const_iterator& operator++() {
      if (++entry_ == (*shards_)[shard_]->end()) {
        ++shard_;
        settle();
      }
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator before = *this;
      ++*this;
      return before;
    }
    bool operator==(const const_iterator& other) const {
      return shard_ == other.shard_ && (shard_ == kShards || entry_ == other.entry_);
    }

   private:
    friend class ShardedMap;
    const_iterator(const std::array<std::shared_ptr<Shard>, kShards>* shards, size_t shard)
        : shards_(shards), shard_(shard) {
      settle();
    }
    // Moves to the first entry at or after shard_.
    void settle() {
      while (shard_ < kShards && (!(*shards_)[shard_] || (*shards_)[shard_]->empty())) ++shard_;
      if (shard_ < kShards) entry_ = (*shards_)[shard_]->cbegin();
    }
    const std::array<std::shared_ptr<Shard>, kShards>* shards_ = nullptr;
    size_t shard_ = kShards;
    typename Shard::const_iterator entry_;
  };
  const_iterator begin() const { return const_iterator(&shards_, 0); }
  const_iterator end() const { return const_iterator(&shards_, kShards); }

 private:
  // The top bits of a multiplied hash, so the shard does not correlate with the bucket inside it.
  static size_t shardOf(std::string_view key) { return (Hash()(key) * 0x9e3779b97f4a7c15ull) >> 56; }
  Shard& writable(size_t index) {
    if (!owned_[index]) {
      shards_[index] = shards_[index] ? std::make_shared<Shard>(*shards_[index]) : std::make_shared<Shard>();
      owned_[index] = true;
    }
    return *shards_[index];
  }

  std::array<std::shared_ptr<Shard>, kShards> shards_;
  std::bitset<kShards> owned_;  // shards this map made itself, shared with no other map
  size_t size_ = 0;
};

}  // namespace trellis::snapshot
