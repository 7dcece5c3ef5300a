#include "auth/sigv4.h"

#include <gtest/gtest.h>

#include "common/crypto.h"
#include "common/strings.h"

namespace trellis::auth {
namespace {

using namespace std::chrono_literals;

// Our own vectors. The known-answer signatures below were produced by botocore, @smithy/signature-v4 and aws4
// (all three agreed) for these exact requests; oracle_*.{cjs,py} re-check many more against them at test time.
constexpr const char* kAkid = "AKIDTRELLISEXAMPLE01";
constexpr const char* kSecret = "trellis/Secret+Key/Example0123456789abcd";
constexpr const char* kHost = "api.trellis.test:8440";
constexpr const char* kArnPath =
    "/services/arn%3Aaws%3Avpc-lattice%3Aus-east-1%3A111122223333%3Aservice%2Fsvc-0123456789abcdef0";
const std::string kEmptySha = sha256Hex("");

SystemTime at(const char* amzDate) { return *parseAmzDate(amzDate); }
const SystemTime kSignedAt = at("20240506T070809Z");

class SigV4Test : public ::testing::Test {
 protected:
  SigV4Test() {
    plain_.arn = "arn:aws:iam::111122223333:role/admin";
    plain_.accessKeyId = kAkid;
    plain_.secretAccessKey = kSecret;
    withToken_ = plain_;
    withToken_.arn = "arn:aws:sts::111122223333:assumed-role/dev/session";
    withToken_.accessKeyId = "ASIATRELLISEXAMPLE02";
    withToken_.sessionToken = "IQoJb3JpZ2luX2VjE/+tok==";
  }

  CredentialLookup lookup() const {
    return [this](std::string_view akid) -> const model::Identity* {
      if (akid == plain_.accessKeyId) return &plain_;
      if (akid == withToken_.accessKeyId) return &withToken_;
      return nullptr;
    };
  }

  VerifyResult verify(std::string_view method, std::string_view path, std::string_view query,
                      const HeaderList& headers, std::string_view body, SystemTime now = kSignedAt,
                      std::string_view service = "vpc-lattice", std::string_view region = "us-east-1") const {
    SigV4Request req{method, path, query, headers, body};
    return verifySigV4(req, service, region, lookup(), now);
  }

  // Signs with our signer; `headers` gets the auth headers added.
  HeaderList sign(std::string_view method, std::string_view path, std::string_view query, HeaderList headers,
                  std::string_view body, const model::Identity& who, SignOptions options = {},
                  std::string_view service = "vpc-lattice") const {
    Credentials creds{who.accessKeyId, who.secretAccessKey, who.sessionToken};
    signRequest(method, kHost, path, query, headers, body, creds, "us-east-1", service, kSignedAt, options);
    return headers;
  }

