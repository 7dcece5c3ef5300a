// `trellis apply` / `trellis delete` / `trellis get gateways|httproutes|grpcroutes`: the translated
// desired state reconciled against Lattice through its REST API.
//
// What apply owns is found by tags, never by name alone: every object it creates carries
// application-networking.k8s.aws/ManagedBy = <account>/<cluster>/<vpc>, services carry
// RouteName/RouteNamespace/RouteType and target groups the controller's TG tags. A service network
// that existed before (the controller's model: the Gateway does not create it) is used, tagged with
// the Gateway's name and listeners, and never deleted. Everything is read and validated before the
// first write, and nothing is written when nothing differs.
#pragma once
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "gateway/translate.h"

namespace trellis::gateway {

// A non-2xx answer of the API.
struct ApiCallError : std::runtime_error {
  int status = 0;
  std::string type;  // "ConflictException"
  std::string message;
  ApiCallError(int s, std::string t, std::string m)
      : std::runtime_error(t + " (HTTP " + std::to_string(s) + "): " + m), status(s), type(std::move(t)),
        message(std::move(m)) {}
};

// One signed call of the Lattice API. `path` is the wire form (labels percent-encoded); `query` is
// already encoded ("a=b&c=d"); a null `body` sends none. Throws ApiCallError.
class LatticeApi {
 public:
  virtual ~LatticeApi() = default;
  virtual json call(const std::string& method, const std::string& path, const std::string& query,
                    const json& body) = 0;
};

struct Report {
  std::vector<std::string> lines;     // kubectl-style: "httproute.gateway.networking.k8s.io/x created"
  std::vector<std::string> warnings;  // what was ignored, kept or skipped, and why
  size_t writes = 0;                  // API calls that changed something
};

class Reconciler {
 public:
  // Empty options.accountId: taken from the ARNs in Lattice (else the development account).
  Reconciler(LatticeApi& api, Options options) : api_(api), options_(std::move(options)) {}

  // Throws ManifestError (nothing written) for invalid manifests or references, ApiCallError when the
  // API refuses a write (what was written before stays; applying again continues from there).
  Report apply(const std::vector<Object>& objects);
  // Removes what apply made for `objects` (a Namespace takes everything apply made in it).
  Report remove(const std::vector<Object>& objects);

  // kubectl-style views read back from Lattice: a List of Gateway / HTTPRoute / GRPCRoute objects
  // with metadata.annotations and status.conditions. `kind` is "Gateway", "HTTPRoute" or "GRPCRoute";
  // an empty `ns` means all namespaces.
  json get(const std::string& kind, const std::string& ns);

 private:
  LatticeApi& api_;
  Options options_;
};

// A table of what `get` returned: NAME CLASS ADDRESS PROGRAMMED for gateways; NAME HOSTNAMES DNS
// ACCEPTED RESOLVEDREFS PROGRAMMED for routes ("True", or "False (Reason)").
std::string formatStatusTable(const json& list, bool allNamespaces);

}  // namespace trellis::gateway
