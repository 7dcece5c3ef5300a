// The DNS service directory (trellisd --dns-listen): an authoritative server for the service domain and
// the services' custom domain names, over UDP and TCP, answering from the routing snapshot (what a querier
// may see is in directory.h). Names outside those are relayed to upstream resolvers, or REFUSED.
//
// One event-loop thread. Each query reads the snapshot through SnapshotSource::generation() and takes a
// new SnapshotPtr only when it moved: no lock on the query path, and an association change is visible
// to the very next query after the snapshot is published.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "snapshot/source.h"

namespace trellis::dns {

struct DnsOptions {
  std::string listen = "127.0.0.1:53";       // HOST:PORT for both UDP and TCP ("[::1]:53"); port 0 picks one
  std::string zone;                          // the service domain: Config::effectiveServiceDomain()
  std::vector<std::string> answerAddresses;  // data-plane IP literals service names resolve to (A and/or AAAA)
  std::vector<std::string> upstreams;        // "IP", "IP:PORT" or "[IPv6]:PORT"; empty: REFUSED outside the zone
  uint32_t ttl = 5;                          // seconds, for answers and (via the SOA) for denials
  std::chrono::milliseconds upstreamTimeout{2000};  // per upstream, tried in order
};

class DnsServer {
 public:
  // Throws std::invalid_argument for a bad zone, address or upstream.
  DnsServer(DnsOptions options, snapshot::SnapshotSource& source);
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Binds UDP and TCP on the same port and starts the thread. Throws std::runtime_error with the reason
  // when the address cannot be bound.
  void start();
  // Stops serving and joins; in-flight forwarded queries are abandoned. Idempotent.
  void stop();
  // The bound port, after start().
  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace trellis::dns
