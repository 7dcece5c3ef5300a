// The service directory's answers: which names exist for which querier. No I/O here; DnsServer
// (server.h) carries messages to and from the network.
//
// Served names:
// - the zone apex (the service domain): SOA and NS; ns.{zone}: the DNS server's own address.
// - generated service names ({name}-{id}.{partitionId}.{zone}): A/AAAA with the data-plane addresses.
// - custom domain names (outside the zone): a CNAME to the service's generated name plus its addresses,
//   as the Route 53 record a Lattice user creates for a custom domain would. Without a
//   generated name in the zone the addresses are answered directly.
// A service's names exist only for a querier whose VPC is associated with a service network the service
// is associated with; for everyone else they are NXDOMAIN (in the zone with the SOA, so resolvers cache
// the denial for at most the TTL; for custom names without one, so resolvers do not cache it at all).
#pragma once
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dns/message.h"
#include "snapshot/snapshot.h"

namespace trellis::dns {

struct DirectoryOptions {
  std::string zone;                          // the service domain, e.g. vpc-lattice-svcs.us-east-1.on.aws
  std::vector<std::string> answerAddresses;  // IPv4/IPv6 literals the service names resolve to
  std::string nameServerAddress;             // IP literal of ns.{zone}; empty: ns.{zone} has no address
  uint32_t ttl = 5;
  bool forwarding = false;  // names outside the served ones go upstream (else REFUSED)
};

class Directory {
 public:
  // Throws std::invalid_argument naming the bad zone or address.
  explicit Directory(const DirectoryOptions& options);

  enum class Outcome {
    Answer,   // `response` is filled in
    Forward,  // not ours: relay the query to an upstream resolver
    Drop,     // a response, not a query: never answer it (no reflection loops)
  };
  Outcome respond(const Message& query, const snapshot::Snapshot& snap, const sockaddr* client,
                  Message& response) const;

  // The answer to bytes parseMessage rejected: FORMERR echoing id and opcode, or nullopt to drop them
  // (shorter than a header, or a response).
  static std::optional<Message> formatError(std::string_view wire);

  // The largest UDP response the querier accepts: its EDNS size (512 at least, capped at 4096), or 512.
  static size_t udpLimit(const Message& query);

  // Our own EDNS UDP size (the DNS flag day 2020 value: fits one unfragmented packet on any path).
  static constexpr uint16_t kUdpSize = 1232;

 private:
  struct Address {
    uint16_t type;  // A or AAAA
    std::string bytes;
  };

  void fillNegative(Message& response, uint16_t code, const snapshot::Snapshot& snap, bool withSoa) const;
  void addAddresses(Message& response, const Name& owner, uint16_t qtype, const std::vector<Address>& from) const;
  Record soaRecord(const snapshot::Snapshot& snap) const;

  Name zone_;
  std::string zoneText_;  // lower-case, dotted
  Name nameServer_;       // ns.{zone}
  std::vector<Address> answerAddresses_;
  std::vector<Address> nameServerAddresses_;
  uint32_t ttl_;
  bool forwarding_;
};

}  // namespace trellis::dns
