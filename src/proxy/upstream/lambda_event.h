// Lattice's formats for Lambda targets (docs/lambda-targets.md): a request as the JSON event the function
// gets, in structure V1 or V2, and the function's JSON answer as a response. No I/O: lambda_upstream.h
// carries them.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"
#include "proxy/http/message.h"

namespace trellis::proxy {

struct LambdaRequest {
  bool v2 = false;
  std::string_view method;
  std::string_view target;  // path and query, as routed and rewritten
  // The client's fields that cross the proxy, and X-Forwarded-For (names lower-case).
  std::vector<HeaderView> headers;
  std::string_view body;
  // V2's requestContext.
  std::string_view serviceNetworkArn, serviceArn, targetGroupArn, sourceVpcArn, region;
  const model::Identity* caller = nullptr;  // set when SigV4 auth named one
  int64_t timeEpochMicros = 0;
};

// The event, as JSON text.
std::string lambdaEvent(const LambdaRequest& request);

// Whether a body goes base64 in the event: when it has a Content-Encoding, or a type other than text/*,
// application/json, application/xml and application/javascript (no type at all included).
bool lambdaBodyIsBinary(const std::vector<HeaderView>& headers);

struct LambdaResponse {
  int status = 0;
  Headers headers;  // lower-case names; hop-by-hop ones and Content-Length dropped
  std::string body;
};

// The function's answer ({statusCode, headers, body, isBase64Encoded}). False, with why in `error`, when it
// is not one: not a JSON object, no status of 200-599, a header that is not a field name and a value
// without CR, LF or NUL, a body that is not a string, or not base64 when it says it is.
bool parseLambdaResponse(std::string_view payload, LambdaResponse& out, std::string& error);

}  // namespace trellis::proxy
