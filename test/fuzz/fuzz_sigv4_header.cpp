// Fuzzes the SigV4 Authorization-header and presigned-query parsers, the canonicalizer and the whole verifier.
// Input: path \n query \n authorization-header-value \n x-amz-date \n body.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/sigv4.h"
#include "common/strings.h"

using namespace trellis;

namespace {
bool canonicalChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~' || c == '/' || c == '%';
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view parts[5];
  for (int i = 0; i < 4; ++i) {
    size_t nl = input.find('\n');
    parts[i] = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
  }
  parts[4] = input;
  auto [path, query, authorization, amzDate, body] = parts;

  auth::SigV4Params params;
  std::string reason;
  if (auth::parseAuthorizationHeader(authorization, params, reason)) {
    if (params.accessKeyId.empty() || params.signature.empty() || params.signedHeaders.empty()) abort();
  } else if (reason.empty()) {
    abort();  // every rejection says why
  }

  std::string uri = auth::canonicalUri(path);
  if (uri.empty() || uri[0] != '/') abort();
  for (char c : uri)
    if (!canonicalChar(c)) abort();
  if (auth::canonicalUri(uri) != auth::canonicalUri(uri)) abort();
  auth::canonicalQuery(query, true);

  if (auto decoded = parseQuery(query)) {
    auth::SigV4Params presigned;
    if (!auth::parsePresignedQuery(*decoded, presigned, reason) && reason.empty()) abort();
  }

  model::Identity identity;
  identity.accessKeyId = "AKIDFUZZ";
  identity.secretAccessKey = "secret";
  HeaderList headers{{"host", "fuzz.test"}, {"x-amz-date", std::string(amzDate)}};
  if (!authorization.empty()) headers.emplace_back("authorization", std::string(authorization));
  auth::SigV4Request req{"GET", path, query, headers, body};
  auto lookup = [&](std::string_view akid) -> const model::Identity* {
    return akid == identity.accessKeyId ? &identity : nullptr;
  };
  auto result = auth::verifySigV4(req, "vpc-lattice", "us-east-1", lookup, systemNow());
  if (!result.ok() && (result.errorCode.empty() || result.status < 400)) abort();
  return 0;
}
