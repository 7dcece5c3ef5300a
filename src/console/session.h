// Console sign-in: sessions held in memory by trellisd, named by an HttpOnly cookie, each with its own CSRF
// token. A session keeps the identity's access key and a digest of its secret, never the secret: every request
// looks the identity up in the running config again, so removing it (or changing its secret) and reloading ends
// its sessions at once.
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/config.h"

namespace trellis::console {

inline constexpr std::string_view kSessionCookie = "trellis_session";
inline constexpr std::string_view kCsrfHeader = "x-csrf-token";

// The name=value pairs of a Cookie header (RFC 6265 5.4: "a=1; b=2"), in order; values keep their bytes, a
// double-quoted value loses its quotes. Pairs without '=' or with an empty name are skipped.
std::vector<std::pair<std::string, std::string>> parseCookieHeader(std::string_view header);
// The first value of cookie `name` across every Cookie header of a request, or nullopt.
std::optional<std::string> findCookie(const std::vector<std::pair<std::string, std::string>>& headers,
                                      std::string_view name);

struct Session {
  std::string id;    // the cookie's value: 256 random bits, hex
  std::string csrf;  // sent back in kCsrfHeader on every request that changes something
  std::string accessKeyId;
  std::string secretDigest;  // SHA-256 of the secret it signed in with
  std::chrono::steady_clock::time_point expires;
};

class SessionStore {
 public:
  using Clock = std::chrono::steady_clock;
  explicit SessionStore(std::chrono::seconds lifetime = std::chrono::hours(8), size_t maxSessions = 10000)
      : lifetime_(lifetime), maxSessions_(maxSessions) {}

  // A new session when `accessKeyId` names an identity of `config` whose secret is `secret` (compared in
  // constant time); nullopt otherwise, with no hint which of the two was wrong.
  std::optional<Session> signIn(const model::Config& config, std::string_view accessKeyId, std::string_view secret,
                                Clock::time_point now = Clock::now());
  // The identity of the live session named `id`, or nullptr: unknown, expired (then forgotten), or its identity
  // no longer in `config` with the same secret. `session` receives a copy when given.
  const model::Identity* resolve(const model::Config& config, std::string_view id, Session* session = nullptr,
                                 Clock::time_point now = Clock::now());
  void signOut(std::string_view id);
  size_t size() const;
  std::chrono::seconds lifetime() const { return lifetime_; }

 private:
  void evictExpired(Clock::time_point now);

  std::chrono::seconds lifetime_;
  size_t maxSessions_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Session> sessions_;
};

// Failed sign-ins per client address: after `limit` failures within `window`, that address is refused until the
// window has passed since its first failure, so a secret cannot be guessed at the rate the console answers.
class SignInThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit SignInThrottle(int limit = 10, std::chrono::seconds window = std::chrono::seconds(60))
      : limit_(limit), window_(window) {}
  // Seconds to wait before the next attempt from `peer`; 0: it may try now.
  int64_t retryAfter(const std::string& peer, Clock::time_point now = Clock::now());
  void failed(const std::string& peer, Clock::time_point now = Clock::now());
  void succeeded(const std::string& peer);

 private:
  struct Failures {
    int count = 0;
    Clock::time_point since;
  };
  int limit_;
  std::chrono::seconds window_;
  std::mutex mutex_;
  std::unordered_map<std::string, Failures> failures_;
};

// Whether a request that changes something carries its session's CSRF token (constant-time compare).
bool csrfTokenMatches(const Session& session, const std::string* header);
// The Set-Cookie value naming a session (HttpOnly, SameSite=Strict, Path=/, Max-Age of the session's lifetime);
// `secure` adds Secure (a console behind TLS).
std::string sessionCookie(const Session& session, std::chrono::seconds lifetime, bool secure);
// The Set-Cookie value that removes it.
std::string expiredSessionCookie(bool secure);

}  // namespace trellis::console
