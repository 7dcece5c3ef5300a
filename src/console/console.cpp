#include "console/console.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "auth/policy_api.h"
#include "auth/sigv4.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/time.h"
#include "model/ids.h"

namespace trellis::console {

using nlohmann::json;

namespace {

constexpr std::string_view kLatticePrefix = "/console/lattice/";
// The host the console's own API calls are signed for; the API checks the signature, not the name.
constexpr std::string_view kSignedHost = "console.trellis.internal";

// The write operations the console offers a button for; the page shows a button only when the identity's
// policy allows it (the API still decides each call).
constexpr const char* kActions[] = {"UpdateRule",           "UpdateListener", "RegisterTargets",  "DeregisterTargets",
                                    "CreateServiceNetwork", "CreateService",  "CreateTargetGroup"};

HeaderList securityHeaders(std::string contentType) {
  return {{"content-type", std::move(contentType)},
          {"cache-control", "no-store"},
          {"x-content-type-options", "nosniff"},
          {"x-frame-options", "DENY"},
          {"referrer-policy", "no-referrer"},
          {"content-security-policy",
           "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
           "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"}};
}

HttpResponse jsonResponse(int status, const json& body) {
  return HttpResponse{status, securityHeaders("application/json"), body.dump() + "\n"};
}

HttpResponse problem(int status, const std::string& type, const std::string& message) {
  return jsonResponse(status, {{"__type", type}, {"message", message}});
}

bool changesSomething(const std::string& method) { return method != "GET" && method != "HEAD"; }

// A request from another site: its Origin (browsers send it on every POST, PUT, PATCH, DELETE) is not the
// console's own. Without an Origin (not a browser, or a same-origin GET) the CSRF token still has to match.
bool crossOrigin(const HttpRequest& request) {
  const std::string* origin = request.header("origin");
  const std::string* host = request.header("host");
  if (!origin) return false;
  if (!host) return true;
  return *origin != "http://" + *host && *origin != "https://" + *host;
}

std::string queryParam(const HttpRequest& request, std::string_view name) {
  auto pairs = parseQuery(request.query);
  if (!pairs) return "";
  for (const auto& [k, v] : *pairs)
    if (k == name) return v;
  return "";
}

json parseBody(const HttpResponse& response) {
  auto parsed = json::parse(response.body, nullptr, false);
  return parsed.is_discarded() ? json::object() : parsed;
}

}  // namespace

struct Console::Caller {
  const model::Identity* identity = nullptr;
  Session session;
  std::string peer;
};

Console::Console(api::Api& api, api::ConfigSource config, ConsoleSources sources, ConsoleOptions options)
    : api_(api),
      config_(std::move(config)),
      sources_(std::move(sources)),
      options_(options),
      sessions_(options.sessionLifetime),
      metrics_(sources_.metrics, options.metrics) {}

Console::~Console() { stop(); }

void Console::start() { metrics_.start(); }
void Console::stop() { metrics_.stop(); }

HttpResponse Console::handle(const HttpRequest& request) {
  try {
    return route(request);
  } catch (const std::exception& e) {
    logError("console: ", request.method, " ", request.path, ": ", e.what());
    return problem(500, "InternalServerException", "the console failed to answer");
  }
}

HttpResponse Console::route(const HttpRequest& request) {
  const std::string& path = request.path;
  if (!startsWith(path, "/console/")) {
    if (request.method != "GET" && request.method != "HEAD") return problem(405, "MethodNotAllowed", "use GET");
    std::string file = path == "/" ? "/index.html" : path;
    for (const auto& asset : consoleAssets())
      if (file == asset.path) {
        auto headers = securityHeaders(asset.contentType);
        headers[1].second = "no-cache";  // revalidate: a new trellisd may serve a new front end
        return HttpResponse{200, std::move(headers),
                            std::string(reinterpret_cast<const char*>(asset.data), asset.size)};
      }
    return HttpResponse{404, securityHeaders("text/plain; charset=utf-8"), "not found\n"};
  }
  if (changesSomething(request.method) && crossOrigin(request))
    return problem(403, "CsrfException", "cross-origin requests are refused");
  if (path == "/console/api/login") {
    if (request.method != "POST") return problem(405, "MethodNotAllowed", "use POST");
    return signIn(request);
  }

  // Everything else needs a live session.
  auto cookie = findCookie(request.headers, kSessionCookie);
  Caller caller;
  caller.peer = request.peerAddress;
  auto config = config_();
  if (cookie) caller.identity = sessions_.resolve(*config, *cookie, &caller.session);
  if (!caller.identity) return problem(401, "UnauthenticatedException", "sign in first");
  if (changesSomething(request.method) && !csrfTokenMatches(caller.session, request.header(kCsrfHeader)))
    return problem(403, "CsrfException", "missing or wrong " + std::string(kCsrfHeader) + " header");

  if (path == "/console/api/logout") {
    if (request.method != "POST") return problem(405, "MethodNotAllowed", "use POST");
    sessions_.signOut(caller.session.id);
    auto response = jsonResponse(200, {{"signedOut", true}});
    response.headers.emplace_back("set-cookie", expiredSessionCookie(options_.secureCookie));
    return response;
  }
  if (path == "/console/api/session") return sessionInfo(caller, nullptr);
  if (path == "/console/api/topology") return topology(caller);
  if (path == "/console/api/metrics") {
    json all = metrics_.summary();
    json summary = json::object();
    for (auto& [key, value] : all.items())
      if (mayRead(caller, key)) summary[key] = std::move(value);
    return jsonResponse(200, {{"intervalMs", metrics_.interval().count()},
                              {"hasDataPlane", static_cast<bool>(sources_.metrics)},
                              {"summary", summary}});
  }
  if (path == "/console/api/series") {
    std::string key = queryParam(request, "key");
    if (!mayRead(caller, key)) return problem(403, "AccessDeniedException", "your identity may not read " + key);
    return jsonResponse(200, metrics_.series(key));
  }
  if (path == "/console/api/logs") return logs(caller, request);
  if (startsWith(path, kLatticePrefix)) return passThrough(caller, request);
  return problem(404, "NotFound", "no such console endpoint");
}

// Traffic of a service or target group shows to identities that may Get it through the API.
bool Console::mayRead(const Caller& caller, const std::string& key) const {
  auto config = config_();
  model::ArnContext arns{config->partition, config->region, config->accountId};
  if (startsWith(key, "service/"))
    return auth::authorizeApiCall(*caller.identity, "GetService",
                                  model::arnFor(arns, model::Kind::Service, key.substr(8)))
        .allowed;
  if (startsWith(key, "targetgroup/"))
    return auth::authorizeApiCall(*caller.identity, "GetTargetGroup",
                                  model::arnFor(arns, model::Kind::TargetGroup, key.substr(12)))
        .allowed;
  return false;
}

HttpResponse Console::signIn(const HttpRequest& request) {
  // JSON only: a cross-site HTML form cannot send it without a CORS preflight, which this server never grants.
  const std::string* type = request.header("content-type");
  if (!type || !startsWith(toLower(*type), "application/json"))
    return problem(415, "UnsupportedMediaType", "send JSON: {\"accessKeyId\": ..., \"secretAccessKey\": ...}");
  auto body = json::parse(request.body, nullptr, false);
  if (!body.is_object() || !body.value("accessKeyId", json()).is_string() ||
      !body.value("secretAccessKey", json()).is_string())
    return problem(400, "ValidationException", "accessKeyId and secretAccessKey are required");
  if (int64_t wait = throttle_.retryAfter(request.peerAddress)) {
    auto response = problem(429, "TooManyRequestsException", "too many failed sign-ins: try again later");
    response.headers.emplace_back("retry-after", std::to_string(wait));
    return response;
  }
  auto config = config_();
  auto session =
      sessions_.signIn(*config, body["accessKeyId"].get<std::string>(), body["secretAccessKey"].get<std::string>());
  if (!session) {
    throttle_.failed(request.peerAddress);
    logInfo("console: refused a sign-in from ", request.peerAddress);
    return problem(401, "UnauthenticatedException", "unknown access key or wrong secret");
  }
  throttle_.succeeded(request.peerAddress);
  Caller caller{config->identityByAccessKey(session->accessKeyId), *session, request.peerAddress};
  std::string cookie = sessionCookie(*session, sessions_.lifetime(), options_.secureCookie);
  return sessionInfo(caller, &cookie);
}

HttpResponse Console::sessionInfo(const Caller& caller, const std::string* setCookie) {
  json can = json::object();
  for (const char* action : kActions) can[action] = auth::authorizeApiCall(*caller.identity, action, "*").allowed;
  auto config = config_();
  auto response = jsonResponse(200, {{"identity", caller.identity->arn},
                                     {"accessKeyId", caller.identity->accessKeyId},
                                     {"csrfToken", caller.session.csrf},
                                     {"region", config->region},
                                     {"accountId", config->accountId},
                                     {"can", can}});
  if (setCookie) response.headers.emplace_back("set-cookie", *setCookie);
  return response;
}

HttpResponse Console::callApi(const model::Identity& identity, const std::string& method, const std::string& path,
                              const std::string& query, const std::string& body, const std::string& peer) {
  HttpRequest request;
  request.method = method;
  request.path = path;
  request.query = query;
  request.target = query.empty() ? path : path + "?" + query;
  request.body = body;
  request.peerAddress = peer;
  if (!body.empty()) request.headers.emplace_back("content-type", "application/json");
  auto config = config_();
  auth::signRequest(method, kSignedHost, path, query, request.headers, body,
                    auth::Credentials{identity.accessKeyId, identity.secretAccessKey, ""}, config->region,
                    "vpc-lattice", systemNow());
  return api_.handle(request);
}

HttpResponse Console::passThrough(const Caller& caller, const HttpRequest& request) {
  std::string path = request.path.substr(kLatticePrefix.size() - 1);
  auto response = callApi(*caller.identity, request.method, path, request.query, request.body, caller.peer);
  // The API's own answer (status, error type, body), with the console's headers.
  HttpResponse out{response.status, securityHeaders("application/json"), response.body};
  for (const auto& [name, value] : response.headers)
    if (iequals(name, "x-amzn-errortype") || iequals(name, "x-amzn-requestid")) out.headers.emplace_back(name, value);
  return out;
}

HttpResponse Console::topology(const Caller& caller) {
  json denied = json::array();
  // Every page of a List call; a call the identity may not make is noted and yields nothing.
  auto list = [&](const std::string& method, const std::string& path, const std::string& query) {
    json items = json::array();
    std::string token;
    for (int page = 0; page < 1000; ++page) {
      std::string q = query;
      if (!token.empty()) q += (q.empty() ? "" : "&") + std::string("nextToken=") + percentEncode(token);
      auto response = callApi(*caller.identity, method, path, q, method == "POST" ? "{}" : "", caller.peer);
      json body = parseBody(response);
      if (response.status != 200) {
        denied.push_back({{"path", path}, {"status", response.status}, {"message", body.value("message", "")}});
        break;
      }
      for (auto& item : body.value("items", json::array())) items.push_back(std::move(item));
      if (!body.contains("nextToken") || !body["nextToken"].is_string()) break;
      token = body["nextToken"].get<std::string>();
    }
    return items;
  };
  auto get = [&](const std::string& path) {
    auto response = callApi(*caller.identity, "GET", path, "", "", caller.peer);
    if (response.status != 200) {
      denied.push_back(
          {{"path", path}, {"status", response.status}, {"message", parseBody(response).value("message", "")}});
      return json();
    }
    return parseBody(response);
  };

  json networks = list("GET", "/servicenetworks", "");
  json serviceAssociations = json::array(), vpcAssociations = json::array();
  for (const auto& network : networks) {
    std::string id = network.value("id", "");
    for (auto& a : list("GET", "/servicenetworkserviceassociations", "serviceNetworkIdentifier=" + percentEncode(id)))
      serviceAssociations.push_back(std::move(a));
    for (auto& a : list("GET", "/servicenetworkvpcassociations", "serviceNetworkIdentifier=" + percentEncode(id)))
      vpcAssociations.push_back(std::move(a));
  }
  json services = list("GET", "/services", "");
  json listeners = json::array();
  for (const auto& service : services) {
    std::string sid = service.value("id", "");
    for (const auto& summary : list("GET", "/services/" + percentEncode(sid) + "/listeners", "")) {
      std::string lid = summary.value("id", "");
      std::string base = "/services/" + percentEncode(sid) + "/listeners/" + percentEncode(lid);
      json listener = get(base);
      if (listener.is_null()) listener = summary;
      listener["serviceId"] = sid;
      json rules = json::array();
      for (const auto& rule : list("GET", base + "/rules", "")) {
        if (rule.value("isDefault", false)) continue;  // the listener's default action, shown with it
        json full = get(base + "/rules/" + percentEncode(rule.value("id", "")));
        rules.push_back(full.is_null() ? rule : full);
      }
      listener["rules"] = std::move(rules);
      listeners.push_back(std::move(listener));
    }
  }
  json groups = list("GET", "/targetgroups", "");
  for (auto& group : groups)
    group["targets"] = list("POST", "/targetgroups/" + percentEncode(group.value("id", "")) + "/listtargets", "");
  return jsonResponse(200, {{"serviceNetworks", networks},
                            {"serviceAssociations", serviceAssociations},
                            {"vpcAssociations", vpcAssociations},
                            {"services", services},
                            {"listeners", listeners},
                            {"targetGroups", groups},
                            {"denied", denied}});
}

HttpResponse Console::logs(const Caller& caller, const HttpRequest& request) {
  uint64_t after = std::strtoull(queryParam(request, "after").c_str(), nullptr, 10);
  // A page that starts gets the newest entries only; later polls get what came since.
  size_t limit = std::clamp<size_t>(std::strtoull(queryParam(request, "limit").c_str(), nullptr, 10), 1, 1000);
  if (queryParam(request, "limit").empty()) limit = 200;
  std::vector<ConsoleSources::LogLine> lines;
  if (sources_.accessLogs) lines = sources_.accessLogs(after);
  uint64_t next = lines.empty() ? after : lines.back().sequence;
  if (lines.size() > limit) lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(limit));
  json entries = json::array();
  std::map<std::string, bool> mayReadService;  // one policy evaluation per service, not per line
  for (auto& [sequence, line] : lines) {
    auto entry = json::parse(line, nullptr, false);
    if (entry.is_discarded()) continue;
    // An entry shows only to identities that may read its service through the API.
    std::string service = entry.value("serviceArn", "");
    auto known = mayReadService.find(service);
    if (known == mayReadService.end())
      known = mayReadService.emplace(service, auth::authorizeApiCall(*caller.identity, "GetService", service).allowed)
                  .first;
    if (!known->second) continue;
    entry["_sequence"] = sequence;
    entries.push_back(std::move(entry));
  }
  return jsonResponse(200, {{"next", next}, {"entries", entries}});
}

}  // namespace trellis::console
