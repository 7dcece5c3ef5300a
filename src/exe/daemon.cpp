#include "exe/daemon.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <unistd.h>

#include "api/api.h"
#include "api/indexes.h"
#include "auth/policy.h"
#include "auth/sigv4.h"
#include "common/http_server.h"
#include "common/log.h"
#include "compile/builder.h"
#include "console/console.h"
#include "common/strings.h"
#include "common/time.h"
#include "dns/server.h"
#include "fleet/feed.h"
#include "fleet/follower.h"
#include "model/config.h"
#include "proxy/access_log.h"
#include "proxy/data_plane.h"
#include "store/etcd_store.h"
#include "store/sqlite_store.h"
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
                  uint16_t adminPort, uint16_t dnsPort, uint16_t consolePort) {
  std::string host = options.apiListen.substr(0, options.apiListen.rfind(':'));
  std::string endpoint = "http://" + host + ":" + std::to_string(apiPort);
  std::cout << "trellisd is serving the VPC Lattice API at " << endpoint << " (region " << config.region
            << ", account " << config.accountId << ")\n"
            << "admin endpoint (/ready, /metrics) at http://" << options.adminListen.substr(0, options.adminListen.rfind(':'))
            << ":" << adminPort << "\n";
  if (consolePort)
    std::cout << "web console at http://" << options.consoleListen.substr(0, options.consoleListen.rfind(':')) << ":"
              << consolePort << "/ (sign in with an identity's access key and secret)\n";
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

std::string readConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw model::ConfigError(path + ": cannot be read");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The running config: re-read from the file (SIGHUP, POST /reload) or, on a data-plane host, taken from the API
// servers' config stream; handed to the API and the data plane, and from an API server to the stream. Open
// connections are kept. What would change existing resources' ARNs (region, account, partition) needs a restart.
// Each method returns an empty string on success, else why the old config stays.
class ConfigReloader {
 public:
  // `snapshots` is null without a data plane or DNS role; `adopted` (may be empty) hears each config taken.
  ConfigReloader(std::string file, std::atomic<model::ConfigPtr>& current, compile::SnapshotBuilder* snapshots,
                 std::function<void(const std::string& text)> adopted)
      : file_(std::move(file)), current_(current), snapshots_(snapshots), adopted_(std::move(adopted)) {}

  std::string reload() {
    if (streamed_) return "this data-plane host takes its config from the control plane (docs/fleet.md)";
    if (file_.empty()) return "trellisd runs without --config: nothing to reload";
    try {
      return adopt(readConfigFile(file_), file_);
    } catch (const std::exception& e) {
      return e.what();
    }
  }

  // The API servers' config file, from the stream: from now on this host no longer reads its own.
  std::string adoptStreamed(const std::string& text) {
    std::string problem = adopt(text, "the control plane's config");
    if (problem.empty()) streamed_ = true;
    return problem;
  }
  void markStreamed() { streamed_ = true; }

 private:
  std::string adopt(const std::string& text, const std::string& source) {
    std::lock_guard lock(mutex_);
    model::ConfigPtr fresh;
    try {
      fresh = std::make_shared<const model::Config>(model::parseConfig(text, source));
      checkIdentityPolicies(*fresh, source);
    } catch (const std::exception& e) {
      return e.what();
    }
    auto old = current_.load();
    if (fresh->region != old->region || fresh->accountId != old->accountId || fresh->partition != old->partition)
      return "region, accountId and partition cannot change without a restart";
    current_.store(fresh);
    if (snapshots_) snapshots_->setConfig(*fresh);
    if (adopted_) adopted_(text);
    logInfo("config taken from ", source, ": ", fresh->identities.size(), " identities, ", fresh->vpcs.size(), " VPCs");
    return "";
  }

  std::mutex mutex_;
  std::string file_;
  std::atomic<model::ConfigPtr>& current_;
  compile::SnapshotBuilder* snapshots_;
  std::function<void(const std::string& text)> adopted_;
  std::atomic<bool> streamed_{false};
};

// Where a data-plane host keeps the last config the control plane sent: it starts from it, as from its replica.
std::filesystem::path streamedConfigPath(const std::string& dataDir) {
  return std::filesystem::path(dataDir) / "control-plane-config.yaml";
}

// Replaces the file whole (a crash leaves the old one or the new one, never half of one); owner-only: it holds
// identities' secret keys.
void saveStreamedConfig(const std::string& dataDir, const std::string& text) {
  auto path = streamedConfigPath(dataDir);
  auto temporary = path;
  temporary += ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    std::filesystem::permissions(temporary, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    out << text;
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + temporary.string());
  }
  std::filesystem::rename(temporary, path);
}

