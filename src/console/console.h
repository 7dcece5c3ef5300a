// The web console (`trellisd --console-listen`): a browser view of the service networks, their health and live
// traffic, and the actions a person takes in a console (docs/console.md).
//
// Authorization is exactly the API's: the browser signs in with an identity of the config and then holds only a
// session cookie; every read and write it asks for is re-issued to the in-process Api, SigV4-signed with that
// session's own identity, so its IAM policy decides, call by call. The console adds no permission of its own.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/api.h"
#include "common/http_server.h"
#include "console/metrics_history.h"
#include "console/session.h"

namespace trellis::console {

// What the console reads besides the API; each may be empty (the process does not run the data plane).
struct ConsoleSources {
  std::function<std::string()> metrics;  // the admin port's Prometheus text
  struct LogLine {
    uint64_t sequence;
    std::string line;  // one access-log JSON object
  };
  std::function<std::vector<LogLine>(uint64_t after)> accessLogs;
};

struct ConsoleOptions {
  std::chrono::seconds sessionLifetime{8 * 3600};
  bool secureCookie = false;  // behind a TLS-terminating proxy
  MetricsHistory::Options metrics;
};

// One static file of the front end (console/), embedded at build time (console_assets.cpp, generated).
struct Asset {
  const char* path;  // "/index.html"
  const char* contentType;
  const unsigned char* data;
  size_t size;
};
const std::vector<Asset>& consoleAssets();

class Console {
 public:
  // `api` is the console's own Api over the API's store (the API server's runs on another thread).
  Console(api::Api& api, api::ConfigSource config, ConsoleSources sources, ConsoleOptions options = {});
  ~Console();
  void start();  // the metrics sampler
  void stop();
  HttpResponse handle(const HttpRequest& request);
  MetricsHistory& metrics() { return metrics_; }

 private:
  struct Caller;
  HttpResponse route(const HttpRequest& request);
  HttpResponse signIn(const HttpRequest& request);
  HttpResponse sessionInfo(const Caller& caller, const std::string* setCookie);
  HttpResponse passThrough(const Caller& caller, const HttpRequest& request);
  HttpResponse topology(const Caller& caller);
  HttpResponse logs(const Caller& caller, const HttpRequest& request);
  bool mayRead(const Caller& caller, const std::string& key) const;
  // The API's answer to `method path?query` with `body`, signed as `identity`.
  HttpResponse callApi(const model::Identity& identity, const std::string& method, const std::string& path,
                       const std::string& query, const std::string& body, const std::string& peer);

  api::Api& api_;
  api::ConfigSource config_;
  ConsoleSources sources_;
  ConsoleOptions options_;
  SessionStore sessions_;
  SignInThrottle throttle_;
  MetricsHistory metrics_;
};

}  // namespace trellis::console
