#include "auth/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>

#include "common/crypto.h"
#include "common/log.h"
#include "common/strings.h"

namespace trellis::auth {
namespace {

using namespace std::chrono_literals;

constexpr auto kMaxSkew = 5min;
constexpr int kMaxPresignSeconds = 7 * 24 * 3600;

const char* const kSignatureMismatch =
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details.";

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::string_view trimAll(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Appends a header value trimmed, with every run of whitespace (folded lines included) collapsed to one space.
void appendCollapsed(std::string& out, std::string_view value) {
  value = trimAll(value);
  bool inSpace = false;
  for (char c : value) {
    if (isSpace(c)) {
      inSpace = true;
      continue;
    }
    if (inSpace) out.push_back(' ');
    inSpace = false;
    out.push_back(c);
  }
}

using Digest = std::array<unsigned char, 32>;

Digest hmac(std::string_view key, std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out.data(), &len);
  return out;
}

std::string_view view(const Digest& d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }

// Deriving the signing key costs four HMACs; a client usually signs with one key per day, so a few
// per-thread slots remove that work from the hot path without any locking.
Digest signingKey(std::string_view secret, std::string_view date, std::string_view region, std::string_view service) {
  struct Slot {
    std::string secret, date, region, service;
    Digest key{};
  };
  thread_local std::array<Slot, 8> slots;
  thread_local size_t next = 0;
  for (const auto& s : slots)
    if (!s.date.empty() && s.date == date && s.region == region && s.service == service && s.secret == secret)
      return s.key;
  std::string seed = "AWS4";
  seed += secret;
  Digest k = hmac(seed, date);
  k = hmac(view(k), region);
  k = hmac(view(k), service);
  k = hmac(view(k), "aws4_request");
  Slot& slot = slots[next++ % slots.size()];
  slot = Slot{std::string(secret), std::string(date), std::string(region), std::string(service), k};
  return k;
}

std::string signatureHex(std::string_view secret, std::string_view amzDate, std::string_view region,
                         std::string_view service, std::string_view canonical) {
  std::string toSign;
  toSign.reserve(160);
  toSign.append(kAlgorithm).append("\n").append(amzDate).append("\n");
  toSign.append(amzDate.substr(0, 8)).append("/").append(region).append("/").append(service).append("/aws4_request\n");
  toSign.append(sha256Hex(canonical));
  Digest key = signingKey(secret, amzDate.substr(0, 8), region, service);
  return hexEncode(view(hmac(view(key), toSign)));
}

// Decodes a raw query with '+' kept literal (SigV4 signers always send a space as %20). Undecodable
// pieces stay raw: they cannot match a signature anyway.
QueryPairs decodeQuery(std::string_view rawQuery) {
  QueryPairs out;
  for (auto part : split(rawQuery, '&')) {
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string_view k = part.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
    auto dk = percentDecode(k);
    auto dv = percentDecode(v);
    out.emplace_back(dk ? std::move(*dk) : std::string(k), dv ? std::move(*dv) : std::string(v));
  }
  return out;
}

const std::string* findHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return &v;
  return nullptr;
}

bool listContains(std::string_view list, std::string_view name) {
  for (auto item : split(list, ';'))
    if (iequals(item, name)) return true;
  return false;
}

bool isLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// system_clock counts nanoseconds in 64 bits: years past 2262 overflow it, so dates outside this range are garbage.
bool plausibleYear(int year) { return year >= 1970 && year <= 2200; }

std::optional<SystemTime> parseSigningDate(std::string_view amzDate) {
  if (amzDate.size() < 4) return std::nullopt;
  int year = 0;
  for (char c : amzDate.substr(0, 4)) year = c >= '0' && c <= '9' ? year * 10 + (c - '0') : -1000000;
  if (!plausibleYear(year)) return std::nullopt;
  return parseAmzDate(amzDate);
}

// RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the Date header AWS accepts instead of x-amz-date.
std::optional<SystemTime> parseHttpDate(std::string_view text) {
  std::string s(text);
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0' || !plausibleYear(tm.tm_year + 1900)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

VerifyResult fail(int status, std::string code, std::string message) {
  VerifyResult r;
  r.status = status;
  r.errorCode = std::move(code);
  r.message = std::move(message);
  return r;
}
VerifyResult incomplete(std::string message) { return fail(400, "IncompleteSignatureException", std::move(message)); }
VerifyResult invalid(std::string message) { return fail(403, "InvalidSignatureException", std::move(message)); }
VerifyResult unrecognized() {
  return fail(403, "UnrecognizedClientException", "The security token included in the request is invalid.");
}

// Splits "AKID/20240101/us-east-1/service/aws4_request" into `out`.
bool parseCredential(std::string_view credential, SigV4Params& out, std::string& reason) {
  auto parts = split(credential, '/');
  if (parts.size() != 5 || parts[0].empty()) {
    reason = "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '" +
             std::string(credential) + "'";
    return false;
  }
  out.accessKeyId = parts[0];
  out.scopeDate = parts[1];
  out.region = parts[2];
  out.service = parts[3];
  out.terminator = parts[4];
  return true;
}

}  // namespace

bool parseAuthorizationHeader(std::string_view value, SigV4Params& out, std::string& reason) {
  out = SigV4Params{};
  std::string_view rest = trimAll(value);
  std::string_view credential, signedHeaders, signature;
  bool haveCredential = false, haveSignedHeaders = false, haveSignature = false;
  if (startsWith(rest, kAlgorithm) && (rest.size() == kAlgorithm.size() || isSpace(rest[kAlgorithm.size()]))) {
    rest.remove_prefix(kAlgorithm.size());
    // Components are separated by commas and/or whitespace, as AWS tokenizes them.
    while (true) {
      while (!rest.empty() && (rest.front() == ',' || isSpace(rest.front()))) rest.remove_prefix(1);
      if (rest.empty()) break;
      size_t end = 0;
      while (end < rest.size() && rest[end] != ',' && !isSpace(rest[end])) ++end;
      std::string_view piece = rest.substr(0, end);
      rest.remove_prefix(end);
      size_t eq = piece.find('=');
      if (eq == std::string_view::npos) {
        reason = "'" + std::string(piece) + "' not a valid key=value pair (missing equal-sign) in Authorization header: '" +
                 std::string(value) + "'.";
        return false;
      }
      std::string_view key = piece.substr(0, eq);
      std::string_view val = piece.substr(eq + 1);
      std::string_view* slot = nullptr;
      bool* seen = nullptr;
      if (key == "Credential") {
        slot = &credential, seen = &haveCredential;
      } else if (key == "SignedHeaders") {
        slot = &signedHeaders, seen = &haveSignedHeaders;
      } else if (key == "Signature") {
        slot = &signature, seen = &haveSignature;
      } else {
        continue;  // AWS ignores components it does not know
      }
      if (*seen) {
        reason = "Authorization header contains '" + std::string(key) + "' more than once. Authorization=" +
                 std::string(value);
        return false;
      }
      *seen = true;
      *slot = val;
    }
  }
  if (!haveCredential || !haveSignedHeaders || !haveSignature || credential.empty() || signedHeaders.empty() ||
      signature.empty()) {
    reason.clear();
    if (!haveCredential || credential.empty()) reason += "Authorization header requires 'Credential' parameter. ";
    if (!haveSignature || signature.empty()) reason += "Authorization header requires 'Signature' parameter. ";
    if (!haveSignedHeaders || signedHeaders.empty())
      reason += "Authorization header requires 'SignedHeaders' parameter. ";
    reason += "Authorization=" + std::string(value);
    return false;
  }
  if (!parseCredential(credential, out, reason)) return false;
  out.signedHeaders = signedHeaders;
  out.signature = signature;
  return true;
}

bool isPresignedQuery(const QueryPairs& q) {
  return std::any_of(q.begin(), q.end(), [](const auto& kv) {
    return kv.first == "X-Amz-Algorithm" || kv.first == "X-Amz-Credential" || kv.first == "X-Amz-Signature";
  });
}

bool parsePresignedQuery(const QueryPairs& q, SigV4Params& out, std::string& reason) {
  out = SigV4Params{};
  out.presigned = true;
  std::string_view algorithm, credential;
  bool haveAlgorithm = false, haveCredential = false, haveSignedHeaders = false, haveSignature = false,
       haveDate = false, haveExpires = false;
  for (const auto& [k, v] : q) {
    if (k == "X-Amz-Algorithm") algorithm = v, haveAlgorithm = true;
    else if (k == "X-Amz-Credential") credential = v, haveCredential = true;
    else if (k == "X-Amz-SignedHeaders") out.signedHeaders = v, haveSignedHeaders = true;
    else if (k == "X-Amz-Signature") out.signature = v, haveSignature = true;
    else if (k == "X-Amz-Date") out.amzDate = v, haveDate = true;
    else if (k == "X-Amz-Expires") out.expires = v, haveExpires = true;
    else if (k == "X-Amz-Security-Token") out.securityToken = v;
  }
  reason.clear();
  if (!haveAlgorithm) reason += "AWS query-string parameters must include 'X-Amz-Algorithm'. ";
  if (!haveCredential) reason += "AWS query-string parameters must include 'X-Amz-Credential'. ";
  if (!haveSignature) reason += "AWS query-string parameters must include 'X-Amz-Signature'. ";
  if (!haveSignedHeaders) reason += "AWS query-string parameters must include 'X-Amz-SignedHeaders'. ";
  if (!haveDate) reason += "AWS query-string parameters must include 'X-Amz-Date'. ";
  if (!haveExpires) reason += "AWS query-string parameters must include 'X-Amz-Expires'. ";
  if (!reason.empty()) {
    reason += "Re-examine the query-string parameters.";
    return false;
  }
  if (algorithm != kAlgorithm) {
    reason = "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"";
    return false;
  }
  return parseCredential(credential, out, reason);
}

std::string canonicalUri(std::string_view rawPath) {
  // Remove dot segments and empty segments (RFC 3986 5.2.4 plus AWS's "no consecutive slashes").
  std::array<std::string_view, 64> fixed;
  std::vector<std::string_view> spill;
  size_t count = 0;
  auto push = [&](std::string_view seg) {
    if (count < fixed.size()) fixed[count] = seg;
    else spill.push_back(seg);
    ++count;
  };
  auto pop = [&] {
    if (count == 0) return;
    if (count > fixed.size()) spill.pop_back();
    --count;
  };
  size_t start = 0;
  while (start <= rawPath.size()) {
    size_t slash = rawPath.find('/', start);
    if (slash == std::string_view::npos) slash = rawPath.size();
    std::string_view seg = rawPath.substr(start, slash - start);
    if (seg == "..") pop();
    else if (!seg.empty() && seg != ".") push(seg);
    start = slash + 1;
  }
  std::string out;
  out.reserve(rawPath.size() + 16);
  out.push_back('/');
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) out.push_back('/');
    out += percentEncode(i < fixed.size() ? fixed[i] : spill[i - fixed.size()]);
  }
  if (count > 0 && endsWith(rawPath, "/")) out.push_back('/');
  return out;
}

