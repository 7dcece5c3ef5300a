// AWS Signature Version 4: verification for the API and the data plane, signing for the CLI and tests.
//
// Canonicalization follows what AWS's own signers do for every service but S3 (botocore, @smithy/signature-v4,
// aws4 agree): the canonical URI is the path *as it went on the wire*, dot segments and repeated slashes
// removed, then percent-encoded once more per segment ("%3A" becomes "%253A"). The canonical query decodes
// and re-encodes each key and value (RFC 3986) and sorts them by key, then value.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_server.h"
#include "common/time.h"
#include "model/config.h"

namespace trellis::auth {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

// The parts of a SigV4 signature, either from an Authorization header or a presigned URL's query.
// Views point into the header value (or into the caller's decoded query pairs).
struct SigV4Params {
  std::string_view accessKeyId;
  std::string_view scopeDate;  // YYYYMMDD
  std::string_view region;
  std::string_view service;
  std::string_view terminator;     // "aws4_request" when well formed
  std::string_view signedHeaders;  // "host;x-amz-date", as sent
  std::string_view signature;      // hex
  // Presigned URLs only.
  bool presigned = false;
  std::string_view amzDate;
  std::string_view expires;
  std::string_view securityToken;
};

// Parses "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/svc/aws4_request, SignedHeaders=a;b, Signature=hex".
// Accepts what AWS accepts: components in any order, separated by ',' and/or whitespace. On failure returns false
// and sets `reason` to AWS's IncompleteSignatureException message.
bool parseAuthorizationHeader(std::string_view value, SigV4Params& out, std::string& reason);

using QueryPairs = std::vector<std::pair<std::string, std::string>>;
// True when a decoded query carries a presigned signature (any X-Amz-Algorithm/Credential/Signature).
bool isPresignedQuery(const QueryPairs& decodedQuery);
// Reads X-Amz-Algorithm, -Credential, -Date, -Expires, -SignedHeaders, -Signature, -Security-Token from a
// decoded query. `out` points into `decodedQuery`, which must outlive it.
bool parsePresignedQuery(const QueryPairs& decodedQuery, SigV4Params& out, std::string& reason);

// Canonical URI of a raw (still percent-encoded) request path.
std::string canonicalUri(std::string_view rawPath);
// Canonical query string of a raw query (without '?'). `dropSignature` leaves out X-Amz-Signature (presigned).
std::string canonicalQuery(std::string_view rawQuery, bool dropSignature);
// The whole canonical request. `signedHeaders` is the ';'-separated list; header names in `headers` match
// case-insensitively, repeated headers are joined with ',' in arrival order.
std::string canonicalRequest(std::string_view method, std::string_view rawPath, std::string_view rawQuery,
                             const HeaderList& headers, std::string_view signedHeaders, std::string_view payloadHash,
                             bool presigned);

// ---- Verification ----

struct SigV4Request {
  std::string_view method;
  std::string_view rawPath;   // as received, still percent-encoded
  std::string_view rawQuery;  // without '?'
  const HeaderList& headers;
  std::string_view body;
};

// Finds the identity that owns an access key id; nullptr when there is none.
using CredentialLookup = std::function<const model::Identity*(std::string_view accessKeyId)>;

struct VerifyResult {
  const model::Identity* identity = nullptr;  // set when the signature is valid
  std::string sessionToken;                   // the token the request carried, if any
  // On failure: the HTTP status, AWS error code and message to answer with.
  int status = 0;
  std::string errorCode;
  std::string message;

  bool ok() const { return identity != nullptr; }
};

// Verifies a request signed for `expectedService` in `expectedRegion` at about `now` (±5 minutes).
VerifyResult verifySigV4(const SigV4Request& request, std::string_view expectedService,
                         std::string_view expectedRegion, const CredentialLookup& lookup, SystemTime now);

// ---- Signing ----

struct Credentials {
  std::string accessKeyId;
  std::string secretAccessKey;
  std::string sessionToken;  // empty: none
};

struct SignOptions {
  bool addContentSha256 = true;  // send x-amz-content-sha256 (the JS SDK does; botocore does not)
  bool unsignedPayload = false;  // x-amz-content-sha256: UNSIGNED-PAYLOAD instead of the body hash
};

// Signs a request in place: adds host (when missing), x-amz-date, x-amz-security-token, x-amz-content-sha256
// (per options; an x-amz-content-sha256 already present is signed as given) and authorization. Every header
// already in `headers` is signed except hop-by-hop and user-agent style ones. Header names are lower-cased.
void signRequest(std::string_view method, std::string_view host, std::string_view rawPath, std::string_view rawQuery,
                 HeaderList& headers, std::string_view body, const Credentials& credentials, std::string_view region,
                 std::string_view service, SystemTime now, const SignOptions& options = {});

// A presigned query string (without '?'): `rawQuery` plus the X-Amz-* parameters and the signature.
// Only the host header is signed; the payload hash is that of an empty body.
std::string presignQuery(std::string_view method, std::string_view host, std::string_view rawPath,
                         std::string_view rawQuery, const Credentials& credentials, std::string_view region,
                         std::string_view service, SystemTime now, int expiresSeconds);

}  // namespace trellis::auth
