// Checks our SigV4 code against requests signed by AWS's own signers (oracle_node.cjs, oracle_botocore.py):
// every request must verify, every one-byte tamper must be rejected, and our signer must produce the same
// signature for the same input and time. Usage: sigv4_oracle_check SIGNED.json (exit status 1 on any failure).
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "auth/sigv4.h"
#include "common/strings.h"

using namespace trellis;
using nlohmann::json;

namespace {

int failures = 0;

void check(bool ok, const std::string& caseName, const std::string& what) {
  if (ok) return;
  ++failures;
  std::cerr << "FAIL [" << caseName << "] " << what << "\n";
}

struct Wire {
  std::string method, path, query, body;
  HeaderList headers;
};

auth::VerifyResult verify(const Wire& w, const json& c, const model::Identity& id, SystemTime now) {
  auth::SigV4Request req{w.method, w.path, w.query, w.headers, w.body};
  auto lookup = [&](std::string_view akid) -> const model::Identity* { return akid == id.accessKeyId ? &id : nullptr; };
  return verifySigV4(req, c["service"].get<std::string>(), c["region"].get<std::string>(), lookup, now);
}

std::string bumpLast(std::string s) {
  if (s.empty()) return "x";
  s.back() = s.back() == 'a' ? 'b' : 'a';
  return s;
}

std::string queryParam(std::string_view query, std::string_view name) {
  for (auto part : split(query, '&'))
    if (startsWith(part, std::string(name) + "=")) return std::string(part.substr(name.size() + 1));
  return {};
}

void checkCase(const json& c) {
  std::string name = c["signer"].get<std::string>() + "/" + c["name"].get<std::string>();
  model::Identity id;
  id.arn = "arn:aws:iam::111122223333:role/oracle";
  id.accessKeyId = c["accessKeyId"];
  id.secretAccessKey = c["secretAccessKey"];
  id.sessionToken = c["sessionToken"];
  SystemTime signedAt = *parseAmzDate(c["time"].get<std::string>());
  SystemTime now = signedAt + std::chrono::seconds(90);

  Wire w{c["method"], c["path"], c["query"], c["body"], {}};
  for (const auto& h : c["headers"]) w.headers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());

  auto good = verify(w, c, id, now);
  check(good.ok(), name, "verify: " + good.errorCode + ": " + good.message);

  // One-byte tampers, each of which must be rejected.
  auto mustFail = [&](const Wire& t, const std::string& what) {
    auto r = verify(t, c, id, now);
    check(!r.ok(), name, "accepted after tampering with " + what);
  };
  {
    Wire t = w;
    t.method = t.method == "GET" ? "HEAD" : "GET";
    mustFail(t, "the method");
  }
  {
    Wire t = w;
    t.path = bumpLast(t.path);
    mustFail(t, "the path");
  }
  std::string payloadClaim;
  for (const auto& [k, v] : w.headers)
    if (iequals(k, "x-amz-content-sha256")) payloadClaim = v;
  if (payloadClaim != auth::kUnsignedPayload) {
    Wire t = w;
    t.body = bumpLast(t.body);
    mustFail(t, "the body");
  }
  auto pieces = split(w.query, '&');
  for (size_t i = 0; !w.query.empty() && i < pieces.size(); ++i) {
    Wire t = w;
    t.query.clear();
    for (size_t j = 0; j < pieces.size(); ++j) {
      if (j) t.query += '&';
      t.query += j == i ? bumpLast(std::string(pieces[j])) : std::string(pieces[j]);
    }
    mustFail(t, "query parameter " + std::string(pieces[i]));
  }
  // Every signed header, and the Authorization header itself.
  std::string signedHeaders = "host";
  for (const auto& [k, v] : w.headers) {
    auth::SigV4Params params;
    std::string reason;
    if (iequals(k, "authorization") && auth::parseAuthorizationHeader(v, params, reason))
      signedHeaders = std::string(params.signedHeaders) + ";authorization";
  }
  for (size_t i = 0; i < w.headers.size(); ++i) {
    bool isSigned = false;
    for (auto n : split(signedHeaders, ';')) isSigned = isSigned || iequals(n, w.headers[i].first);
    if (!isSigned) continue;
    Wire t = w;
    t.headers[i].second = bumpLast(t.headers[i].second);
    mustFail(t, "header " + w.headers[i].first);
  }

  // Our signer, given what the oracle was given, must come out with the same signature.
  auth::Credentials creds{id.accessKeyId, id.secretAccessKey, id.sessionToken};
  std::string host = c["host"];
  std::string signInputQuery = c["signInput"]["query"];
  if (c["presigned"].get<bool>()) {
    std::string ours = auth::presignQuery(c["method"].get<std::string>(), host, w.path, signInputQuery, creds,
                                          c["region"].get<std::string>(), c["service"].get<std::string>(), signedAt,
                                          c["expires"].get<int>());
    check(queryParam(ours, "X-Amz-Signature") == queryParam(w.query, "X-Amz-Signature"), name,
          "presignQuery signature differs: ours " + ours + " theirs " + w.query);
    // Our own presigned URL verifies too.
    Wire mine{w.method, w.path, ours, "", {{"host", host}}};
    auto r = verify(mine, c, id, now);
    check(r.ok(), name, "our presigned URL does not verify: " + r.message);
  } else {
    HeaderList headers;
    for (const auto& h : c["signInput"]["headers"]) headers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
    auth::SignOptions options;
    options.addContentSha256 = false;
    auth::signRequest(w.method, host, w.path, signInputQuery, headers, w.body, creds, c["region"].get<std::string>(),
                      c["service"].get<std::string>(), signedAt, options);
    std::string ours, theirs;
    for (const auto& [k, v] : headers)
      if (k == "authorization") ours = v;
    for (const auto& [k, v] : w.headers)
      if (iequals(k, "authorization")) theirs = v;
    check(!ours.empty() && ours == theirs, name, "signRequest differs:\n  ours   " + ours + "\n  theirs " + theirs);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: sigv4_oracle_check SIGNED.json\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  json cases;
  try {
    cases = json::parse(in);
  } catch (const std::exception& e) {
    std::cerr << "cannot read " << argv[1] << ": " << e.what() << "\n";
    return 1;
  }
  if (!cases.is_array() || cases.empty()) {
    std::cerr << argv[1] << ": no signed cases (did the oracle run?)\n";
    return 1;
  }
  for (const auto& c : cases) checkCase(c);
  std::cout << cases.size() << " cases from " << cases[0]["signer"].get<std::string>() << ", " << failures
            << " failures\n";
  return failures == 0 ? 0 : 1;
}