std::string canonicalQuery(std::string_view rawQuery, bool dropSignature) {
  if (rawQuery.empty()) return {};
  QueryPairs pairs = decodeQuery(rawQuery);
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(pairs.size());
  for (auto& [k, v] : pairs) {
    if (dropSignature && k == "X-Amz-Signature") continue;
    encoded.emplace_back(percentEncode(k), percentEncode(v));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [k, v] : encoded) {
    if (!out.empty()) out.push_back('&');
    out.append(k).append("=").append(v);
  }
  return out;
}

std::string canonicalRequest(std::string_view method, std::string_view rawPath, std::string_view rawQuery,
                             const HeaderList& headers, std::string_view signedHeaders, std::string_view payloadHash,
                             bool presigned) {
  std::string out;
  out.reserve(512);
  out.append(method).append("\n");
  out.append(canonicalUri(rawPath)).append("\n");
  out.append(canonicalQuery(rawQuery, presigned)).append("\n");
  for (auto name : split(signedHeaders, ';')) {
    out.append(toLower(name)).append(":");
    bool first = true;
    for (const auto& [k, v] : headers) {
      if (!iequals(k, name)) continue;
      if (!first) out.push_back(',');
      first = false;
      appendCollapsed(out, v);
    }
    out.push_back('\n');
  }
  out.append("\n").append(signedHeaders).append("\n").append(payloadHash);
  return out;
}

