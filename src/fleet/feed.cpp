#include "fleet/feed.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "auth/policy_api.h"
#include "auth/sigv4.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/thread_name.h"
#include "common/time.h"
#include "compile/compiler.h"

namespace trellis::fleet {

namespace {

constexpr int kDefaultWaitSeconds = 30;
constexpr int kMaxWaitSeconds = 60;
// Past this many waiting proxies an API server asks the rest to go elsewhere, rather than hold sockets forever.
constexpr size_t kMaxWaiters = 20000;
constexpr size_t kMaxRememberedProxies = 20000;

// An error in the shape AWS's REST services answer with.
HttpResponse error(int status, const std::string& code, const std::string& message) {
  HttpResponse response{status, {{"content-type", "application/json"}, {"x-amzn-errortype", code}},
                        nlohmann::json{{"message", message}}.dump()};
  if (status == 503) response.headers.push_back({"retry-after", "1"});
  return response;
}

HttpResponse batchResponse(std::string body) {
  return HttpResponse{200, {{"content-type", "application/json"}}, std::move(body)};
}

std::optional<int64_t> integer(const std::string& text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

}  // namespace

ChangeBatch readChangeBatch(store::Store& store, int64_t since) {
  ChangeBatch batch;
  if (since > 0) {
    auto changes = store.changesSince(since);
    if (!changes.compacted) {
      batch.revision = changes.revision;
      for (auto& key : changes.deleted)
        if (compile::isCompiledKind(key.kind)) batch.deleted.push_back(std::move(key));
      for (auto& record : changes.records)
        if (compile::isCompiledKind(record.kind)) batch.records.push_back(std::move(record));
      return batch;
    }
  }
  auto contents = store.readAll();
  batch.full = true;
  batch.revision = contents.revision;
  for (auto& record : contents.records)
    if (compile::isCompiledKind(record.kind)) batch.records.push_back(std::move(record));
  return batch;
}

ConfigFeed::ConfigFeed(store::Store& store, std::function<model::ConfigPtr()> config,
                       std::chrono::seconds healthLease)
    : store_(store), config_(std::move(config)), healthLease_(healthLease) {}

ConfigFeed::~ConfigFeed() { stop(); }

void ConfigFeed::start() {
  int64_t revision = store_.revision();
  {
    std::lock_guard lock(mutex_);  // a commit may be reporting already
    revision_ = std::max(revision_, revision);
  }
  thread_ = std::thread([this] {
    nameThisThread("config-feed");
    run();
  });
}

void ConfigFeed::stop() {
  std::vector<Waiter> left;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard lock(mutex_);
    left.swap(waiters_);
  }
  for (auto& waiter : left) waiter.reply(error(503, "ServiceUnavailableException", "this API server is stopping"));
}

void ConfigFeed::notifyCommitted(int64_t revision) {
  {
    std::lock_guard lock(mutex_);
    if (revision <= revision_) return;
    revision_ = revision;
  }
  wake_.notify_all();
}

void ConfigFeed::setConfigText(std::string text) {
  {
    std::lock_guard lock(mutex_);
    configDigest_ = configDigest(text);
    configText_ = std::move(text);
  }
  wake_.notify_all();
}

bool ConfigFeed::needsConfig(const Waiter& waiter) const {
  return configText_ && waiter.configDigest != configDigest_;
}

void ConfigFeed::handle(const HttpRequest& request, HttpReply reply) {
  bool changes = request.path == kChangesPath;
  bool health = request.path == kHealthPath;
  if (!changes && !health && request.path != kProxiesPath)
    return reply(error(404, "ResourceNotFoundException", "no such path"));
  if (request.method != (health ? "POST" : "GET"))
    return reply(error(405, "ValidationException", std::string("use ") + (health ? "POST" : "GET")));

  auto config = config_();
  auth::SigV4Request input{request.method, request.path, request.query, request.headers, request.body};
  auto lookup = [&config](std::string_view key) { return config->identityByAccessKey(std::string(key)); };
  auto now = systemNow();
  auto verified = auth::verifySigV4(input, kSigningService, config->region, lookup, now);
  if (!verified.ok()) return reply(error(verified.status, verified.errorCode, verified.message));
  std::string resource = "arn:" + config->partition + ":trellis:" + config->region + ":" + config->accountId +
                         ":configuration";
  bool host = changes || health;  // a host's calls: it reports with the identity it follows with
  const std::string action = host ? kReceiveAction : kListProxiesAction;
  // The stream carries every service's routing and policies and the identities' keys: only an identity granted it
  // explicitly may follow. Listing proxies is like any API call: an identity without a policy may.
  auto allowed = host && verified.identity->policy.empty()
                     ? auth::ApiAuthorization{false, "User: " + verified.identity->arn +
                                                         " is not authorized to perform: " + action +
                                                         " on resource: " + resource +
                                                         " because no identity-based policy grants it"}
                     : auth::authorizeAction(*verified.identity, action, resource, {}, now);
  if (!allowed.allowed) return reply(error(403, "AccessDeniedException", allowed.message));
  if (!host) return reply(HttpResponse{200, {{"content-type", "application/json"}}, proxiesJson()});
  const std::string* id = request.header(kProxyIdHeader);
  std::string proxy = id && !id->empty() ? id->substr(0, 256) : request.peerAddress;
  if (health) return reply(takeHealthReport(proxy, request.body));

  auto query = parseQuery(request.query);
  std::optional<int64_t> since;
  int wait = kDefaultWaitSeconds;
  std::string heldConfig;
  for (const auto& [name, value] : query ? *query : std::vector<std::pair<std::string, std::string>>{}) {
    if (name == "since") {
      since = integer(value);
    } else if (name == "wait") {
      auto seconds = integer(value);
      if (!seconds || *seconds > kMaxWaitSeconds)
        return reply(error(400, "ValidationException", "wait must be 0 to 60 seconds"));
      wait = static_cast<int>(*seconds);
    } else if (name == "config") {
      heldConfig = value.substr(0, 64);
    }
  }
  if (!since) return reply(error(400, "ValidationException", "since must be a revision (a non-negative integer)"));

  {
    std::lock_guard lock(mutex_);
    if (stopping_) return reply(error(503, "ServiceUnavailableException", "this API server is stopping"));
    if (waiters_.size() >= kMaxWaiters)
      return reply(error(503, "ServiceUnavailableException", "this API server follows too many proxies"));
    if (proxies_.size() >= kMaxRememberedProxies && !proxies_.count(proxy)) proxies_.clear();
    proxies_[proxy] = {proxy, request.peerAddress, *since, std::chrono::system_clock::now()};
    waiters_.push_back(
        {*since, heldConfig, std::chrono::steady_clock::now() + std::chrono::seconds(wait), std::move(reply)});
  }
  wake_.notify_all();
}

void ConfigFeed::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    auto next = now + std::chrono::hours(1);
    std::vector<Waiter> ready, expired;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->since < revision_ || needsConfig(*it)) {
        ready.push_back(std::move(*it));
      } else if (it->deadline <= now) {
        expired.push_back(std::move(*it));
      } else {
        next = std::min(next, it->deadline);
        ++it;
        continue;
      }
      it = waiters_.erase(it);
    }
    if (ready.empty() && expired.empty()) {
      wake_.wait_until(lock, next);
      continue;
    }
    lock.unlock();
    answer(std::move(ready), std::move(expired));
    lock.lock();
  }
}

