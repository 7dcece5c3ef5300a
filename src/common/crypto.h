// Hashes, MACs and randomness from OpenSSL.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace trellis {

std::string sha256(std::string_view data);  // 32 raw bytes
std::string sha256Hex(std::string_view data);
std::string hmacSha256(std::string_view key, std::string_view data);  // 32 raw bytes
// Constant-time comparison for secrets and signatures.
bool constantTimeEquals(std::string_view a, std::string_view b);
void randomBytes(void* out, size_t n);
std::string randomHex(size_t chars);
// Base64 with padding (RFC 4648 section 4).
std::string base64Encode(std::string_view data);
// False when `text` is not base64 with padding (its length a multiple of 4, only the alphabet and '=').
bool base64Decode(std::string_view text, std::string& out);
// A random RFC 4122 version-4 UUID string.
std::string randomUuid();

}  // namespace trellis