VerifyResult verifySigV4(const SigV4Request& req, std::string_view expectedService, std::string_view expectedRegion,
                         const CredentialLookup& lookup, SystemTime now) {
  const std::string* authorization = findHeader(req.headers, "authorization");
  // Only decode the query when it can hold a presigned signature: most requests carry none.
  QueryPairs query;
  bool presigned = false;
  if (req.rawQuery.find("X-Amz-") != std::string_view::npos) {
    query = decodeQuery(req.rawQuery);
    presigned = isPresignedQuery(query);
  }
  if (authorization == nullptr && !presigned) return fail(403, "MissingAuthenticationTokenException", "Missing Authentication Token");
  if (authorization != nullptr && presigned)
    return incomplete(
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header "
        "should be specified");

  SigV4Params params;
  std::string reason;
  if (presigned ? !parsePresignedQuery(query, params, reason) : !parseAuthorizationHeader(*authorization, params, reason))
    return incomplete(std::move(reason));
  if (!listContains(params.signedHeaders, "host"))
    return incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");

  // The request time: X-Amz-Date (query or header), else the Date header.
  std::string_view amzDate = params.amzDate;
  std::optional<SystemTime> when;
  std::string dateFromHttp;
  if (!presigned) {
    if (const std::string* h = findHeader(req.headers, "x-amz-date")) {
      amzDate = *h;
    } else if (const std::string* d = findHeader(req.headers, "date")) {
      when = parseHttpDate(*d);
      if (!when) return incomplete("Date must be in RFC 7231 format. Got '" + *d + "'.");
      dateFromHttp = formatAmzDate(*when);
      amzDate = dateFromHttp;
    } else {
      return incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
                        "Authorization=" + *authorization);
    }
  }
  if (!when) when = parseSigningDate(amzDate);
  if (!when)
    return incomplete("Date must be in ISO-8601 'basic format'. Got '" + std::string(amzDate) +
                      "'. See http://en.wikipedia.org/wiki/ISO_8601");

  if (params.terminator != "aws4_request")
    return invalid("Credential should be scoped with a valid terminator: 'aws4_request', not '" +
                   std::string(params.terminator) + "'. ");
  if (params.scopeDate != amzDate.substr(0, 8))
    return invalid("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '" +
                   std::string(params.scopeDate) + "' != '" + std::string(amzDate.substr(0, 8)) + "', from '" +
                   std::string(amzDate) + "'.");
  if (params.service != expectedService)
    return invalid("Credential should be scoped to correct service: '" + std::string(expectedService) + "'. ");
  if (params.region != expectedRegion)
    return invalid("Credential should be scoped to a valid region, not '" + std::string(params.region) + "'. ");

  std::string nowText = formatAmzDate(now);
  // A presigned URL stays valid for X-Amz-Expires instead (checked below).
  if (!presigned && *when < now - kMaxSkew)
    return invalid("Signature expired: " + std::string(amzDate) + " is now earlier than " +
                   formatAmzDate(now - kMaxSkew) + " (" + nowText + " - 5 min.)");
  if (*when > now + kMaxSkew)
    return invalid("Signature not yet current: " + std::string(amzDate) + " is still later than " +
                   formatAmzDate(now + kMaxSkew) + " (" + nowText + " + 5 min.)");
  if (presigned) {
    int expires = 0;
    bool digits = !params.expires.empty() && params.expires.size() <= 7 &&
                  std::all_of(params.expires.begin(), params.expires.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) expires = std::stoi(std::string(params.expires));
    if (!digits || expires < 1 || expires > kMaxPresignSeconds)
      return incomplete("X-Amz-Expires must be a whole number of seconds between 1 and 604800, got '" +
                        std::string(params.expires) + "'.");
    auto deadline = *when + std::chrono::seconds(expires);
    if (now > deadline)
      return invalid("Signature expired: " + std::string(amzDate) + " is now earlier than " +
                     formatAmzDate(now - std::chrono::seconds(expires)) + " (" + nowText + " - " +
                     std::to_string(expires) + " sec.)");
  }

  const model::Identity* identity = lookup(params.accessKeyId);
  if (identity == nullptr) return unrecognized();
  std::string_view token = params.securityToken;
  if (!presigned)
    if (const std::string* t = findHeader(req.headers, "x-amz-security-token")) token = *t;
  if (!constantTimeEquals(token, identity->sessionToken)) return unrecognized();

  // Payload hash: the client's claim when it made one (the JS SDK), else the body's (boto3/awscli send none).
  std::string bodyHash;
  std::string_view payloadHash;
  if (const std::string* claimed = findHeader(req.headers, "x-amz-content-sha256")) {
    payloadHash = *claimed;
    // A signed claim is only worth something if the body matches it.
    if (payloadHash != kUnsignedPayload && !constantTimeEquals(sha256Hex(req.body), payloadHash))
      return invalid(kSignatureMismatch);
  } else {
    bodyHash = sha256Hex(req.body);
    payloadHash = bodyHash;
  }

  std::string canonical = canonicalRequest(req.method, req.rawPath, req.rawQuery, req.headers, params.signedHeaders,
                                           payloadHash, presigned);
  std::string expected =
      signatureHex(identity->secretAccessKey, amzDate, params.region, params.service, canonical);
  if (!isLowerHex(params.signature) || !constantTimeEquals(expected, params.signature)) {
    logDebug("sigv4: signature mismatch for ", params.accessKeyId, "; canonical request:\n", canonical);
    return invalid(kSignatureMismatch);
  }
  VerifyResult ok;
  ok.identity = identity;
  ok.sessionToken = std::string(token);
  return ok;
}

