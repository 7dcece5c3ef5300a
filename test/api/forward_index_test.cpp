// The index of which listeners and rules forward to which target groups stays what a full scan says, and
// the cascades that find children through their name index leave nothing behind,
// through every path that writes one: creates, updates, BatchUpdateRule, deletes and their cascades, and
// refused calls (a target group another service uses, deletes of what is in use). A seeded random sequence
// of API calls, checked after each one; plus the index built for a store written before it existed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "api/actions.h"
#include "api/api.h"
#include "api/forward_index_check.h"
#include "common/log.h"
#include "model/config.h"
#include "store/store.h"

namespace trellis::api {
namespace {

using json = nlohmann::json;
const std::string kVpc = "vpc-0123456789abcdef0";

class ForwardIndex : public ::testing::Test {
 protected:
  ForwardIndex() {
    setLogLevel(LogLevel::Error);
    char dir[] = "/tmp/trellis-forward-index-XXXXXX";
    dir_ = mkdtemp(dir);
    store_ = store::openSqliteStore(dir_);
    config_.vpcs.push_back({kVpc, {"10.0.0.0/16"}});
    identity_.arn = "arn:aws:iam::111122223333:role/test";
    startApi();
  }
  ~ForwardIndex() override {
    api_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void startApi() {
    auto pinned = std::make_shared<const model::Config>(config_);
    api_ = std::make_unique<Api>(
        *store_, [pinned] { return pinned; },
        [this](const HttpRequest&, const model::Config&) {
          return std::variant<const model::Identity*, ApiError>(&identity_);
        });
  }
  // One API call; the response's JSON body, or null when it failed.
  json call(const std::string& method, const std::string& path, const json& body = nullptr) {
    HttpRequest request;
    request.method = method;
    request.path = path;
    request.target = path;
    request.headers = {{"host", "localhost"}, {"content-type", "application/json"}};
    if (!body.is_null()) request.body = body.dump();
    HttpResponse response = api_->handle(request);
    if (response.status / 100 != 2) {
      lastError_ = response.body;
      return nullptr;
    }
    return response.body.empty() ? json::object() : json::parse(response.body);
  }
  static json forward(const std::string& tg) {
    return {{"forward", {{"targetGroups", json::array({{{"targetGroupIdentifier", tg}, {"weight", 100}}})}}}};
  }

  std::string lastError_;  // the body of the last failed call, for failure messages
  std::string dir_;
  model::Config config_;
  model::Identity identity_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Api> api_;
};

TEST_F(ForwardIndex, EqualsAFullScanThroughARandomSequenceOfCalls) {
  std::mt19937 random(12345);
  auto pick = [&](auto& list) -> auto& { return list[random() % list.size()]; };
  std::vector<std::string> services, groups;
  struct Listener {
    std::string service, id;
    std::vector<std::string> rules;
  };
  std::vector<Listener> listeners;
  int serial = 0;
  auto newService = [&] {
    json s = call("POST", "/services", {{"name", "service-" + std::to_string(++serial)}});
    ASSERT_FALSE(s.is_null()) << lastError_;
    services.push_back(s["id"]);
  };
  for (int i = 0; i < 3; ++i) newService();
  for (int i = 0; i < 5; ++i) {
    json tg = call("POST", "/targetgroups",
                   {{"name", "group-" + std::to_string(i)},
                    {"type", "IP"},
                    {"config", {{"port", 80}, {"protocol", "HTTP"}, {"vpcIdentifier", kVpc}}}});
    ASSERT_FALSE(tg.is_null()) << lastError_;
    groups.push_back(tg["id"]);
  }
  auto action = [&]() -> json { return random() % 4 ? forward(pick(groups)) : json{{"fixedResponse", {{"statusCode", 404}}}}; };
  int succeeded = 0;
  for (int step = 0; step < 400; ++step) {
    int op = static_cast<int>(random() % 9);
    json out;
    std::string what;
    if (op == 0 || listeners.empty()) {
      std::string service = pick(services);
      what = "CreateListener";
      out = call("POST", "/services/" + service + "/listeners",
                 {{"name", "l-" + std::to_string(++serial)}, {"protocol", "HTTP"},
                  {"port", 1000 + serial}, {"defaultAction", action()}});
      if (!out.is_null()) listeners.push_back({service, out["id"], {}});
    } else if (op == 1) {
      Listener& l = pick(listeners);
      what = "UpdateListener";
      out = call("PATCH", "/services/" + l.service + "/listeners/" + l.id, {{"defaultAction", action()}});
    } else if (op == 2 || op == 3) {
      Listener& l = pick(listeners);
      what = "CreateRule";
      out = call("POST", "/services/" + l.service + "/listeners/" + l.id + "/rules",
                 {{"name", "r-" + std::to_string(++serial)}, {"priority", serial},
                  {"match", {{"httpMatch", {{"pathMatch", {{"match", {{"prefix", "/p" + std::to_string(serial)}}}}}}}}},
                  {"action", action()}});
      if (!out.is_null()) l.rules.push_back(out["id"]);
    } else if (op == 4) {
      Listener& l = pick(listeners);
      if (l.rules.empty()) continue;
      what = "UpdateRule";
      out = call("PATCH", "/services/" + l.service + "/listeners/" + l.id + "/rules/" + pick(l.rules),
                 {{"action", action()}});
    } else if (op == 5) {
      Listener& l = pick(listeners);
      if (l.rules.empty()) continue;
      what = "BatchUpdateRule";
      json rules = json::array();
      for (const auto& rule : l.rules) rules.push_back({{"ruleIdentifier", rule}, {"action", action()}});
      if (rules.size() > 10) rules.erase(rules.begin() + 10, rules.end());
      out = call("PATCH", "/services/" + l.service + "/listeners/" + l.id + "/rules", {{"rules", rules}});
    } else if (op == 6) {
      Listener& l = pick(listeners);
      if (l.rules.empty()) continue;
      what = "DeleteRule";
      size_t i = random() % l.rules.size();
      out = call("DELETE", "/services/" + l.service + "/listeners/" + l.id + "/rules/" + l.rules[i]);
      if (!out.is_null()) l.rules.erase(l.rules.begin() + static_cast<long>(i));
    } else if (op == 7) {
      size_t i = random() % listeners.size();
      what = "DeleteListener";
      out = call("DELETE", "/services/" + listeners[i].service + "/listeners/" + listeners[i].id);
      if (!out.is_null()) {
        for (const auto& record : store_->list("rule")) {  // its rules, the default one too, went with it
          ASSERT_NE(json::parse(record.value).value("listenerId", ""), listeners[i].id) << record.id;
        }
        listeners.erase(listeners.begin() + static_cast<long>(i));
      }
    } else {
      size_t i = random() % services.size();
      std::string service = services[i];
      what = random() % 2 ? "DeleteService" : "DeleteTargetGroup";
      if (what == "DeleteService") {
        out = call("DELETE", "/services/" + service);
        if (!out.is_null()) {
          // Its listeners and rules (found through their name index) went with it.
          for (const char* kind : {"listener", "rule"}) {
            for (const auto& record : store_->list(kind)) {
              ASSERT_NE(json::parse(record.value).value("serviceId", ""), service) << kind << " " << record.id;
            }
          }
          std::erase_if(listeners, [&](const Listener& l) { return l.service == service; });
          services.erase(services.begin() + static_cast<long>(i));
          newService();
        }
      } else {
        out = call("DELETE", "/targetgroups/" + pick(groups));  // refused while a service uses it
      }
    }
    succeeded += !out.is_null();
    std::string mismatch = testing::forwardIndexMismatch(*store_);
    ASSERT_EQ(mismatch, "") << "after step " << step << " (" << what << ")";
  }
  EXPECT_GT(succeeded, 200);  // the sequence did write: most calls went through
  // What the index answers is what the API reports: each target group's services.
  for (const auto& tg : groups) {
    json got = call("GET", "/targetgroups/" + tg);
    if (got.is_null()) continue;  // deleted
    Resources resources(*store_);
    EXPECT_EQ(got["serviceArns"].size(), servicesUsing(resources, tg).size()) << tg;
  }
}

TEST_F(ForwardIndex, IsBuiltOnceForAStoreWrittenBeforeIt) {
  json service = call("POST", "/services", {{"name", "billing"}});
  json tg = call("POST", "/targetgroups",
                 {{"name", "group-a"}, {"type", "IP"}, {"config", {{"port", 80}, {"protocol", "HTTP"}, {"vpcIdentifier", kVpc}}}});
  std::string s = service["id"], t = tg["id"];
  json listener = call("POST", "/services/" + s + "/listeners",
                       {{"name", "web"}, {"protocol", "HTTP"}, {"port", 80}, {"defaultAction", forward(t)}});
  ASSERT_FALSE(listener.is_null()) << lastError_;
  // As a store of an older trellisd: documents, no index.
  std::vector<store::Op> drop;
  for (const char* kind : {kForwardByTargetGroup, kForwardByService, "index.version"})
    for (const auto& record : store_->list(kind)) drop.push_back(store::Op::del(kind, record.id));
  ASSERT_TRUE(store_->commit({}, drop));
  EXPECT_NE(testing::forwardIndexMismatch(*store_), "");

  buildForwardIndexIfMissing(*store_);  // as trellisd does at start
  EXPECT_EQ(testing::forwardIndexMismatch(*store_), "");
  // And the API acts on it: the target group is in use.
  EXPECT_TRUE(call("DELETE", "/targetgroups/" + t).is_null());
  EXPECT_EQ(call("GET", "/targetgroups/" + t)["serviceArns"].size(), 1u);
}

}  // namespace
}  // namespace trellis::api
