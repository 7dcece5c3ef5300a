// The DNS service directory over real UDP and TCP sockets on loopback. Queriers bind to different
// 127.0.0.0/8 source addresses to stand in different VPCs: VPC A is 127.0.1.0/24, VPC B 127.0.2.0/24;
// 127.0.0.1 is in no VPC. Snapshots are compiled from store documents by the real compiler.
#include "dns/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <gtest/gtest.h>
#include <thread>

#include "compile/compiler.h"
#include "compile/store_fixture.h"
#include "dns/message.h"
#include "snapshot/source.h"

namespace trellis::dns {
namespace {

using testing::StoreFixture;

constexpr char kFromA[] = "127.0.1.10";
constexpr char kFromB[] = "127.0.2.10";
constexpr char kOutside[] = "127.0.0.1";
constexpr char kService[] = "svc-0123456789abcdef0";
constexpr char kCustom[] = "billing.example.com";
const std::string kGenerated = StoreFixture::generatedName(kService, "billing");
const std::string kZone = "vpc-lattice-svcs.us-east-1.on.aws";

sockaddr_in address(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// A socket of `type` bound to `source` (any port) and connected to 127.0.0.1:port.
int socketFrom(int type, const std::string& source, uint16_t port) {
  int fd = socket(AF_INET, type, 0);
  sockaddr_in from = address(source, 0);
  sockaddr_in to = address("127.0.0.1", port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool readable(int fd, int timeoutMs) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeoutMs) == 1;
}

// One UDP exchange; nullopt when nothing comes back in time.
std::optional<std::string> udpExchange(const std::string& source, uint16_t port, const std::string& wire,
                                       int timeoutMs = 3000) {
  int fd = socketFrom(SOCK_DGRAM, source, port);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> out;
  if (send(fd, wire.data(), wire.size(), 0) == ssize_t(wire.size()) && readable(fd, timeoutMs)) {
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n >= 0) out = std::string(buf, size_t(n));
  }
  close(fd);
  return out;
}

bool readExactly(int fd, char* into, size_t n) {
  while (n > 0) {
    if (!readable(fd, 3000)) return false;
    ssize_t got = recv(fd, into, n, 0);
    if (got <= 0) return false;
    into += got;
    n -= size_t(got);
  }
  return true;
}

std::string framed(const std::string& wire) {
  return std::string{char(wire.size() >> 8), char(wire.size())} + wire;
}

// Sends `wires` in one write over one TCP connection and reads as many framed replies.
std::vector<std::string> tcpExchange(const std::string& source, uint16_t port, const std::vector<std::string>& wires) {
  std::vector<std::string> replies;
  int fd = socketFrom(SOCK_STREAM, source, port);
  if (fd < 0) return replies;
  std::string all;
  for (const auto& wire : wires) all += framed(wire);
  if (send(fd, all.data(), all.size(), MSG_NOSIGNAL) == ssize_t(all.size())) {
    for (size_t i = 0; i < wires.size(); ++i) {
      unsigned char length[2];
      if (!readExactly(fd, reinterpret_cast<char*>(length), 2)) break;
      std::string reply(size_t(length[0]) << 8 | length[1], '\0');
      if (!readExactly(fd, reply.data(), reply.size())) break;
      replies.push_back(std::move(reply));
    }
  }
  close(fd);
  return replies;
}

Message query(const std::string& name, uint16_t qtype, std::optional<uint16_t> ednsSize = std::nullopt,
              uint16_t id = 0x4242) {
  Message m;
  m.id = id;
  m.rd = true;
  m.questions.push_back({*Name::fromText(name), qtype, kClassIn});
  if (ednsSize) m.edns = Edns{*ednsSize, 0, 0, {}};
  return m;
}

std::string addressText(const Record& record) {
  const auto& raw = std::get<std::string>(record.data);
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(raw.size() == 4 ? AF_INET : AF_INET6, raw.data(), text, sizeof text);
  return text;
}

// A stand-in upstream resolver: answers every A query with 192.0.2.1, or stays silent, or (truncating)
// answers over UDP with TC set and no records and in full only over TCP on the same port.
class TinyUpstream {
 public:
  enum class Mode { Silent, Answers, Truncates };
  explicit TinyUpstream(Mode mode) : mode_(mode) {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a = address("127.0.0.1", 0);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t length = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &length);
    port_ = ntohs(a.sin_port);
    if (mode_ == Mode::Truncates) {
      listenFd_ = socket(AF_INET, SOCK_STREAM, 0);
      bind(listenFd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
      listen(listenFd_, 4);
    }
    thread_ = std::thread([this] { run(); });
  }
  ~TinyUpstream() {
    stop_ = true;
    thread_.join();
    close(fd_);
    if (listenFd_ >= 0) close(listenFd_);
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  int queries() const { return queries_; }
  int tcpQueries() const { return tcpQueries_; }
  uint16_t lastId() const { return lastId_; }

 private:
  std::optional<std::string> answer(std::string_view wire, bool truncated) {
    auto q = parseMessage(wire);
    if (!q) return std::nullopt;
    lastId_ = q->id;
    Message r = *q;
    r.qr = r.ra = true;
    r.tc = truncated;
    if (!truncated)
      r.answers.push_back({q->questions.at(0).name, type::A, kClassIn, 300, std::string("\xC0\x00\x02\x01", 4)});
    return encodeMessage(r);
  }

  void run() {
    while (!stop_) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {listenFd_, POLLIN, 0}};
      if (poll(fds, listenFd_ >= 0 ? 2 : 1, 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        char buf[65536];
        sockaddr_in from{};
        socklen_t length = sizeof from;
        ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &length);
        ++queries_;
        auto reply = answer(std::string_view(buf, n > 0 ? size_t(n) : 0), mode_ == Mode::Truncates);
        if (reply && mode_ != Mode::Silent)
          sendto(fd_, reply->data(), reply->size(), 0, reinterpret_cast<sockaddr*>(&from), length);
      }
      if (listenFd_ >= 0 && (fds[1].revents & POLLIN)) {
        int client = accept(listenFd_, nullptr, nullptr);
        unsigned char length[2];
        if (client >= 0 && readExactly(client, reinterpret_cast<char*>(length), 2)) {
          std::string wire(size_t(length[0]) << 8 | length[1], '\0');
          if (readExactly(client, wire.data(), wire.size())) {
            ++tcpQueries_;
            if (auto reply = answer(wire, false)) {
              std::string out = framed(*reply);
              send(client, out.data(), out.size(), MSG_NOSIGNAL);
            }
          }
        }
        if (client >= 0) close(client);
      }
    }
  }

