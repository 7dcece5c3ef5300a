// The data plane evaluates auth policies per request: evaluation must not allocate. This binary replaces
// the global operator new to count allocations while a policy using every operator family, set operators,
// variables and wildcards is evaluated.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "auth/policy.h"

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

using namespace trellis::auth;

TEST(PolicyAllocation, EvaluationAllocatesNothing) {
  auto parsed = parsePolicy(R"({"Version":"2012-10-17","Statement":[
    {"Effect":"Deny","Principal":"*","Action":"vpc-lattice-svcs:*","Resource":"arn:aws:vpc-lattice:*:*:service/*/admin/*"},
    {"Effect":"Allow","Principal":{"AWS":["111122223333","arn:aws:iam::111122223333:role/admin"]},
     "Action":["vpc-lattice-svcs:Invoke"],
     "Resource":"arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0/${aws:PrincipalTag/team}/*",
     "Condition":{
       "StringLike":{"vpc-lattice-svcs:RequestHeader/x-team":["b*","${aws:PrincipalTag/team}"]},
       "StringEqualsIgnoreCase":{"vpc-lattice-svcs:RequestMethod":"get"},
       "ForAnyValue:StringEquals":{"vpc-lattice-svcs:RequestQueryString/color":["red","blue"]},
       "NumericLessThan":{"vpc-lattice-svcs:Port":1024},
       "DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"},
       "Bool":{"aws:SecureTransport":"true"},
       "IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]},
       "ArnLike":{"vpc-lattice-svcs:ServiceNetworkArn":"arn:aws:vpc-lattice:*:111122223333:servicenetwork/*"},
       "StringNotEqualsIfExists":{"aws:PrincipalOrgID":"o-other"},
       "Null":{"aws:PrincipalArn":"false"}}}]})");
  ASSERT_TRUE(std::holds_alternative<Policy>(parsed)) << std::get<PolicyError>(parsed).message;
  const Policy& policy = std::get<Policy>(parsed);

  std::vector<std::pair<std::string, std::string>> headers = {{"X-Team", "blue"}, {"accept", "*/*"}};
  std::vector<std::pair<std::string, std::string>> query = {{"color", "blue"}};
  LatticeRequest request{
      .serviceNetworkArn = "arn:aws:vpc-lattice:us-east-1:111122223333:servicenetwork/sn-0123456789abcdef0",
      .port = "443",
      .method = "GET",
      .path = "/blue/rates",
      .headers = &headers,
      .query = &query,
      .sourceIp = "10.1.2.3",
      .currentTime = "2024-05-01T12:00:00Z",
      .secureTransport = true};
  RequestContext ctx;
  ctx.reserve(32);
  auto fill = [&] {
    ctx.clear();
    ctx.principal = "arn:aws:iam::111122223333:role/admin";
    ctx.resource = "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0/blue/rates";
    addLatticeRequestKeys(ctx, request);
    ctx.add("aws:PrincipalArn", "arn:aws:iam::111122223333:role/admin");
    ctx.add("aws:PrincipalTag/", "team", "blue", false);
  };
  fill();
  ASSERT_EQ(evaluate(policy, ctx).effect, Effect::Allow);  // every condition is evaluated

  LatticeAuthPolicies layers{nullptr, true, &policy, true, &policy};
  bool decisionsRight = true;
  long before = allocations.load();
  for (int i = 0; i < 100; ++i) {
    fill();
    Decision allow = evaluate(policy, ctx);
    ctx.resource = "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0123456789abcdef0/admin/x";
    Decision deny = evaluate(policy, ctx);
    LatticeDecision combined = authorizeLattice(layers, ctx);
    decisionsRight = decisionsRight && allow.allowed() && deny.effect == Effect::ExplicitDeny && !combined.allowed;
  }
  long allocated = allocations.load() - before;
  EXPECT_TRUE(decisionsRight);
  EXPECT_EQ(allocated, 0);
}
