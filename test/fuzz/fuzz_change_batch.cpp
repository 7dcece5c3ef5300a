// The decoders of the config stream (src/fleet/changes.h), a proxy's of change batches and an API server's of
// health reports: any bytes are either refused with a reason or decoded into what encodes and decodes back to
// itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fleet/changes.h"

namespace {

void checkHealthReport(std::string_view body) {
  using namespace trellis::fleet;
  std::string error;
  auto report = decodeHealthReport(body, error);
  if (!report) {
    if (error.empty()) std::abort();
    return;
  }
  auto again = decodeHealthReport(encodeHealthReport(*report), error);
  if (!again || again->size() != report->size()) std::abort();
  for (size_t i = 0; i < report->size(); ++i) {
    const auto &a = (*again)[i], &b = (*report)[i];
    if (a.targetGroupId != b.targetGroupId || a.targetId != b.targetId || a.port != b.port || a.status != b.status ||
        a.reasonCode != b.reasonCode)
      std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trellis::fleet;
  checkHealthReport(std::string_view(reinterpret_cast<const char*>(data), size));
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