  Mode mode_;
  int fd_ = -1, listenFd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0}, tcpQueries_{0};
  std::atomic<uint16_t> lastId_{0};
  std::thread thread_;
};

// Runs a shell command, returning its standard output.
std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  pclose(pipe);
  return out;
}

class DnsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.vpcs = {{"vpc-aaaaaaaa", {"127.0.1.0/24"}}, {"vpc-bbbbbbbb", {"127.0.2.0/24"}}};
    store_.service(kService, "billing", kCustom);
    store_.service("svc-0000000000000000b", "hidden");  // in no network: nobody sees it
    store_.serviceNetwork("sn-0123456789abcdef0", "net");
    store_.serviceAssociation("snsa-0123456789abcdef0", "sn-0123456789abcdef0", kService);
    store_.vpcAssociation("snva-0123456789abcdef0", "sn-0123456789abcdef0", "vpc-aaaaaaaa");
    publish();
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  void publish() { holder_.publish(compile::compileSnapshot(store_.contents(), config_)); }

  DnsOptions options() const {
    DnsOptions o;
    o.listen = "127.0.0.1:0";
    o.zone = config_.effectiveServiceDomain();
    o.answerAddresses = {"127.0.0.1", "::1"};
    return o;
  }
  void start(DnsOptions o) {
    server_ = std::make_unique<DnsServer>(std::move(o), holder_);
    server_->start();
  }
  void start() { start(options()); }

  // Asks over UDP (or TCP) and parses the reply, failing the test when there is none.
  Message ask(const std::string& source, const Message& q, bool tcp = false) {
    std::string wire = encodeMessage(q);
    std::optional<std::string> reply;
    if (tcp) {
      auto replies = tcpExchange(source, server_->port(), {wire});
      if (!replies.empty()) reply = replies[0];
    } else {
      reply = udpExchange(source, server_->port(), wire);
    }
    if (!reply) {
      ADD_FAILURE() << "no reply to " << q.questions.at(0).name.text() << " from " << source;
      return {};
    }
    std::string error;
    auto parsed = parseMessage(*reply, &error);
    if (!parsed) ADD_FAILURE() << "unparsable reply: " << error;
    return parsed.value_or(Message{});
  }

  model::Config config_;
  StoreFixture store_;
  snapshot::SnapshotHolder holder_;
  std::unique_ptr<DnsServer> server_;
};