  model::Identity plain_, withToken_;
};

std::string headerValue(const HeaderList& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

void setValue(HeaderList& headers, std::string_view name, std::string value) {
  for (auto& [k, v] : headers)
    if (iequals(k, name)) v = std::move(value);
}

// ---- Canonicalization ----

TEST(CanonicalUri, DoubleEncodesTheWirePath) {
  EXPECT_EQ(canonicalUri(kArnPath),
            "/services/arn%253Aaws%253Avpc-lattice%253Aus-east-1%253A111122223333%253Aservice%252Fsvc-0123456789abcdef0");
  EXPECT_EQ(canonicalUri("/with%20space/caf%C3%A9"), "/with%2520space/caf%25C3%25A9");
  // Characters a client left unencoded on the wire are encoded once.
  EXPECT_EQ(canonicalUri("/a b/x:y/(z)*!"), "/a%20b/x%3Ay/%28z%29%2A%21");
  EXPECT_EQ(canonicalUri("/caf\xC3\xA9"), "/caf%C3%A9");
  EXPECT_EQ(canonicalUri("/~user/a-b_c.d"), "/~user/a-b_c.d");
}

TEST(CanonicalUri, RemovesDotSegmentsAndRepeatedSlashes) {
  EXPECT_EQ(canonicalUri(""), "/");
  EXPECT_EQ(canonicalUri("/"), "/");
  EXPECT_EQ(canonicalUri("/a/./b/../c//d/"), "/a/c/d/");
  EXPECT_EQ(canonicalUri("/.."), "/");
  EXPECT_EQ(canonicalUri("/a/.."), "/");
  EXPECT_EQ(canonicalUri("/../../a"), "/a");
  EXPECT_EQ(canonicalUri("//services//"), "/services/");
  EXPECT_EQ(canonicalUri("/a/%2E%2E/b"), "/a/%252E%252E/b");  // encoded dots are not dot segments
}

TEST(CanonicalUri, HandlesVeryDeepPaths) {
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "/s" + std::to_string(i);
  deep += "/..";
  std::string expected;
  for (int i = 0; i < 199; ++i) expected += "/s" + std::to_string(i);
  EXPECT_EQ(canonicalUri(deep), expected);
}

TEST(CanonicalQuery, SortsByKeyThenValueAndReencodes) {
  EXPECT_EQ(canonicalQuery("", false), "");
  EXPECT_EQ(canonicalQuery("b=2&a=1", false), "a=1&b=2");
  EXPECT_EQ(canonicalQuery("tagKeys=b&tagKeys=a&tagKeys=a%20b", false), "tagKeys=a&tagKeys=a%20b&tagKeys=b");
  EXPECT_EQ(canonicalQuery("b=&a&c=1", false), "a=&b=&c=1");
  EXPECT_EQ(canonicalQuery("q=%e2%9c%93&%C3%BC=1", false), "%C3%BC=1&q=%E2%9C%93");  // escapes upper-cased
  EXPECT_EQ(canonicalQuery("k=a+b", false), "k=a%2Bb");  // '+' is literal in SigV4, not a space
  EXPECT_EQ(canonicalQuery("k=v:/?", false), "k=v%3A%2F%3F");
  EXPECT_EQ(canonicalQuery("a_b=1&a.b=2&A=3&a~=4", false), "A=3&a.b=2&a_b=1&a~=4");  // byte order of encoded keys
  EXPECT_EQ(canonicalQuery("a=1&&b=2&", false), "a=1&b=2");
}

TEST(CanonicalQuery, DropsTheSignatureOfPresignedUrlsOnly) {
  EXPECT_EQ(canonicalQuery("X-Amz-Signature=abc&x=1", true), "x=1");
  EXPECT_EQ(canonicalQuery("X-Amz-Signature=abc&x=1", false), "X-Amz-Signature=abc&x=1");
}

TEST(CanonicalRequest, JoinsRepeatedHeadersAndCollapsesWhitespace) {
  HeaderList headers{{"Host", kHost},
                     {"X-Custom", "  a   b\t c  "},
                     {"x-dup", "1"},
                     {"X-Dup", " 2 "},
                     {"x-folded", "first\r\n   second"},
                     {"x-unsigned", "ignored"}};
  EXPECT_EQ(canonicalRequest("GET", "/h", "", headers, "host;x-custom;x-dup;x-folded", kEmptySha, false),
            "GET\n/h\n\nhost:api.trellis.test:8440\nx-custom:a b c\nx-dup:1,2\nx-folded:first second\n\n"
            "host;x-custom;x-dup;x-folded\n" + kEmptySha);
}

// ---- Parsing ----

TEST(ParseAuthorization, AcceptsAwsVariations) {
  const char* forms[] = {
      "AWS4-HMAC-SHA256 Credential=AKID/20240506/us-east-1/vpc-lattice/aws4_request, SignedHeaders=host;x-amz-date, "
      "Signature=abcd",
      "AWS4-HMAC-SHA256 Credential=AKID/20240506/us-east-1/vpc-lattice/aws4_request,SignedHeaders=host;x-amz-date,"
      "Signature=abcd",
      "  AWS4-HMAC-SHA256   Signature=abcd ,  Credential=AKID/20240506/us-east-1/vpc-lattice/aws4_request ,\t"
      "SignedHeaders=host;x-amz-date  ",
      "AWS4-HMAC-SHA256 Credential=AKID/20240506/us-east-1/vpc-lattice/aws4_request, SignedHeaders=host;x-amz-date, "
      "Signature=abcd, Extra=ignored",
      "AWS4-HMAC-SHA256\tCredential=AKID/20240506/us-east-1/vpc-lattice/aws4_request SignedHeaders=host;x-amz-date "
      "Signature=abcd",
  };
  for (const char* form : forms) {
    SigV4Params p;
    std::string reason;
    ASSERT_TRUE(parseAuthorizationHeader(form, p, reason)) << form << ": " << reason;
    EXPECT_EQ(p.accessKeyId, "AKID");
    EXPECT_EQ(p.scopeDate, "20240506");
    EXPECT_EQ(p.region, "us-east-1");
    EXPECT_EQ(p.service, "vpc-lattice");
    EXPECT_EQ(p.terminator, "aws4_request");
    EXPECT_EQ(p.signedHeaders, "host;x-amz-date");
    EXPECT_EQ(p.signature, "abcd");
  }
}

TEST(ParseAuthorization, RejectsGarbageWithAwsReasons) {
  SigV4Params p;
  std::string reason;
  EXPECT_FALSE(parseAuthorizationHeader("Bearer eyJhbGciOi", p, reason));
  EXPECT_EQ(reason,
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' "
            "parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=Bearer eyJhbGciOi");

  EXPECT_FALSE(parseAuthorizationHeader(
      "AWS4-HMAC-SHA256 Credential=AKID/20240506/us-east-1/vpc-lattice/aws4_request, SignedHeaders=host", p, reason));
  EXPECT_EQ(reason, "Authorization header requires 'Signature' parameter. Authorization=AWS4-HMAC-SHA256 "
                    "Credential=AKID/20240506/us-east-1/vpc-lattice/aws4_request, SignedHeaders=host");

  EXPECT_FALSE(parseAuthorizationHeader(
      "AWS4-HMAC-SHA256 Credential= AKID /20240506/us-east-1/x/aws4_request, SignedHeaders=host Signature", p, reason));
  EXPECT_EQ(reason.rfind("'AKID' not a valid key=value pair (missing equal-sign) in Authorization header: '", 0), 0u)
      << reason;

  EXPECT_FALSE(parseAuthorizationHeader(
      "AWS4-HMAC-SHA256 Credential=AKID/20240506/us-east-1/vpc-lattice, SignedHeaders=host, Signature=ab", p, reason));
  EXPECT_EQ(reason, "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
                    "got 'AKID/20240506/us-east-1/vpc-lattice'");

  EXPECT_FALSE(parseAuthorizationHeader(
      "AWS4-HMAC-SHA256 Credential=A/1/2/3/4, Credential=A/1/2/3/4, SignedHeaders=host, Signature=ab", p, reason));
  EXPECT_NE(reason.find("more than once"), std::string::npos);

  EXPECT_FALSE(parseAuthorizationHeader("AWS4-HMAC-SHA256Credential=A/1/2/3/4, SignedHeaders=host, Signature=ab", p,
                                        reason));
  EXPECT_FALSE(parseAuthorizationHeader("", p, reason));
  EXPECT_FALSE(reason.empty());
}

// ---- Known answers ----

TEST_F(SigV4Test, SignerMatchesOracleKnownAnswers) {
  auto h = sign("GET", "/services", "maxResults=5&nextToken=abc", {}, "", plain_);
  EXPECT_EQ(headerValue(h, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDTRELLISEXAMPLE01/20240506/us-east-1/vpc-lattice/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            "Signature=e696966eab2038cf86bf1492395377b41d718e26be7e689fee95568fa0a9a62f");
  EXPECT_EQ(headerValue(h, "x-amz-date"), "20240506T070809Z");
  EXPECT_EQ(headerValue(h, "x-amz-content-sha256"), kEmptySha);

  h = sign("GET", kArnPath, "", {}, "", plain_);
  EXPECT_NE(headerValue(h, "authorization").find("Signature=8951b9491074ba0c1e1c2b040c1cb171c5f1aa3535f47b84058d532f7d44d25e"),
            std::string::npos);

  SignOptions botoStyle;
  botoStyle.addContentSha256 = false;
  h = sign("GET", "/a/./b/../c//d/", "", {}, "", plain_, botoStyle, "vpc-lattice-svcs");
  EXPECT_NE(headerValue(h, "authorization").find("Signature=b0e72f0e52516eaccb8d2aea3dfcb93234a3e53293a5d882871cda566bb36b39"),
            std::string::npos);

  std::string q = presignQuery("GET", kHost, "/p/a%20b", "x=1", {kAkid, kSecret, ""}, "us-east-1",
                               "vpc-lattice-svcs", kSignedAt, 300);
  EXPECT_NE(q.find("&X-Amz-Signature=7fae6cfcb9000a8e058e99a0e39079ab064558dadad2020c597e3b287400d06b"),
            std::string::npos)
      << q;
}

// ---- Verification ----

TEST_F(SigV4Test, AcceptsWhatItSigns) {
  struct Case {
    const char* method;
    const char* path;
    const char* query;
    const char* body;
  } cases[] = {
      {"GET", "/services", "maxResults=5&nextToken=a%20b", ""},
      {"GET", kArnPath, "", ""},
      {"DELETE", "/tags/arn%3Aaws%3Avpc-lattice%3Aus-east-1%3A111122223333%3Aservice%2Fsvc-0123456789abcdef0",
       "tagKeys=b&tagKeys=a&tagKeys=a", ""},
      {"POST", "/services", "", R"({"name":"checkout","authType":"NONE"})"},
      {"GET", "/a/./b/../c//d/", "b=&a=", ""},
      {"GET", "/caf%C3%A9/%E2%82%AC", "q=%E2%9C%93", ""},
  };
  for (const auto& c : cases) {
    for (bool contentSha : {true, false}) {
      SignOptions options;
      options.addContentSha256 = contentSha;
      auto h = sign(c.method, c.path, c.query, {{"content-type", "application/json"}}, c.body, plain_, options);
      auto r = verify(c.method, c.path, c.query, h, c.body);
      ASSERT_TRUE(r.ok()) << c.path << " " << r.errorCode << ": " << r.message;
      EXPECT_EQ(r.identity, &plain_);
      EXPECT_EQ(r.sessionToken, "");
    }
  }
}

TEST_F(SigV4Test, ToleratesFiveMinutesOfSkewEachWay) {
  auto h = sign("GET", "/services", "", {}, "", plain_);
  EXPECT_TRUE(verify("GET", "/services", "", h, "", kSignedAt + 5min).ok());
  EXPECT_TRUE(verify("GET", "/services", "", h, "", kSignedAt - 5min).ok());

  auto late = verify("GET", "/services", "", h, "", at("20240506T071810Z"));
  EXPECT_EQ(late.status, 403);
  EXPECT_EQ(late.errorCode, "InvalidSignatureException");
  EXPECT_EQ(late.message,
            "Signature expired: 20240506T070809Z is now earlier than 20240506T071310Z (20240506T071810Z - 5 min.)");

  auto early = verify("GET", "/services", "", h, "", at("20240506T070208Z"));
  EXPECT_EQ(early.status, 403);
  EXPECT_EQ(early.errorCode, "InvalidSignatureException");
  EXPECT_EQ(early.message, "Signature not yet current: 20240506T070809Z is still later than 20240506T070708Z "
                           "(20240506T070208Z + 5 min.)");
}

TEST_F(SigV4Test, RejectsMissingAuthentication) {
  auto r = verify("GET", "/services", "maxResults=5", {{"host", kHost}}, "");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.errorCode, "MissingAuthenticationTokenException");
  EXPECT_EQ(r.message, "Missing Authentication Token");
}

TEST_F(SigV4Test, RejectsUnknownAccessKey) {
  model::Identity stranger = plain_;
  stranger.accessKeyId = "AKIDSTRANGER00000000";
  auto h = sign("GET", "/services", "", {}, "", stranger);
  auto r = verify("GET", "/services", "", h, "");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.errorCode, "UnrecognizedClientException");
  EXPECT_EQ(r.message, "The security token included in the request is invalid.");
}

TEST_F(SigV4Test, RejectsWrongSecret) {
  model::Identity impostor = plain_;
  impostor.secretAccessKey = "not-the-secret";
  auto h = sign("GET", "/services", "", {}, "", impostor);
  auto r = verify("GET", "/services", "", h, "");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.errorCode, "InvalidSignatureException");
  EXPECT_EQ(r.message,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.");
}

TEST_F(SigV4Test, RejectsEveryTamper) {
  const std::string body = R"({"name":"checkout"})";
  const std::string query = "maxResults=5&tagKeys=a";
  auto h = sign("POST", kArnPath, query, {{"content-type", "application/json"}, {"x-custom", "v"}}, body, plain_);
  ASSERT_TRUE(verify("POST", kArnPath, query, h, body).ok());

  auto rejected = [&](std::string_view method, std::string_view path, std::string_view q, const HeaderList& hh,
                      std::string_view b) {
    auto r = verify(method, path, q, hh, b);
    return !r.ok() && r.errorCode == "InvalidSignatureException";
  };
  EXPECT_TRUE(rejected("PUT", kArnPath, query, h, body));
  std::string path = kArnPath;
  path.back() = '1';
  EXPECT_TRUE(rejected("POST", path, query, h, body));
  EXPECT_TRUE(rejected("POST", std::string(kArnPath) + "/", query, h, body));
  EXPECT_TRUE(rejected("POST", kArnPath, "maxResults=6&tagKeys=a", h, body));
  EXPECT_TRUE(rejected("POST", kArnPath, query + "&extra=1", h, body));
  EXPECT_TRUE(rejected("POST", kArnPath, query, h, R"({"name":"checkouT"})"));
  for (const char* name : {"content-type", "x-custom", "host", "x-amz-content-sha256"}) {
    HeaderList t = h;
    setValue(t, name, headerValue(t, name) + "x");
    EXPECT_TRUE(rejected("POST", kArnPath, query, t, body)) << name;
  }
  HeaderList t = h;
  setValue(t, "x-amz-date", "20240506T070810Z");
  EXPECT_TRUE(rejected("POST", kArnPath, query, t, body));
  t = h;
  std::string auth = headerValue(t, "authorization");
  auth.back() = auth.back() == '0' ? '1' : '0';
  setValue(t, "authorization", auth);
  EXPECT_TRUE(rejected("POST", kArnPath, query, t, body));
  // Upper-case hex is not the signature AWS computes.
  t = h;
  auth = headerValue(h, "authorization");
  for (size_t i = auth.find("Signature=") + 10; i < auth.size(); ++i) auth[i] = static_cast<char>(toupper(auth[i]));
  setValue(t, "authorization", auth);
  EXPECT_TRUE(rejected("POST", kArnPath, query, t, body));
  // A duplicate of a signed header changes its canonical value.
  t = h;
  t.emplace_back("x-custom", "second");
  EXPECT_TRUE(rejected("POST", kArnPath, query, t, body));
}

TEST_F(SigV4Test, BodyHashWithoutContentShaHeader) {
  // boto3/awscli send no x-amz-content-sha256: the verifier hashes the body itself.
  SignOptions botoStyle;
  botoStyle.addContentSha256 = false;
  auto h = sign("POST", "/services", "", {{"content-type", "application/json"}}, "{}", plain_, botoStyle);
  EXPECT_EQ(headerValue(h, "x-amz-content-sha256"), "");
  EXPECT_TRUE(verify("POST", "/services", "", h, "{}").ok());
  EXPECT_FALSE(verify("POST", "/services", "", h, "{ }").ok());
}

TEST_F(SigV4Test, UnsignedPayloadLeavesTheBodyUnchecked) {
  SignOptions unsignedPayload;
  unsignedPayload.unsignedPayload = true;
  auto h = sign("PUT", "/upload", "", {}, "streamed", plain_, unsignedPayload, "vpc-lattice-svcs");
  EXPECT_EQ(headerValue(h, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
  EXPECT_TRUE(verify("PUT", "/upload", "", h, "streamed", kSignedAt, "vpc-lattice-svcs").ok());
  EXPECT_TRUE(verify("PUT", "/upload", "", h, "anything else", kSignedAt, "vpc-lattice-svcs").ok());
  HeaderList t = h;
  setValue(t, "x-amz-content-sha256", sha256Hex("anything else"));
  EXPECT_FALSE(verify("PUT", "/upload", "", t, "anything else", kSignedAt, "vpc-lattice-svcs").ok());
}

TEST_F(SigV4Test, SessionTokens) {
  auto h = sign("GET", "/servicenetworks", "", {}, "", withToken_);
  EXPECT_EQ(headerValue(h, "x-amz-security-token"), withToken_.sessionToken);
  auto r = verify("GET", "/servicenetworks", "", h, "");
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.identity, &withToken_);
  EXPECT_EQ(r.sessionToken, withToken_.sessionToken);

  // Signed without the token the identity requires.
  model::Identity noToken = withToken_;
  noToken.sessionToken.clear();
  auto missing = verify("GET", "/servicenetworks", "", sign("GET", "/servicenetworks", "", {}, "", noToken), "");
  EXPECT_EQ(missing.errorCode, "UnrecognizedClientException");
  EXPECT_EQ(missing.status, 403);

  // A wrong token, correctly signed.
  model::Identity wrongToken = withToken_;
  wrongToken.sessionToken = "IQoJb3JpZ2luX2VjE/+tok=X";
  auto wrong = verify("GET", "/servicenetworks", "", sign("GET", "/servicenetworks", "", {}, "", wrongToken), "");
  EXPECT_EQ(wrong.errorCode, "UnrecognizedClientException");

  // A token sent for long-term credentials.
  model::Identity extra = plain_;
  extra.sessionToken = "surprise";
  auto surprise = verify("GET", "/servicenetworks", "", sign("GET", "/servicenetworks", "", {}, "", extra), "");
  EXPECT_EQ(surprise.errorCode, "UnrecognizedClientException");
}

TEST_F(SigV4Test, CredentialScopeMustMatch) {
  auto region = verify("GET", "/services", "", sign("GET", "/services", "", {}, "", plain_), "", kSignedAt,
                       "vpc-lattice", "eu-west-1");
  EXPECT_EQ(region.status, 403);
  EXPECT_EQ(region.errorCode, "InvalidSignatureException");
  EXPECT_EQ(region.message, "Credential should be scoped to a valid region, not 'us-east-1'. ");

  auto service = verify("GET", "/services", "", sign("GET", "/services", "", {}, "", plain_, {}, "execute-api"), "");
  EXPECT_EQ(service.status, 403);
  EXPECT_EQ(service.errorCode, "InvalidSignatureException");
  EXPECT_EQ(service.message, "Credential should be scoped to correct service: 'vpc-lattice'. ");

  // The scope date must be the x-amz-date's day.
  auto h = sign("GET", "/services", "", {}, "", plain_);
  std::string auth = headerValue(h, "authorization");
  auth.replace(auth.find("/20240506/"), 10, "/20240505/");
  setValue(h, "authorization", auth);
  auto date = verify("GET", "/services", "", h, "");
  EXPECT_EQ(date.errorCode, "InvalidSignatureException");
  EXPECT_EQ(date.message, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                          "'20240505' != '20240506', from '20240506T070809Z'.");

  h = sign("GET", "/services", "", {}, "", plain_);
  auth = headerValue(h, "authorization");
  auth.replace(auth.find("aws4_request"), 12, "aws5_request");
  setValue(h, "authorization", auth);
  EXPECT_EQ(verify("GET", "/services", "", h, "").message,
            "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. ");
}

TEST_F(SigV4Test, IncompleteSignatures) {
  auto h = sign("GET", "/services", "", {}, "", plain_);
  HeaderList noDate;
  for (const auto& kv : h)
    if (kv.first != "x-amz-date") noDate.push_back(kv);
  auto r = verify("GET", "/services", "", noDate, "");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.errorCode, "IncompleteSignatureException");
  EXPECT_EQ(r.message.rfind("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
                            "Authorization=AWS4-HMAC-SHA256 Credential=",
                            0),
            0u)
      << r.message;

  HeaderList badDate = h;
  setValue(badDate, "x-amz-date", "2024-05-06T07:08:09Z");
  r = verify("GET", "/services", "", badDate, "");
  EXPECT_EQ(r.errorCode, "IncompleteSignatureException");
  EXPECT_EQ(r.message, "Date must be in ISO-8601 'basic format'. Got '2024-05-06T07:08:09Z'. See "
                       "http://en.wikipedia.org/wiki/ISO_8601");

  HeaderList garbage{{"host", kHost}, {"authorization", "Bearer xyz"}, {"x-amz-date", "20240506T070809Z"}};
  r = verify("GET", "/services", "", garbage, "");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.errorCode, "IncompleteSignatureException");

