#include "console/session.h"

#include "common/crypto.h"

namespace trellis::console {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parseCookieHeader(std::string_view header) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!header.empty()) {
    size_t end = header.find(';');
    std::string_view pair = header.substr(0, end);
    header = end == std::string_view::npos ? std::string_view() : header.substr(end + 1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = trim(pair.substr(0, eq));
    std::string_view value = trim(pair.substr(eq + 1));
    if (name.empty()) continue;
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    out.emplace_back(std::string(name), std::string(value));
  }
  return out;
}

std::optional<std::string> findCookie(const std::vector<std::pair<std::string, std::string>>& headers,
                                      std::string_view name) {
  for (const auto& [header, value] : headers) {
    if (header != "cookie") continue;
    for (auto& [cookie, cookieValue] : parseCookieHeader(value))
      if (cookie == name) return std::move(cookieValue);
  }
  return std::nullopt;
}

std::optional<Session> SessionStore::signIn(const model::Config& config, std::string_view accessKeyId,
                                            std::string_view secret, Clock::time_point now) {
  const model::Identity* identity = config.identityByAccessKey(std::string(accessKeyId));
  // Hash both sides so the comparison takes the same time whatever the secrets' lengths.
  std::string given = sha256(secret);
  if (!identity || !constantTimeEquals(sha256(identity->secretAccessKey), given)) return std::nullopt;
  Session session{randomHex(64), randomHex(64), identity->accessKeyId, given, now + lifetime_};
  std::lock_guard lock(mutex_);
  evictExpired(now);
  if (sessions_.size() >= maxSessions_) {
    // Full of live sessions: the one closest to expiry goes, so sign-ins never stop working.
    auto oldest = sessions_.begin();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
      if (it->second.expires < oldest->second.expires) oldest = it;
    sessions_.erase(oldest);
  }
  sessions_.emplace(session.id, session);
  return session;
}

const model::Identity* SessionStore::resolve(const model::Config& config, std::string_view id, Session* session,
                                             Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(std::string(id));
  if (it == sessions_.end()) return nullptr;
  if (it->second.expires <= now) {
    sessions_.erase(it);
    return nullptr;
  }
  const model::Identity* identity = config.identityByAccessKey(it->second.accessKeyId);
  if (!identity || !constantTimeEquals(sha256(identity->secretAccessKey), it->second.secretDigest)) {
    sessions_.erase(it);  // the identity is gone or its secret changed: this session never comes back
    return nullptr;
  }
  if (session) *session = it->second;
  return identity;
}

void SessionStore::signOut(std::string_view id) {
  std::lock_guard lock(mutex_);
  sessions_.erase(std::string(id));
}

size_t SessionStore::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

void SessionStore::evictExpired(Clock::time_point now) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second.expires <= now)
      it = sessions_.erase(it);
    else
      ++it;
  }
}

int64_t SignInThrottle::retryAfter(const std::string& peer, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = failures_.find(peer);
  if (it == failures_.end()) return 0;
  auto until = it->second.since + window_;
  if (now >= until) {
    failures_.erase(it);
    return 0;
  }
  if (it->second.count < limit_) return 0;
  return std::chrono::duration_cast<std::chrono::seconds>(until - now).count() + 1;
}

void SignInThrottle::failed(const std::string& peer, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (failures_.size() > 100000) failures_.clear();  // bounded: a flood of addresses only resets the count
  auto& f = failures_[peer];
  if (f.count == 0 || now >= f.since + window_) f = {0, now};
  ++f.count;
}

void SignInThrottle::succeeded(const std::string& peer) {
  std::lock_guard lock(mutex_);
  failures_.erase(peer);
}

bool csrfTokenMatches(const Session& session, const std::string* header) {
  return header && !session.csrf.empty() && constantTimeEquals(*header, session.csrf);
}

std::string sessionCookie(const Session& session, std::chrono::seconds lifetime, bool secure) {
  return std::string(kSessionCookie) + "=" + session.id + "; Path=/; Max-Age=" + std::to_string(lifetime.count()) +
         "; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "");
}

std::string expiredSessionCookie(bool secure) {
  return std::string(kSessionCookie) + "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "");
}

}  // namespace trellis::console
