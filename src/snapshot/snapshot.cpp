#include "snapshot/snapshot.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>

namespace trellis::snapshot {
namespace {

// The first `length` bits of `a` (the rest zero).
Address masked(const Address& a, int length) {
  auto keep = [](uint64_t word, int bits) {
    if (bits <= 0) return uint64_t{0};
    return bits >= 64 ? word : word & ~(~uint64_t{0} >> bits);
  };
  return Address{keep(a.high, length), keep(a.low, length - 64), a.v4};
}

uint64_t bigEndian64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}

Address fromV4(const uint8_t* bytes) {
  uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, bytes[0], bytes[1], bytes[2], bytes[3]};
  return Address{bigEndian64(mapped), bigEndian64(mapped + 8), true};
}

}  // namespace

bool HealthCheck::matches(int status) const {
  for (auto [low, high] : matcher) {
    if (status >= low && status <= high) return true;
  }
  return false;
}

const Listener* Service::listenerOnPort(uint16_t port) const {
  for (const auto& listener : listeners) {
    if (listener.port == port) return &listener;
  }
  return nullptr;
}

bool addressOf(const sockaddr* address, Address& out) {
  if (address->sa_family == AF_INET) {
    out = fromV4(reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(address)->sin_addr));
    return true;
  }
  if (address->sa_family != AF_INET6) return false;
  const uint8_t* bytes = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr.s6_addr;
  out = Address{bigEndian64(bytes), bigEndian64(bytes + 8), false};
  out.v4 = out.high == 0 && (out.low >> 32) == 0xffff;  // IPv4-mapped: a dual-stack socket's IPv4 peer
  return true;
}

bool Prefix::parse(std::string_view cidr, Prefix& out) {
  auto slash = cidr.find('/');
  std::string ip(cidr.substr(0, slash));
  uint8_t bytes[16];
  int bits = 0;
  if (inet_pton(AF_INET, ip.c_str(), bytes) == 1) {
    out.network = fromV4(bytes);
    bits = 32;
  } else if (inet_pton(AF_INET6, ip.c_str(), bytes) == 1) {
    out.network = Address{bigEndian64(bytes), bigEndian64(bytes + 8), false};
    bits = 128;
  } else {
    return false;
  }
  int length = bits;
  if (slash != std::string_view::npos) {
    std::string_view text = cidr.substr(slash + 1);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || length < 0 || length > bits) {
      return false;
    }
  }
  out.length = length + (128 - bits);
  out.network = masked(out.network, out.length);
  return true;
}

bool Prefix::contains(const Address& address) const {
  return address.v4 == network.v4 && masked(address, length) == network;
}

bool Vpc::admits(const Address& address, uint16_t port) const {
  if (!securityGroupsApply) return true;
  for (const auto& allowance : ingress) {
    if (port >= allowance.fromPort && port <= allowance.toPort && allowance.source.contains(address)) return true;
  }
  return false;
}

void VpcTable::add(const Prefix& prefix, const Vpc* vpc) {
  auto level = std::find_if(levels_.begin(), levels_.end(), [&](const Level& l) { return l.length <= prefix.length; });
  if (level == levels_.end() || level->length != prefix.length) level = levels_.insert(level, Level{prefix.length, {}});
  level->networks.emplace(prefix.network, vpc);
}

const Vpc* VpcTable::find(const Address& address) const {
  for (const auto& level : levels_) {
    auto it = level.networks.find(masked(address, level.length));
    if (it != level.networks.end()) return it->second;
  }
  return nullptr;
}

const Vpc* Snapshot::sourceVpc(const Address& address) const {
  const Vpc* vpc = vpcTable.find(address);
  return vpc ? vpc : defaultVpc;
}

const Vpc* Snapshot::sourceVpc(const sockaddr* address) const {
  Address a;
  return addressOf(address, a) ? sourceVpc(a) : nullptr;
}

std::string Snapshot::vpcOf(const sockaddr* address) const {
  const Vpc* vpc = sourceVpc(address);
  return vpc ? vpc->id : std::string();
}

const ServiceNetwork* Snapshot::networkFor(const Service& service, std::string_view vpcId) const {
  auto it = vpcs.find(std::string(vpcId));
  return it == vpcs.end() ? nullptr : it->second.networkFor(service);
}

}  // namespace trellis::snapshot
