// Arbitrary bytes as a query to the service directory, answered from a snapshot with one service that
// VPC A may see: every reply must encode into a message that parses, echoes the id and stays within
// the querier's UDP limit.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../compile/store_fixture.h"
#include "compile/compiler.h"
#include "dns/directory.h"

namespace {

using namespace trellis;

snapshot::SnapshotPtr makeSnapshot() {
  testing::StoreFixture store;
  store.service("svc-0123456789abcdef0", "billing", "billing.example.com");
  store.serviceNetwork("sn-0123456789abcdef0", "net");
  store.serviceAssociation("snsa-0123456789abcdef0", "sn-0123456789abcdef0", "svc-0123456789abcdef0");
  store.vpcAssociation("snva-0123456789abcdef0", "sn-0123456789abcdef0", "vpc-aaaaaaaa");
  model::Config config;
  config.vpcs = {{"vpc-aaaaaaaa", {"127.0.1.0/24"}}, {"vpc-bbbbbbbb", {"127.0.2.0/24"}}};
  return compile::compileSnapshot(store.contents(), config);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trellis::dns;
  static const auto snap = makeSnapshot();
  static const Directory directory(DirectoryOptions{"vpc-lattice-svcs.us-east-1.on.aws", {"127.0.0.1", "fd00::1"},
                                                    "127.0.0.53", 5, size % 2 == 0});
  std::string_view wire(reinterpret_cast<const char*>(data), size);
  sockaddr_in client{};
  client.sin_family = AF_INET;
  client.sin_addr.s_addr = htonl(size % 3 == 0 ? 0x7F01010A : size % 3 == 1 ? 0x7F02020A : 0x7F000001);

  auto query = parseMessage(wire);
  if (!query) {
    if (auto formerr = Directory::formatError(wire); formerr && !parseMessage(encodeMessage(*formerr))) std::abort();
    return 0;
  }
  Message response;
  if (directory.respond(*query, *snap, reinterpret_cast<const sockaddr*>(&client), response) !=
      Directory::Outcome::Answer)
    return 0;
  std::string encoded = encodeMessage(response, Directory::udpLimit(*query));
  auto parsed = parseMessage(encoded);
  if (!parsed || parsed->id != query->id || !parsed->qr || encoded.size() > Directory::udpLimit(*query)) std::abort();
  return 0;
}