  // Host must be signed.
  HeaderList hostless = {{"x-amz-date", "20240506T070809Z"},
                         {"authorization",
                          "AWS4-HMAC-SHA256 Credential=AKIDTRELLISEXAMPLE01/20240506/us-east-1/vpc-lattice/"
                          "aws4_request, SignedHeaders=x-amz-date, Signature=00"}};
  r = verify("GET", "/services", "", hostless, "");
  EXPECT_EQ(r.errorCode, "IncompleteSignatureException");
  EXPECT_EQ(r.message, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
}

TEST_F(SigV4Test, DateHeaderInsteadOfXAmzDate) {
  // Signed at kSignedAt with a Date header only (RFC 7231 form).
  HeaderList h = sign("GET", "/services", "", {}, "", plain_);
  HeaderList viaDate;
  for (const auto& kv : h)
    if (kv.first != "x-amz-date") viaDate.push_back(kv);
  viaDate.emplace_back("date", "Mon, 06 May 2024 07:08:09 GMT");
  // Our signer signed x-amz-date, which is now absent: the signature cannot match, but the date is understood.
  auto r = verify("GET", "/services", "", viaDate, "");
  EXPECT_EQ(r.errorCode, "InvalidSignatureException");
  EXPECT_EQ(r.message.find("Signature expired"), std::string::npos);
}

TEST_F(SigV4Test, PresignedUrls) {
  Credentials creds{withToken_.accessKeyId, withToken_.secretAccessKey, withToken_.sessionToken};
  std::string q = presignQuery("GET", kHost, kArnPath, "x=1&y=a%20b", creds, "us-east-1", "vpc-lattice", kSignedAt, 300);
  EXPECT_NE(q.find("X-Amz-Security-Token=IQoJb3JpZ2luX2VjE%2F%2Btok%3D%3D"), std::string::npos) << q;
  HeaderList host{{"host", kHost}};
  auto r = verify("GET", kArnPath, q, host, "", kSignedAt + 299s);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.identity, &withToken_);
  EXPECT_EQ(r.sessionToken, withToken_.sessionToken);

