// The manifest parser and the translation behind `trellis apply`: any input either parses and
// translates, or fails with a ManifestError; nothing else escapes and nothing crashes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/manifest.h"
#include "gateway/translate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto objects = trellis::gateway::parseManifests(text, "fuzz.yaml");
    trellis::gateway::translate(objects, trellis::gateway::Options{});
  } catch (const trellis::gateway::ManifestError&) {
  }
  return 0;
}
