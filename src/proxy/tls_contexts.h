// Which certificate each HTTPS host name presents, rebuilt off the request path and swapped atomically.
//
// The data plane's control thread calls refresh() for every new snapshot and every few seconds (so
// replaced certificate files and leaf renewals show up without a restart). Each refresh that changes anything
// publishes a new immutable ServerTlsContexts; a connection takes the current one when its ClientHello
// arrives and its SSL keeps a reference to its SSL_CTX, so rotation never disturbs open connections.
#pragma once
#include <atomic>
#include <memory>
#include <map>
#include <mutex>
#include <set>
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
  ~TlsContextProvider();
  TlsContextProvider(const TlsContextProvider&) = delete;
  TlsContextProvider& operator=(const TlsContextProvider&) = delete;

  // Keeps the certificate of every HTTPS host name current: a CA leaf for a service's generated name, the
  // imported certificate its certificateArn names for its custom domain. Looks only at the names that are
  // due: those of services the snapshot changed since the last call, leaves due for renewal at
  // `nowSeconds`, and imported certificates whose files changed in the store (inotify), so a call with
  // nothing due costs nothing however many HTTPS services there are. Publishes only on change. Returns how
  // many names it looked at.
  size_t refresh(const snapshot::SnapshotPtr& snap, int64_t nowSeconds);
  // Any thread.
  std::shared_ptr<const ServerTlsContexts> current() const { return current_.load(std::memory_order_acquire); }
  // For HTTPS targets (no verification: https://docs.aws.amazon.com/vpc-lattice/latest/ug/target-groups.html).
  SSL_CTX* clientContext() const { return client_.get(); }
  const tls::CertificateAuthority& authority() const { return authority_; }

  // Whether ALPN offers h2 (HTTP2Preferred): the downstream HTTP/2 codec serves such connections.
  static constexpr bool kOfferH2 = true;

 private:
  struct HttpsService {
    std::string generatedName, customDomainName, certificateArn;
  };
  void noteService(const std::string& id, const snapshot::Service* service, std::set<std::string>& due);
  // Names of imported certificates whose files changed since the last call (all, when the watch is lost).
  void noteCertificateFiles(std::set<std::string>& due);
  // Recomputes `name`'s site in `next`; true when it changed.
  bool recompute(const std::string& name, int64_t nowSeconds, ServerTlsContexts& next);

  std::string dataDir_;
  tls::CertificateAuthority authority_;
  tls::SslCtxPtr client_;
  std::mutex mutex_;  // refresh() callers
  std::atomic<std::shared_ptr<const ServerTlsContexts>> current_;
  snapshot::SnapshotPtr seen_;
  std::map<std::string, HttpsService> https_;        // services with an HTTPS listener, by id, as of seen_
  std::map<std::string, std::set<std::string>> claims_;  // host name → the services naming it (the first wins)
  // What a name's site came from, so a recompute can take back its entries in renewals_ and byCertificate_.
  struct Source {
    int64_t renewAt = 0;        // a leaf: when it is due
    std::string certificateId;  // an imported certificate
  };
  std::map<std::string, Source> sources_;                       // by host name
  std::set<std::pair<int64_t, std::string>> renewals_;          // (when a leaf is due, its name)
  std::map<std::string, std::set<std::string>> byCertificate_;  // imported certificate id → custom names using it
  std::unordered_map<std::string, std::string> warned_;  // host → last warning, so each problem is logged once
  int certificateWatch_ = -1;  // inotify on the certificate store; -1: every call re-reads imported certificates
};

}  // namespace trellis::proxy
