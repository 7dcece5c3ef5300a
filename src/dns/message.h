// DNS messages (RFC 1035 with EDNS0, RFC 6891): a strict, bounds-checked parser and an encoder that
// compresses names and truncates to a size limit.
//
// Hand-written rather than taken from a library: the Debian DNS libraries are either stub resolvers
// (c-ares, libresolv's ns_parse: parse only, no encoder with compression and truncation) or whole
// server/validator toolkits (ldns, knot's libknot) far larger than the handful of record types the
// service directory serves. What is here is small enough to fuzz exhaustively (test/fuzz/fuzz_dns_message.cpp).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace trellis::dns {

namespace type {
constexpr uint16_t A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, AAAA = 28, OPT = 41, IXFR = 251, AXFR = 252,
                   MAILB = 253, MAILA = 254, ANY = 255;
}
namespace rcode {
constexpr uint16_t NoError = 0, FormErr = 1, ServFail = 2, NxDomain = 3, NotImp = 4, Refused = 5, BadVers = 16;
}
constexpr uint16_t kClassIn = 1;
constexpr uint8_t kOpcodeQuery = 0;
constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxMessageSize = 65535;

// A domain name as its labels, case preserved (queriers may randomise case and expect it echoed).
// Labels are raw bytes of 1-63; the whole name is at most 255 bytes on the wire.
struct Name {
  std::vector<std::string> labels;  // empty: the root

  // "api.example.com" or "api.example.com."; no escapes. nullopt when a label is empty or too long.
  static std::optional<Name> fromText(std::string_view dotted);
  // Dotted, escaping '.', '\\' and non-printable bytes as \DDD; "." for the root.
  std::string text() const;
  size_t wireLength() const;
  // ASCII case-insensitive (RFC 4343).
  bool sameAs(const Name& other) const;
  // True when this name is `zone` or below it (case-insensitive).
  bool isWithin(const Name& zone) const;
  // Lower-case dotted form when every label is a plain host-name label (letters, digits, '-', '_'),
  // else nullopt: such names can never equal a service host name, and a label holding a '.' must not
  // alias one.
  std::optional<std::string> hostName() const;

  bool operator==(const Name&) const = default;  // exact, case-sensitive
};

struct Soa {
  Name mname, rname;
  uint32_t serial = 0, refresh = 0, retry = 0, expire = 0, minimum = 0;
  bool operator==(const Soa&) const = default;
};

struct Question {
  Name name;
  uint16_t type = 0;
  uint16_t klass = kClassIn;
  bool operator==(const Question&) const = default;
};

struct Record {
  Name name;
  uint16_t type = 0;
  uint16_t klass = kClassIn;
  uint32_t ttl = 0;
  // NS/CNAME/PTR: the target Name; SOA: Soa; every other type: the raw RDATA (A: 4 bytes, AAAA: 16).
  std::variant<std::string, Name, Soa> data;
  bool operator==(const Record&) const = default;
};

// The OPT pseudo-record, kept apart from the additional section.
struct Edns {
  uint16_t udpSize = 512;  // the sender's UDP payload limit
  uint8_t version = 0;
  uint16_t flags = 0;  // DO is 0x8000
  std::string options;  // raw option TLVs, framing validated
  bool operator==(const Edns&) const = default;
};

struct Message {
  uint16_t id = 0;
  bool qr = false, aa = false, tc = false, rd = false, ra = false, z = false, ad = false, cd = false;
  uint8_t opcode = 0;
  uint16_t rcode = 0;  // 12 bits: the header's 4 plus the OPT record's 8 when `edns` is set
  std::vector<Question> questions;
  std::vector<Record> answers, authority, additional;  // `additional` without the OPT record
  std::optional<Edns> edns;
  bool operator==(const Message&) const = default;
};

// Parses a whole message. nullopt (with `error` set, when given) on anything malformed: short or
// trailing bytes, bad label types, compression pointers that do not point strictly backwards, names
// over 255 bytes, RDATA not matching its type, misplaced or duplicate OPT records.
std::optional<Message> parseMessage(std::string_view wire, std::string* error = nullptr);

// The header alone (id, flags, opcode, rcode; no sections), for answering FORMERR to a message the
// full parse rejects. nullopt when shorter than a header.
std::optional<Message> parseHeader(std::string_view wire);

// Encodes `message`, compressing names (owner names and the names inside NS/CNAME/PTR/SOA). When the
// result would exceed `maxSize` (at least 512 is sensible), every record is dropped and TC set: the
// querier retries over TCP. The OPT record, when present, always goes in.
std::string encodeMessage(const Message& message, size_t maxSize = kMaxMessageSize);

}  // namespace trellis::dns
