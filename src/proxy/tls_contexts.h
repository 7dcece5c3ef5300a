// Which certificate each HTTPS host name presents, rebuilt off the request path and swapped atomically.
//
// The data plane's control thread calls refresh() for every new snapshot and every few seconds (so
// imported certificates and leaf renewals show up without a restart). Each refresh that changes anything
// publishes a new immutable ServerTlsContexts; a connection takes the current one when its ClientHello
// arrives and its SSL keeps a reference to its SSL_CTX, so rotation never disturbs open connections.
#pragma once
#include <atomic>
#include <memory>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "snapshot/snapshot.h"
#include "tls/certificates.h"

namespace trellis::proxy {

class ServerTlsContexts {
 public:
  struct Site {
    std::shared_ptr<SSL_CTX> context;
    std::string fingerprint;  // of the certificate presented
  };
  // The context for a lower-case SNI host name, or null when Trellis has no certificate for it (a custom
  // domain without a certificateArn, or an unknown name): the handshake must fail.
  SSL_CTX* contextFor(std::string_view serverName) const {
    auto it = sites_.find(std::string(serverName));
    return it == sites_.end() ? nullptr : it->second.context.get();
  }
  const std::unordered_map<std::string, Site>& sites() const { return sites_; }

 private:
  friend class TlsContextProvider;
  std::unordered_map<std::string, Site> sites_;
};

class TlsContextProvider {
 public:
  // Opens (or creates) the CA in {dataDir}/tls. Throws when the CA cannot be loaded or created.
  // `verifyTargets`/`targetCaFile`: the dataPlane settings for HTTPS targets (makeClientContext).
  explicit TlsContextProvider(std::string dataDir, bool verifyTargets = false, const std::string& targetCaFile = {});

  // Recomputes the certificates of every service with an HTTPS listener: a CA leaf for the generated
  // name, the imported certificate named by certificateArn for the custom domain. Publishes only on change.
  // Which services have HTTPS listeners is kept from one snapshot to the next and updated from the services
  // a new snapshot changed, so services without HTTPS cost nothing, however many there are.
  void refresh(const snapshot::SnapshotPtr& snap, int64_t nowSeconds);
  // Any thread.
  std::shared_ptr<const ServerTlsContexts> current() const { return current_.load(std::memory_order_acquire); }
  // For HTTPS targets (no verification: https://docs.aws.amazon.com/vpc-lattice/latest/ug/target-groups.html).
  SSL_CTX* clientContext() const { return client_.get(); }
  const tls::CertificateAuthority& authority() const { return authority_; }

  // Whether ALPN offers h2 (HTTP2Preferred): the downstream HTTP/2 codec serves such connections.
  static constexpr bool kOfferH2 = true;

 private:
  std::string dataDir_;
  tls::CertificateAuthority authority_;
  tls::SslCtxPtr client_;
  std::mutex mutex_;  // refresh() callers
  std::atomic<std::shared_ptr<const ServerTlsContexts>> current_;
  std::unordered_map<std::string, std::string> warned_;  // host → last warning, so each problem is logged once
  struct HttpsService {
    std::string generatedName, customDomainName, certificateArn;
  };
  std::map<std::string, HttpsService> https_;  // by service id, as of seen_
  snapshot::SnapshotPtr seen_;
};

}  // namespace trellis::proxy