namespace {

// Headers no AWS signer signs: hop-by-hop ones and those proxies rewrite (smithy's ALWAYS_UNSIGNABLE_HEADERS).
bool isUnsignable(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "authorization", "cache-control", "connection", "expect",  "from",       "keep-alive",     "max-forwards",
      "pragma",        "referer",       "te",         "trailer", "transfer-encoding", "upgrade", "user-agent",
      "x-amzn-trace-id"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames) || startsWith(name, "proxy-") ||
         startsWith(name, "sec-");
}

void setHeader(HeaderList& headers, std::string_view name, std::string value) {
  headers.erase(std::remove_if(headers.begin(), headers.end(), [&](const auto& kv) { return kv.first == name; }),
                headers.end());
  headers.emplace_back(std::string(name), std::move(value));
}

std::string scopeOf(std::string_view amzDate, std::string_view region, std::string_view service) {
  return std::string(amzDate.substr(0, 8)) + "/" + std::string(region) + "/" + std::string(service) + "/aws4_request";
}

}  // namespace

void signRequest(std::string_view method, std::string_view host, std::string_view rawPath, std::string_view rawQuery,
                 HeaderList& headers, std::string_view body, const Credentials& credentials, std::string_view region,
                 std::string_view service, SystemTime now, const SignOptions& options) {
  for (auto& [k, v] : headers) k = toLower(k);
  headers.erase(std::remove_if(headers.begin(), headers.end(), [](const auto& kv) { return kv.first == "authorization"; }),
                headers.end());
  if (findHeader(headers, "host") == nullptr) headers.emplace_back("host", std::string(host));
  std::string amzDate = formatAmzDate(now);
  setHeader(headers, "x-amz-date", amzDate);
  if (!credentials.sessionToken.empty()) setHeader(headers, "x-amz-security-token", credentials.sessionToken);
  // A payload hash the caller already set (UNSIGNED-PAYLOAD, a precomputed hash) is signed as is, like AWS's signers do.
  std::string payloadHash;
  if (const std::string* preset = findHeader(headers, "x-amz-content-sha256")) {
    payloadHash = *preset;
  } else {
    payloadHash = options.unsignedPayload ? std::string(kUnsignedPayload) : sha256Hex(body);
    if (options.addContentSha256 || options.unsignedPayload) setHeader(headers, "x-amz-content-sha256", payloadHash);
  }

  std::vector<std::string_view> names;
  for (const auto& [k, v] : headers)
    if (!isUnsignable(k)) names.push_back(k);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::string signedHeaders;
  for (auto n : names) {
    if (!signedHeaders.empty()) signedHeaders.push_back(';');
    signedHeaders.append(n);
  }
  std::string canonical = canonicalRequest(method, rawPath, rawQuery, headers, signedHeaders, payloadHash, false);
  std::string signature = signatureHex(credentials.secretAccessKey, amzDate, region, service, canonical);
  headers.emplace_back("authorization", std::string(kAlgorithm) + " Credential=" + credentials.accessKeyId + "/" +
                                            scopeOf(amzDate, region, service) + ", SignedHeaders=" + signedHeaders +
                                            ", Signature=" + signature);
}

std::string presignQuery(std::string_view method, std::string_view host, std::string_view rawPath,
                         std::string_view rawQuery, const Credentials& credentials, std::string_view region,
                         std::string_view service, SystemTime now, int expiresSeconds) {
  std::string amzDate = formatAmzDate(now);
  std::string query(rawQuery);
  auto add = [&](std::string_view k, std::string_view v) {
    if (!query.empty()) query.push_back('&');
    query.append(k).append("=").append(percentEncode(v));
  };
  add("X-Amz-Algorithm", kAlgorithm);
  add("X-Amz-Credential", credentials.accessKeyId + "/" + scopeOf(amzDate, region, service));
  add("X-Amz-Date", amzDate);
  add("X-Amz-Expires", std::to_string(expiresSeconds));
  add("X-Amz-SignedHeaders", "host");
  if (!credentials.sessionToken.empty()) add("X-Amz-Security-Token", credentials.sessionToken);
  HeaderList headers{{"host", std::string(host)}};
  std::string canonical = canonicalRequest(method, rawPath, query, headers, "host", sha256Hex(""), true);
  add("X-Amz-Signature", signatureHex(credentials.secretAccessKey, amzDate, region, service, canonical));
  return query;
}

}  // namespace trellis::auth
