// The `trellis` CLI: argument parsing, request planning, output formatting and the command runner.
// Each piece is a plain function so it can be unit-tested without a server.
#pragma once
#include <functional>
#include <iosfwd>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "auth/sigv4.h"
#include "common/http_client.h"

namespace trellis::cli {

inline constexpr const char* kDefaultEndpoint = "http://127.0.0.1:8440";

struct Options {
  std::string command;            // "get", "describe", "apply" or "delete"
  std::string resource;           // get: servicenetworks, services, targetgroups, listeners, rules, targets,
                                  // or the Gateway API views: gateways, httproutes, grpcroutes
  std::vector<std::string> args;  // get: parent ids; describe: the id or ARN
  std::string output = "table";   // "table" or "json"
  std::string endpoint;           // --endpoint (else TRELLIS_ENDPOINT, else kDefaultEndpoint)
  std::string configPath;         // --config: trellisd's YAML; its first identity signs
  std::string region;             // --region (else config, AWS_REGION, AWS_DEFAULT_REGION, us-east-1)
  // Local commands on trellisd's data dir (no API call): "ca-export", "cert-import".
  std::string dataDir = "./trellis-data";  // --data-dir, as trellisd's
  std::string certificateFile, keyFile;    // cert import --cert / --key
  // Kubernetes Gateway API front door (apply, delete, get gateways|httproutes|grpcroutes).
  std::vector<std::string> files;  // -f FILE|DIR|- (repeatable)
  std::string clusterName = "trellis";  // --cluster: the ManagedBy tag's cluster part
  std::string vpc;                 // --vpc (else the config's first VPC, else the development VPC)
  std::string ns = "default";      // get -n
  bool allNamespaces = false;      // get -A
};

// Whether `resource` is one of the Gateway API views of `trellis get`.
bool isGatewayResource(const std::string& resource);

// Parses the command line (argv[0] included). Returns -1 to go on, or the exit code to stop with after
// help (0) or a usage error (2), which it has printed.
int parseArgs(const std::vector<std::string>& argv, Options& out, std::ostream& stdOut, std::ostream& stdErr);

struct ApiRequest {
  std::string method;
  std::string path;  // wire form: identifiers percent-encoded
  std::string body;  // empty: none
};

struct Column {
  std::string header;
  std::string field;  // dotted path into each item: "dnsEntry.domainName"
};

struct ListPlan {
  ApiRequest request;
  std::vector<Column> columns;
};

// The List call for `trellis get RESOURCE ARGS...`. False with `error` set for unknown resources or wrong arguments.
bool planList(const std::string& resource, const std::vector<std::string>& args, ListPlan& out, std::string& error);
// The Get call for an id ("svc-0123456789abcdef0") or an ARN (listeners and rules need their ARN).
bool planDescribe(const std::string& identifier, ApiRequest& out, std::string& error);

// An aligned table: upper-case headers, one row per item, "-" for missing fields, columns 3 spaces apart.
std::string formatTable(const nlohmann::json& items, const std::vector<Column>& columns);
// A two-column FIELD/VALUE table of one object; nested objects are flattened to dotted names.
std::string formatObject(const nlohmann::json& object);

struct Settings {
  Endpoint endpoint;
  auth::Credentials credentials;
  std::string region;
};
using EnvLookup = std::function<const char*(const char*)>;
// Credentials, region and endpoint from the options, the config file and the environment.
bool resolveSettings(const Options& options, const EnvLookup& env, Settings& out, std::string& error);

struct ApiError {
  int status = 0;
  std::string type;  // "ResourceNotFoundException"
  std::string message;
};
// Reads an error the way the AWS SDK does: x-amzn-ErrorType, else body __type / code; message / Message.
ApiError apiErrorOf(const HttpResult& response);

// Whether the command works on the data dir directly (no endpoint, no credentials).
bool isLocalCommand(const Options& options);
// `trellis ca export` prints Trellis's root CA (PEM) for clients to trust; `trellis cert import --cert FILE
// --key FILE` stores a certificate for custom domain names and prints its ACM-style ARN. Exit code as run().
int runLocal(const Options& options, const EnvLookup& env, std::ostream& stdOut, std::ostream& stdErr);

// Runs a parsed command against the API. Returns the process exit code; output to `stdOut`, errors to `stdErr`.
int run(const Options& options, const Settings& settings, std::ostream& stdOut, std::ostream& stdErr);

}  // namespace trellis::cli