// Outside the lock: reading the store may take a while (etcd), and proxies keep arriving meanwhile.
void ConfigFeed::answer(std::vector<Waiter> ready, std::vector<Waiter> expired) {
  std::optional<std::string> config;
  std::vector<bool> sendConfig;
  {
    std::lock_guard lock(mutex_);
    config = configText_;
    for (const auto& waiter : ready) sendConfig.push_back(needsConfig(waiter));
  }
  // Proxies at one revision (and needing the config or not) share one read and one encoding.
  std::map<std::pair<int64_t, bool>, HttpResponse> answers;
  for (size_t i = 0; i < ready.size(); ++i) {
    auto [it, fresh] = answers.try_emplace({ready[i].since, sendConfig[i]});
    if (fresh) {
      try {
        auto batch = readChangeBatch(store_, ready[i].since);
        if (sendConfig[i]) batch.config = config;
        {
          std::lock_guard lock(mutex_);
          ++batches_[batch.full ? 1 : 0];
        }
        it->second = batchResponse(encodeChangeBatch(batch));
      } catch (const std::exception& e) {  // on etcd: no quorum; the proxy keeps its replica and asks again
        logWarn("config feed: cannot read the changes after revision ", ready[i].since, ": ", e.what());
        it->second = error(503, "ServiceUnavailableException", "the store cannot be read: try again");
      }
    }
    ready[i].reply(it->second);
  }
  for (auto& waiter : expired) waiter.reply(batchResponse(encodeChangeBatch(ChangeBatch{waiter.since, false, {}, {}, {}})));
}

