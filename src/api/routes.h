// The Lattice REST route table: every operation's method, URI pattern and success status.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trellis::api {

struct Route {
  const char* operation;
  const char* method;
  const char* pattern;  // "/services/{serviceIdentifier}/listeners"
  int successStatus;
};

const std::vector<Route>& allRoutes();

struct RouteMatch {
  const Route* route = nullptr;
  std::vector<std::string> labels;  // percent-decoded, in order
  bool methodMismatch = false;      // the path exists under another method
  bool badEncoding = false;         // a label had a malformed %-escape
};

// Splits the raw path on '/', then decodes each segment (so "%2F" inside an ARN stays in its label).
RouteMatch matchRoute(std::string_view method, std::string_view rawPath);

}  // namespace trellis::api
