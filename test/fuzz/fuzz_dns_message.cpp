// Arbitrary bytes into the DNS message parser. Whatever parses must encode and parse back to the same
// message (names, case, records, EDNS), and the truncated encoding must parse too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dns/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trellis::dns;
  std::string_view wire(reinterpret_cast<const char*>(data), size);
  auto message = parseMessage(wire);
  parseHeader(wire);
  if (!message) return 0;
  std::string encoded = encodeMessage(*message);
  auto again = parseMessage(encoded);
  if (!again) std::abort();
  // Compression may fit more than the input held only when the input pointed into RDATA we keep raw;
  // a message that grew past 64 KiB comes back truncated, and then only the header and question survive.
  if (again->tc && !message->tc) {
    if (again->questions != message->questions) std::abort();
  } else if (*again != *message) {
    std::abort();
  }
  auto small = parseMessage(encodeMessage(*message, 512));
  if (!small) std::abort();
  return 0;
}
