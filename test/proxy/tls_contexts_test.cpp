// The TLS context provider looks only at what is due (issue: background work proportional to change): the
// names of services a snapshot changed, leaves due for renewal, and imported certificates whose files
// changed on disk. What each name presents is checked by fingerprint, as a client would see it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <ctime>
#include <filesystem>
#include <string>

#include "compile/compiler.h"
#include "compile/store_fixture.h"
#include "model/config.h"
#include "proxy/tls_contexts.h"
#include "proxy/tls_harness.h"
#include "tls/certificates.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;
using proxy::TlsContextProvider;
namespace fs = std::filesystem;

constexpr int kHttpsServices = 300;
const std::string kCustom = "billing.example.com";

std::string serviceId(int i) {
  std::string n = std::to_string(i);
  return "svc-" + std::string(17 - n.size(), '0') + n;
}

class TlsContexts : public ::testing::Test {
 protected:
  TlsContexts() {
    for (int i = 0; i < kHttpsServices + 100; ++i) {  // 100 more with HTTP listeners only
      store.service(serviceId(i), "s" + std::to_string(i));
      store.listener("listener-" + std::to_string(i), serviceId(i), 443, StoreFixture::fixed(404),
                     i < kHttpsServices ? "HTTPS" : "HTTP");
    }
    publish();
  }
  void publish() {
    snap = snap ? compiler.update(store.changesSince(snap->revision)) : compiler.compile(store.contents(), config);
  }
  // Service 0 with the custom domain and the imported certificate `arn`.
  void giveCustomDomain(const std::string& arn) {
    store.service(serviceId(0), "s0", kCustom);
    json doc;
    for (const auto& r : store.contents().records)
      if (r.kind == "service" && r.id == serviceId(0)) doc = json::parse(r.value);
    doc["certificateArn"] = arn;
    store.put("service", serviceId(0), doc);
    publish();
  }
  std::string presented(const std::string& name) {
    auto sites = tls.current()->sites();
    auto it = sites.find(name);
    return it == sites.end() ? "" : it->second.fingerprint;
  }
  std::string import(const std::string& stem) {
    EXPECT_TRUE(makeSelfSigned(dir, stem, kCustom));
    std::string error;
    std::string arn = tls::importCertificate(dir.path(), readText(dir.file(stem + ".pem")),
                                             readText(dir.file(stem + ".key")), "us-east-1", "111122223333", error);
    EXPECT_FALSE(arn.empty()) << error;
    return arn;
  }

  TempDir dir;
  StoreFixture store;
  model::Config config;
  compile::HealthCells cells;
  compile::SnapshotCompiler compiler{&cells};
  snapshot::SnapshotPtr snap;
  TlsContextProvider tls{dir.path()};
  int64_t now = time(nullptr);
};

TEST_F(TlsContexts, APassWithNothingDueLooksAtNothing) {
  EXPECT_EQ(tls.refresh(snap, now), size_t{kHttpsServices});  // the first: every HTTPS service's name
  EXPECT_EQ(tls.current()->sites().size(), size_t{kHttpsServices});
  auto before = tls.current();
  EXPECT_EQ(tls.refresh(snap, now + 5), 0u);
  EXPECT_EQ(tls.refresh(snap, now + 3600), 0u);
  EXPECT_EQ(tls.current(), before) << "nothing changed, nothing published";
}

TEST_F(TlsContexts, AChangedServiceIsTheOnlyOneLookedAt) {
  tls.refresh(snap, now);
  std::string arn = import("first");
  giveCustomDomain(arn);
  EXPECT_EQ(tls.refresh(snap, now + 5), 2u);  // service 0's generated name and its custom domain
  EXPECT_EQ(presented(kCustom), fingerprintOfPemFile(dir.file("first.pem")));

  store.erase("listener", "listener-1");  // service 1 no longer has an HTTPS listener
  publish();
  EXPECT_EQ(tls.refresh(snap, now + 10), 1u);
  EXPECT_EQ(presented(StoreFixture::generatedName(serviceId(1), "s1")), "");
  EXPECT_NE(presented(StoreFixture::generatedName(serviceId(2), "s2")), "");
}

TEST_F(TlsContexts, ACertificateReplacedOnDiskIsPresentedWithoutASnapshot) {
  tls.refresh(snap, now);
  std::string arn = import("first");
  giveCustomDomain(arn);
  tls.refresh(snap, now + 5);
  ASSERT_EQ(presented(kCustom), fingerprintOfPemFile(dir.file("first.pem")));

  // The operator renews the certificate in place: same ARN, new files.
  ASSERT_TRUE(makeSelfSigned(dir, "renewed", kCustom));
  std::string stem = tls::certificateStoreDir(dir.path()) + "/" + tls::certificateIdOf(arn);
  fs::copy_file(dir.file("renewed.key"), stem + ".key", fs::copy_options::overwrite_existing);
  fs::copy_file(dir.file("renewed.pem"), stem + ".pem", fs::copy_options::overwrite_existing);
  EXPECT_EQ(tls.refresh(snap, now + 10), 1u);  // only the name using that certificate
  EXPECT_EQ(presented(kCustom), fingerprintOfPemFile(dir.file("renewed.pem")));
  EXPECT_EQ(tls.refresh(snap, now + 15), 0u);
}

TEST_F(TlsContexts, LeavesAreRenewedWhenDueAndNotBefore) {
  tls.refresh(snap, now);
  std::string name = StoreFixture::generatedName(serviceId(7), "s7");
  std::string first = presented(name);
  ASSERT_NE(first, "");
  int64_t lifetime = int64_t{tls::CertificateAuthority::kLeafDays} * 86400;
  EXPECT_EQ(tls.refresh(snap, now + lifetime / 2), 0u);  // two thirds of the validity not yet passed
  EXPECT_EQ(tls.refresh(snap, now + lifetime * 2 / 3 + 60), size_t{kHttpsServices});
  EXPECT_NE(presented(name), first) << "a new leaf";
  EXPECT_EQ(tls.refresh(snap, now + lifetime * 2 / 3 + 120), 0u);
}

}  // namespace
}  // namespace trellis::testing
