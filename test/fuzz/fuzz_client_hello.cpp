// libFuzzer target for the TLS ClientHello parser that runs on raw client bytes before any TLS state exists
// (SNI routing and TLS_PASSTHROUGH). Checks, besides memory safety: the parser never reports a result that
// a longer input could contradict (a prefix of an accepted ClientHello is NeedMore, never Invalid), and an
// accepted server name is lower-case and free of NULs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tls/tls.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace trellis::tls;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  ClientHello hello;
  ClientHelloStatus status = parseClientHello(input, hello);
  if (status != ClientHelloStatus::Ok) return 0;
  for (char c : hello.serverName) {
    if (c == '\0' || (c >= 'A' && c <= 'Z')) abort();
  }
  for (const auto& protocol : hello.alpn) {
    if (protocol.empty()) abort();
  }
  // A prefix of an accepted input is incomplete (or, cut after the ClientHello's last record, accepted), never
  // malformed: reads may split the bytes anywhere.
  ClientHello partial;
  for (size_t cut : {size_t{0}, size_t{1}, size_t{5}, size / 2, size - 1}) {
    if (parseClientHello(input.substr(0, cut), partial) == ClientHelloStatus::Invalid) abort();
  }
  return 0;
}
