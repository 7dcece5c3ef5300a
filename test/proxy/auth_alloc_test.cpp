// The proxy authorizes every request of an AWS_IAM service: once warm, a worker's RequestAuthorizer must
// build the context and evaluate the network's and the service's policies without allocating. This binary
// replaces the global operator new to count allocations around RequestAuthorizer::authorize.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "compile/compiler.h"
#include "compile/store_fixture.h"
#include "proxy/auth.h"

namespace {
std::atomic<long> allocations{0};
}  // namespace

void* operator new(size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace trellis::testing {
namespace {

using json = nlohmann::json;

TEST(AuthAllocation, AnonymousRequestsAreAuthorizedWithoutAllocating) {
  const std::string svc = "svc-0123456789abcdef0", sn = "sn-0000000000000000a", vpc = "vpc-0123456789abcdef0";
  StoreFixture store;
  store.service(svc, "billing");
  store.serviceNetwork(sn, "net");
  store.serviceAssociation("snsa-1", sn, svc);
  store.vpcAssociation("snva-1", sn, vpc);
  for (const auto& [kind, id] : {std::pair<std::string, std::string>{"service", svc}, {"servicenetwork", sn}}) {
    json doc;
    for (const auto& r : store.contents().records) {
      if (r.kind == kind && r.id == id) doc = json::parse(r.value);
    }
    doc["authType"] = "AWS_IAM";
    store.put(kind, id, doc);
  }
  json condition = {{"StringEquals", {{"vpc-lattice-svcs:RequestHeader/x-team", "blue"}}},
                    {"ForAnyValue:StringEquals", {{"vpc-lattice-svcs:RequestQueryString/color", "red"}}},
                    {"StringEqualsIgnoreCase", {{"aws:PrincipalType", "anonymous"}}},
                    {"IpAddress", {{"aws:SourceIp", "127.0.0.0/8"}}},
                    {"DateGreaterThan", {{"aws:CurrentTime", "2024-01-01T00:00:00Z"}}}};
  json policy = {{"Version", "2012-10-17"},
                 {"Statement",
                  {{{"Effect", "Allow"}, {"Principal", "*"}, {"Action", "vpc-lattice-svcs:Invoke"},
                    {"Resource", "*/api/*"}, {"Condition", condition}},
                   {{"Effect", "Deny"}, {"Principal", "*"}, {"Action", "vpc-lattice-svcs:Invoke"},
                    {"Resource", "*/admin/*"}}}}};
  store.put("authpolicy", svc, {{"policy", policy.dump()}});
  store.put("authpolicy", sn, {{"policy", policy.dump()}});
  model::Config config;
  config.vpcs.push_back({vpc, {"127.0.0.0/8"}});
  auto snap = compile::compileSnapshot(store.contents(), config);
  const snapshot::Service& service = *snap->services.at(svc);
  const snapshot::Vpc* source = &snap->vpcs.at(vpc);

  proxy::RequestHead head;
  head.method = "GET";
  head.target = "/api/rates?color=blue&color=red&size=10";
  head.host = "billing";
  head.headers = {{"host", "billing"}, {"x-team", "blue"}, {"accept", "*/*"}, {"user-agent", "curl/7.88"}};
  proxy::RequestAuthorizer& authorizer = proxy::RequestAuthorizer::forThisThread();
  proxy::AuthRequest request{*snap, service, service.networks.at(0), source, head, 8080, "127.0.0.1", false};
  proxy::AuthOutcome outcome;
  std::string denial;
  ASSERT_TRUE(authorizer.authorize(request, outcome, denial)) << denial;  // warms the reused storage

  long before = allocations.load();
  for (int i = 0; i < 1000; ++i) {
    bool allowed = authorizer.authorize(request, outcome, denial);
    ASSERT_TRUE(allowed);
  }
  EXPECT_EQ(allocations.load() - before, 0);
  EXPECT_EQ(outcome.resolvedUser(), "Anonymous");

  // The same request without the header is denied: the condition was evaluated, not skipped.
  head.headers.pop_back();
  head.headers.erase(head.headers.begin() + 1);
  EXPECT_FALSE(authorizer.authorize(request, outcome, denial));
  EXPECT_STREQ(outcome.deniedBy, "Network");
}

}  // namespace
}  // namespace trellis::testing
