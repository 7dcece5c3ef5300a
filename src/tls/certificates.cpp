#include "tls/certificates.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/crypto.h"
#include "common/log.h"
#include "common/strings.h"

namespace trellis::tls {
namespace {

namespace fs = std::filesystem;

constexpr int kRootYears = 10;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

std::string opensslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Writes `data` to a new file with `mode`; false when it exists or cannot be written.
bool writeNewFile(const fs::path& path, const std::string& data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n <= 0) {
      ::close(fd);
      ::unlink(path.c_str());
      return false;
    }
    done += static_cast<size_t>(n);
  }
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

void makePrivateDir(const fs::path& dir) {
  fs::create_directories(dir);
  ::chmod(dir.c_str(), 0700);
}

std::string pemOf(X509* certificate) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), certificate);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string pemOf(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

int64_t notAfterOf(X509* certificate) {
  tm parts{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &parts) != 1) return 0;
  return static_cast<int64_t>(timegm(&parts));
}

std::string fingerprintOf(X509* certificate) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  X509_digest(certificate, EVP_sha256(), digest, &length);
  return hexEncode(std::string_view(reinterpret_cast<char*>(digest), length));
}

bool addExtension(X509* certificate, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!extension) return false;
  bool ok = X509_add_ext(certificate, extension, -1) == 1;
  X509_EXTENSION_free(extension);
  return ok;
}

// A certificate for `key` named `commonName`, valid from `nowSeconds` for `lifetimeSeconds`; self-signed when
// `issuer` is null.
X509Ptr makeCertificate(EVP_PKEY* key, const std::string& commonName, X509* issuer, EVP_PKEY* issuerKey,
                        int64_t nowSeconds, int64_t lifetimeSeconds,
                        const std::vector<std::pair<int, std::string>>& extensions) {
  X509Ptr certificate(X509_new());
  X509_set_version(certificate.get(), 2);
  unsigned char serial[16];
  randomBytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(certificate.get()));
  BN_free(bn);
  time_t now = static_cast<time_t>(nowSeconds);
  X509_time_adj_ex(X509_getm_notBefore(certificate.get()), 0, -3600, &now);  // tolerate clients with a slow clock
  X509_time_adj_ex(X509_getm_notAfter(certificate.get()), 0, static_cast<long>(lifetimeSeconds), &now);
  X509_set_pubkey(certificate.get(), key);
  X509_NAME* name = X509_get_subject_name(certificate.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Trellis"), -1, -1, 0);
  // CN is limited to 64 characters; the SAN carries the real name.
  std::string cn = commonName.substr(0, 64);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                             0);
  X509* signer = issuer ? issuer : certificate.get();
  X509_set_issuer_name(certificate.get(), X509_get_subject_name(signer));
  for (const auto& [nid, value] : extensions) {
    if (!addExtension(certificate.get(), signer, nid, value)) throw std::runtime_error("tls: " + opensslError());
  }
  if (X509_sign(certificate.get(), issuerKey ? issuerKey : key, EVP_sha256()) == 0) {
    throw std::runtime_error("tls: cannot sign certificate: " + opensslError());
  }
  return certificate;
}

PkeyPtr newP256Key() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) throw std::runtime_error("tls: cannot generate an EC key: " + opensslError());
  return key;
}