HttpResponse ConfigFeed::takeHealthReport(const std::string& proxy, const std::string& body) {
  std::string problem;
  auto targets = decodeHealthReport(body, problem);
  if (!targets) return error(400, "ValidationException", problem);
  HealthReport report{std::chrono::steady_clock::now(), {}};
  for (auto& t : *targets)
    report.targets[{std::move(t.targetGroupId), std::move(t.targetId), t.port}] = {std::move(t.status),
                                                                                   std::move(t.reasonCode)};
  std::lock_guard lock(mutex_);
  if (health_.size() >= kMaxRememberedProxies && !health_.count(proxy)) {
    auto now = std::chrono::steady_clock::now();  // make room: drop the reports whose lease ran out
    std::erase_if(health_, [&](const auto& entry) { return now - entry.second.at > healthLease_; });
    if (health_.size() >= kMaxRememberedProxies) return error(503, "ServiceUnavailableException", "too many hosts");
  }
  health_[proxy] = std::move(report);
  return HttpResponse{200, {{"content-type", "application/json"}}, "{}"};
}

std::pair<std::string, std::string> ConfigFeed::fleetHealth(const std::string& targetGroupId,
                                                            const std::string& targetId, uint16_t port) const {
  TargetKey key{targetGroupId, targetId, port};
  auto now = std::chrono::steady_clock::now();
  int checkers = 0, healthy = 0, unhealthy = 0;
  std::map<std::string, int> reasons;  // of the failing verdicts: the most common one is reported
  std::lock_guard lock(mutex_);
  for (const auto& [proxy, report] : health_) {
    if (now - report.at > healthLease_) continue;  // a host that went away stops counting
    auto it = report.targets.find(key);
    if (it == report.targets.end()) continue;
    ++checkers;
    if (it->second.first == "HEALTHY") ++healthy;
    if (it->second.first == "UNHEALTHY") ++unhealthy, ++reasons[it->second.second];
  }
  if (checkers == 0) return {};
  if (2 * unhealthy > checkers)
    return {"UNHEALTHY", std::max_element(reasons.begin(), reasons.end(), [](const auto& a, const auto& b) {
                           return a.second < b.second;
                         })->first};
  if (healthy > 0) return {"HEALTHY", ""};
  return {"INITIAL", "Elb.RegistrationInProgress"};
}

std::string ConfigFeed::proxiesJson() const {
  std::vector<ProxyStatus> list;
  int64_t revision;
  {
    std::lock_guard lock(mutex_);
    revision = revision_;
    for (const auto& [key, status] : proxies_) list.push_back(status);
  }
  std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.lastSeen > b.lastSeen; });
  auto items = nlohmann::json::array();
  for (const auto& proxy : list)
    items.push_back({{"id", proxy.id},
                     {"address", proxy.address},
                     {"revision", proxy.revision},
                     {"lagRevisions", std::max<int64_t>(0, revision - proxy.revision)},
                     {"lastSeen", formatRfc3339(proxy.lastSeen)}});
  return nlohmann::json{{"revision", revision}, {"items", items}}.dump();
}

int64_t ConfigFeed::revision() const {
  std::lock_guard lock(mutex_);
  return revision_;
}

std::string ConfigFeed::renderMetrics() const {
  std::lock_guard lock(mutex_);
  return "# HELP trellis_fleet_revision The store revision this API server has seen committed.\n"
         "# TYPE trellis_fleet_revision gauge\n"
         "trellis_fleet_revision " +
         std::to_string(revision_) +
         "\n# HELP trellis_fleet_waiting_proxies Proxies waiting on this API server for the next change.\n"
         "# TYPE trellis_fleet_waiting_proxies gauge\n"
         "trellis_fleet_waiting_proxies " +
         std::to_string(waiters_.size()) +
         "\n"
         "# HELP trellis_fleet_batches_total Change batches read from the store for proxies (full: whole copies).\n"
         "# TYPE trellis_fleet_batches_total counter\n"
         "trellis_fleet_batches_total{full=\"false\"} " +
         std::to_string(batches_[0]) + "\ntrellis_fleet_batches_total{full=\"true\"} " + std::to_string(batches_[1]) +
         "\n";
}

}  // namespace trellis::fleet