// What the admin port reports on; each part is null when this process does not run its role.
struct AdminParts {
  const compile::SnapshotBuilder* snapshots = nullptr;
  const proxy::DataPlane* dataPlane = nullptr;
  const fleet::ConfigFeed* feed = nullptr;
  const fleet::Follower* follower = nullptr;
  store::Store* records = nullptr;  // the API's store, or a data-plane host's replica
};

// The admin port: readiness, Prometheus metrics, the data plane's listener ports, the proxies following this API
// server, the digest of the records it routes by, config reload.
HttpResponse adminResponse(const HttpRequest& request, const std::atomic<bool>& ready, const AdminParts& parts,
                           ConfigReloader& reloader) {
  const HeaderList text = {{"content-type", "text/plain; charset=utf-8"}};
  if (request.path == "/reload") {
    if (request.method != "POST") return HttpResponse{405, text, "use POST\n"};
    std::string problem = reloader.reload();
    return problem.empty() ? HttpResponse{200, text, "reloaded\n"} : HttpResponse{400, text, problem + "\n"};
  }
  if (request.path == "/ready")
    return ready ? HttpResponse{200, text, "ready\n"} : HttpResponse{503, text, "starting\n"};
  if (request.path == "/metrics") {
    std::string metrics;
    if (parts.snapshots) metrics += parts.snapshots->renderMetrics();
    if (parts.dataPlane) metrics += parts.dataPlane->renderMetrics();
    if (parts.feed) metrics += parts.feed->renderMetrics();
    if (parts.follower) metrics += parts.follower->renderMetrics();
    return HttpResponse{200, {{"content-type", "text/plain; version=0.0.4"}}, metrics};
  }
  if (request.path == "/ca.pem") {
    auto pem = parts.dataPlane ? parts.dataPlane->rootCertificatePem() : "";
    return pem.empty() ? HttpResponse{503, text, "HTTPS is not available\n"}
                       : HttpResponse{200, {{"content-type", "application/x-pem-file"}}, pem};
  }
  if (request.path == "/listeners" && parts.dataPlane) {
    auto ports = nlohmann::json::array();
    for (const auto& status : parts.dataPlane->listenerStatus())
      ports.push_back({{"port", status.port}, {"bound", status.bound}, {"error", status.error}});
    return HttpResponse{200, {{"content-type", "application/json"}}, ports.dump() + "\n"};
  }
  // What this host's snapshots compile from, as one hash: equal on every host that holds the same records.
  if (request.path == "/fleet/digest" && parts.records) {
    auto all = fleet::readChangeBatch(*parts.records, 0);
    return HttpResponse{200, {{"content-type", "application/json"}},
                        nlohmann::json{{"revision", all.revision}, {"digest", fleet::contentDigest(all.records)}}.dump() +
                            "\n"};
  }
  if (request.path == "/proxies" && parts.feed)
    return HttpResponse{200, {{"content-type", "application/json"}}, parts.feed->proxiesJson() + "\n"};
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

struct Roles {
  bool api = false, proxy = false, dns = false;
};

// --roles and the flags that go with them. Throws std::invalid_argument naming the problem.
Roles parseRoles(const DaemonOptions& options) {
  Roles roles;
  for (const auto& role : split(options.roles, ',')) {
    if (role == "api") roles.api = true;
    else if (role == "proxy") roles.proxy = true;
    else if (role == "dns") roles.dns = true;
    else throw std::invalid_argument("--roles: unknown role '" + std::string(role) + "' (api, proxy, dns)");
  }
  if (!roles.api && !roles.proxy && !roles.dns) throw std::invalid_argument("--roles names no role");
  if (roles.api && !options.controlPlane.empty())
    throw std::invalid_argument("--control-plane is for data-plane hosts: an API server reads its own store");
  if (!roles.api && options.controlPlane.empty())
    throw std::invalid_argument("without the api role, --control-plane must name the API servers to follow");
  if (!roles.api && !options.store.empty())
    throw std::invalid_argument("--store is for API servers: a data-plane host keeps a replica in --data-dir");
  if (!roles.dns && !options.dnsListen.empty()) throw std::invalid_argument("--dns-listen needs the dns role");
  return roles;
}

// A data-plane host signs its polls with the standard AWS environment variables.
fleet::FollowerOptions followerOptions(const DaemonOptions& options, const model::Config& config) {
  fleet::FollowerOptions follow;
  for (const auto& url : split(options.controlPlane, ',')) follow.controlPlane.emplace_back(url);
  follow.caFile = options.controlPlaneCa;
  const char* key = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  const char* token = std::getenv("AWS_SESSION_TOKEN");
  if (!key || !*key || !secret || !*secret)
    throw std::invalid_argument("a data-plane host signs its requests to --control-plane: set AWS_ACCESS_KEY_ID and "
                                "AWS_SECRET_ACCESS_KEY to an identity allowed " +
                                std::string(fleet::kReceiveAction));
  follow.credentials = {key, secret, token ? token : ""};
  follow.region = config.region;
  follow.proxyId = options.proxyId;
  if (follow.proxyId.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    follow.proxyId = host;
  }
  return follow;
}

}  // namespace

