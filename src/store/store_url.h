// Where trellisd keeps its store, as given to --store: `sqlite:DIR` or `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace trellis::store {

struct StoreLocation {
  enum class Backend { Sqlite, Etcd };
  Backend backend = Backend::Sqlite;
  std::string dataDir;                 // sqlite
  std::vector<std::string> endpoints;  // etcd: HOST:PORT each
  std::string prefix;                  // etcd: starts and ends with '/'; "/trellis/" when the URL has none
};

// Throws std::invalid_argument with a message that names the mistake.
StoreLocation parseStoreUrl(std::string_view url);

}  // namespace trellis::store
