// Kubernetes manifests (multi-document YAML) as the objects `trellis apply` understands.
//
// Parsing checks what can be checked without looking at other objects: each document is a known
// kind in a known apiVersion, has metadata.name, and holds no unexpanded `${VAR}`. Every error
// names the file, the document's object and the field.
#pragma once
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace trellis::gateway {

using nlohmann::json;

struct Object {
  std::string file;       // where it came from ("-" for stdin)
  size_t document = 0;    // 1-based position in the file
  std::string apiVersion;
  std::string kind;       // "HTTPRoute"
  std::string ns;         // empty for cluster-scoped kinds
  std::string name;
  json body;              // the whole document, YAML scalars typed as JSON

  // "HTTPRoute checkout/checkoutroute" (cluster-scoped: "GatewayClass amazon-vpc-lattice").
  std::string ref() const;
  // "routes.yaml: HTTPRoute checkout/checkoutroute: spec.rules[0]: " for error messages.
  std::string where(const std::string& field = "") const;
  const json& spec() const;
  std::string annotation(const std::string& key, const std::string& fallback = "") const;
};

struct ManifestError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Whether `kind` is namespaced (Namespace, GatewayClass and ServiceNetwork are not).
bool isNamespaced(std::string_view kind);

// Parses every document of `text`. Throws ManifestError on the first problem.
std::vector<Object> parseManifests(std::string_view text, const std::string& file);

// Reads FILE, every *.yaml/*.yml/*.json of DIR (sorted, not recursive) or "-" (stdin), in order.
// Two documents naming the same object is an error.
std::vector<Object> loadManifests(const std::vector<std::string>& paths, std::istream& stdinStream);

}  // namespace trellis::gateway
