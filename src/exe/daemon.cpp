#include "exe/daemon.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "api/api.h"
#include "api/indexes.h"
#include "auth/policy.h"
#include "auth/sigv4.h"
#include "common/http_server.h"
#include "common/log.h"
#include "compile/builder.h"
#include "dns/server.h"
#include "model/config.h"
#include "proxy/data_plane.h"
#include "store/etcd_store.h"
#include "store/store.h"
#include "store/store_url.h"

namespace trellis {
namespace {

constexpr const char* kDevelopmentVpc = "vpc-0123456789abcdef0";

// Without a config, trellisd makes up one identity and keeps it in the data dir, so the
// credentials it prints stay valid across restarts.
model::Identity developmentIdentity(const std::string& dataDir, const std::string& accountId) {
  auto path = std::filesystem::path(dataDir) / "dev-identity.json";
  if (std::ifstream in(path); in) {
    auto saved = nlohmann::json::parse(in, nullptr, false);
    if (saved.is_object() && saved.contains("accessKeyId") && saved.contains("secretAccessKey")) {
      model::Identity identity;
      identity.arn = saved.value("arn", "arn:aws:iam::" + accountId + ":role/trellis-dev");
      identity.accessKeyId = saved["accessKeyId"];
      identity.secretAccessKey = saved["secretAccessKey"];
      return identity;
    }
  }
  auto identity = model::makeDevelopmentIdentity(accountId);
  std::ofstream out(path);
  out << nlohmann::json{{"arn", identity.arn},
                        {"accessKeyId", identity.accessKeyId},
                        {"secretAccessKey", identity.secretAccessKey}}
             .dump(2)
      << "\n";
  out.close();
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return identity;
}

api::Authenticator makeAuthenticator() {
  return [](const HttpRequest& request, const model::Config& config)
             -> std::variant<const model::Identity*, api::ApiError> {
    auth::SigV4Request input{request.method, request.path, request.query, request.headers, request.body};
    auto lookup = [&config](std::string_view key) { return config.identityByAccessKey(std::string(key)); };
    auto result = auth::verifySigV4(input, "vpc-lattice", config.region, lookup, systemNow());
    if (result.ok()) return result.identity;
    return api::ApiError(result.status, result.errorCode, result.message);
  };
}

void printWelcome(const DaemonOptions& options, const model::Config& config, bool devIdentity, uint16_t apiPort,
                  uint16_t adminPort, uint16_t dnsPort) {
  std::string host = options.apiListen.substr(0, options.apiListen.rfind(':'));
  std::string endpoint = "http://" + host + ":" + std::to_string(apiPort);
  std::cout << "trellisd is serving the VPC Lattice API at " << endpoint << " (region " << config.region
            << ", account " << config.accountId << ")\n"
            << "admin endpoint (/ready, /metrics) at http://" << options.adminListen.substr(0, options.adminListen.rfind(':'))
            << ":" << adminPort << "\n";
  if (dnsPort) std::cout << "DNS service directory for " << config.effectiveServiceDomain() << " on port " << dnsPort << "\n";
  if (devIdentity) {
    const auto& id = config.identities.front();
    std::cout << "No --config given: use this development identity (" << id.arn << "):\n"
              << "  export AWS_ACCESS_KEY_ID=" << id.accessKeyId << "\n"
              << "  export AWS_SECRET_ACCESS_KEY=" << id.secretAccessKey << "\n"
              << "  export AWS_DEFAULT_REGION=" << config.region << "\n"
              << "  aws vpc-lattice list-services --endpoint-url " << endpoint << "\n"
              << "Loopback clients (127.0.0.0/8, ::1) are in VPC " << kDevelopmentVpc
              << ": associate it with a service network to reach its services.\n";
  }
  std::cout << std::flush;
}

// Identity-based policies must compile (the engine lives in src/auth, above the config loader).
void checkIdentityPolicies(const model::Config& config, const std::string& file) {
  for (size_t i = 0; i < config.identities.size(); ++i) {
    const auto& policy = config.identities[i].policy;
    if (policy.empty()) continue;
    auto parsed = auth::parsePolicy(policy, auth::PolicyKind::Identity);
    if (auto* error = std::get_if<auth::PolicyError>(&parsed))
      throw model::ConfigError(file + ":" + std::to_string(config.identities[i].policyLine) + ": identities[" +
                               std::to_string(i) + "] (" + config.identities[i].arn +
                               ").policy: " + error->message);
  }
}

// Re-reads the config file (SIGHUP, POST /reload) and hands it to the API and the data plane; open
// connections are kept. What would change existing resources' ARNs (region, account, partition) needs
// a restart. Returns an empty string on success, else why the old config stays.
class ConfigReloader {
 public:
  ConfigReloader(std::string file, std::atomic<model::ConfigPtr>& current, compile::SnapshotBuilder& snapshots)
      : file_(std::move(file)), current_(current), snapshots_(snapshots) {}

