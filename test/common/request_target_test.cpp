// normalizeRequestTarget: what a rule, an auth policy and the target see (docs/request-paths.md).
#include "common/request_target.h"

#include <gtest/gtest.h>

namespace trellis {
namespace {

struct Normalized {
  std::string target, authority;
  std::string error;  // empty: accepted
};

Normalized normalize(std::string target, bool absolute = true, EncodedSlashes slashes = EncodedSlashes::Reject,
                     std::string_view method = "GET") {
  Normalized out;
  const char* error = normalizeRequestTarget(target, method, absolute, slashes, out.authority);
  if (error) out.error = error;
  out.target = target;
  return out;
}

TEST(RequestTarget, OriginFormAlreadyNormalIsUntouched) {
  for (std::string t : {"/", "/a", "/a/b/", "/a?x=%2F&y=..//", "/.well-known/x", "/a.b/c..d/...", "/~user/%C3%A9"}) {
    Normalized n = normalize(t);
    EXPECT_EQ(n.error, "") << t;
    EXPECT_EQ(n.target, t) << t;
    EXPECT_EQ(n.authority, "");
  }
}

TEST(RequestTarget, DotSegmentsAndEmptySegmentsAreRemoved) {
  const std::pair<const char*, const char*> cases[] = {
      {"/a/../admin/secret", "/admin/secret"},
      {"/public/../admin", "/admin"},
      {"/./admin", "/admin"},
      {"//admin//secret", "/admin/secret"},
      {"/a/b/..", "/a/"},
      {"/a/b/.", "/a/b/"},
      {"/..", "/"},
      {"/../../etc/passwd", "/etc/passwd"},
      {"/a/./b/../../c", "/c"},
      {"/a//", "/a/"},
      {"//", "/"},
      {"/a/..?q=1", "/?q=1"},
  };
  for (const auto& [in, want] : cases) {
    Normalized n = normalize(in);
    EXPECT_EQ(n.error, "") << in;
    EXPECT_EQ(n.target, want) << in;
  }
}

TEST(RequestTarget, UnreservedEscapesAreDecodedOthersUpperCased) {
  EXPECT_EQ(normalize("/%61dmin/secret").target, "/admin/secret");
  EXPECT_EQ(normalize("/%41%44MIN").target, "/ADMIN");
  EXPECT_EQ(normalize("/%7euser").target, "/~user");
  // An escaped dot is a dot: it takes part in dot-segment removal.
  EXPECT_EQ(normalize("/public/%2e%2e/admin").target, "/admin");
  EXPECT_EQ(normalize("/public/.%2E/admin").target, "/admin");
  EXPECT_EQ(normalize("/caf%c3%a9").target, "/caf%C3%A9");
  EXPECT_EQ(normalize("/a%20b").target, "/a%20b");
  EXPECT_EQ(normalize("/a%3fb?c").target, "/a%3Fb?c");  // an escaped "?" stays part of the path
}

TEST(RequestTarget, EncodedSlashesRejectedUnlessKept) {
  for (std::string t : {"/admin%2Fsecret", "/admin%2fsecret", "/admin%5Csecret", "/admin\\secret"}) {
    EXPECT_NE(normalize(t).error, "") << t;
    Normalized kept = normalize(t, true, EncodedSlashes::Keep);
    EXPECT_EQ(kept.error, "") << t;
    EXPECT_EQ(kept.target.find('/', 1), std::string::npos) << t;  // still one segment
  }
  EXPECT_EQ(normalize("/a%2fb/../c", true, EncodedSlashes::Keep).target, "/c");
}

TEST(RequestTarget, MalformedTargetsAreRefused) {
  for (std::string t : {"/a%", "/a%4", "/a%zz", "/a%00b", "/a#frag", "/a?b#frag", "/a\x01", "a/b", "",
                        "ftp://h/x", "http://user@h/x", "http:///x", "http://:80/x", "*"}) {
    EXPECT_NE(normalize(t).error, "") << t;
  }
  EXPECT_EQ(normalize("*", true, EncodedSlashes::Reject, "OPTIONS").target, "*");
}

TEST(RequestTarget, AbsoluteFormBecomesOriginFormWithItsAuthority) {
  Normalized n = normalize("http://Billing.Example.com:8080/admin/../x?q=1");
  EXPECT_EQ(n.error, "");
  EXPECT_EQ(n.target, "/x?q=1");
  EXPECT_EQ(n.authority, "Billing.Example.com:8080");
  EXPECT_EQ(hostOfAuthority(n.authority), "Billing.Example.com");
  EXPECT_EQ(normalize("HTTPS://h").target, "/");
  EXPECT_EQ(normalize("http://h?x").target, "/?x");
  EXPECT_EQ(normalize("http://[::1]:80/p").authority, "[::1]:80");
  EXPECT_EQ(hostOfAuthority("[::1]:80"), "[::1]");
  // HTTP/2's :path is origin-form only (RFC 9113 8.3.1).
  EXPECT_NE(normalize("http://h/x", false).error, "");
}

TEST(RequestTarget, RuleValuesNormalizeLikeRequests) {
  std::string out;
  EXPECT_EQ(normalizePath("/%7Eapi//v1/", EncodedSlashes::Keep, out), nullptr);
  EXPECT_EQ(out, "/~api/v1/");
  EXPECT_NE(normalizePath("api", EncodedSlashes::Keep, out), nullptr);
}

}  // namespace
}  // namespace trellis
