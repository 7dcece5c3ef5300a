#include "dns/directory.h"

#include <arpa/inet.h>

#include <algorithm>
#include <stdexcept>

#include "common/strings.h"

namespace trellis::dns {

namespace {

bool parseAddress(const std::string& text, uint16_t& rrType, std::string& bytes) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) {
    rrType = type::A;
    bytes.assign(reinterpret_cast<char*>(buf), 4);
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    rrType = type::AAAA;
    bytes.assign(reinterpret_cast<char*>(buf), 16);
    return true;
  }
  return false;
}

bool isUnspecified(const std::string& bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

// `host` is `zone` or a name below it (both lower-case, dotted).
bool hostWithin(std::string_view host, std::string_view zone) {
  return host == zone ||
         (host.size() > zone.size() && endsWith(host, zone) && host[host.size() - zone.size() - 1] == '.');
}

}  // namespace

Directory::Directory(const DirectoryOptions& options) : ttl_(options.ttl), forwarding_(options.forwarding) {
  auto zone = Name::fromText(options.zone);
  if (!zone || zone->labels.empty() || !zone->hostName())
    throw std::invalid_argument("DNS zone '" + options.zone + "' is not a domain name");
  zone_ = *zone;
  zoneText_ = *zone->hostName();
  nameServer_ = zone_;
  nameServer_.labels.insert(nameServer_.labels.begin(), "ns");
  for (const auto& text : options.answerAddresses) {
    Address address;
    if (!parseAddress(text, address.type, address.bytes))
      throw std::invalid_argument("DNS answer address '" + text + "' is not an IP address");
    if (isUnspecified(address.bytes))
      throw std::invalid_argument("DNS answer address '" + text + "' is a wildcard, not an address clients can reach");
    answerAddresses_.push_back(std::move(address));
  }
  if (!options.nameServerAddress.empty()) {
    Address address;
    if (!parseAddress(options.nameServerAddress, address.type, address.bytes))
      throw std::invalid_argument("DNS server address '" + options.nameServerAddress + "' is not an IP address");
    if (!isUnspecified(address.bytes)) nameServerAddresses_.push_back(std::move(address));
  }
}

size_t Directory::udpLimit(const Message& query) {
  if (!query.edns) return 512;
  return std::clamp<size_t>(query.edns->udpSize, 512, 4096);
}

std::optional<Message> Directory::formatError(std::string_view wire) {
  auto header = parseHeader(wire);
  if (!header || header->qr) return std::nullopt;
  Message response;
  response.id = header->id;
  response.qr = true;
  response.opcode = header->opcode;
  response.rd = header->rd;
  response.rcode = rcode::FormErr;
  return response;
}

Record Directory::soaRecord(const snapshot::Snapshot& snap) const {
  Soa soa;
  soa.mname = nameServer_;
  soa.rname = zone_;
  soa.rname.labels.insert(soa.rname.labels.begin(), "hostmaster");
  soa.serial = uint32_t(snap.revision);  // moves with every change, so secondaries would notice
  soa.refresh = 3600;
  soa.retry = 600;
  soa.expire = 86400;
  soa.minimum = ttl_;  // the negative-caching TTL (RFC 2308)
  return Record{zone_, type::SOA, kClassIn, ttl_, std::move(soa)};
}

void Directory::fillNegative(Message& response, uint16_t code, const snapshot::Snapshot& snap, bool withSoa) const {
  response.rcode = code;
  if (withSoa) response.authority.push_back(soaRecord(snap));
}

void Directory::addAddresses(Message& response, const Name& owner, uint16_t qtype,
                             const std::vector<Address>& from) const {
  for (const auto& address : from)
    if (qtype == address.type || qtype == type::ANY)
      response.answers.push_back(Record{owner, address.type, kClassIn, ttl_, address.bytes});
}

