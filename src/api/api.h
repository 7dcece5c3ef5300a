// The Lattice control-plane API (restJson1) over a Store.
//
// Life of an API call: HttpServer (src/common) hands an HttpRequest to Api::handle, which
// assigns a request id, authenticates the caller (SigV4, signing name `vpc-lattice`), matches
// the route table (routes.cpp: all 73 operations), decodes path labels and the JSON body, and
// calls the operation's handler (ops_*.cpp). Handlers validate, read and write the Store through
// Resources, and return the response body; errors are ApiError exceptions turned into AWS's
// error shape here.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "api/errors.h"
#include "common/http_server.h"
#include "model/config.h"
#include "model/ids.h"
#include "store/store.h"

namespace trellis::api {

using nlohmann::json;

// One API request being served.
struct Call {
  const HttpRequest& http;
  std::string operation;            // e.g. "CreateService"
  std::vector<std::string> labels;  // decoded path labels, in path order
  std::vector<std::pair<std::string, std::string>> query;
  json body = json::object();
  const model::Identity* caller = nullptr;

  std::optional<std::string> queryValue(const std::string& name) const;
  std::vector<std::string> queryValues(const std::string& name) const;
};

// A set of writes committed atomically, guarded by conditions.
struct Tx {
  std::vector<store::Condition> conditions;
  std::vector<store::Op> ops;
  void put(std::string_view kind, std::string_view id, const json& value);
  void del(std::string_view kind, std::string_view id);
  void requireAbsent(std::string_view kind, std::string_view id);
  void requireRevision(std::string_view kind, std::string_view id, int64_t modRevision);
};

struct Doc {
  std::string id;
  json value;
  int64_t modRevision = 0;
};

// Where ListTargets learns each target's health; wired to the data plane's health checker.
using TargetStatusFn = std::function<std::pair<std::string, std::string>(
    const std::string& targetGroupId, const std::string& targetId, int port)>;  // {status, reasonCode}

// Shared helpers for operation handlers: documents in the store, ids, ARNs, pagination, idempotency.
class Resources {
 public:
  explicit Resources(store::Store& store);
  // The config for the call being served (pinned by Api::handle, so a reload never changes it mid-call).
  void pin(model::ConfigPtr config);

  store::Store& store() { return store_; }
  const model::Config& config() const { return *config_; }
  const model::ArnContext& arns() const { return arns_; }
  std::string now() const;

  std::optional<Doc> find(std::string_view kind, std::string_view id);
  // Resolves an id-or-ARN identifier of `kind` and loads it, or throws ResourceNotFound
  // (ValidationException when the identifier has neither shape).
  Doc load(model::Kind kind, const std::string& identifier, const std::string& fieldName);
  // One page of `kind` filtered by `keep`, each item turned into a summary by `summarize`.
  json page(std::string_view kind, const Call& call, const std::function<bool(const json&)>& keep,
            const std::function<json(const json&)>& summarize);
  // One page of `entries` (sorted by key, each key extending `prefix`), for lists of what the config holds.
  json pageEntries(const std::string& prefix, const std::vector<std::pair<std::string, json>>& entries,
                   const Call& call);
  // One page of the documents of `kind` named by the entries of `index` whose keys extend `prefix` (indexes.h;
  // a key equal to `prefix` is not listed), in the index's key order, filtered and summarized as by page();
  // `lead`, when given, comes first (a listener's default rule, which has no index entry).
  json pageIndex(std::string_view index, const std::string& prefix, std::string_view kind, const Call& call,
                 const std::function<bool(const json&)>& keep, const std::function<json(const json&)>& summarize,
                 const std::optional<Doc>& lead = std::nullopt);
  // Commits or throws ConflictException (a concurrent change beat us).
  int64_t commit(const Tx& tx, const std::string& resourceType, const std::string& resourceId);

  // Idempotent creates: when the call carries a clientToken seen before with the same input,
  // returns the original response; with a different input, throws ConflictException.
  std::optional<json> replay(const Call& call);
  // Adds the idempotency record for `response` to `tx` (no-op without a clientToken).
  void remember(const Call& call, Tx& tx, const json& response);

  // Tags live under kind "tags", keyed by ARN.
  void putTags(Tx& tx, const std::string& arn, const std::optional<json>& tags);

  TargetStatusFn targetStatus;

 private:
  store::Store& store_;
  model::ConfigPtr config_;
  model::ArnContext arns_;
};

// The maxResults query parameter of a list (1-100, default 100); a bad value is recorded in `errors`.
size_t readMaxResults(class FieldErrors& errors, const Call& call);

// JSON text; invalid UTF-8 (from percent-decoded labels echoed in messages) becomes U+FFFD.
std::string dumpJson(const json& value);
// The members of `doc` named in `keys` that are present (response and summary shapes).
json pick(const json& doc, std::initializer_list<const char*> keys);
// The authType member shared by networks and services: NONE (default) or AWS_IAM.
std::optional<std::string> readAuthType(class FieldErrors& errors, const json& body, bool required);
// The query members of a List call as a JSON object, so they validate like body members.
json queryObject(const Call& call, std::initializer_list<const char*> names);
// Security group ids (`minItems` to 5), checked for shape and duplicates; nullopt (with errors recorded) when bad or
// absent. Whether the groups exist is checked once the whole input is valid (checkSecurityGroupsInVpc).
std::optional<std::vector<std::string>> readSecurityGroupIds(class FieldErrors& errors, const json& body, bool required,
                                                             size_t minItems);
// Every group must exist (ResourceNotFound) and belong to `vpcId` (ValidationException).
void checkSecurityGroupsInVpc(const model::Config& config, const std::vector<std::string>& groups,
                              const std::string& vpcId);
// The VPC must be one of the config's (ResourceNotFound).
void requireVpc(const model::Config& config, const std::string& vpcId);
// Throws ServiceQuotaExceeded when `count` has reached `limit`.
void enforceQuota(size_t count, int limit, const std::string& resourceType, const std::string& quotaCode,
                  const std::string& what, const std::string& resourceId = "");

using Handler = std::function<json(Resources&, Call&)>;
using HandlerMap = std::map<std::string, Handler>;

// Authenticates a request against `config`'s identities: the caller, or the AWS error to answer with.
using Authenticator =
    std::function<std::variant<const model::Identity*, ApiError>(const HttpRequest&, const model::Config& config)>;
// The current config; trellisd swaps it on reload.
using ConfigSource = std::function<model::ConfigPtr()>;

class Api {
 public:
  Api(store::Store& store, ConfigSource config, Authenticator authenticate);
  HttpResponse handle(const HttpRequest& request);
  Resources& resources() { return resources_; }

 private:
  Resources resources_;
  ConfigSource config_;
  Authenticator authenticate_;
  HandlerMap handlers_;
};

// Registration of each group's handlers (ops_*.cpp).
void registerServiceNetworkOps(HandlerMap& handlers);
void registerServiceOps(HandlerMap& handlers);
void registerListenerOps(HandlerMap& handlers);
void registerRuleOps(HandlerMap& handlers);
void registerTargetGroupOps(HandlerMap& handlers);
void registerAssociationOps(HandlerMap& handlers);
void registerPolicyOps(HandlerMap& handlers);
void registerAccessLogOps(HandlerMap& handlers);
void registerTagOps(HandlerMap& handlers);
void registerResourceGatewayOps(HandlerMap& handlers);
void registerResourceConfigurationOps(HandlerMap& handlers);
void registerResourceAssociationOps(HandlerMap& handlers);
void registerDomainVerificationOps(HandlerMap& handlers);

}  // namespace trellis::api
