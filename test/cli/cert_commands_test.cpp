// `trellis ca export` and `trellis cert import`: local commands on trellisd's data dir.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "cli/commands.h"
#include "tls/certificates.h"

namespace trellis::cli {
namespace {

namespace fs = std::filesystem;

struct Dir {
  Dir() {
    char tmpl[] = "/tmp/trellis-cli-cert-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~Dir() { fs::remove_all(path); }
  std::string path;
};

int runCli(const std::vector<std::string>& args, std::string& out, std::string& err) {
  std::vector<std::string> argv = {"trellis"};
  argv.insert(argv.end(), args.begin(), args.end());
  Options options;
  std::ostringstream o, e;
  int code = parseArgs(argv, options, o, e);
  if (code < 0) {
    EXPECT_TRUE(isLocalCommand(options));
    code = runLocal(options, [](const char*) -> const char* { return nullptr; }, o, e);
  }
  out = o.str();
  err = e.str();
  return code;
}

TEST(CertCommands, ImportStoresKeyOwnerOnlyAndPrintsAnAcmArn) {
  Dir dir;
  std::string cert = dir.path + "/c.pem", key = dir.path + "/k.pem";
  ASSERT_EQ(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=x.example.com -keyout " + key +
                         " -out " + cert + " 2>/dev/null")
                            .c_str()),
            0);
  std::string out, err;
  ASSERT_EQ(runCli({"cert", "import", "--cert", cert, "--key", key, "--data-dir", dir.path}, out, err), 0) << err;
  std::smatch m;
  std::string line = out.substr(0, out.find('\n'));
  ASSERT_TRUE(std::regex_match(line, m,
                               std::regex("arn:aws:acm:us-east-1:111122223333:certificate/([0-9a-f-]{36})")))
      << out;
  struct stat st {};
  ASSERT_EQ(stat((tls::certificateStoreDir(dir.path) + "/" + m[1].str() + ".key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
  std::string error;
  EXPECT_TRUE(tls::loadImportedCertificate(dir.path, line, error)) << error;

  // A key that is not the certificate's is refused, and nothing is stored.
  std::string otherKey = dir.path + "/k2.pem";
  ASSERT_EQ(std::system(("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + otherKey).c_str()), 0);
  EXPECT_EQ(runCli({"cert", "import", "--cert", cert, "--key", otherKey, "--data-dir", dir.path}, out, err), 1);
  EXPECT_NE(err.find("does not belong"), std::string::npos) << err;
  EXPECT_EQ(std::distance(fs::directory_iterator(tls::certificateStoreDir(dir.path)), fs::directory_iterator()), 2);
}

TEST(CertCommands, CaExportPrintsTheRootTrellisdCreated) {
  Dir dir;
  std::string out, err;
  EXPECT_EQ(runCli({"ca", "export", "--data-dir", dir.path}, out, err), 1);  // no CA yet
  EXPECT_NE(err.find("first start"), std::string::npos);
  tls::CertificateAuthority ca(dir.path);  // what trellisd does on start
  ASSERT_EQ(runCli({"ca", "export", "--data-dir", dir.path}, out, err), 0) << err;
  EXPECT_EQ(out, ca.rootPem());
  EXPECT_EQ(out.rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
}

}  // namespace
}  // namespace trellis::cli
