#include "proxy/tls_contexts.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/log.h"

namespace trellis::proxy {

TlsContextProvider::TlsContextProvider(std::string dataDir, bool verifyTargets, const std::string& targetCaFile)
    : dataDir_(std::move(dataDir)), authority_(dataDir_), client_(tls::makeClientContext(verifyTargets, targetCaFile)) {
  current_.store(std::make_shared<const ServerTlsContexts>());
  std::string store = tls::certificateStoreDir(dataDir_);
  std::error_code ignored;
  std::filesystem::create_directories(store, ignored);
  certificateWatch_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (certificateWatch_ >= 0 &&
      inotify_add_watch(certificateWatch_, store.c_str(),
                        IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0) {
    close(certificateWatch_);
    certificateWatch_ = -1;
  }
  if (certificateWatch_ < 0)
    logWarn("tls: cannot watch ", store, " (", std::strerror(errno), "): imported certificates are re-read every pass");
}

TlsContextProvider::~TlsContextProvider() {
  if (certificateWatch_ >= 0) close(certificateWatch_);
}

void TlsContextProvider::noteService(const std::string& id, const snapshot::Service* service,
                                     std::set<std::string>& due) {
  auto release = [&](const std::string& name) {
    if (name.empty()) return;
    due.insert(name);
    auto it = claims_.find(name);
    if (it != claims_.end() && (it->second.erase(id), it->second.empty())) claims_.erase(it);
  };
  if (auto old = https_.find(id); old != https_.end()) {
    release(old->second.generatedName);
    release(old->second.customDomainName);
    https_.erase(old);
  }
  if (!service) return;
  bool https = std::any_of(service->listeners.begin(), service->listeners.end(),
                           [](const auto& l) { return l.protocol == snapshot::ListenerProtocol::Https; });
  if (!https) return;
  https_[id] = {service->generatedName, service->customDomainName, service->certificateArn};
  for (const std::string* name : {&service->generatedName, &service->customDomainName}) {
    if (name->empty()) continue;
    claims_[*name].insert(id);
    due.insert(*name);
  }
}

void TlsContextProvider::noteCertificateFiles(std::set<std::string>& due) {
  bool all = certificateWatch_ < 0;
  alignas(inotify_event) char buffer[16384];
  ssize_t n;
  while (!all && (n = read(certificateWatch_, buffer, sizeof buffer)) > 0) {
    for (char* p = buffer; p < buffer + n;) {
      auto* event = reinterpret_cast<inotify_event*>(p);
      p += sizeof(inotify_event) + event->len;
      if (event->mask & (IN_Q_OVERFLOW | IN_IGNORED)) {
        all = true;  // events were lost, or the directory went away: look at every certificate
        continue;
      }
      std::string file = event->len ? event->name : "";
      auto it = byCertificate_.find(file.substr(0, file.find('.')));  // "<uuid>.pem", "<uuid>.key"
      if (it != byCertificate_.end()) due.insert(it->second.begin(), it->second.end());
    }
  }
  if (all) {
    for (const auto& [id, names] : byCertificate_) due.insert(names.begin(), names.end());
  }
}

bool TlsContextProvider::recompute(const std::string& name, int64_t nowSeconds, ServerTlsContexts& next) {
  if (auto source = sources_.find(name); source != sources_.end()) {
    renewals_.erase({source->second.renewAt, name});
    if (auto users = byCertificate_.find(source->second.certificateId); users != byCertificate_.end()) {
      users->second.erase(name);
      if (users->second.empty()) byCertificate_.erase(users);
    }
    sources_.erase(source);
  }
  auto before = next.sites_.find(name);
  std::string fingerprint = before == next.sites_.end() ? "" : before->second.fingerprint;
  auto publish = [&](const tls::CredentialPtr& credential) {
    if (!credential) {
      next.sites_.erase(name);
      return !fingerprint.empty();
    }
    if (credential->fingerprint == fingerprint) return false;  // unchanged: keep the context (and its sessions)
    try {
      std::shared_ptr<SSL_CTX> ctx(tls::makeServerContext(*credential, kOfferH2).release(), SSL_CTX_free);
      next.sites_[name] = ServerTlsContexts::Site{std::move(ctx), credential->fingerprint};
      return true;
    } catch (const std::exception& e) {
      logWarn("tls: ", name, ": ", e.what());
      next.sites_.erase(name);
      return !fingerprint.empty();
    }
  };

  auto claim = claims_.find(name);
  if (claim == claims_.end()) return publish(nullptr);
  const std::string& serviceId = *claim->second.begin();
  const HttpsService& service = https_.at(serviceId);
  if (service.generatedName == name) {
    try {
      tls::CredentialPtr leaf = authority_.leafFor(name, nowSeconds);
      // leafFor issues anew once two thirds of a leaf's validity have passed.
      int64_t renewAt = leaf->notAfter - int64_t{tls::CertificateAuthority::kLeafDays} * 86400 / 3;
      sources_[name].renewAt = renewAt;
      renewals_.insert({renewAt, name});
      return publish(leaf);
    } catch (const std::exception& e) {
      logWarn("tls: cannot issue a certificate for ", name, ": ", e.what());
      return publish(nullptr);
    }
  }
  // No fallback certificate. Without a usable certificateArn the custom name gets no context and
  // its handshakes fail (docs/architecture.md, "HTTPS and TLS passthrough").
  std::string problem;
  tls::CredentialPtr credential;
  if (service.certificateArn.empty()) {
    problem = "no certificateArn";
  } else {
    std::string id = tls::certificateIdOf(service.certificateArn);
    sources_[name].certificateId = id;
    byCertificate_[id].insert(name);  // a failed load too: its files appearing make it due
    credential = tls::loadImportedCertificate(dataDir_, service.certificateArn, problem);
  }
  if (credential) {
    warned_.erase(name);
  } else if (warned_[name] != problem) {
    warned_[name] = problem;
    logWarn("tls: HTTPS to ", name, " (", serviceId, ") will fail: ", problem);
  }
  return publish(credential);
}

size_t TlsContextProvider::refresh(const snapshot::SnapshotPtr& snap, int64_t nowSeconds) {
  std::lock_guard lock(mutex_);
  std::set<std::string> due;
  if (!seen_) {
    for (const auto& [id, service] : snap->services) noteService(id, service.get(), due);
  } else if (snap.get() != seen_.get()) {
    snap->services.forEachChange(seen_->services, [&](const std::string& id, const auto*, const auto* after) {
      noteService(id, after ? after->get() : nullptr, due);
    });
  }
  seen_ = snap;
  while (!renewals_.empty() && renewals_.begin()->first <= nowSeconds) {
    due.insert(renewals_.begin()->second);
    renewals_.erase(renewals_.begin());
  }
  noteCertificateFiles(due);
  if (due.empty()) return 0;

  auto next = std::make_shared<ServerTlsContexts>(*current());
  bool changed = false;
  for (const auto& name : due) changed |= recompute(name, nowSeconds, *next);
  if (changed) current_.store(std::move(next), std::memory_order_release);
  return due.size();
}

}  // namespace trellis::proxy
