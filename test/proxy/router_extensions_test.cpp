// Trellis rule extensions in the router: several matches per rule (OR'd) and query parameter matches
// (AND'd with them), compiled from the rule documents the API stores.
#include <gtest/gtest.h>

#include "compile/compiler.h"
#include "compile/store_fixture.h"
#include "proxy/router.h"

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
    if (!snap_) snap_ = compile::compileSnapshot(store_.contents(), config_);
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
  json ext = json::parse(R"({
    "matches": [{"pathMatch": {"match": {"prefix": "/b"}}}, {"pathMatch": {"match": {"prefix": "/C"}}}],
    "queryMatches": [{"name": "q", "present": true}],
    "requestHeaderModifier": {"set": [{"name": "X-Env", "value": "Prod"}], "remove": ["Cookie"]},
    "responseHeaderModifier": {"add": [{"name": "x-by", "value": "t"}]},
    "urlRewrite": {"hostname": "Backend.Internal", "path": {"replaceFullPath": "/x"}},
    "requestRedirect": {"scheme": "https", "port": 8443, "path": {"replacePrefixMatch": "/n"}}})");
  rule("rule-1", 1, prefix("/a"), ext, 205);
  snap_ = compile::compileSnapshot(store_.contents(), config_);
  const auto& r = snap_->services.at(kSvc)->listeners.at(0).rules.at(0);
  ASSERT_EQ(r.alternatives.size(), 2u);
  EXPECT_EQ(r.alternatives[1].path, "/c");  // case-insensitive unless caseSensitive, like the rule's match
  ASSERT_EQ(r.queries.size(), 1u);
  EXPECT_EQ(r.queries[0].kind, snapshot::QueryMatch::Kind::Present);
  EXPECT_EQ(r.requestHeaders.set, (std::vector<std::pair<std::string, std::string>>{{"x-env", "Prod"}}));
  EXPECT_EQ(r.requestHeaders.remove, std::vector<std::string>{"cookie"});
  EXPECT_EQ(r.responseHeaders.add.size(), 1u);
  EXPECT_EQ(r.rewrite.hostname, "backend.internal");
  EXPECT_EQ(r.rewrite.path.kind, snapshot::PathModifier::Kind::ReplaceFullPath);
  EXPECT_TRUE(r.redirect.enabled);
  EXPECT_EQ(r.redirect.statusCode, 302);  // the Gateway API's default
  EXPECT_EQ(r.redirect.port, 8443);
  EXPECT_EQ(r.redirect.path.kind, snapshot::PathModifier::Kind::ReplacePrefixMatch);
}

// ---------------- request and redirect rewriting ----------------

proxy::RequestHead request(const std::string& target, proxy::Headers headers = {}) {
  proxy::RequestHead head;
  head.method = "GET";
  head.target = target;
  head.host = "shop.example.com";
  head.headers = std::move(headers);
  return head;
}

snapshot::Rule prefixRule(const std::string& prefix) {
  snapshot::Rule rule;
  rule.match.pathKind = snapshot::HttpMatch::PathKind::Prefix;
  rule.match.path = prefix;
  return rule;
}

snapshot::PathModifier replace(snapshot::PathModifier::Kind kind, const std::string& value) { return {kind, value}; }

TEST(RequestRewrite, HeaderModifierSetsAddsAndRemoves) {
  snapshot::HeaderModifier m;
  m.set = {{"x-env", "prod"}};
  m.add = {{"x-trace", "b"}};
  m.remove = {"cookie"};
  proxy::Headers headers = {{"x-env", "dev"}, {"cookie", "a=1"}, {"x-trace", "a"}, {"x-env", "qa"}, {"cookie", "b"}};
  proxy::applyHeaderModifier(m, headers);
  EXPECT_EQ(headers, (proxy::Headers{{"x-trace", "a"}, {"x-env", "prod"}, {"x-trace", "b"}}));
}

TEST(RequestRewrite, PathModifiersKeepTheQuery) {
  using Kind = snapshot::PathModifier::Kind;
  snapshot::Rule rule = prefixRule("/v1");
  EXPECT_EQ(proxy::modifiedTarget(rule, replace(Kind::ReplaceFullPath, "/new"), request("/v1/a?q=1")), "/new?q=1");
  EXPECT_EQ(proxy::modifiedTarget(rule, replace(Kind::ReplacePrefixMatch, "/v2"), request("/v1/a?q=1")), "/v2/a?q=1");
  EXPECT_EQ(proxy::modifiedTarget(rule, replace(Kind::ReplacePrefixMatch, "/"), request("/v1/a")), "/a");
  EXPECT_EQ(proxy::modifiedTarget(rule, replace(Kind::ReplacePrefixMatch, "/"), request("/v1")), "/");
  EXPECT_EQ(proxy::modifiedTarget(rule, replace(Kind::None, "/x"), request("/v1/a?q")), "/v1/a?q");
  // The prefix is the one of the alternative match that hit.
  snapshot::HttpMatch other;
  other.pathKind = snapshot::HttpMatch::PathKind::Prefix;
  other.path = "/legacy/api";
  rule.alternatives.push_back(other);
  EXPECT_EQ(proxy::modifiedTarget(rule, replace(Kind::ReplacePrefixMatch, "/v2"), request("/legacy/api/a")), "/v2/a");
}

TEST(RequestRewrite, RewriteRequestChangesPathHeadersAndHost) {
  snapshot::Rule rule = prefixRule("/api");
  rule.rewrite.hostname = "backend.internal";
  rule.rewrite.path = replace(snapshot::PathModifier::Kind::ReplacePrefixMatch, "/");
  rule.requestHeaders.add = {{"x-added", "1"}};
  auto head = request("/api/items?x=1", {{"host", "shop.example.com"}, {"accept", "*/*"}});
  proxy::rewriteRequest(rule, head);
  EXPECT_EQ(head.target, "/items?x=1");
  EXPECT_EQ(*head.header("host"), "backend.internal");
  EXPECT_EQ(*head.header("x-added"), "1");
  EXPECT_EQ(*head.header("accept"), "*/*");
}

TEST(RequestRewrite, RedirectLocation) {
  using Kind = snapshot::PathModifier::Kind;
  snapshot::Rule rule = prefixRule("/old");
  rule.redirect.enabled = true;
  // Only the scheme: that scheme's default port, the same host and target.
  rule.redirect.scheme = "https";
  EXPECT_EQ(proxy::redirectLocation(rule, request("/old/a?b=1"), false, 80), "https://shop.example.com/old/a?b=1");
  // Same scheme: the listener's port is kept unless it is the default.
  rule.redirect.scheme.clear();
  EXPECT_EQ(proxy::redirectLocation(rule, request("/old"), false, 8080), "http://shop.example.com:8080/old");
  rule.redirect.hostname = "new.example.com";
  rule.redirect.port = 8443;
  rule.redirect.scheme = "https";
  rule.redirect.path = replace(Kind::ReplacePrefixMatch, "/new");
  EXPECT_EQ(proxy::redirectLocation(rule, request("/old/x"), false, 80), "https://new.example.com:8443/new/x");
}

}  // namespace
}  // namespace trellis::testing