Directory::Outcome Directory::respond(const Message& query, const snapshot::Snapshot& snap, const sockaddr* client,
                                      Message& response) const {
  if (query.qr) return Outcome::Drop;
  response = Message{};
  response.id = query.id;
  response.qr = true;
  response.opcode = query.opcode;
  response.rd = query.rd;
  response.cd = query.cd;
  response.ra = forwarding_;
  // Echo the question only when there is exactly one: many (always an error) could overflow the reply.
  if (query.questions.size() == 1) response.questions = query.questions;
  if (query.edns) response.edns = Edns{kUdpSize, 0, uint16_t(query.edns->flags & 0x8000), {}};  // DO copied (RFC 3225)

  if (query.opcode != kOpcodeQuery) {
    response.rcode = rcode::NotImp;
    return Outcome::Answer;
  }
  if (query.questions.size() != 1) {
    response.rcode = rcode::FormErr;
    return Outcome::Answer;
  }
  if (query.edns && query.edns->version != 0) {
    response.rcode = rcode::BadVers;  // RFC 6891 6.1.3: we speak EDNS version 0 only
    return Outcome::Answer;
  }
  const Question& question = query.questions[0];
  const Name& qname = question.name;
  const uint16_t qtype = question.type;
  const bool inZone = qname.isWithin(zone_);
  const std::optional<std::string> host = qname.hostName();
  const snapshot::Service* service = host ? snap.serviceByHost(*host) : nullptr;

  if (!inZone && !service) {
    if (forwarding_) return Outcome::Forward;
    response.rcode = rcode::Refused;
    return Outcome::Answer;
  }
  response.aa = true;
  if (question.klass != kClassIn && question.klass != type::ANY) {
    response.aa = false;
    response.rcode = rcode::Refused;
    return Outcome::Answer;
  }
  if (qtype == type::AXFR || qtype == type::IXFR) {  // zone transfers would list every service
    response.aa = false;
    response.rcode = rcode::Refused;
    return Outcome::Answer;
  }
  if (qtype == type::MAILA || qtype == type::MAILB || qtype == type::OPT) {
    response.aa = false;
    response.rcode = qtype == type::OPT ? rcode::FormErr : rcode::NotImp;
    return Outcome::Answer;
  }

  if (qname.sameAs(zone_)) {
    if (qtype == type::SOA || qtype == type::ANY) response.answers.push_back(soaRecord(snap));
    if (qtype == type::NS || qtype == type::ANY)
      response.answers.push_back(Record{qname, type::NS, kClassIn, ttl_, nameServer_});
    if (response.answers.empty()) fillNegative(response, rcode::NoError, snap, true);
    return Outcome::Answer;
  }
  if (qname.sameAs(nameServer_)) {
    addAddresses(response, qname, qtype, nameServerAddresses_);
    if (response.answers.empty()) fillNegative(response, rcode::NoError, snap, true);
    return Outcome::Answer;
  }

  // Everything below depends on who asks.
  std::string vpcId = snap.vpcOf(client);
  auto visible = [&](const snapshot::Service& s) { return !vpcId.empty() && snap.networkFor(s, vpcId); };

  if (service && visible(*service)) {
    if (inZone) {
      addAddresses(response, qname, qtype, answerAddresses_);
      if (response.answers.empty()) fillNegative(response, rcode::NoError, snap, true);
      return Outcome::Answer;
    }
    auto generated = std::find_if(service->hostNames.begin(), service->hostNames.end(),
                                  [&](const std::string& h) { return hostWithin(h, zoneText_); });
    std::optional<Name> target = generated == service->hostNames.end() ? std::nullopt : Name::fromText(*generated);
    if (!target) {
      addAddresses(response, qname, qtype, answerAddresses_);  // no name in the zone to point at
      return Outcome::Answer;
    }
    response.answers.push_back(Record{qname, type::CNAME, kClassIn, ttl_, *target});
    if (qtype != type::CNAME) addAddresses(response, *target, qtype, answerAddresses_);
    return Outcome::Answer;
  }
  if (!inZone) {  // somebody else's custom domain name: deny without claiming the zone above it
    fillNegative(response, rcode::NxDomain, snap, false);
    return Outcome::Answer;
  }

  // An empty non-terminal (e.g. {partitionId}.{zone}) exists when a name the querier may see is below it.
  bool hasVisibleChild = false;
  if (host && snap.hostAncestors.contains(*host)) {
    for (const auto& [id, s] : snap.services) {
      for (const auto& h : s->hostNames) {
        if (h.size() > host->size() && hostWithin(h, *host) && visible(*s)) hasVisibleChild = true;
      }
      if (hasVisibleChild) break;
    }
  }
  fillNegative(response, hasVisibleChild ? rcode::NoError : rcode::NxDomain, snap, true);
  return Outcome::Answer;
}

}  // namespace trellis::dns