// A uuid as randomUuid() makes them: the only names the store accepts, so an ARN cannot point outside it.
bool isUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    char c = s[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

int selectAlpn(SSL*, const unsigned char** out, unsigned char* outLength, const unsigned char* in,
               unsigned int inLength, void* offerH2) {
  static const unsigned char kWithH2[] = "\x02h2\x08http/1.1";
  static const unsigned char kHttp1[] = "\x08http/1.1";
  const unsigned char* server = offerH2 ? kWithH2 : kHttp1;
  unsigned int serverLength = offerH2 ? sizeof kWithH2 - 1 : sizeof kHttp1 - 1;
  unsigned char* selected = nullptr;
  // Server order: the first of ours the client offers (HTTP2Preferred). No overlap: no ALPN, HTTP/1.1.
  if (SSL_select_next_proto(&selected, outLength, server, serverLength, in, inLength) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

void applyProtocolSettings(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 || SSL_CTX_set_ciphersuites(ctx, kTls13Ciphers) != 1) {
    throw std::runtime_error("tls: cipher configuration rejected: " + opensslError());
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // Buffers go back to the allocator while a connection is idle: most keep-alive connections are.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

}  // namespace

CredentialPtr parseCredential(const std::string& certificatePem, const std::string& keyPem, std::string& error) {
  auto credential = std::make_shared<Credential>();
  BioPtr certBio(BIO_new_mem_buf(certificatePem.data(), static_cast<int>(certificatePem.size())));
  while (X509* x = PEM_read_bio_X509(certBio.get(), nullptr, nullptr, nullptr)) {
    if (!credential->certificate) {
      credential->certificate.reset(x);
    } else {
      credential->chain.emplace_back(x);
    }
  }
  ERR_clear_error();  // the loop ends on a "no start line" error
  if (!credential->certificate) {
    error = "no PEM certificate found";
    return nullptr;
  }
  BioPtr keyBio(BIO_new_mem_buf(keyPem.data(), static_cast<int>(keyPem.size())));
  credential->key.reset(PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr));
  if (!credential->key) {
    error = "no unencrypted PEM private key found: " + opensslError();
    return nullptr;
  }
  if (X509_check_private_key(credential->certificate.get(), credential->key.get()) != 1) {
    ERR_clear_error();
    error = "the private key does not belong to the certificate";
    return nullptr;
  }
  credential->notAfter = notAfterOf(credential->certificate.get());
  credential->fingerprint = fingerprintOf(credential->certificate.get());
  return credential;
}

CertificateAuthority::CertificateAuthority(const std::string& dataDir) {
  fs::path dir = fs::path(dataDir) / "tls";
  fs::path keyPath = dir / "ca.key", pemPath = dir / "ca.pem";
  makePrivateDir(dir);
  if (!fs::exists(keyPath)) {
    // Created under temporary names and linked into place: two processes starting at once agree on one CA.
    PkeyPtr key = newP256Key();
    X509Ptr root = makeCertificate(key.get(), "Trellis Root CA", nullptr, nullptr, time(nullptr),
                                   int64_t{kRootYears} * 365 * 86400,
                                   {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                                    {NID_key_usage, "critical,keyCertSign,cRLSign"},
                                    {NID_subject_key_identifier, "hash"}});
    std::string suffix = ".tmp-" + randomHex(8);
    fs::path tmpKey = dir / ("ca.key" + suffix), tmpPem = dir / ("ca.pem" + suffix);
    if (!writeNewFile(tmpKey, pemOf(key.get()), 0600) || !writeNewFile(tmpPem, pemOf(root.get()), 0644)) {
      throw std::runtime_error("tls: cannot write the CA into " + dir.string() + ": " + std::strerror(errno));
    }
    if (::link(tmpKey.c_str(), keyPath.c_str()) == 0) {
      fs::rename(tmpPem, pemPath);
      logInfo("tls: created the Trellis root CA in ", dir.string());
    } else {
      fs::remove(tmpPem);
    }
    fs::remove(tmpKey);
  }
  // The creator links the key first and renames the certificate right after.
  for (int i = 0; i < 50 && !fs::exists(pemPath); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::string error;
  CredentialPtr root = parseCredential(readFile(pemPath), readFile(keyPath), error);
  if (!root) throw std::runtime_error("tls: cannot load the CA from " + dir.string() + ": " + error);
  root_.reset(X509_dup(root->certificate.get()));
  rootKey_.reset(root->key.get());
  EVP_PKEY_up_ref(rootKey_.get());
  rootPem_ = pemOf(root_.get());
}

CredentialPtr CertificateAuthority::leafFor(const std::string& dnsName, int64_t nowSeconds) {
  constexpr int64_t kLifetime = int64_t{kLeafDays} * 86400;
  {
    std::lock_guard lock(mutex_);
    auto it = leaves_.find(dnsName);
    if (it != leaves_.end() && it->second->notAfter - nowSeconds > kLifetime / 3) return it->second;
  }
  auto leaf = std::make_shared<Credential>();
  leaf->key = newP256Key();
  leaf->certificate = makeCertificate(leaf->key.get(), dnsName, root_.get(), rootKey_.get(), nowSeconds, kLifetime,
                                      {{NID_basic_constraints, "critical,CA:FALSE"},
                                       {NID_key_usage, "critical,digitalSignature"},
                                       {NID_ext_key_usage, "serverAuth"},
                                       {NID_subject_alt_name, "DNS:" + dnsName},
                                       {NID_authority_key_identifier, "keyid"}});
  leaf->chain.emplace_back(X509_dup(root_.get()));
  leaf->notAfter = notAfterOf(leaf->certificate.get());
  leaf->fingerprint = fingerprintOf(leaf->certificate.get());
  std::lock_guard lock(mutex_);
  leaves_[dnsName] = leaf;
  return leaf;
}

std::string certificateStoreDir(const std::string& dataDir) {
  return (fs::path(dataDir) / "tls" / "certificates").string();
}

std::string importCertificate(const std::string& dataDir, const std::string& certificatePem,
                              const std::string& keyPem, const std::string& region, const std::string& accountId,
                              std::string& error) {
  CredentialPtr credential = parseCredential(certificatePem, keyPem, error);
  if (!credential) return {};
  fs::path dir = certificateStoreDir(dataDir);
  try {
    makePrivateDir(dir);
  } catch (const std::exception& e) {
    error = e.what();
    return {};
  }
  std::string id = randomUuid();
  // Stored re-encoded, so whatever else the input files held (comments, other keys) is not kept.
  std::string chainPem = pemOf(credential->certificate.get());
  for (const auto& x : credential->chain) chainPem += pemOf(x.get());
  if (!writeNewFile(dir / (id + ".key"), pemOf(credential->key.get()), 0600) ||
      !writeNewFile(dir / (id + ".pem"), chainPem, 0644)) {
    error = "cannot write into " + dir.string() + ": " + std::strerror(errno);
    fs::remove(dir / (id + ".key"));
    return {};
  }
  return "arn:aws:acm:" + region + ":" + accountId + ":certificate/" + id;
}

std::string certificateIdOf(const std::string& certificateArn) {
  auto slash = certificateArn.rfind("certificate/");
  std::string id = slash == std::string::npos ? "" : toLower(certificateArn.substr(slash + 12));
  return isUuid(id) ? id : "";
}

CredentialPtr loadImportedCertificate(const std::string& dataDir, const std::string& certificateArn,
                                      std::string& error) {
  std::string id = certificateIdOf(certificateArn);
  if (id.empty()) {
    error = "not a certificate ARN: " + certificateArn;
    return nullptr;
  }
  fs::path dir = certificateStoreDir(dataDir);
  std::string pem = readFile(dir / (id + ".pem")), key = readFile(dir / (id + ".key"));
  if (pem.empty() || key.empty()) {
    error = "no imported certificate " + id;
    return nullptr;
  }
  return parseCredential(pem, key, error);
}

SslCtxPtr makeServerContext(const Credential& credential, bool offerH2) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) throw std::runtime_error("tls: " + opensslError());
  applyProtocolSettings(ctx.get());
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate(ctx.get(), credential.certificate.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx.get(), credential.key.get()) != 1) {
    throw std::runtime_error("tls: certificate rejected: " + opensslError());
  }
  for (const auto& x : credential.chain) SSL_CTX_add1_chain_cert(ctx.get(), x.get());
  static const unsigned char kSessionContext[] = "trellis";
  SSL_CTX_set_session_id_context(ctx.get(), kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpn, offerH2 ? reinterpret_cast<void*>(1) : nullptr);
  return ctx;
}

SslCtxPtr makeClientContext(bool verify, const std::string& caFile) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw std::runtime_error("tls: " + opensslError());
  applyProtocolSettings(ctx.get());
  if (!verify) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);  // as in Lattice: target certificates are not validated
    return ctx;
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  int loaded = caFile.empty() ? SSL_CTX_set_default_verify_paths(ctx.get())
                              : SSL_CTX_load_verify_locations(ctx.get(), caFile.c_str(), nullptr);
  if (loaded != 1) throw std::runtime_error("tls: cannot load target CA " + caFile + ": " + opensslError());
  return ctx;
}

}  // namespace trellis::tls