  auto expired = verify("GET", kArnPath, q, host, "", kSignedAt + 301s);
  EXPECT_EQ(expired.errorCode, "InvalidSignatureException");
  EXPECT_EQ(expired.message,
            "Signature expired: 20240506T070809Z is now earlier than 20240506T070810Z (20240506T071310Z - 300 sec.)");
  auto early = verify("GET", kArnPath, q, host, "", kSignedAt - 6min);
  EXPECT_EQ(early.errorCode, "InvalidSignatureException");

  EXPECT_FALSE(verify("GET", kArnPath, q + "&z=1", host, "").ok());
  EXPECT_FALSE(verify("GET", kArnPath, "x=2" + q.substr(3), host, "").ok());
  EXPECT_FALSE(verify("GET", "/services/other", q, host, "").ok());
  EXPECT_FALSE(verify("GET", kArnPath, q, {{"host", "evil.test"}}, "").ok());
  std::string longer = q;
  longer.replace(longer.find("X-Amz-Expires=300"), 17, "X-Amz-Expires=900");
  EXPECT_FALSE(verify("GET", kArnPath, longer, host, "", kSignedAt + 400s).ok());

  // Both an Authorization header and a presigned query: AWS allows one mechanism only.
  HeaderList both = sign("GET", kArnPath, q, {}, "", withToken_);
  auto r2 = verify("GET", kArnPath, q, both, "");
  EXPECT_EQ(r2.errorCode, "IncompleteSignatureException");

