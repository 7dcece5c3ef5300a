// A DnsServer over a fixed snapshot, for shell tests (netns.test.sh) until trellisd itself is run there:
// service "billing" (custom name billing.example.com) in service network "net", which VPC A is
// associated with; VPC B is associated with nothing. SIGUSR1 associates VPC B too (a live change).
//
//   dns_fixture_server LISTEN VPC_A_CIDR VPC_B_CIDR ANSWER_ADDRESS
// Prints "ready PORT" and the generated name once serving; runs until SIGTERM/SIGINT.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "dns/server.h"
#include "snapshot/compiler.h"
#include "snapshot/source.h"
#include "snapshot/store_fixture.h"

int main(int argc, char** argv) {
  using namespace trellis;
  if (argc != 5) {
    std::cerr << "usage: dns_fixture_server LISTEN VPC_A_CIDR VPC_B_CIDR ANSWER_ADDRESS\n";
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts: only sigwait sees them

  model::Config config;
  config.vpcs = {{"vpc-aaaaaaaa", {argv[2]}}, {"vpc-bbbbbbbb", {argv[3]}}};
  testing::StoreFixture store;
  store.service("svc-0123456789abcdef0", "billing", "billing.example.com");
  store.serviceNetwork("sn-0123456789abcdef0", "net");
  store.serviceAssociation("snsa-0123456789abcdef0", "sn-0123456789abcdef0", "svc-0123456789abcdef0");
  store.vpcAssociation("snva-0123456789abcdef0", "sn-0123456789abcdef0", "vpc-aaaaaaaa");
  snapshot::SnapshotHolder holder;
  holder.publish(snapshot::compileSnapshot(store.contents(), config));

  dns::DnsOptions options;
  options.listen = argv[1];
  options.zone = config.effectiveServiceDomain();
  options.answerAddresses = {argv[4]};
  dns::DnsServer server(options, holder);
  try {
    server.start();
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  std::printf("ready %u %s\n", unsigned(server.port()),
              testing::StoreFixture::generatedName("svc-0123456789abcdef0", "billing").c_str());
  std::fflush(stdout);
  for (;;) {
    int signal = 0;
    sigwait(&signals, &signal);
    if (signal != SIGUSR1) break;
    store.vpcAssociation("snva-0000000000000000b", "sn-0123456789abcdef0", "vpc-bbbbbbbb");
    holder.publish(snapshot::compileSnapshot(store.contents(), config));
    std::printf("associated B\n");
    std::fflush(stdout);
  }
  server.stop();
  return 0;
}
