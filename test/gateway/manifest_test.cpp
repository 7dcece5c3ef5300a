#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/manifest.h"

using namespace trellis::gateway;

namespace {

std::string errorOf(const std::string& yaml) {
  try {
    parseManifests(yaml, "m.yaml");
  } catch (const ManifestError& e) {
    return e.what();
  }
  return "";
}

TEST(Manifest, ParsesMultiDocumentYamlWithTypedScalars) {
  auto objects = parseManifests(R"(
apiVersion: v1
kind: Namespace
metadata: {name: checkout}
---
---
apiVersion: application-networking.k8s.aws/v1alpha1
kind: TargetGroupPolicy
metadata:
  name: p
  namespace: checkout
spec:
  healthCheck: {enabled: true, port: 8080, statusMatch: "200", path: /health}
)",
                                "m.yaml");
  ASSERT_EQ(objects.size(), 2u);
  EXPECT_EQ(objects[0].ref(), "Namespace checkout");
  EXPECT_EQ(objects[0].ns, "");
  EXPECT_EQ(objects[1].ref(), "TargetGroupPolicy checkout/p");
  EXPECT_EQ(objects[1].document, 3u);
  const auto& hc = objects[1].spec()["healthCheck"];
  EXPECT_EQ(hc["enabled"], true);
  EXPECT_EQ(hc["port"], 8080);
  EXPECT_EQ(hc["statusMatch"], "200");  // quoted: stays a string
  EXPECT_EQ(hc["path"], "/health");
}

TEST(Manifest, IamPolicyVariablesAreNotShellVariables) {
  auto objects = parseManifests(R"(apiVersion: application-networking.k8s.aws/v1alpha1
kind: IAMAuthPolicy
metadata: {name: p}
spec:
  policy: '{"Statement":[{"Resource":"arn:aws:vpc-lattice:*:*:service/${aws:PrincipalTag/svc}"}]}'
  other: "$HOME {x} ${} ${1A}"
)",
                                "m.yaml");
  EXPECT_EQ(objects.size(), 1u);
}

TEST(Manifest, NamespacedKindsDefaultToTheDefaultNamespace) {
  auto objects = parseManifests("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", "m.yaml");
  EXPECT_EQ(objects.at(0).ns, "default");
}

struct BadCase {
  const char* yaml;
  const char* expected;  // substrings, '|'-separated
};

class ManifestErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ManifestErrors, NameTheFileTheObjectAndTheField) {
  std::string error = errorOf(GetParam().yaml);
  ASSERT_FALSE(error.empty());
  std::string expected = GetParam().expected;
  size_t start = 0;
  while (start <= expected.size()) {
    size_t bar = expected.find('|', start);
    std::string part = expected.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
    EXPECT_NE(error.find(part), std::string::npos) << "'" << part << "' not in: " << error;
    if (bar == std::string::npos) break;
    start = bar + 1;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ManifestErrors,
    ::testing::Values(
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: '${EKS_CLUSTER_NAME}', "
                "namespace: a}\n",
                "m.yaml|document 1|metadata.name|${EKS_CLUSTER_NAME}|unexpanded"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs:\n"
                "  - name: ${GW}\n",
                "spec.parentRefs[0].name|${GW}"},
        BadCase{"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n", "m.yaml|kind|unknown kind 'Deployment'"},
        BadCase{"apiVersion: gateway.networking.k8s.io/v2\nkind: Gateway\nmetadata: {name: g}\n",
                "Gateway default/g|apiVersion|v1beta1"},
        BadCase{"apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n", "metadata.name"},
        BadCase{"kind: [\n", "not valid YAML|line"},
        BadCase{"- a\n- b\n", "must be a mapping"},
        BadCase{"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: 3\n", "Service default/s|spec"},
        BadCase{"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {a: 1, a: 2}\n", "spec.a|twice"}));

TEST(Manifest, AliasBombsStopWithAnError) {
  std::string yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  a: &a [x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'k'; ++c, ++prev)
    yaml += std::string("  ") + c + ": &" + c + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" +
            prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n";
  EXPECT_NE(errorOf(yaml).find("too large"), std::string::npos);
}

TEST(Manifest, LoadsDirectoriesAndRejectsDuplicates) {
  auto dir = std::filesystem::temp_directory_path() / ("trellis-manifest-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "b.yaml") << "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n";
  std::ofstream(dir / "a.yml") << "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n";
  std::ofstream(dir / "notes.txt") << "not yaml: [";
  std::istringstream in("apiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n");
  auto objects = loadManifests({dir.string(), "-"}, in);
  ASSERT_EQ(objects.size(), 3u);
  EXPECT_EQ(objects[0].name, "a");
  EXPECT_EQ(objects[1].name, "b");
  EXPECT_EQ(objects[2].file, "-");
  std::istringstream again("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
  try {
    loadManifests({dir.string(), "-"}, again);
    ADD_FAILURE() << "a duplicate was accepted";
  } catch (const ManifestError& e) {
    EXPECT_NE(std::string(e.what()).find("defined twice"), std::string::npos) << e.what();
  }
  std::istringstream none;
  EXPECT_THROW(loadManifests({(dir / "missing.yaml").string()}, none), ManifestError);
  std::filesystem::remove_all(dir);
}

}  // namespace

namespace {

TEST(Manifest, TagsAreRefusedBeforeYamlCppSeesThem) {
  // yaml-cpp 0.7 loops forever on "!a ,"; manifests never need tags.
  for (const char* yaml : {"!a ,", "---\n!pi0Version:ay.,x", "kind: !!str Service\n", "x: [!a, b]\n"})
    EXPECT_NE(errorOf(yaml).find("YAML tags"), std::string::npos) << yaml;
  // ... and on a document starting with ','.
  for (const char* yaml : {",", "  ,", "# c\n,", "a: 1\n--- ,", "---\n\n ,x"})
    EXPECT_NE(errorOf(yaml).find("cannot start with ','"), std::string::npos) << yaml;
  // '!' inside quotes, comments and block scalars is content.
  auto objects = parseManifests(R"(apiVersion: v1
kind: Service  # not !a tag
metadata:
  name: s
  annotations:
    a: "!quoted, fine"
    b: 'it''s !fine'
    c: |
      !block content, fine
      more !text
    d: >-
      !folded
spec: {}
)",
                                "m.yaml");
  EXPECT_EQ(objects.at(0).body["metadata"]["annotations"]["c"], "!block content, fine\nmore !text\n");
}

}  // namespace
