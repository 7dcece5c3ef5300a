// Wiring of trellisd's parts: config, store, API, admin endpoint, data plane, DNS directory, config stream.
#pragma once
#include <csignal>
#include <string>

namespace trellis {

struct DaemonOptions {
  std::string configFile;
  std::string dataDir = "./trellis-data";
  std::string store;  // --store: sqlite:DIR or etcd://HOST:PORT[,...][/PREFIX]; empty: SQLite in dataDir
  std::string etcdCa, etcdCert, etcdKey;
  std::string apiListen = "127.0.0.1:8440";
  std::string adminListen = "127.0.0.1:8441";
  std::string consoleListen = "127.0.0.1:8442";  // the web console (api role only); empty: off
  std::string proxyBind = "127.0.0.1";
  std::string dnsListen;
  int workers = 0;
  std::string logLevel = "info";
  // --roles: any of api, proxy, dns. A data-plane host (no api) follows --control-plane into a replica.
  std::string roles = "api,proxy,dns";
  std::string controlPlane;  // http(s)://HOST:PORT[,...]
  std::string controlPlaneCa;
  std::string proxyId;  // empty: the host name
};

// Runs until SIGTERM/SIGINT (blocked in `signals`); returns the process exit code.
int runDaemon(const DaemonOptions& options, const sigset_t& signals);

}  // namespace trellis
