// Certificates for HTTPS listeners (docs/architecture.md, "HTTPS and TLS passthrough"), kept in the data dir:
//   {dataDir}/tls/ca.key, ca.pem                  Trellis's own root CA (EC P-256, key 0600), made on first use.
//                                                  Leaves for generated service names are issued from it.
//   {dataDir}/tls/certificates/{uuid}.pem, .key   imported certificates ("trellis cert import"), named by an
//                                                  ACM-style ARN arn:aws:acm:{region}:{account}:certificate/{uuid}.
// This library links only OpenSSL and common, so the CLI can use it without the proxy.
#pragma once
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace trellis::tls {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// A certificate with its private key and the chain to send after it.
struct Credential {
  X509Ptr certificate;
  std::vector<X509Ptr> chain;
  PkeyPtr key;
  int64_t notAfter = 0;  // unix seconds
  std::string fingerprint;  // SHA-256 of the DER leaf, hex: tells a changed certificate apart
};
using CredentialPtr = std::shared_ptr<const Credential>;

// Parses PEM: the first certificate is the leaf, the rest its chain. Null with `error` set when the text holds
// no certificate, the key does not parse, or the key does not belong to the certificate.
CredentialPtr parseCredential(const std::string& certificatePem, const std::string& keyPem, std::string& error);

class CertificateAuthority {
 public:
  // Loads {dataDir}/tls/ca.{key,pem}, creating them when absent. Throws std::runtime_error when they exist
  // but cannot be read, or cannot be created.
  explicit CertificateAuthority(const std::string& dataDir);
  const std::string& rootPem() const { return rootPem_; }
  // A leaf for `dnsName` (SAN and CN), signed by the root, valid for kLeafDays. Cached; a new one is issued
  // once two thirds of the old one's validity have passed, so rotation happens long before expiry.
  CredentialPtr leafFor(const std::string& dnsName, int64_t nowSeconds);

  static constexpr int kLeafDays = 30;

 private:
  X509Ptr root_;
  PkeyPtr rootKey_;
  std::string rootPem_;
  std::mutex mutex_;
  std::unordered_map<std::string, CredentialPtr> leaves_;
};

// Where imported certificates live.
std::string certificateStoreDir(const std::string& dataDir);
// Validates and stores an imported certificate; returns its ARN, or empty with `error` set.
std::string importCertificate(const std::string& dataDir, const std::string& certificatePem,
                              const std::string& keyPem, const std::string& region, const std::string& accountId,
                              std::string& error);
// The uuid an imported certificate's ARN names (its files' stem in the store), lower-case; "" when it names none.
std::string certificateIdOf(const std::string& certificateArn);
// The certificate an ARN names (only its uuid is looked at), or null when the store has none.
CredentialPtr loadImportedCertificate(const std::string& dataDir, const std::string& certificateArn,
                                      std::string& error);

// Lattice's TLS settings: TLS 1.2-1.3, the listed cipher suites in server order. The TLS 1.2 list is
// Lattice's (RSA key exchange signatures) with the ECDSA twin of each ECDHE suite next to it, so
// Trellis's EC leaves and imported RSA certificates both work.
// Lattice's security policy: https://docs.aws.amazon.com/vpc-lattice/latest/ug/https-listeners.html
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"
    "AES128-GCM-SHA256:AES128-SHA:AES256-GCM-SHA384:AES256-SHA";
inline constexpr const char* kTls13Ciphers = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

// A server context presenting `credential`, with ALPN `h2` (when `offerH2`) and `http/1.1`.
SslCtxPtr makeServerContext(const Credential& credential, bool offerH2);
// A client context for HTTPS targets, with the same protocol settings: no certificate verification,
// unless `verify` (a Trellis extension): then chains must end at `caFile` (PEM; the system's trust store when
// empty). Throws std::runtime_error when the CA file cannot be loaded.
SslCtxPtr makeClientContext(bool verify = false, const std::string& caFile = {});

}  // namespace trellis::tls
