// Fuzzes the REST API's input path: route matching, percent-decoding of labels and query, JSON body
// parsing and every operation's validation, against a real SQLite store; after every successful call the
// store's indexes must still agree with a scan. Authentication is bypassed on
// purpose (the SigV4 parser has its own target) so inputs reach the handlers.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "api/api.h"
#include "api/index_check.h"
#include "api/routes.h"
#include "common/log.h"
#include "model/config.h"
#include "store/store.h"

using namespace trellis;

namespace {
struct Fixture {
  model::Config config;
  model::Identity identity;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<api::Api> api;
  Fixture() {
    setLogLevel(LogLevel::Error);
    char dir[] = "/tmp/trellis-fuzz-api-XXXXXX";
    store = store::openSqliteStore(mkdtemp(dir));
    identity.arn = "arn:aws:iam::111122223333:role/fuzz";
    auto pinned = std::make_shared<const model::Config>(config);
    api = std::make_unique<api::Api>(
        *store, [pinned] { return pinned; },
        [this](const HttpRequest&, const model::Config&) {
          return std::variant<const model::Identity*, api::ApiError>(&identity);
        });
  }
};
}  // namespace

// Input: a route index byte, then "path-suffix \n query \n body".
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fixture;
  if (size < 1) return 0;
  const auto& routes = api::allRoutes();
  const auto& route = routes[data[0] % routes.size()];
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t nl1 = rest.find('\n');
  size_t nl2 = nl1 == std::string::npos ? std::string::npos : rest.find('\n', nl1 + 1);
  std::string label = rest.substr(0, nl1);
  std::string query = nl1 == std::string::npos ? "" : rest.substr(nl1 + 1, nl2 - nl1 - 1);
  std::string body = nl2 == std::string::npos ? "" : rest.substr(nl2 + 1);

  // Fill every {label} in the route's pattern with the fuzzed label.
  std::string path;
  for (const char* p = route.pattern; *p;) {
    if (*p == '{') {
      path += label;
      while (*p && *p != '}') ++p;
      if (*p) ++p;
    } else {
      path += *p++;
    }
  }
  HttpRequest request;
  request.method = route.method;
  request.path = path;
  request.query = query;
  request.target = path + (query.empty() ? "" : "?" + query);
  request.body = body;
  HttpResponse response = fixture.api->handle(request);
  // Every answer is either a success code of the route or an error with a JSON body.
  if (response.status >= 300 && (response.body.empty() || response.body.front() != '{')) abort();
  if (response.status == 500) abort();  // an internal error means a handler mishandled input
  // Whatever the call did, every index still says what a scan of the documents says.
  if (response.status < 300 && !testing::indexMismatch(*fixture.store).empty()) abort();
  return 0;
}
