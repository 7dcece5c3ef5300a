#include "store/store_url.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace trellis::store {
namespace {

TEST(StoreUrlTest, Sqlite) {
  auto location = parseStoreUrl("sqlite:/var/lib/trellis");
  EXPECT_EQ(location.backend, StoreLocation::Backend::Sqlite);
  EXPECT_EQ(location.dataDir, "/var/lib/trellis");
  EXPECT_EQ(parseStoreUrl("sqlite:./data").dataDir, "./data");
}

TEST(StoreUrlTest, EtcdEndpointsAndPrefix) {
  auto one = parseStoreUrl("etcd://127.0.0.1:2379");
  EXPECT_EQ(one.backend, StoreLocation::Backend::Etcd);
  EXPECT_EQ(one.endpoints, (std::vector<std::string>{"127.0.0.1:2379"}));
  EXPECT_EQ(one.prefix, "/trellis/");
  EXPECT_EQ(parseStoreUrl("etcd://127.0.0.1:2379/").prefix, "/trellis/");

  auto three = parseStoreUrl("etcd://etcd-0:2379,etcd-1:2379,[::1]:2380/prod/lattice");
  EXPECT_EQ(three.endpoints, (std::vector<std::string>{"etcd-0:2379", "etcd-1:2379", "[::1]:2380"}));
  EXPECT_EQ(three.prefix, "/prod/lattice/");
  EXPECT_EQ(parseStoreUrl("etcd://h:1/p/").prefix, "/p/");
}

TEST(StoreUrlTest, MistakesAreNamed) {
  auto message = [](const char* url) {
    try {
      parseStoreUrl(url);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message("mysql://h:1").find("expected sqlite:DIR or etcd://"), std::string::npos);
  EXPECT_NE(message("sqlite:").find("needs a directory"), std::string::npos);
  EXPECT_NE(message("etcd://").find("no etcd endpoint"), std::string::npos);
  EXPECT_NE(message("etcd:///prefix").find("no etcd endpoint"), std::string::npos);
  EXPECT_NE(message("etcd://host").find("'host' has no port"), std::string::npos);
  EXPECT_NE(message("etcd://host:0").find("invalid port"), std::string::npos);
  EXPECT_NE(message("etcd://host:65536").find("invalid port"), std::string::npos);
  EXPECT_NE(message("etcd://host:12x").find("invalid port"), std::string::npos);
  EXPECT_NE(message("etcd://:2379").find("has no host"), std::string::npos);
  EXPECT_NE(message("etcd://a:1,,b:2").find("has no port"), std::string::npos);
  EXPECT_NE(message("etcd://a:1,").find("has no port"), std::string::npos);
  EXPECT_NE(message("etcd://::1:2379").find("IPv6 address without brackets"), std::string::npos);
}

}  // namespace
}  // namespace trellis::store