  std::string reload() {
    std::lock_guard lock(mutex_);
    if (file_.empty()) return "trellisd runs without --config: nothing to reload";
    model::ConfigPtr fresh;
    try {
      fresh = std::make_shared<const model::Config>(model::loadConfig(file_));
      checkIdentityPolicies(*fresh, file_);
    } catch (const std::exception& e) {
      return e.what();
    }
    auto old = current_.load();
    if (fresh->region != old->region || fresh->accountId != old->accountId || fresh->partition != old->partition)
      return "region, accountId and partition cannot change without a restart";
    current_.store(fresh);
    snapshots_.setConfig(*fresh);
    logInfo("config reloaded from ", file_, ": ", fresh->identities.size(), " identities, ", fresh->vpcs.size(),
            " VPCs");
    return "";
  }

 private:
  std::mutex mutex_;
  std::string file_;
  std::atomic<model::ConfigPtr>& current_;
  compile::SnapshotBuilder& snapshots_;
};

// The admin port: readiness, Prometheus metrics, the data plane's listener ports, config reload.
HttpResponse adminResponse(const HttpRequest& request, const std::atomic<bool>& ready,
                           const compile::SnapshotBuilder& snapshots, const proxy::DataPlane& dataPlane,
                           ConfigReloader& reloader) {
  const HeaderList text = {{"content-type", "text/plain; charset=utf-8"}};
  if (request.path == "/reload") {
    if (request.method != "POST") return HttpResponse{405, text, "use POST\n"};
    std::string problem = reloader.reload();
    return problem.empty() ? HttpResponse{200, text, "reloaded\n"} : HttpResponse{400, text, problem + "\n"};
  }
  if (request.path == "/ready")
    return ready ? HttpResponse{200, text, "ready\n"} : HttpResponse{503, text, "starting\n"};
  if (request.path == "/metrics")
    return HttpResponse{200, {{"content-type", "text/plain; version=0.0.4"}},
                        snapshots.renderMetrics() + dataPlane.renderMetrics()};
  if (request.path == "/ca.pem") {
    auto pem = dataPlane.rootCertificatePem();
    return pem.empty() ? HttpResponse{503, text, "HTTPS is not available\n"}
                       : HttpResponse{200, {{"content-type", "application/x-pem-file"}}, pem};
  }
  if (request.path == "/listeners") {
    auto ports = nlohmann::json::array();
    for (const auto& status : dataPlane.listenerStatus())
      ports.push_back({{"port", status.port}, {"bound", status.bound}, {"error", status.error}});
    return HttpResponse{200, {{"content-type", "application/json"}}, ports.dump() + "\n"};
  }
  return HttpResponse{404, text, "not found\n"};
}

// --store: SQLite in the data directory unless told otherwise. Throws std::invalid_argument for a bad flag.
std::unique_ptr<store::Store> openStore(const DaemonOptions& options) {
  bool tls = !options.etcdCa.empty() || !options.etcdCert.empty() || !options.etcdKey.empty();
  if (options.store.empty()) {
    if (tls) throw std::invalid_argument("--etcd-ca, --etcd-cert and --etcd-key need --store etcd://...");
    return store::openSqliteStore(options.dataDir);
  }
  auto location = store::parseStoreUrl(options.store);
  if (location.backend == store::StoreLocation::Backend::Sqlite) {
    if (tls) throw std::invalid_argument("--etcd-ca, --etcd-cert and --etcd-key need --store etcd://...");
    return store::openSqliteStore(location.dataDir);
  }
  if ((options.etcdCert.empty() != options.etcdKey.empty()) || (!options.etcdCert.empty() && options.etcdCa.empty()))
    throw std::invalid_argument("a client certificate needs --etcd-ca, --etcd-cert and --etcd-key together");
  store::EtcdOptions etcd;
  etcd.endpoints = location.endpoints;
  etcd.prefix = location.prefix;
  etcd.caFile = options.etcdCa;
  etcd.certFile = options.etcdCert;
  etcd.keyFile = options.etcdKey;
  auto opened = store::openEtcdStore(etcd);
  // The data directory still holds the node's own files (the development identity, the data plane's CA).
  std::filesystem::create_directories(options.dataDir);
  std::filesystem::permissions(options.dataDir, std::filesystem::perms::owner_all);
  logInfo("store: etcd at ", options.store, ", keys under ", etcd.prefix);
  return opened;
}

}  // namespace

int runDaemon(const DaemonOptions& options, const sigset_t& signals) {
  LogLevel level;
  parseLogLevel(options.logLevel, level);
  setLogLevel(level);

  model::Config config;
  bool devIdentity = options.configFile.empty();
  try {
    if (!devIdentity) {
      config = model::loadConfig(options.configFile);
      checkIdentityPolicies(config, options.configFile);
    }
  } catch (const std::exception& e) {
    std::cerr << "trellisd: " << e.what() << "\n";
    return 2;
  }

  std::unique_ptr<store::Store> store;
  try {
    store = openStore(options);
  } catch (const std::invalid_argument& e) {
    std::cerr << "trellisd: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "trellisd: " << e.what() << "\n";
    return 1;
  }
  if (devIdentity) {
    config.identities.push_back(developmentIdentity(options.dataDir, config.accountId));
    // One client VPC holding every loopback address, so local clients can reach what is associated with it.
    config.vpcs.push_back({kDevelopmentVpc, {"127.0.0.0/8", "::1/128"}});
  }

  // Config changes flow store → snapshot builder → data plane; nothing on the request path reads the store.
  compile::SnapshotBuilder snapshots(*store, config);
  store->watch([&snapshots](int64_t revision) { snapshots.notifyCommitted(revision); });
  // On etcd, the store's watch thread runs watchers whenever any trellisd writes: close the store (joining that
  // thread) before `snapshots` goes, on every way out of here.
  struct CloseStore {
    std::unique_ptr<store::Store>& store;
    ~CloseStore() { store.reset(); }
  } closeStore{store};
  proxy::DataPlane dataPlane({.bindAddress = options.proxyBind, .workers = options.workers, .dataDir = options.dataDir},
                             snapshots);

  std::atomic<model::ConfigPtr> currentConfig{std::make_shared<const model::Config>(config)};
  ConfigReloader reloader(options.configFile, currentConfig, snapshots);
  try {
    api::buildIndexesIfMissing(*store);  // a store of an older trellisd
  } catch (const std::exception& e) {  // on etcd: quorum lost
    std::cerr << "trellisd: cannot build the API's indexes: " << e.what() << "\n";
    return 1;
  }
  api::Api api(*store, [&currentConfig] { return currentConfig.load(); }, makeAuthenticator());
  api.resources().targetStatus = [&dataPlane](const std::string& tg, const std::string& target, int port) {
    auto health = dataPlane.targetHealth().status(tg, target, static_cast<uint16_t>(port));
    return std::make_pair(health.status, health.reasonCode);
  };
  HttpServer apiServer("api", [&api](const HttpRequest& r) { return api.handle(r); });
  std::atomic<bool> ready{false};
  HttpServer adminServer("admin",
                         [&](const HttpRequest& r) { return adminResponse(r, ready, snapshots, dataPlane, reloader); });
  std::unique_ptr<dns::DnsServer> dnsServer;
  try {
    snapshots.start();
    dataPlane.start();
    if (!options.dnsListen.empty()) {
      dns::DnsOptions dnsOptions{options.dnsListen, config.effectiveServiceDomain(),
                                 config.dns.answerAddresses.empty() ? std::vector<std::string>{options.proxyBind}
                                                                    : config.dns.answerAddresses,
                                 config.dns.upstreams, static_cast<uint32_t>(config.dns.ttl)};
      dnsServer = std::make_unique<dns::DnsServer>(dnsOptions, snapshots);
      dnsServer->start();
    }
    apiServer.start(options.apiListen);
    adminServer.start(options.adminListen);
  } catch (const std::exception& e) {
    std::cerr << "trellisd: " << e.what() << "\n";
    return 1;
  }
  ready = true;
  printWelcome(options, config, devIdentity, apiServer.port(), adminServer.port(), dnsServer ? dnsServer->port() : 0);
  logInfo("ready: api ", options.apiListen, " (port ", apiServer.port(), "), admin ", options.adminListen,
          " (port ", adminServer.port(), "), data dir ", options.dataDir);

  while (true) {
    int signal = 0;
    sigwait(&signals, &signal);
    if (signal == SIGHUP) {
      std::string problem = reloader.reload();
      if (!problem.empty()) logError("config reload failed, keeping the running config: ", problem);
      continue;
    }
    logInfo("signal ", signal, ": shutting down");
    break;
  }
  ready = false;
  apiServer.stop();
  if (dnsServer) dnsServer->stop();
  dataPlane.stop();
  snapshots.stop();
  adminServer.stop();
  logInfo("stopped");
  return 0;
}

}  // namespace trellis
