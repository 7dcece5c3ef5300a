// The proxy's decoder of the config stream (src/fleet/changes.h): any bytes are either refused with a reason or
// decoded into a batch that encodes and decodes back to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fleet/changes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trellis::fleet;
  std::string error;
  auto batch = decodeChangeBatch(std::string_view(reinterpret_cast<const char*>(data), size), error);
  if (!batch) {
    if (error.empty()) std::abort();
    return 0;
  }
  auto again = decodeChangeBatch(encodeChangeBatch(*batch), error);
  if (!again || again->revision != batch->revision || again->full != batch->full ||
      again->deleted.size() != batch->deleted.size() || again->records.size() != batch->records.size() ||
      again->config != batch->config)
    std::abort();
  for (size_t i = 0; i < batch->records.size(); ++i)
    if (again->records[i].kind != batch->records[i].kind || again->records[i].id != batch->records[i].id ||
        again->records[i].value != batch->records[i].value)
      std::abort();
  return 0;
}