TEST_F(DnsServerTest, AssociatedVpcResolvesTheServiceOthersGetNxdomain) {
  start();
  for (bool tcp : {false, true}) {
    SCOPED_TRACE(tcp ? "TCP" : "UDP");
    // Mixed case in, the same case echoed back (resolvers using 0x20 randomisation check it).
    std::string mixed = kGenerated;
    mixed[0] = 'B';
    mixed[mixed.size() - 2] = 'W';
    Message a = ask(kFromA, query(mixed, type::A, std::nullopt, 0x1111), tcp);
    EXPECT_EQ(a.id, 0x1111);
    EXPECT_TRUE(a.qr);
    EXPECT_TRUE(a.aa);
    EXPECT_EQ(a.rcode, rcode::NoError);
    ASSERT_EQ(a.questions.size(), 1u);
    EXPECT_EQ(a.questions[0].name.text(), mixed);
    ASSERT_EQ(a.answers.size(), 1u);
    EXPECT_EQ(a.answers[0].type, type::A);
    EXPECT_EQ(addressText(a.answers[0]), "127.0.0.1");
    EXPECT_EQ(a.answers[0].ttl, 5u);

    Message aaaa = ask(kFromA, query(kGenerated, type::AAAA), tcp);
    ASSERT_EQ(aaaa.answers.size(), 1u);
    EXPECT_EQ(addressText(aaaa.answers[0]), "::1");

    for (const char* source : {kFromB, kOutside}) {
      Message denied = ask(source, query(kGenerated, type::A), tcp);
      EXPECT_EQ(denied.rcode, rcode::NxDomain) << source;
      EXPECT_TRUE(denied.answers.empty());
      ASSERT_EQ(denied.authority.size(), 1u);
      EXPECT_EQ(denied.authority[0].type, type::SOA);
      EXPECT_EQ(denied.authority[0].name.text(), kZone);
    }
    // A service in no network is invisible to everyone, and an unknown name is simply absent.
    EXPECT_EQ(ask(kFromA, query(StoreFixture::generatedName("svc-0000000000000000b", "hidden"), type::A), tcp).rcode,
              rcode::NxDomain);
    EXPECT_EQ(ask(kFromA, query("nothing-here.7d67968." + kZone, type::A), tcp).rcode, rcode::NxDomain);
  }
}

TEST_F(DnsServerTest, CustomDomainNameIsACnameToTheGeneratedName) {
  start();
  Message a = ask(kFromA, query("Billing.Example.com", type::A));
  EXPECT_EQ(a.rcode, rcode::NoError);
  EXPECT_TRUE(a.aa);
  ASSERT_EQ(a.answers.size(), 2u);
  EXPECT_EQ(a.answers[0].type, type::CNAME);
  EXPECT_EQ(a.answers[0].name.text(), "Billing.Example.com");
  EXPECT_EQ(std::get<Name>(a.answers[0].data).text(), kGenerated);
  EXPECT_EQ(a.answers[1].name.text(), kGenerated);
  EXPECT_EQ(addressText(a.answers[1]), "127.0.0.1");

  Message cname = ask(kFromA, query(kCustom, type::CNAME));
  ASSERT_EQ(cname.answers.size(), 1u);
  EXPECT_EQ(cname.answers[0].type, type::CNAME);

  Message denied = ask(kFromB, query(kCustom, type::A));
  EXPECT_EQ(denied.rcode, rcode::NxDomain);
  EXPECT_TRUE(denied.authority.empty());  // not our zone: no SOA to claim it with

  // Other names under the custom domain's parent are not ours: REFUSED without upstreams.
  EXPECT_EQ(ask(kFromA, query("www.example.com", type::A)).rcode, rcode::Refused);
}