int runDaemon(const DaemonOptions& options, const sigset_t& signals) {
  LogLevel level;
  parseLogLevel(options.logLevel, level);
  setLogLevel(level);

  model::Config config;
  std::string configText;  // the file's text, which an API server streams to data-plane hosts
  bool devIdentity = options.configFile.empty();
  bool streamedConfig = false;
  Roles roles;
  try {
    roles = parseRoles(options);
    std::string source = options.configFile;
    // A data-plane host starts from the config the control plane last sent, when it has one, over its own file.
    if (!roles.api && std::filesystem::exists(streamedConfigPath(options.dataDir))) {
      source = streamedConfigPath(options.dataDir).string();
      streamedConfig = true;
      devIdentity = false;
    }
    if (!source.empty()) {
      configText = readConfigFile(source);
      config = model::parseConfig(configText, source);
      checkIdentityPolicies(config, source);
    }
  } catch (const std::exception& e) {
    std::cerr << "trellisd: " << e.what() << "\n";
    return 2;
  }

  // An API server opens the store; a data-plane host its replica of the API servers' records.
  std::unique_ptr<store::Store> store;
  std::unique_ptr<store::SqliteStore> replica;
  std::optional<fleet::FollowerOptions> follow;
  try {
    if (roles.api) {
      store = openStore(options);
    } else {
      follow = followerOptions(options, config);
      if (streamedConfig) follow->configDigest = fleet::configDigest(configText);
      replica = std::make_unique<store::SqliteStore>((std::filesystem::path(options.dataDir) / "replica").string(),
                                                     store::kDefaultKeptRevisions, store::Durability::Replica);
    }
  } catch (const std::invalid_argument& e) {
    std::cerr << "trellisd: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "trellisd: " << e.what() << "\n";
    return 1;
  }
  store::Store& records = roles.api ? *store : *replica;
  if (devIdentity) {
    config.identities.push_back(developmentIdentity(options.dataDir, config.accountId));
    // One client VPC holding every loopback address, so local clients can reach what is associated with it.
    config.vpcs.push_back({kDevelopmentVpc, {"127.0.0.0/8", "::1/128"}});
  }
  std::atomic<model::ConfigPtr> currentConfig{std::make_shared<const model::Config>(config)};

  // Config changes flow store (or replica) → snapshot builder → data plane; nothing on the request path reads the
  // store. Components are declared in the order they may be torn down in reverse: watchers before what they call.
  std::optional<compile::SnapshotBuilder> snapshots;
  if (roles.proxy || roles.dns) {
    snapshots.emplace(records, config);
    records.watch([&snapshots](int64_t revision) { snapshots->notifyCommitted(revision); });
  }
  std::optional<fleet::ConfigFeed> feed;
  if (roles.api) {
    feed.emplace(*store, [&currentConfig] { return currentConfig.load(); });
    if (!options.configFile.empty()) feed->setConfigText(configText);
    store->watch([&feed](int64_t revision) { feed->notifyCommitted(revision); });
  }
  // On etcd, the store's watch thread runs watchers whenever any trellisd writes: close the store (joining that
  // thread) before `snapshots` and `feed` go, on every way out of here.
  struct CloseStore {
    std::unique_ptr<store::Store>& store;
    ~CloseStore() { store.reset(); }
  } closeStore{store};
  std::optional<proxy::DataPlane> dataPlane;
  if (roles.proxy)
    dataPlane.emplace(
        proxy::DataPlaneOptions{.bindAddress = options.proxyBind, .workers = options.workers, .dataDir = options.dataDir},
        *snapshots);
  // A reloaded config goes to the data-plane hosts (API server), or to disk for the next start (host).
  ConfigReloader reloader(options.configFile, currentConfig, snapshots ? &*snapshots : nullptr,
                          [&feed, &options](const std::string& text) {
                            if (feed) return feed->setConfigText(text);
                            try {
                              saveStreamedConfig(options.dataDir, text);
                            } catch (const std::exception& e) {
                              logError("fleet: the control plane's config is running but not saved: ", e.what());
                            }
                          });
  if (streamedConfig) reloader.markStreamed();
  // The follower commits into the replica and takes configs from its thread: it goes before what it calls.
  std::optional<fleet::Follower> follower;
  if (replica) {
    follow->onConfig = [&reloader](const std::string& text) {
      std::string problem = reloader.adoptStreamed(text);
      if (!problem.empty()) logError("fleet: refused the control plane's config, keeping the running one: ", problem);
    };
    if (dataPlane)
      follow->healthReport = [&dataPlane] {
        std::vector<fleet::TargetReport> out;
        for (auto& t : dataPlane->targetHealth().checked())
          out.push_back({std::move(t.targetGroupId), std::move(t.targetId), t.port, std::move(t.health.status),
                         std::move(t.health.reasonCode)});
        return out;
      };
    follower.emplace(*replica, *follow);
  }
  std::optional<api::Api> api;
  std::optional<api::Api> consoleApi;  // the console's calls, on its own thread: Api serves one thread at a time
  if (roles.api) {
    try {
      api::buildIndexesIfMissing(*store);  // a store of an older trellisd
    } catch (const std::exception& e) {  // on etcd: quorum lost
      std::cerr << "trellisd: cannot build the API's indexes: " << e.what() << "\n";
      return 1;
    }
    api.emplace(*store, [&currentConfig] { return currentConfig.load(); }, makeAuthenticator());
    if (!options.consoleListen.empty())
      consoleApi.emplace(
          *store, [&currentConfig] { return currentConfig.load(); }, makeAuthenticator());
    // ListTargets: this node's prober when it carries traffic, else what the data-plane hosts report.
    for (auto* served : {&api, &consoleApi}) {
      if (!*served) continue;
      if (dataPlane)
        (*served)->resources().targetStatus = [&dataPlane](const std::string& tg, const std::string& target, int port) {
          auto health = dataPlane->targetHealth().status(tg, target, static_cast<uint16_t>(port));
          return std::make_pair(health.status, health.reasonCode);
        };
      else
        (*served)->resources().targetStatus = [&feed](const std::string& tg, const std::string& target, int port) {
          return feed->fleetHealth(tg, target, static_cast<uint16_t>(port));
        };
    }
  }
  // The API port also carries the config stream to data-plane hosts (a long poll: answered later).
  HttpServer apiServer("api", AsyncHttpHandler([&api, &feed](const HttpRequest& r, HttpReply reply) {
                         if (startsWith(r.path, "/_trellis/")) return feed->handle(r, std::move(reply));
                         reply(api->handle(r));
                       }));
  std::atomic<bool> ready{false};
  AdminParts parts{snapshots ? &*snapshots : nullptr, dataPlane ? &*dataPlane : nullptr, feed ? &*feed : nullptr,
                   follower ? &*follower : nullptr, &records};
  HttpServer adminServer("admin", [&](const HttpRequest& r) { return adminResponse(r, ready, parts, reloader); });
  // The console reads this node's own data-plane metrics and access logs (a fleet's other hosts: not yet).
  std::optional<console::Console> webConsole;
  if (consoleApi) {
    console::ConsoleSources sources;
    if (dataPlane) {
      sources.metrics = [&dataPlane] { return dataPlane->renderMetrics(); };
      sources.accessLogs = [](uint64_t after) {
        std::vector<console::ConsoleSources::LogLine> out;
        for (auto& entry : proxy::recentAccessLogs(after)) out.push_back({entry.sequence, std::move(entry.line)});
        return out;
      };
    }
    webConsole.emplace(
        *consoleApi, [&currentConfig] { return currentConfig.load(); }, std::move(sources));
  }
  HttpServer consoleServer("console", [&webConsole](const HttpRequest& r) { return webConsole->handle(r); });
  std::unique_ptr<dns::DnsServer> dnsServer;
  try {
    // A data-plane host compiles its replica first and serves from it at once; the follower catches up after.
    if (snapshots) snapshots->start();
    if (dataPlane) dataPlane->start();
    if (roles.dns && !options.dnsListen.empty()) {
      dns::DnsOptions dnsOptions{options.dnsListen, config.effectiveServiceDomain(),
                                 config.dns.answerAddresses.empty() ? std::vector<std::string>{options.proxyBind}
                                                                    : config.dns.answerAddresses,
                                 config.dns.upstreams, static_cast<uint32_t>(config.dns.ttl)};
      dnsServer = std::make_unique<dns::DnsServer>(dnsOptions, *snapshots);
      dnsServer->start();
    }
    if (follower) follower->start();
    if (feed) {
      feed->start();
      apiServer.start(options.apiListen);
    }
    if (webConsole) {
      webConsole->start();
      consoleServer.start(options.consoleListen);
    }
    adminServer.start(options.adminListen);
  } catch (const std::exception& e) {
    std::cerr << "trellisd: " << e.what() << "\n";
    return 1;
  }
  ready = true;
  if (roles.api) {
    printWelcome(options, config, devIdentity, apiServer.port(), adminServer.port(), dnsServer ? dnsServer->port() : 0,
                 webConsole ? consoleServer.port() : 0);
  } else {
    std::cout << "trellisd is a data-plane host following " << options.controlPlane << " (replica at revision "
              << replica->revision() << ")\nadmin endpoint (/ready, /metrics) at http://"
              << options.adminListen.substr(0, options.adminListen.rfind(':')) << ":" << adminServer.port() << "\n";
    if (dnsServer) std::cout << "DNS service directory on port " << dnsServer->port() << "\n";
    std::cout << std::flush;
  }
  logInfo("ready: roles ", options.roles, roles.api ? ", api " + options.apiListen : std::string(), ", admin ",
          options.adminListen, " (port ", adminServer.port(), "), data dir ", options.dataDir);

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
  if (webConsole) {
    consoleServer.stop();
    webConsole->stop();
  }
  if (feed) feed->stop();  // answers the proxies' polls, which the API server's stop would otherwise wait out
  apiServer.stop();
  if (follower) follower->stop();
  if (dnsServer) dnsServer->stop();
  if (dataPlane) dataPlane->stop();
  if (snapshots) snapshots->stop();
  adminServer.stop();
  logInfo("stopped");
  return 0;
}

}  // namespace trellis
