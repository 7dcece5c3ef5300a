// trellisd: the Trellis daemon. One process runs the control-plane API, the admin endpoint and
// (as later subsystems land) the data plane and the DNS directory.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <pthread.h>
#include <sys/resource.h>

#include "api/api.h"
#include "auth/sigv4.h"
#include "common/http_server.h"
#include "common/log.h"
#include "exe/daemon.h"
#include "model/config.h"
#include "store/store.h"

using namespace trellis;

int main(int argc, char** argv) {
  DaemonOptions options;
  CLI::App app{"trellisd: a self-hosted Amazon VPC Lattice (control-plane API, data plane, DNS directory)"};
  app.add_option("--config", options.configFile, "YAML config: region, account, identities, VPCs, instances")
      ->check(CLI::ExistingFile);
  app.add_option("--data-dir", options.dataDir, "where the embedded store (SQLite) and logs live")
      ->capture_default_str();
  app.add_option("--store", options.store,
                 "sqlite:DIR or etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (default: SQLite in --data-dir)");
  app.add_option("--etcd-ca", options.etcdCa, "PEM CA certificate of the etcd members (TLS to etcd)")
      ->check(CLI::ExistingFile);
  app.add_option("--etcd-cert", options.etcdCert, "PEM client certificate for etcd")->check(CLI::ExistingFile);
  app.add_option("--etcd-key", options.etcdKey, "PEM private key of --etcd-cert")->check(CLI::ExistingFile);
  app.add_option("--api-listen", options.apiListen, "HOST:PORT of the Lattice REST API")->capture_default_str();
  app.add_option("--admin-listen", options.adminListen, "HOST:PORT of /ready and /metrics")->capture_default_str();
  app.add_option("--console-listen", options.consoleListen,
                 "HOST:PORT of the web console (with the api role; empty: no console)")
      ->capture_default_str();
  app.add_option("--proxy-bind", options.proxyBind, "address the data plane's listener ports bind to")
      ->capture_default_str();
  app.add_option("--dns-listen", options.dnsListen, "HOST:PORT of the DNS service directory (empty: off)");
  app.add_option("--workers", options.workers, "data-plane worker threads (0: one per core)")->capture_default_str();
  app.add_option("--roles", options.roles,
                 "what this process does: api (the Lattice API and the config stream), proxy (the data plane), dns "
                 "(the DNS directory); a data-plane host runs proxy,dns with --control-plane")
      ->capture_default_str();
  app.add_option("--control-plane", options.controlPlane,
                 "without the api role: the API servers to follow, http(s)://HOST:PORT[,...] (credentials from "
                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  app.add_option("--control-plane-ca", options.controlPlaneCa, "PEM bundle the API servers' certificates chain to")
      ->check(CLI::ExistingFile);
  app.add_option("--proxy-id", options.proxyId, "how the API servers list this data-plane host (default: host name)");
  app.add_option("--log-level", options.logLevel, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // Signals are taken by sigwait in runDaemon; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // Every client and target connection is a descriptor: take all the hard limit allows (the soft one
  // is often 1024). What is left of it is what the proxy pauses accepting at (docs/architecture.md).
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  return runDaemon(options, signals);
}
