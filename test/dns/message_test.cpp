#include "dns/message.h"

#include <gtest/gtest.h>

namespace trellis::dns {
namespace {

Name name(std::string_view text) { return *Name::fromText(text); }

std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out.push_back(char(b));
  return out;
}

// A query header (id 0x1234, RD) with the given counts, followed by `body`.
std::string header(int qd, int an, int ns, int ar, const std::string& body, int flags = 0x0100) {
  return bytes({0x12, 0x34, flags >> 8, flags & 0xFF, 0, qd, 0, an, 0, ns, 0, ar}) + body;
}

std::string parseError(const std::string& wire) {
  std::string error;
  EXPECT_FALSE(parseMessage(wire, &error).has_value());
  return error;
}

Message sample() {
  Message m;
  m.id = 0xBEEF;
  m.qr = m.aa = m.rd = true;
  m.rcode = rcode::NoError;
  m.questions.push_back({name("Api.Example.com"), type::A, kClassIn});
  m.answers.push_back({name("Api.Example.com"), type::CNAME, kClassIn, 5, name("svc.example.com")});
  m.answers.push_back({name("svc.example.com"), type::A, kClassIn, 5, bytes({127, 0, 0, 1})});
  m.answers.push_back({name("svc.example.com"), type::AAAA, kClassIn, 5, std::string(15, '\0') + "\x01"});
  m.authority.push_back({name("example.com"), type::NS, kClassIn, 60, name("ns.example.com")});
  Soa soa{name("ns.example.com"), name("hostmaster.example.com"), 7, 3600, 600, 86400, 5};
  m.authority.push_back({name("example.com"), type::SOA, kClassIn, 5, soa});
  m.additional.push_back({name("txt.example.com"), 16, kClassIn, 5, std::string("\x05hello", 6)});
  m.edns = Edns{1232, 0, 0x8000, bytes({0, 10, 0, 2, 0xAB, 0xCD})};
  return m;
}

TEST(DnsMessage, RoundTripKeepsEverythingIncludingCase) {
  Message m = sample();
  std::string wire = encodeMessage(m);
  std::string error;
  auto parsed = parseMessage(wire, &error);
  ASSERT_TRUE(parsed) << error;
  EXPECT_EQ(*parsed, m);
  EXPECT_EQ(parsed->questions[0].name.labels[0], "Api");
  EXPECT_EQ(parsed->edns->udpSize, 1232);
  EXPECT_EQ(encodeMessage(*parsed), wire);
}

TEST(DnsMessage, CompressesRepeatedSuffixes) {
  Message m;
  m.questions.push_back({name("a.example.com"), type::A, kClassIn});
  m.answers.push_back({name("a.example.com"), type::CNAME, kClassIn, 5, name("b.example.com")});
  std::string wire = encodeMessage(m);
  // Question name at 12 (15 bytes), type/class; answer owner is a pointer to 12; the CNAME target is
  // "b" then a pointer to "example.com" at 14.
  std::string expected = header(1, 1, 0, 0,
                                bytes({1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1,
                                       0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 4, 1, 'b', 0xC0, 14}),
                                0);
  expected[0] = expected[1] = 0;
  EXPECT_EQ(wire, expected);
}

TEST(DnsMessage, ParsesAQueryAsDigSendsIt) {
  // dig example.COM AAAA: RD, AD, one question, OPT with udp 1232 and a cookie option.
  std::string wire = header(1, 0, 0, 1,
                            bytes({7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'C', 'O', 'M', 0, 0, 28, 0, 1,  //
                                   0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}),
                            0x0120);
  std::string error;
  auto m = parseMessage(wire, &error);
  ASSERT_TRUE(m) << error;
  EXPECT_EQ(m->id, 0x1234);
  EXPECT_TRUE(m->rd);
  EXPECT_TRUE(m->ad);
  EXPECT_FALSE(m->qr);
  ASSERT_EQ(m->questions.size(), 1u);
  EXPECT_EQ(m->questions[0].name.text(), "example.COM");
  EXPECT_EQ(m->questions[0].type, type::AAAA);
  ASSERT_TRUE(m->edns);
  EXPECT_EQ(m->edns->udpSize, 1232);
  EXPECT_EQ(m->edns->options.size(), 12u);
  EXPECT_TRUE(m->additional.empty());
}

TEST(DnsMessage, ExtendedRcodeTravelsInTheOptRecord) {
  Message m;
  m.qr = true;
  m.rcode = rcode::BadVers;
  m.edns = Edns{};
  std::string wire = encodeMessage(m);
  EXPECT_EQ(uint8_t(wire[3]) & 0xF, 0);         // header rcode: low bits of 16
  EXPECT_EQ(uint8_t(wire[kHeaderSize + 5]), 1);  // OPT TTL's first byte: high bits
  EXPECT_EQ(parseMessage(wire)->rcode, rcode::BadVers);
}

TEST(DnsMessage, TruncationDropsRecordsAndSetsTc) {
  Message m = sample();
  for (int i = 0; i < 40; ++i)
    m.answers.push_back({name("svc.example.com"), type::AAAA, kClassIn, 5, std::string(16, char(i))});
  std::string full = encodeMessage(m);
  ASSERT_GT(full.size(), 512u);
  std::string small = encodeMessage(m, 512);
  EXPECT_LE(small.size(), 512u);
  auto parsed = parseMessage(small);
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->tc);
  EXPECT_TRUE(parsed->answers.empty());
  EXPECT_TRUE(parsed->authority.empty());
  EXPECT_EQ(parsed->questions, m.questions);
  ASSERT_TRUE(parsed->edns);  // the OPT record stays
  EXPECT_FALSE(parseMessage(full)->tc);
}