  // Missing parameters are named.
  std::string partial = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00";
  auto r3 = verify("GET", "/x", partial, host, "");
  EXPECT_EQ(r3.status, 400);
  EXPECT_NE(r3.message.find("'X-Amz-Credential'"), std::string::npos) << r3.message;
  EXPECT_NE(r3.message.find("'X-Amz-Date'"), std::string::npos);

  std::string badExpiry = q;
  badExpiry.replace(badExpiry.find("X-Amz-Expires=300"), 17, "X-Amz-Expires=0ab");
  EXPECT_EQ(verify("GET", kArnPath, badExpiry, host, "").errorCode, "IncompleteSignatureException");
}

TEST_F(SigV4Test, SignerSkipsUnsignableHeadersAndLowercasesNames) {
  auto h = sign("GET", "/services", "", {{"User-Agent", "trellis/1"}, {"Connection", "close"}, {"X-Trace", "t"}}, "",
                plain_);
  std::string auth = headerValue(h, "authorization");
  EXPECT_NE(auth.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-trace,"), std::string::npos) << auth;
  EXPECT_EQ(headerValue(h, "user-agent"), "trellis/1");
  for (const auto& kv : h) EXPECT_EQ(kv.first, toLower(kv.first));
  // Changing an unsigned header does not matter.
  setValue(h, "user-agent", "other");
  EXPECT_TRUE(verify("GET", "/services", "", h, "").ok());
}

}  // namespace
}  // namespace trellis::auth
