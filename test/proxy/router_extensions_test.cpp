// Trellis rule extensions in the router: several matches per rule (OR'd) and query parameter matches
// (AND'd with them), compiled from the rule documents the API stores.
#include <gtest/gtest.h>

#include "proxy/router.h"
#include "snapshot/compiler.h"
#include "snapshot/store_fixture.h"

namespace trellis::testing {
namespace {

using json = nlohmann::json;

const std::string kVpc = "vpc-0000000000000000a";
const std::string kSn = "sn-0000000000000000a";
const std::string kSvc = "svc-0123456789abcdef0";
const std::string kHost = StoreFixture::generatedName(kSvc, "shop");

class RouterExtensions : public ::testing::Test {
 protected:
  RouterExtensions() {
    store_.service(kSvc, "shop");
    store_.listener("listener-1", kSvc, 80, StoreFixture::fixed(404));
    store_.serviceNetwork(kSn, "net");
    store_.serviceAssociation("snsa-1", kSn, kSvc);
    store_.vpcAssociation("snva-1", kSn, kVpc);
    config_.vpcs.push_back({kVpc, {"127.0.1.0/24"}});
  }

  // A rule as the API stores it, with a `trellis` member; its fixed response status names it.
  void rule(const std::string& id, int priority, const json& httpMatch, const json& trellis, int status) {
    json doc = {{"id", id},
                {"name", "r-" + id},
                {"arn", StoreFixture::arn("service", kSvc + "/listener/listener-1/rule/" + id)},
                {"priority", priority},
                {"match", {{"httpMatch", httpMatch}}},
                {"action", StoreFixture::fixed(status)},
                {"isDefault", false},
                {"serviceId", kSvc},
                {"listenerId", "listener-1"}};
    if (!trellis.is_null()) doc["trellis"] = trellis;
    store_.put("rule", id, doc);
  }

  // The status of the action `method target` routes to (404: the default action).
  int routeTo(const std::string& method, const std::string& target, const proxy::Headers& headers = {}) {
    if (!snap_) snap_ = snapshot::compileSnapshot(store_.contents(), config_);
    proxy::RequestHead head;
    head.method = method;
    head.target = target;
    head.host = kHost;
    head.headers = headers;
    auto result = proxy::route(*snap_, &snap_->vpcs.at(kVpc), 80, head);
    EXPECT_EQ(result.kind, proxy::RouteResult::Kind::Action);
    return result.action ? result.action->statusCode : -1;
  }

  StoreFixture store_;
  model::Config config_;
  std::shared_ptr<const snapshot::Snapshot> snap_;
};

json prefix(const std::string& path) { return {{"pathMatch", {{"match", {{"prefix", path}}}}}}; }

TEST_F(RouterExtensions, AlternativeMatchesAreOredWithTheRuleMatch) {
  json alternatives = {{"matches",
                        {{{"method", "POST"}, {"pathMatch", {{"match", {{"exact", "/orders"}}}}}},
                         {{"headerMatches", {{{"name", "x-beta"}, {"match", {{"exact", "yes"}}}}}}}}}};
  rule("rule-1", 1, prefix("/cart"), alternatives, 201);
  EXPECT_EQ(routeTo("GET", "/cart/items"), 201);               // the rule's own match
  EXPECT_EQ(routeTo("POST", "/orders"), 201);                   // first alternative
  EXPECT_EQ(routeTo("GET", "/orders"), 404);                    // ...needs its method
  EXPECT_EQ(routeTo("POST", "/orders/1"), 404);                 // ...and its exact path
  EXPECT_EQ(routeTo("GET", "/anything", {{"x-beta", "YES"}}), 201);  // second alternative, case-insensitive value
  EXPECT_EQ(routeTo("GET", "/anything"), 404);
}

TEST_F(RouterExtensions, QueryMatchesMustAllHoldForWhicheverMatchHit) {
  json ext = {{"matches", {prefix("/b")}},
              {"queryMatches",
               {{{"name", "version"}, {"exact", "v2"}}, {{"name", "lang"}, {"prefix", "en"}},
                {{"name", "debug"}, {"present", true}}}}};
  rule("rule-1", 1, prefix("/a"), ext, 202);
  EXPECT_EQ(routeTo("GET", "/a?version=v2&lang=en-GB&debug"), 202);
  EXPECT_EQ(routeTo("GET", "/b?debug=0&lang=en&version=v2"), 202);  // any order, via the alternative match
  EXPECT_EQ(routeTo("GET", "/c?version=v2&lang=en&debug"), 404);     // no path match
  EXPECT_EQ(routeTo("GET", "/a?version=V2&lang=en&debug"), 404);     // values are case-sensitive
  EXPECT_EQ(routeTo("GET", "/a?version=v2&lang=fr&debug"), 404);     // prefix fails
  EXPECT_EQ(routeTo("GET", "/a?version=v2&lang=en"), 404);           // present fails
  EXPECT_EQ(routeTo("GET", "/a"), 404);                              // no query at all
  EXPECT_EQ(routeTo("GET", "/a?version=v%32&lang=%65n&debug"), 202);  // decoded before comparing
  EXPECT_EQ(routeTo("GET", "/a?version=v1&version=v2&lang=en&debug"), 404);  // the first occurrence counts
  EXPECT_EQ(routeTo("GET", "/a?version=v2&lang=en&debug&bad=%zz"), 404);     // malformed query matches nothing
}

TEST_F(RouterExtensions, PriorityOrderStillDecidesAndPlainRulesAreUnchanged) {
  rule("rule-1", 1, prefix("/"), {{"queryMatches", {{{"name", "canary"}, {"exact", "1"}}}}}, 203);
  rule("rule-2", 2, prefix("/"), nullptr, 204);
  EXPECT_EQ(routeTo("GET", "/x?canary=1"), 203);
  EXPECT_EQ(routeTo("GET", "/x?canary=0"), 204);
  EXPECT_EQ(routeTo("GET", "/x"), 204);
}

TEST_F(RouterExtensions, CompilerKeepsTheExtensionsOnTheRule) {
  rule("rule-1", 1, prefix("/a"), {{"matches", {prefix("/b"), prefix("/c")}}, {"queryMatches", {{{"name", "q"}, {"present", true}}}}},
       205);
  snap_ = snapshot::compileSnapshot(store_.contents(), config_);
  const auto& r = snap_->services.at(kSvc).listeners.at(0).rules.at(0);
  ASSERT_EQ(r.alternatives.size(), 2u);
  EXPECT_EQ(r.alternatives[1].path, "/c");
  ASSERT_EQ(r.queries.size(), 1u);
  EXPECT_EQ(r.queries[0].kind, snapshot::QueryMatch::Kind::Present);
}

}  // namespace
}  // namespace trellis::testing