TEST(DnsMessage, NameHelpers) {
  EXPECT_EQ(Name::fromText("a.b.")->labels, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(Name::fromText(".")->labels.empty());
  EXPECT_FALSE(Name::fromText("a..b"));
  EXPECT_FALSE(Name::fromText(""));
  EXPECT_FALSE(Name::fromText(std::string(64, 'x') + ".com"));
  std::string long253;
  for (int i = 0; i < 63; ++i) long253 += "abc.";
  EXPECT_TRUE(Name::fromText(long253 + "d"));    // 253 characters: 255 on the wire
  EXPECT_FALSE(Name::fromText(long253 + "de"));  // 256 on the wire
  EXPECT_TRUE(name("API.Example.com").sameAs(name("api.example.COM")));
  EXPECT_FALSE(name("api.example.com").sameAs(name("api.example.co")));
  EXPECT_TRUE(name("x.API.example.com").isWithin(name("api.Example.com")));
  EXPECT_TRUE(name("api.example.com").isWithin(name("api.example.com")));
  EXPECT_FALSE(name("xapi.example.com").isWithin(name("api.example.com")));
  EXPECT_EQ(name("Svc-1.Example.com").hostName(), "svc-1.example.com");
  Name dotted;
  dotted.labels = {"a.b", "com"};  // one label holding a dot must not pass for a.b.com
  EXPECT_FALSE(dotted.hostName());
  EXPECT_EQ(dotted.text(), "a\\.b.com");
  dotted.labels = {std::string("\x01 x", 3)};
  EXPECT_EQ(dotted.text(), "\\001\\032x");
}

TEST(DnsMessage, RejectsMalformedMessages) {
  const std::string q = bytes({1, 'a', 0, 0, 1, 0, 1});  // a. A IN
  EXPECT_NE(parseError("\x12\x34"), "");
  EXPECT_NE(parseError(header(1, 0, 0, 0, "")).find("exceed the message size"), std::string::npos);
  EXPECT_NE(parseError(header(1, 0, 0, 0, q + "x")).find("trailing bytes"), std::string::npos);
  // A pointer to itself, one pointing forwards, one into the header.
  EXPECT_NE(parseError(header(1, 0, 0, 0, bytes({0xC0, 12, 0, 1, 0, 1}))).find("does not point backwards"),
            std::string::npos);
  EXPECT_NE(parseError(header(1, 0, 0, 0, bytes({0xC0, 14, 0, 1, 0, 1}))).find("does not point backwards"),
            std::string::npos);
  EXPECT_NE(parseError(header(1, 0, 0, 0, bytes({0xC0, 2, 0, 1, 0, 1}))).find("does not point backwards"),
            std::string::npos);
  EXPECT_NE(parseError(header(1, 0, 0, 0, bytes({0x41, 'a', 0, 0, 1, 0, 1}))).find("unsupported label type"),
            std::string::npos);
  EXPECT_NE(parseError(header(1, 0, 0, 0, bytes({9, 'a', 0, 1, 0, 1}))).find("label runs past the end"),
            std::string::npos);
  // A name of 5 x 63-byte labels is over 255 bytes.
  std::string longName;
  for (int i = 0; i < 5; ++i) longName += char(63) + std::string(63, 'x');
  EXPECT_NE(parseError(header(1, 0, 0, 0, longName + bytes({0, 0, 1, 0, 1}))).find("longer than 255"),
            std::string::npos);
  // Records: RDATA past the end, A of 5 bytes, CNAME whose name overruns its RDLENGTH.
  auto rr = [&](std::initializer_list<int> rest) { return header(1, 1, 0, 0, q + bytes(rest)); };
  EXPECT_NE(parseError(rr({0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 9, 1, 2, 3, 4})).find("RDATA runs past"),
            std::string::npos);
  EXPECT_NE(parseError(rr({0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 5, 1, 2, 3, 4, 5})).find("wrong length"),
            std::string::npos);
  EXPECT_NE(parseError(rr({0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 1, 1, 'b', 0})).find("does not match"),
            std::string::npos);
  // OPT records: in the answer section, twice, owned by a non-root name, with a broken option.
  const std::string opt = bytes({0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0});
  EXPECT_NE(parseError(header(1, 1, 0, 0, q + opt)).find("outside the additional"), std::string::npos);
  EXPECT_NE(parseError(header(1, 0, 0, 2, q + opt + opt)).find("more than one OPT"), std::string::npos);
  EXPECT_NE(parseError(header(1, 0, 0, 1, q + bytes({0xC0, 12, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0})))
                .find("not owned by the root"),
            std::string::npos);
  EXPECT_NE(parseError(header(1, 0, 0, 1, q + bytes({0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 5, 0, 10, 0, 9, 1})))
                .find("EDNS option runs past"),
            std::string::npos);
}

TEST(DnsMessage, PointerChainsAreBounded) {
  // Question "a." at 12, then 200 answers each owned by a pointer to the previous owner's pointer:
  // every pointer points backwards, but resolving the last takes 200 jumps.
  std::string body = bytes({1, 'a', 0, 0, 1, 0, 1});
  size_t previous = 12;
  int count = 0;
  auto build = [&](int records) {
    body = bytes({1, 'a', 0, 0, 1, 0, 1});
    previous = 12;
    for (count = 0; count < records; ++count) {
      size_t here = kHeaderSize + body.size();
      body += bytes({0xC0 | int(previous >> 8), int(previous & 0xFF), 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4});
      previous = here;
    }
    return header(1, records, 0, 0, body);
  };
  EXPECT_TRUE(parseMessage(build(100)));
  EXPECT_NE(parseError(build(200)).find("too many compression pointers"), std::string::npos);
}

TEST(DnsMessage, HeaderOfAnUnparsableMessage) {
  auto h = parseHeader(header(1, 0, 0, 0, "", 0x2900));  // opcode 5 (UPDATE), RD
  ASSERT_TRUE(h);
  EXPECT_EQ(h->id, 0x1234);
  EXPECT_EQ(h->opcode, 5);
  EXPECT_TRUE(h->rd);
  EXPECT_FALSE(parseHeader("short"));
}

}  // namespace
}  // namespace trellis::dns
