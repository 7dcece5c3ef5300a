// Console sign-in: cookies, sessions and CSRF tokens (src/console/session.h), and the console's HTTP answers
// built on them, against a real Api over a real SQLite store with SigV4 as trellisd runs it.
#include "console/session.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "api/api.h"
#include "auth/sigv4.h"
#include "common/log.h"
#include "console/console.h"
#include "model/config.h"
#include "store/store.h"

namespace trellis::console {
namespace {

using json = nlohmann::json;
using Clock = SessionStore::Clock;

model::Identity identity(const std::string& name, const std::string& policy = "") {
  model::Identity id;
  id.arn = "arn:aws:iam::111122223333:role/" + name;
  id.accessKeyId = "AKIA" + name;
  id.secretAccessKey = name + "-secret";
  id.policy = policy;
  return id;
}

model::Config configWith(std::vector<model::Identity> identities) {
  model::Config config;
  config.identities = std::move(identities);
  return config;
}

TEST(CookieHeader, ParsesPairsAsBrowsersSendThem) {
  auto pairs = parseCookieHeader("a=1; trellis_session=abc;b=\"quoted\" ;  c = spaced ; =nameless; novalue; d=");
  std::vector<std::pair<std::string, std::string>> want = {
      {"a", "1"}, {"trellis_session", "abc"}, {"b", "quoted"}, {"c", "spaced"}, {"d", ""}};
  EXPECT_EQ(pairs, want);
  EXPECT_TRUE(parseCookieHeader("").empty());
  EXPECT_TRUE(parseCookieHeader(";;;").empty());
  EXPECT_EQ(parseCookieHeader("x=a=b").at(0).second, "a=b");  // '=' inside a value stays
}

TEST(CookieHeader, FindsTheCookieAcrossHeaders) {
  HeaderList headers = {
      {"cookie", "other=1"}, {"x-cookie", "trellis_session=forged"}, {"cookie", "trellis_session=s1"}};
  EXPECT_EQ(findCookie(headers, kSessionCookie).value(), "s1");
  EXPECT_FALSE(findCookie({{"cookie", "trellis_sessionx=1"}}, kSessionCookie).has_value());
}

TEST(Sessions, SignInChecksTheSecret) {
  auto config = configWith({identity("admin")});
  SessionStore sessions;
  EXPECT_FALSE(sessions.signIn(config, "AKIAadmin", "wrong"));
  EXPECT_FALSE(sessions.signIn(config, "AKIAnobody", "admin-secret"));
  EXPECT_FALSE(sessions.signIn(config, "AKIAadmin", ""));
  auto session = sessions.signIn(config, "AKIAadmin", "admin-secret");
  ASSERT_TRUE(session);
  EXPECT_EQ(session->id.size(), 64u);
  EXPECT_EQ(session->csrf.size(), 64u);
  EXPECT_NE(session->id, session->csrf);
  EXPECT_EQ(session->secretDigest.find("admin-secret"), std::string::npos);
  Session copy;
  const model::Identity* who = sessions.resolve(config, session->id, &copy);
  ASSERT_NE(who, nullptr);
  EXPECT_EQ(who->arn, "arn:aws:iam::111122223333:role/admin");
  EXPECT_EQ(copy.csrf, session->csrf);
  auto other = sessions.signIn(config, "AKIAadmin", "admin-secret");
  EXPECT_NE(other->id, session->id);
  EXPECT_NE(other->csrf, session->csrf);
  EXPECT_EQ(sessions.resolve(config, "not-a-session"), nullptr);
}

TEST(Sessions, ExpireAndAreForgotten) {
  auto config = configWith({identity("admin")});
  SessionStore sessions(std::chrono::seconds(60));
  auto start = Clock::now();
  auto session = sessions.signIn(config, "AKIAadmin", "admin-secret", start);
  EXPECT_NE(sessions.resolve(config, session->id, nullptr, start + std::chrono::seconds(59)), nullptr);
  EXPECT_EQ(sessions.resolve(config, session->id, nullptr, start + std::chrono::seconds(60)), nullptr);
  EXPECT_EQ(sessions.size(), 0u);
  EXPECT_EQ(sessions.resolve(config, session->id, nullptr, start), nullptr);  // gone for good
}

TEST(Sessions, EndWhenTheIdentityIsRemovedOrItsSecretChanges) {
  auto config = configWith({identity("admin"), identity("dev")});
  SessionStore sessions;
  auto admin = sessions.signIn(config, "AKIAadmin", "admin-secret");
  auto dev = sessions.signIn(config, "AKIAdev", "dev-secret");
  auto reloaded = configWith({identity("admin")});
  EXPECT_EQ(sessions.resolve(reloaded, dev->id), nullptr);
  EXPECT_EQ(sessions.resolve(config, dev->id), nullptr) << "putting the identity back does not revive the session";
  auto rotated = configWith({identity("admin")});
  rotated.identities[0].secretAccessKey = "rotated";
  EXPECT_EQ(sessions.resolve(rotated, admin->id), nullptr);
}

TEST(Sessions, AFullStoreDropsTheOldestSession) {
  auto config = configWith({identity("admin")});
  SessionStore sessions(std::chrono::seconds(3600), 2);
  auto now = Clock::now();
  auto first = sessions.signIn(config, "AKIAadmin", "admin-secret", now);
  auto second = sessions.signIn(config, "AKIAadmin", "admin-secret", now + std::chrono::seconds(1));
  auto third = sessions.signIn(config, "AKIAadmin", "admin-secret", now + std::chrono::seconds(2));
  EXPECT_EQ(sessions.size(), 2u);
  EXPECT_EQ(sessions.resolve(config, first->id, nullptr, now), nullptr);
  EXPECT_NE(sessions.resolve(config, second->id, nullptr, now), nullptr);
  EXPECT_NE(sessions.resolve(config, third->id, nullptr, now), nullptr);
}

TEST(Throttle, RefusesAnAddressAfterTooManyFailuresForTheRestOfTheWindow) {
  SignInThrottle throttle(3, std::chrono::seconds(60));
  auto t0 = Clock::now();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(throttle.retryAfter("10.0.0.1", t0), 0);
    throttle.failed("10.0.0.1", t0);
  }
  EXPECT_EQ(throttle.retryAfter("10.0.0.1", t0 + std::chrono::seconds(10)), 51);
  EXPECT_EQ(throttle.retryAfter("10.0.0.2", t0), 0) << "another address may still try";
  EXPECT_EQ(throttle.retryAfter("10.0.0.1", t0 + std::chrono::seconds(60)), 0) << "the window has passed";
  throttle.failed("10.0.0.3", t0);
  throttle.succeeded("10.0.0.3");
  throttle.failed("10.0.0.3", t0);
  throttle.failed("10.0.0.3", t0);
  EXPECT_EQ(throttle.retryAfter("10.0.0.3", t0), 0) << "a success starts the count again";
}

TEST(Csrf, TheTokenMustMatchExactly) {
  Session session;
  session.csrf = "abc123";
  std::string right = "abc123", wrong = "abc124", prefix = "abc", empty;
  EXPECT_TRUE(csrfTokenMatches(session, &right));
  EXPECT_FALSE(csrfTokenMatches(session, &wrong));
  EXPECT_FALSE(csrfTokenMatches(session, &prefix));
  EXPECT_FALSE(csrfTokenMatches(session, &empty));
  EXPECT_FALSE(csrfTokenMatches(session, nullptr));
  Session none;
  EXPECT_FALSE(csrfTokenMatches(none, &empty)) << "a session without a token accepts nothing";
}

TEST(Cookie, IsHttpOnlySameSiteStrictAndExpires) {
  Session session;
  session.id = "0123";
  EXPECT_EQ(sessionCookie(session, std::chrono::seconds(28800), false),
            "trellis_session=0123; Path=/; Max-Age=28800; HttpOnly; SameSite=Strict");
  EXPECT_EQ(sessionCookie(session, std::chrono::seconds(60), true),
            "trellis_session=0123; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure");
  EXPECT_EQ(expiredSessionCookie(false), "trellis_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
}

// The console's HTTP surface over a real Api: sign-in, cookie, CSRF, and a write that the API authorizes.
class ConsoleHttp : public ::testing::Test {
 protected:
  ConsoleHttp() {
    setLogLevel(LogLevel::Error);
    char dir[] = "/tmp/trellis-console-XXXXXX";
    dir_ = mkdtemp(dir);
    store_ = store::openSqliteStore(dir_);
    config_ = std::make_shared<const model::Config>(configWith(
        {identity("admin"),
         identity("reader", R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["vpc-lattice:Get*",)"
                            R"("vpc-lattice:List*"],"Resource":"*"}]})"),
         identity("team",
                  R"({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"vpc-lattice:Get*",)"
                  R"("Resource":"arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0aaaaaaaaaaaaaaaa"}]})")}));
    auto source = [this] { return std::atomic_load(&config_); };
    api_ = std::make_unique<api::Api>(*store_, source, [](const HttpRequest& request, const model::Config& config) {
      auth::SigV4Request input{request.method, request.path, request.query, request.headers, request.body};
      auto lookup = [&config](std::string_view key) { return config.identityByAccessKey(std::string(key)); };
      auto result = auth::verifySigV4(input, "vpc-lattice", config.region, lookup, systemNow());
      if (result.ok()) return std::variant<const model::Identity*, api::ApiError>(result.identity);
      return std::variant<const model::Identity*, api::ApiError>(
          api::ApiError(result.status, result.errorCode, result.message));
    });
    ConsoleSources sources;
    sources.metrics = [] {
      return std::string("TotalRequestCount{service=\"svc-0aaaaaaaaaaaaaaaa\"} 10\n") +
             "TotalRequestCount{service=\"svc-0bbbbbbbbbbbbbbbb\"} 20\n" +
             "TotalRequestCount{target_group=\"tg-0cccccccccccccccc\"} 5\n";
    };
    sources.accessLogs = [this](uint64_t after) {
      std::vector<ConsoleSources::LogLine> out;
      for (const auto& line : logLines_)
        if (line.sequence > after) out.push_back(line);
      return out;
    };
    console_ = std::make_unique<Console>(*api_, source, std::move(sources));
  }
  ~ConsoleHttp() override {
    console_.reset();
    api_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  HttpResponse send(const std::string& method, const std::string& path, const std::string& body = "",
                    HeaderList headers = {}) {
    HttpRequest request;
    request.method = method;
    auto q = path.find('?');
    request.path = path.substr(0, q);
    if (q != std::string::npos) request.query = path.substr(q + 1);
    request.target = path;
    request.body = body;
    request.headers = std::move(headers);
    request.headers.emplace_back("host", "127.0.0.1:8442");
    request.peerAddress = "127.0.0.1";
    return console_->handle(request);
  }
  // Signs in; returns {cookie header value, csrf token}.
  std::pair<std::string, std::string> signIn(const std::string& name) {
    auto r = send("POST", "/console/api/login",
                  json{{"accessKeyId", "AKIA" + name}, {"secretAccessKey", name + "-secret"}}.dump(),
                  {{"content-type", "application/json"}});
    EXPECT_EQ(r.status, 200) << r.body;
    std::string cookie;
    for (const auto& [k, v] : r.headers)
      if (k == "set-cookie") cookie = v.substr(0, v.find(';'));
    return {cookie, json::parse(r.body).value("csrfToken", "")};
  }
  static std::string header(const HttpResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers)
      if (k == name) return v;
    return "";
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  model::ConfigPtr config_;
  std::unique_ptr<api::Api> api_;
  std::unique_ptr<Console> console_;
  std::vector<ConsoleSources::LogLine> logLines_;
};

TEST_F(ConsoleHttp, SignInSetsTheCookieAndHidesTheSecret) {
  auto wrong = send("POST", "/console/api/login", R"({"accessKeyId":"AKIAadmin","secretAccessKey":"nope"})",
                    {{"content-type", "application/json"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(header(wrong, "set-cookie"), "");
  auto form = send("POST", "/console/api/login", "accessKeyId=AKIAadmin&secretAccessKey=admin-secret",
                   {{"content-type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(form.status, 415) << "a cross-site form cannot sign anyone in";
  auto ok = send("POST", "/console/api/login", R"({"accessKeyId":"AKIAadmin","secretAccessKey":"admin-secret"})",
                 {{"content-type", "application/json"}});
  ASSERT_EQ(ok.status, 200);
  EXPECT_NE(header(ok, "set-cookie").find("HttpOnly; SameSite=Strict"), std::string::npos);
  EXPECT_EQ(ok.body.find("admin-secret"), std::string::npos);
  auto body = json::parse(ok.body);
  EXPECT_EQ(body["identity"], "arn:aws:iam::111122223333:role/admin");
  EXPECT_EQ(body["can"]["UpdateRule"], true);
}

TEST_F(ConsoleHttp, GuessingSecretsIsThrottled) {
  std::string wrong = R"({"accessKeyId":"AKIAadmin","secretAccessKey":"guess"})";
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(send("POST", "/console/api/login", wrong, {{"content-type", "application/json"}}).status, 401);
  auto refused = send("POST", "/console/api/login", R"({"accessKeyId":"AKIAadmin","secretAccessKey":"admin-secret"})",
                      {{"content-type", "application/json"}});
  EXPECT_EQ(refused.status, 429) << "even the right secret waits out the window";
  EXPECT_NE(header(refused, "retry-after"), "");
}

TEST_F(ConsoleHttp, EveryEndpointButSignInNeedsASession) {
  EXPECT_EQ(send("GET", "/console/api/session").status, 401);
  EXPECT_EQ(send("GET", "/console/lattice/services").status, 401);
  EXPECT_EQ(send("GET", "/console/api/topology", "", {{"cookie", "trellis_session=forged"}}).status, 401);
  EXPECT_EQ(send("GET", "/").status, 200) << "the page itself is public";
}

TEST_F(ConsoleHttp, WritesNeedTheSessionsCsrfTokenAndTheSameOrigin) {
  auto [cookie, csrf] = signIn("admin");
  std::string body = R"({"name":"net-one"})";
  HeaderList noToken = {{"cookie", cookie}};
  EXPECT_EQ(send("POST", "/console/lattice/servicenetworks", body, noToken).status, 403);
  EXPECT_EQ(
      send("POST", "/console/lattice/servicenetworks", body, {{"cookie", cookie}, {"x-csrf-token", "x" + csrf}}).status,
      403);
  auto [otherCookie, otherCsrf] = signIn("admin");
  EXPECT_EQ(
      send("POST", "/console/lattice/servicenetworks", body, {{"cookie", cookie}, {"x-csrf-token", otherCsrf}}).status,
      403)
      << "another session's token does not count";
  EXPECT_EQ(send("POST", "/console/lattice/servicenetworks", body,
                 {{"cookie", cookie}, {"x-csrf-token", csrf}, {"origin", "http://evil.example"}})
                .status,
            403);
  auto created = send("POST", "/console/lattice/servicenetworks", body,
                      {{"cookie", cookie}, {"x-csrf-token", csrf}, {"origin", "http://127.0.0.1:8442"}});
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(json::parse(created.body)["name"], "net-one");
  auto listed = send("GET", "/console/lattice/servicenetworks", "", {{"cookie", cookie}});
  EXPECT_EQ(json::parse(listed.body)["items"].size(), 1u) << "reads need no token";
  auto out = send("POST", "/console/api/logout", "", {{"cookie", cookie}, {"x-csrf-token", csrf}});
  EXPECT_EQ(out.status, 200);
  EXPECT_EQ(send("GET", "/console/api/session", "", {{"cookie", cookie}}).status, 401);
}

TEST_F(ConsoleHttp, TheIdentitysPolicyDecidesAsOnTheApi) {
  auto [cookie, csrf] = signIn("reader");
  auto session = json::parse(send("GET", "/console/api/session", "", {{"cookie", cookie}}).body);
  EXPECT_EQ(session["can"]["UpdateRule"], false);
  EXPECT_EQ(session["can"]["CreateServiceNetwork"], false);
  auto refused = send("POST", "/console/lattice/servicenetworks", R"({"name":"net-two"})",
                      {{"cookie", cookie}, {"x-csrf-token", csrf}});
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(header(refused, "x-amzn-errortype"), "AccessDeniedException");
  EXPECT_EQ(send("GET", "/console/lattice/servicenetworks", "", {{"cookie", cookie}}).status, 200);
}

TEST_F(ConsoleHttp, ValidationErrorsComeBackByField) {
  auto [cookie, csrf] = signIn("admin");
  auto invalid = send("POST", "/console/lattice/servicenetworks", R"({"name":"Bad Name!"})",
                      {{"cookie", cookie}, {"x-csrf-token", csrf}});
  EXPECT_EQ(invalid.status, 400);
  auto body = json::parse(invalid.body);
  ASSERT_TRUE(body.contains("fieldList")) << invalid.body;
  EXPECT_EQ(body["fieldList"][0]["name"], "name");
}

TEST_F(ConsoleHttp, ARemovedIdentitysCookieIsRefused) {
  auto [cookie, csrf] = signIn("reader");
  EXPECT_EQ(send("GET", "/console/api/session", "", {{"cookie", cookie}}).status, 200);
  std::atomic_store(&config_, std::make_shared<const model::Config>(configWith({identity("admin")})));
  EXPECT_EQ(send("GET", "/console/api/session", "", {{"cookie", cookie}}).status, 401);
}

TEST_F(ConsoleHttp, TrafficShowsOnlyWhatTheIdentityMayGet) {
  console_->metrics().sample();
  auto everything = json::parse(send("GET", "/console/api/metrics", "", {{"cookie", signIn("admin").first}}).body);
  EXPECT_EQ(everything["summary"].size(), 3u);
  auto cookie = signIn("team").first;
  auto some = json::parse(send("GET", "/console/api/metrics", "", {{"cookie", cookie}}).body);
  ASSERT_EQ(some["summary"].size(), 1u) << some.dump();
  EXPECT_TRUE(some["summary"].contains("service/svc-0aaaaaaaaaaaaaaaa"));
  EXPECT_EQ(send("GET", "/console/api/series?key=service/svc-0aaaaaaaaaaaaaaaa", "", {{"cookie", cookie}}).status, 200);
  EXPECT_EQ(send("GET", "/console/api/series?key=service/svc-0bbbbbbbbbbbbbbbb", "", {{"cookie", cookie}}).status, 403);
  EXPECT_EQ(send("GET", "/console/api/series?key=targetgroup/tg-0cccccccccccccccc", "", {{"cookie", cookie}}).status,
            403);
}

TEST_F(ConsoleHttp, TheLogTailShowsTheNewestEntriesOfServicesTheIdentityMayGet) {
  const std::string mine = "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0aaaaaaaaaaaaaaaa";
  const std::string other = "arn:aws:vpc-lattice:us-east-1:111122223333:service/svc-0bbbbbbbbbbbbbbbb";
  for (uint64_t i = 1; i <= 300; ++i)
    logLines_.push_back(
        {i, json{{"serviceArn", i % 2 ? mine : other}, {"requestPath", "/" + std::to_string(i)}}.dump()});
  logLines_.push_back({301, "not json"});
  auto admin = signIn("admin").first;
  auto first = json::parse(send("GET", "/console/api/logs?after=0", "", {{"cookie", admin}}).body);
  EXPECT_EQ(first["entries"].size(), 199u) << "the newest 200 lines, less the one that does not parse";
  EXPECT_EQ(first["entries"][0]["requestPath"], "/102");
  EXPECT_EQ(first["next"], 301);
  EXPECT_EQ(json::parse(send("GET", "/console/api/logs?after=301", "", {{"cookie", admin}}).body)["entries"].size(),
            0u);
  auto team = json::parse(send("GET", "/console/api/logs?after=290", "", {{"cookie", signIn("team").first}}).body);
  ASSERT_EQ(team["entries"].size(), 5u);  // 291, 293, ..., 299
  for (const auto& entry : team["entries"]) EXPECT_EQ(entry["serviceArn"], mine);
  EXPECT_EQ(team["next"], 301) << "lines it may not see are passed over, not sent again";
}

}  // namespace
}  // namespace trellis::console