TEST_F(DnsServerTest, ApexHasSoaAndNs) {
  start();
  Message soa = ask(kFromB, query(kZone, type::SOA));
  EXPECT_EQ(soa.rcode, rcode::NoError);
  EXPECT_TRUE(soa.aa);
  ASSERT_EQ(soa.answers.size(), 1u);
  const auto& data = std::get<Soa>(soa.answers[0].data);
  EXPECT_EQ(data.mname.text(), "ns." + kZone);
  EXPECT_EQ(data.rname.text(), "hostmaster." + kZone);
  EXPECT_EQ(data.serial, uint32_t(store_.contents().revision));
  EXPECT_EQ(data.minimum, 5u);

  Message ns = ask(kOutside, query(kZone, type::NS), true);
  ASSERT_EQ(ns.answers.size(), 1u);
  EXPECT_EQ(std::get<Name>(ns.answers[0].data).text(), "ns." + kZone);
  Message nsAddress = ask(kOutside, query("ns." + kZone, type::A));
  ASSERT_EQ(nsAddress.answers.size(), 1u);
  EXPECT_EQ(addressText(nsAddress.answers[0]), "127.0.0.1");  // the address the DNS server listens on

  Message any = ask(kFromA, query(kZone, type::ANY));
  EXPECT_EQ(any.answers.size(), 2u);
}

TEST_F(DnsServerTest, NodataIsNoerrorWithTheSoa) {
  start();
  auto expectNodata = [&](const std::string& source, const std::string& name, uint16_t qtype) {
    SCOPED_TRACE(name);
    Message m = ask(source, query(name, qtype));
    EXPECT_EQ(m.rcode, rcode::NoError);
    EXPECT_TRUE(m.answers.empty());
    ASSERT_EQ(m.authority.size(), 1u);
    EXPECT_EQ(m.authority[0].type, type::SOA);
    EXPECT_EQ(m.authority[0].ttl, 5u);
  };
  expectNodata(kFromA, kGenerated, 16);   // TXT at a service name
  expectNodata(kFromA, kGenerated, 15);  // MX
  expectNodata(kFromB, kZone, type::A);   // the apex has no address
  expectNodata(kFromA, "7d67968." + kZone, type::A);  // an empty non-terminal above a visible service...
  EXPECT_EQ(ask(kFromB, query("7d67968." + kZone, type::A)).rcode, rcode::NxDomain);  // ...only for who sees it

  DnsOptions v4only = options();
  v4only.answerAddresses = {"127.0.0.1"};
  server_->stop();
  start(v4only);
  expectNodata(kFromA, kGenerated, type::AAAA);
}

