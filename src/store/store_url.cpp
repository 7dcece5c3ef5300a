#include "store/store_url.h"

#include <charconv>
#include <stdexcept>

namespace trellis::store {

namespace {

void checkEndpoint(std::string_view endpoint, std::string_view url) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("--store " + std::string(url) + ": endpoint '" + std::string(endpoint) + "' " + why +
                                " (expected HOST:PORT)");
  };
  auto colon = endpoint.rfind(':');
  if (colon == std::string_view::npos) fail("has no port");
  auto host = endpoint.substr(0, colon);
  auto port = endpoint.substr(colon + 1);
  if (host.empty() || host == "[]") fail("has no host");
  // An IPv6 address needs brackets, or its last group would read as the port.
  if (host.find(':') != std::string_view::npos && !(host.front() == '[' && host.back() == ']'))
    fail("is an IPv6 address without brackets");
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535)
    fail("has an invalid port");
}

}  // namespace

StoreLocation parseStoreUrl(std::string_view url) {
  StoreLocation location;
  if (url.starts_with("sqlite:")) {
    location.dataDir = std::string(url.substr(7));
    if (location.dataDir.empty()) throw std::invalid_argument("--store sqlite:DIR needs a directory");
    return location;
  }
  constexpr std::string_view kEtcd = "etcd://";
  if (!url.starts_with(kEtcd))
    throw std::invalid_argument("--store " + std::string(url) +
                                ": expected sqlite:DIR or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]");
  location.backend = StoreLocation::Backend::Etcd;
  auto rest = url.substr(kEtcd.size());
  auto slash = rest.find('/');
  auto hosts = rest.substr(0, slash);
  location.prefix = "/trellis/";
  if (slash != std::string_view::npos && slash + 1 < rest.size()) {
    location.prefix = std::string(rest.substr(slash));
    if (location.prefix.back() != '/') location.prefix += '/';
  }
  while (!hosts.empty()) {
    auto comma = hosts.find(',');
    auto endpoint = hosts.substr(0, comma);
    checkEndpoint(endpoint, url);
    location.endpoints.emplace_back(endpoint);
    if (comma == std::string_view::npos) break;
    hosts.remove_prefix(comma + 1);
    if (hosts.empty()) checkEndpoint(hosts, url);  // a trailing comma
  }
  if (location.endpoints.empty()) throw std::invalid_argument("--store " + std::string(url) + ": no etcd endpoint");
  return location;
}

}  // namespace trellis::store
