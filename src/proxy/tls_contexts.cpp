#include "proxy/tls_contexts.h"

#include "common/log.h"

namespace trellis::proxy {

TlsContextProvider::TlsContextProvider(std::string dataDir, bool verifyTargets, const std::string& targetCaFile)
    : dataDir_(std::move(dataDir)), authority_(dataDir_), client_(tls::makeClientContext(verifyTargets, targetCaFile)) {
  current_.store(std::make_shared<const ServerTlsContexts>());
}

void TlsContextProvider::refresh(const snapshot::SnapshotPtr& snap, int64_t nowSeconds) {
  std::lock_guard lock(mutex_);
  auto note = [&](const std::string& id, const snapshot::Service* service) {
    https_.erase(id);
    if (!service) return;
    for (const auto& listener : service->listeners) {
      if (listener.protocol != snapshot::ListenerProtocol::Https) continue;
      https_[id] = {service->generatedName, service->customDomainName, service->certificateArn};
      return;
    }
  };
  if (seen_ && snap.get() != seen_.get()) {
    snap->services.forEachChange(seen_->services, [&](const std::string& id, const auto*, const auto* after) {
      note(id, after ? after->get() : nullptr);
    });
  } else if (!seen_) {
    for (const auto& [id, service] : snap->services) note(id, service.get());
  }
  seen_ = snap;
  auto previous = current();
  auto next = std::make_shared<ServerTlsContexts>();
  bool changed = false;
  auto add = [&](const std::string& name, const tls::CredentialPtr& credential) {
    if (name.empty() || !credential || next->sites_.count(name)) return;
    auto old = previous->sites_.find(name);
    if (old != previous->sites_.end() && old->second.fingerprint == credential->fingerprint) {
      next->sites_.emplace(name, old->second);  // unchanged: keep the context (and its session cache)
      return;
    }
    try {
      std::shared_ptr<SSL_CTX> ctx(tls::makeServerContext(*credential, kOfferH2).release(), SSL_CTX_free);
      next->sites_.emplace(name, ServerTlsContexts::Site{std::move(ctx), credential->fingerprint});
      changed = true;
    } catch (const std::exception& e) {
      logWarn("tls: ", name, ": ", e.what());
    }
  };
  for (const auto& [id, service] : https_) {
    if (!service.generatedName.empty()) {
      try {
        add(service.generatedName, authority_.leafFor(service.generatedName, nowSeconds));
      } catch (const std::exception& e) {
        logWarn("tls: cannot issue a certificate for ", service.generatedName, ": ", e.what());
      }
    }
    if (service.customDomainName.empty()) continue;
    // No fallback certificate. Without a usable certificateArn the custom name gets no context and
    // its handshakes fail (docs/architecture.md, "HTTPS and TLS passthrough").
    std::string problem;
    tls::CredentialPtr credential;
    if (service.certificateArn.empty()) {
      problem = "no certificateArn";
    } else {
      credential = tls::loadImportedCertificate(dataDir_, service.certificateArn, problem);
    }
    if (credential) {
      add(service.customDomainName, credential);
      warned_.erase(service.customDomainName);
    } else if (warned_[service.customDomainName] != problem) {
      warned_[service.customDomainName] = problem;
      logWarn("tls: HTTPS to ", service.customDomainName, " (", id, ") will fail: ", problem);
    }
  }
  if (!changed && next->sites_.size() == previous->sites_.size()) return;
  current_.store(std::move(next), std::memory_order_release);
}

}  // namespace trellis::proxy
