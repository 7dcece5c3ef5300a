// libFuzzer target for a Lambda function's answer (proxy/upstream/lambda_event.h): whatever a function or a
// server posing as its endpoint sends, an accepted answer has a status of 200-599 and only fields that can
// go on the wire as they are (a field name, a value without CR, LF or NUL, no hop-by-hop or length field).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy/upstream/lambda_event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view payload(reinterpret_cast<const char*>(data), size);
  trellis::proxy::LambdaResponse response;
  std::string error;
  if (!trellis::proxy::parseLambdaResponse(payload, response, error)) {
    if (error.empty()) abort();
    return 0;
  }
  if (response.status < 200 || response.status > 599) abort();
  for (const auto& [name, value] : response.headers) {
    if (name.empty() || name.find_first_of(" :\r\n") != std::string::npos) abort();
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) abort();
    if (name == "content-length" || name == "transfer-encoding" || name == "connection") abort();
  }
  return 0;
}
