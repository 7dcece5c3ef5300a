// libFuzzer target for request-target normalization (docs/request-paths.md): whatever comes in, what is
// accepted is origin-form, has no dot or empty segment, and normalizing it again changes nothing, so a rule
// and the target can never see two different paths.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/request_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto slashes = data[0] & 1 ? trellis::EncodedSlashes::Keep : trellis::EncodedSlashes::Reject;
  bool absolute = data[0] & 2;
  std::string target(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string authority;
  if (trellis::normalizeRequestTarget(target, "GET", absolute, slashes, authority)) return 0;
  std::string path = target.substr(0, target.find('?'));
  if (path.empty() || path[0] != '/') abort();
  if (path.find("//") != std::string::npos || path.find("/./") != std::string::npos ||
      path.find("/../") != std::string::npos || path.ends_with("/.") || path.ends_with("/..")) {
    abort();
  }
  std::string again = target, none;
  if (trellis::normalizeRequestTarget(again, "GET", false, slashes, none) || again != target) abort();
  return 0;
}