TEST_F(DnsServerTest, ProtocolErrors) {
  start();
  // Outside the zone without upstreams.
  Message refused = ask(kFromA, query("example.org", type::A));
  EXPECT_EQ(refused.rcode, rcode::Refused);
  EXPECT_FALSE(refused.aa);
  EXPECT_FALSE(refused.ra);
  // Zone transfers, other classes, other opcodes, two questions.
  EXPECT_EQ(ask(kFromA, query(kZone, type::AXFR), true).rcode, rcode::Refused);
  Message chaos = query("version.bind", 16);
  chaos.questions[0].klass = 3;
  chaos.questions[0].name = *Name::fromText(kZone);
  EXPECT_EQ(ask(kFromA, chaos).rcode, rcode::Refused);
  Message status = query(kZone, type::SOA);
  status.opcode = 2;
  EXPECT_EQ(ask(kFromA, status).rcode, rcode::NotImp);
  Message two = query(kZone, type::SOA);
  two.questions.push_back(two.questions[0]);
  EXPECT_EQ(ask(kFromA, two).rcode, rcode::FormErr);

  // Malformed: a header promising a question that is not there gets FORMERR with the id echoed.
  std::string broken("\xAB\xCD\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  auto reply = udpExchange(kFromA, server_->port(), broken);
  ASSERT_TRUE(reply);
  auto formerr = parseMessage(*reply);
  ASSERT_TRUE(formerr);
  EXPECT_EQ(formerr->id, 0xABCD);
  EXPECT_EQ(formerr->rcode, rcode::FormErr);
  EXPECT_TRUE(formerr->rd);
  // Too short for a header, or a response rather than a query: no reply at all.
  EXPECT_FALSE(udpExchange(kFromA, server_->port(), "\x01\x02\x03", 300));
  Message response = query(kZone, type::SOA);
  response.qr = true;
  EXPECT_FALSE(udpExchange(kFromA, server_->port(), encodeMessage(response), 300));

  // Over TCP a malformed message is answered and the connection keeps serving what follows.
  auto replies = tcpExchange(kFromA, server_->port(), {broken, encodeMessage(query(kGenerated, type::A, {}, 7))});
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(parseMessage(replies[0])->rcode, rcode::FormErr);
  auto second = parseMessage(replies[1]);
  EXPECT_EQ(second->id, 7);
  EXPECT_EQ(second->answers.size(), 1u);

  // The server is still fine after all of that.
  EXPECT_EQ(ask(kFromA, query(kGenerated, type::A)).answers.size(), 1u);
}

TEST_F(DnsServerTest, EdnsAndTruncation) {
  DnsOptions many = options();
  many.answerAddresses.clear();
  for (int i = 1; i <= 40; ++i) many.answerAddresses.push_back("fd00::" + std::to_string(i));
  start(many);  // 40 AAAA records: about 1.2 KB

  Message plain = ask(kFromA, query(kGenerated, type::AAAA));  // no EDNS: 512 bytes at most
  EXPECT_TRUE(plain.tc);
  EXPECT_TRUE(plain.answers.empty());
  EXPECT_FALSE(plain.edns);
  Message tiny = ask(kFromA, query(kGenerated, type::AAAA, 100));  // below 512 counts as 512
  EXPECT_TRUE(tiny.tc);
  ASSERT_TRUE(tiny.edns);
  EXPECT_EQ(tiny.edns->udpSize, 1232);
  Message big = ask(kFromA, query(kGenerated, type::AAAA, 4096));
  EXPECT_FALSE(big.tc);
  EXPECT_EQ(big.answers.size(), 40u);
  Message tcp = ask(kFromA, query(kGenerated, type::AAAA), true);
  EXPECT_FALSE(tcp.tc);
  EXPECT_EQ(tcp.answers.size(), 40u);
  EXPECT_FALSE(tcp.edns);  // no OPT asked, none given

  // EDNS versions other than 0 get BADVERS.
  Message v1 = query(kGenerated, type::A, 1232);
  v1.edns->version = 1;
  Message badvers = ask(kFromA, v1);
  EXPECT_EQ(badvers.rcode, rcode::BadVers);
  ASSERT_TRUE(badvers.edns);
  EXPECT_EQ(badvers.edns->version, 0);
}

TEST_F(DnsServerTest, AnswersFollowTheSnapshotAtOnce) {
  start();
  EXPECT_EQ(ask(kFromB, query(kGenerated, type::A)).rcode, rcode::NxDomain);
  store_.vpcAssociation("snva-0000000000000000b", "sn-0123456789abcdef0", "vpc-bbbbbbbb");
  publish();
  EXPECT_EQ(ask(kFromB, query(kGenerated, type::A)).answers.size(), 1u);
  store_.erase("servicenetworkvpcassociation", "snva-0123456789abcdef0");
  publish();
  EXPECT_EQ(ask(kFromA, query(kGenerated, type::A)).rcode, rcode::NxDomain);
  EXPECT_EQ(ask(kFromB, query(kCustom, type::A)).answers.size(), 2u);
  // The service leaving the network hides it from everyone.
  store_.erase("servicenetworkserviceassociation", "snsa-0123456789abcdef0");
  publish();
  EXPECT_EQ(ask(kFromB, query(kGenerated, type::A), true).rcode, rcode::NxDomain);
}

TEST_F(DnsServerTest, ForwardsOtherNamesUpstream) {
  TinyUpstream silent(TinyUpstream::Mode::Silent), answering(TinyUpstream::Mode::Answers);
  DnsOptions o = options();
  o.upstreams = {silent.endpoint(), answering.endpoint()};
  o.upstreamTimeout = std::chrono::milliseconds(300);
  start(o);

  for (bool tcp : {false, true}) {
    SCOPED_TRACE(tcp ? "TCP" : "UDP");
    Message m = ask(kOutside, query("www.Example.org", type::A, 1232, 0x5151), tcp);
    EXPECT_EQ(m.id, 0x5151);  // relayed under the client's id...
    EXPECT_NE(answering.lastId(), 0x5151);  // ...though upstream saw a fresh one (1 in 65536 to collide)
    EXPECT_EQ(m.rcode, rcode::NoError);
    EXPECT_EQ(m.questions.at(0).name.text(), "www.Example.org");
    ASSERT_EQ(m.answers.size(), 1u);
    EXPECT_EQ(addressText(m.answers[0]), "192.0.2.1");
    EXPECT_TRUE(m.ra);
  }
  EXPECT_EQ(silent.queries(), 2);  // tried first each time, timed out
  // The served names are never forwarded, visible or not.
  EXPECT_EQ(ask(kFromB, query(kGenerated, type::A)).rcode, rcode::NxDomain);
  EXPECT_EQ(ask(kFromA, query(kZone, type::SOA)).answers.size(), 1u);
  EXPECT_EQ(answering.queries(), 2);
}

TEST_F(DnsServerTest, TruncatedUpstreamAnswerIsRetriedOverTcpForTcpQueriers) {
  TinyUpstream truncating(TinyUpstream::Mode::Truncates);
  DnsOptions o = options();
  o.upstreams = {truncating.endpoint()};
  start(o);
  Message udp = ask(kOutside, query("big.example.org", type::A));
  EXPECT_TRUE(udp.tc);  // relayed as is: the querier retries over TCP itself
  EXPECT_TRUE(udp.answers.empty());
  EXPECT_EQ(truncating.tcpQueries(), 0);
  Message tcp = ask(kOutside, query("big.example.org", type::A, std::nullopt, 0x7777), true);
  EXPECT_FALSE(tcp.tc);
  EXPECT_EQ(tcp.id, 0x7777);
  ASSERT_EQ(tcp.answers.size(), 1u);
  EXPECT_EQ(addressText(tcp.answers[0]), "192.0.2.1");
  EXPECT_EQ(truncating.tcpQueries(), 1);
}

TEST_F(DnsServerTest, AllUpstreamsSilentIsServfail) {
  TinyUpstream silent(TinyUpstream::Mode::Silent);
  DnsOptions o = options();
  o.upstreams = {silent.endpoint()};
  o.upstreamTimeout = std::chrono::milliseconds(200);
  start(o);
  Message m = ask(kOutside, query("example.net", type::A));
  EXPECT_EQ(m.rcode, rcode::ServFail);
  EXPECT_EQ(m.id, 0x4242);
}

TEST_F(DnsServerTest, RealDig) {
  start();
  std::string base = "dig +tries=1 +time=3 @127.0.0.1 -p " + std::to_string(server_->port()) + " ";
  EXPECT_EQ(run(base + "-b " + kFromA + " " + kGenerated + " A +short"), "127.0.0.1\n");
  EXPECT_EQ(run(base + "-b " + kFromA + " " + kGenerated + " AAAA +short +tcp"), "::1\n");
  EXPECT_EQ(run(base + "-b " + kFromA + " " + kCustom + " A +short"), kGenerated + ".\n127.0.0.1\n");
  std::string denied = run(base + "-b " + kFromB + " " + kGenerated + " A");
  EXPECT_NE(denied.find("status: NXDOMAIN"), std::string::npos) << denied;
  EXPECT_NE(denied.find("flags: qr aa rd;"), std::string::npos) << denied;
  std::string refused = run(base + "-b " + kFromA + " example.org A");
  EXPECT_NE(refused.find("status: REFUSED"), std::string::npos) << refused;
  std::string soa = run(base + "-b " + kFromB + " " + kZone + " SOA +short");
  EXPECT_EQ(soa.rfind("ns." + kZone + ". hostmaster." + kZone + ". ", 0), 0u) << soa;
}

TEST(DnsServerOptions, BadOptionsAreRejected) {
  snapshot::SnapshotHolder holder;
  auto make = [&](auto change) {
    DnsOptions o;
    o.listen = "127.0.0.1:0";
    o.zone = "svcs.example";
    change(o);
    return DnsServer(std::move(o), holder);
  };
  EXPECT_THROW(make([](DnsOptions& o) { o.listen = "nope"; }), std::invalid_argument);
  EXPECT_THROW(make([](DnsOptions& o) { o.zone = ""; }), std::invalid_argument);
  EXPECT_THROW(make([](DnsOptions& o) { o.answerAddresses = {"0.0.0.0"}; }), std::invalid_argument);
  EXPECT_THROW(make([](DnsOptions& o) { o.answerAddresses = {"host"}; }), std::invalid_argument);
  EXPECT_THROW(make([](DnsOptions& o) { o.upstreams = {"resolver:53"}; }), std::invalid_argument);
  EXPECT_NO_THROW(make([](DnsOptions& o) { o.upstreams = {"127.0.0.53", "[::1]:5353"}; }));
}

}  // namespace
}  // namespace trellis::dns
