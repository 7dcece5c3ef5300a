// Arbitrary text into the config parser: a ConfigError is the only acceptable failure.
#include <cstddef>
#include <cstdint>
#include <string>

#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    trellis::model::parseConfig(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  } catch (const trellis::model::ConfigError&) {
  }
  return 0;
}
